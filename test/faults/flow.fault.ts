/**
 * Flow control under SIGKILL: three runner processes (concurrency 10 each)
 * drain jobs of a kind limited to `global: 5` across every node, and one of
 * them is killed three times and replaced. The limit must hold the whole
 * time: in the store (sampled running rows whose lease holds) and in what
 * really ran (handler start and end times in `results`, a killed node's
 * unfinished runs ending at its death). A dead node's jobs keep their places
 * until their leases expire and they are rescued; then every job completes.
 */
import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import {
  awaitDrained,
  awaitEvent,
  dbNow,
  enqueueJobs,
  eventually,
  ledger,
  ledgerFigures,
  report,
  scenario
} from "./harness.js"

const total = 400
const kills = 3
const limit = 5
const leaseMs = 3_000

describe("fault: a global limit under SIGKILL", () => {
  scenario(
    "global: 5 is never exceeded while nodes are killed and their jobs rescued",
    { label: "flowkill", timeout: 300_000 },
    ({ sql, schema, store, spawn }) =>
      Effect.gen(function* () {
        const jobs = sql(`${schema}.jobs_all`)
        const results = sql(`${schema}.results`)
        yield* enqueueJobs(store, total, "capped", (i) => ({ ms: 20 + (i % 7) * 10 }))
        const start = (name: string) => spawn(name, { NS_LEASE_MS: leaseMs, NS_CONCURRENCY: 10 })
        const live = [yield* start("f1"), yield* start("f2"), yield* start("f3")]
        yield* Effect.forEach(live, (node) => awaitEvent(node, "up"), { discard: true })

        // The store's view, sampled in one snapshot as often as the database answers.
        let samples = 0
        let mostRunning = 0
        const sampler = yield* Effect.fork(
          Effect.forever(
            Effect.flatMap(
              sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs}
                WHERE kind = 'capped' AND state = 'running' AND lease_expires_at > now()`,
              (rows) =>
                Effect.sync(() => {
                  samples++
                  mostRunning = Math.max(mostRunning, rows[0]!.n)
                })
            )
          )
        )
        const completed = Effect.map(
          sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'completed'`,
          (rows) => rows[0]!.n
        )
        const deaths: Array<{ node: string; at: number }> = []
        for (let k = 1; k <= kills; k++) {
          const threshold = Math.round((total * k) / (kills + 1))
          yield* eventually(
            `${threshold} jobs are completed`,
            Effect.map(completed, (n) => n >= threshold)
          )
          // The node holding the most capped jobs dies, so that its places stay taken until rescued.
          const [holder] = yield* sql<{ owner: string }>`SELECT lease_owner AS owner FROM ${jobs}
            WHERE kind = 'capped' AND state = 'running' GROUP BY lease_owner ORDER BY count(*) DESC LIMIT 1`
          const at = Math.max(
            0,
            live.findIndex((node) => node.name === holder?.owner)
          )
          const victim = live[at]!
          victim.process.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          deaths.push({ node: victim.name, at: yield* dbNow(sql) })
          live[at] = yield* start(`f${3 + k}`)
        }
        yield* awaitDrained(sql, schema, "200 seconds")
        yield* Fiber.interrupt(sampler)

        // What really ran: each run from its start to its end, or to its node's death.
        const runs = yield* sql<{ node: string; started: number; ended: number | null }>`
          SELECT s.node, (extract(epoch from s.at) * 1000)::float8 AS started,
            (SELECT (extract(epoch from e.at) * 1000)::float8 FROM ${results} e
             WHERE e.job_id = s.job_id AND e.attempt = s.attempt AND e.node = s.node AND e.phase = 'end') AS ended
          FROM ${results} s WHERE s.phase = 'start'`
        const deathOf = new Map(deaths.map((d) => [d.node, d.at]))
        const edges: Array<readonly [number, number]> = []
        let cutShort = 0
        for (const run of runs) {
          const end = run.ended ?? deathOf.get(run.node)
          expect(end, `a run on ${run.node} that never ended, on a node that never died`).toBeDefined()
          if (run.ended === null) cutShort++
          edges.push([run.started, 1], [end!, -1])
        }
        // Ends before starts at the same instant: a run that ended as another began did not overlap it.
        edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
        let concurrent = 0
        let mostConcurrent = 0
        for (const [, step] of edges) {
          concurrent += step
          mostConcurrent = Math.max(mostConcurrent, concurrent)
        }
        const book = yield* ledger(sql, schema)
        yield* report("flow-global-limit-sigkill", {
          ...ledgerFigures(book),
          limit,
          mostRunningInStore: mostRunning,
          mostRunConcurrently: mostConcurrent,
          samples,
          kills: deaths.length,
          inFlightAtFault: cutShort,
          recoverMs: null
        })

        expect(book.completed).toBe(total)
        expect(samples).toBeGreaterThan(50)
        expect(mostRunning).toBeLessThanOrEqual(limit)
        expect(mostConcurrent).toBeLessThanOrEqual(limit)
        // The limit was reached (three nodes at concurrency 10 would run 30 without it).
        expect(mostConcurrent).toBe(limit)
        expect(cutShort).toBeGreaterThan(0)
      })
  )
})
