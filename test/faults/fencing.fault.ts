/**
 * The fencing race: a runner process is frozen (SIGSTOP) while its attempts
 * run, past their leases; another runner rescues the jobs and completes them;
 * then the frozen process resumes, its attempts finish at once (their wait is
 * over and they ignore interruption) and try to settle with the fence they
 * were claimed with. The stale settles must change nothing.
 */
import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  awaitEvent,
  dbNow,
  enqueueJobs,
  eventually,
  ledger,
  ledgerFigures,
  report,
  scenario
} from "./harness.js"

const jobsCount = 5
const leaseMs = 2_000
const stallMs = 4_000

describe("fault: an attempt stalls past its lease", () => {
  scenario(
    "the rescued job is completed elsewhere, and the stalled attempt's late settle changes nothing",
    { label: "fence" },
    ({ sql, schema, store, spawn }) =>
      Effect.gen(function* () {
        const jobs = sql(`${schema}.jobs_all`)
        const results = sql(`${schema}.results`)
        const env = {
          NS_LEASE_MS: leaseMs,
          NS_HEARTBEAT_MS: 500,
          NS_RESCUE_MS: 250,
          NS_CONCURRENCY: jobsCount
        }
        const runs = (node: string, phase: string) =>
          Effect.map(
            sql<{
              n: number
            }>`SELECT count(*)::int AS n FROM ${results} WHERE node = ${node} AND phase = ${phase}`,
            (rows) => rows[0]!.n
          )

        const stalled = yield* spawn("stalled", { ...env, NS_STALL_MS: stallMs })
        yield* awaitEvent(stalled, "up")
        yield* enqueueJobs(store, jobsCount, "stall", () => ({}))
        yield* eventually(
          "the first runner runs every job",
          Effect.map(runs("stalled", "start"), (n) => n === jobsCount)
        )
        // Let the attempts get into their wait before the process freezes.
        yield* Effect.sleep("1 second")
        stalled.process.kill("SIGSTOP")
        const stalledAt = yield* dbNow(sql)

        yield* spawn("rescuer", { ...env, NS_STALL_MS: 0 })
        yield* eventually(
          "the second runner completes every job",
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'completed'`,
            (rows) => rows[0]!.n === jobsCount
          )
        )
        const completedAt = yield* dbNow(sql)
        // Resume only once the stalled attempts' own work is over: they finish the moment the process runs again.
        yield* Effect.sleep(Math.max(0, stalledAt + stallMs + 1_000 - completedAt))
        const snapshot = sql<Record<string, unknown>>`SELECT * FROM ${jobs} ORDER BY id`
        const before = yield* snapshot

        stalled.process.kill("SIGCONT")
        yield* eventually(
          "the stalled attempts finish and try to settle",
          Effect.sync(() => stalled.events("settle-rejected").length >= jobsCount),
          "60 seconds"
        )
        // Give any other late write (a heartbeat, a retry of the settle) time to land.
        yield* Effect.sleep("2 seconds")
        const after = yield* snapshot
        expect(after).toEqual(before)
        expect(stalled.running()).toBe(true)

        // The resumed runner keeps working.
        yield* enqueueJobs(store, 20, "work", () => ({ ms: 1 }))
        yield* eventually(
          "both runners take new work again",
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'completed'`,
            (rows) => rows[0]!.n === jobsCount + 20
          )
        )
        const book = yield* ledger(sql, schema)
        yield* report("fencing-race", {
          ...ledgerFigures(book),
          inFlightAtFault: jobsCount,
          recoverMs: Math.round(completedAt - stalledAt),
          staleSettlesRejected: stalled.events("settle-rejected").length,
          rowsChangedByStaleSettles: after.filter(
            (row, i) => JSON.stringify(row) !== JSON.stringify(before[i])
          ).length
        })
        expect(book.completed).toBe(book.enqueued)
        expect(book.twice.length).toBeLessThanOrEqual(jobsCount)
        for (const job of book.twice) expect(job.nodes).toEqual(["stalled", "rescuer"])
      })
  )
})
