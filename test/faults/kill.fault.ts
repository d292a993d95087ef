/**
 * SIGKILL one of three runner processes mid-drain, five times over a run of
 * 20,000 jobs. A replacement process starts after each kill, so three run
 * throughout. Nothing may be lost, and only jobs the killed process held may
 * run twice.
 */
import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
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

const total = 20_000
const kills = 5
const leaseMs = 10_000

describe("fault: SIGKILL runners mid-drain", () => {
  scenario(
    "five SIGKILLs over 20,000 jobs: none lost, only the killed runner's in-flight jobs run twice",
    { label: "kill", timeout: 600_000 },
    ({ sql, schema, store, spawn }) =>
      Effect.gen(function* () {
        const jobs = sql(`${schema}.jobs_all`)
        yield* enqueueJobs(store, total, "work", (i) => ({ ms: 5 + (i % 11) }))
        const start = (name: string) => spawn(name, { NS_LEASE_MS: leaseMs, NS_CONCURRENCY: 10 })
        const live = [yield* start("r1"), yield* start("r2"), yield* start("r3")]
        yield* Effect.forEach(live, (node) => awaitEvent(node, "up"), { discard: true })

        const completed = Effect.map(
          sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'completed'`,
          (rows) => rows[0]!.n
        )
        const faults: Array<{ victim: string; at: number; inFlight: ReadonlyArray<string> }> = []
        for (let k = 1; k <= kills; k++) {
          const threshold = Math.round((total * k) / (kills + 1))
          yield* eventually(
            `${threshold} jobs are completed`,
            Effect.map(completed, (n) => n >= threshold)
          )
          const victim = live[(k - 1) % live.length]!
          victim.process.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          const at = yield* dbNow(sql)
          // What the dead process held when it died: nobody else may touch it until its lease runs out.
          const held = yield* sql<{ id: string }>`
          SELECT id::text AS id FROM ${jobs} WHERE state = 'running' AND lease_owner = ${victim.name}`
          faults.push({ victim: victim.name, at, inFlight: held.map((r) => r.id) })
          const replacement = yield* start(`r${3 + k}`)
          live[(k - 1) % live.length] = replacement
        }
        yield* awaitDrained(sql, schema)
        const book = yield* ledger(sql, schema)

        const inFlight = new Map<string, string>()
        for (const fault of faults) for (const id of fault.inFlight) inFlight.set(id, fault.victim)
        // How long until every job a victim held was back in the queue (rescued).
        const recovery = yield* Effect.forEach(faults, (fault) =>
          fault.inFlight.length === 0
            ? Effect.succeed(0)
            : Effect.map(
                sql<{ last: number | null }>`
                SELECT max(rescued_at) AS last FROM (
                  SELECT min((e->>'at')::float8) AS rescued_at
                  FROM ${jobs} j, jsonb_array_elements(j.errors) e
                  WHERE j.id = ANY(${fault.inFlight}::bigint[]) AND e->>'kind' = 'rescued'
                    AND (e->>'at')::float8 >= ${fault.at}
                  GROUP BY j.id) AS r`,
                (rows) => Math.round((rows[0]!.last ?? Number.POSITIVE_INFINITY) - fault.at)
              )
        )
        // Rescues of runners that were alive: leases that ran out without a kill (a stalled process).
        const victims = faults.map((f) => f.victim)
        const [spurious] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM ${jobs} j, jsonb_array_elements(j.errors) e
        WHERE e->>'kind' = 'rescued' AND NOT (e->>'message' ~ ${`runner (${victims.join("|")}) `})`
        const unexplained = book.twice.filter((job) => inFlight.get(job.id) !== job.nodes[0])
        if (unexplained.length > 0) {
          const detail = yield* sql`SELECT id, state, attempt, errors FROM ${jobs}
          WHERE id = ANY(${unexplained.map((j) => j.id)}::bigint[])`
          console.error("jobs that ran twice without being in flight at a kill:", JSON.stringify(detail))
        }
        yield* report("sigkill-runners", {
          ...ledgerFigures(book),
          inFlightAtFault: inFlight.size,
          recoverMs: Math.max(...recovery),
          kills: faults.length,
          inFlightPerKill: faults.map((f) => f.inFlight.length),
          recoverMsPerKill: recovery,
          spuriousRescues: spurious!.n
        })

        expect(book.enqueued).toBe(total)
        expect(book.completed).toBe(total)
        expect(book.completedUnrun).toBe(0)
        expect(book.twice.length).toBeLessThanOrEqual(inFlight.size)
        for (const job of book.twice) {
          // A job ran twice only because the process running it died: first there, then elsewhere.
          expect(inFlight.get(job.id), `job ${job.id} ran on ${job.nodes.join(", ")}`).toBe(job.nodes[0])
          expect(job.nodes.length).toBe(2)
        }
        // Each victim's jobs were back in the queue within its lease and a few rescue passes.
        for (const ms of recovery) expect(ms).toBeLessThan(leaseMs + 5_000)
      })
  )
})
