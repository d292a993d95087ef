/**
 * Clock skew: three runner processes whose wall clocks (`Date.now`, so
 * Effect's `Clock`) are 5 s apart share one queue. Leases and run-at times
 * are read on the database clock, so no job may be claimed twice, rescued
 * from a live runner, or started before its run-at.
 */
import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { awaitDrained, enqueueJobs, ledger, ledgerFigures, report, scenario } from "./harness.js"

describe("fault: clock skew between runners", () => {
  scenario(
    "runners 5 s apart share a queue: no double claims, no early runs, no rescues",
    { label: "skew" },
    ({ sql, schema, store, spawnUp }) =>
      Effect.gen(function* () {
        const jobs = sql(`${schema}.jobs_all`)
        const results = sql(`${schema}.results`)
        // Leases short enough that a 5 s error in reading them would show as rescues.
        const env = { NS_LEASE_MS: 3_000, NS_HEARTBEAT_MS: 1_000, NS_RESCUE_MS: 250 }
        for (const [name, skew] of [
          ["behind", -5_000],
          ["true", 0],
          ["ahead", 5_000]
        ] as const) {
          yield* spawnUp([name], { ...env, NS_SKEW_MS: skew })
        }
        yield* enqueueJobs(store, 2_000, "work", (i) => ({ ms: 20 + (i % 30) }))
        // Due 4 s from now on the database clock: "now" for the runner ahead, 9 s away for the one behind.
        yield* enqueueJobs(store, 200, "work", () => ({ ms: 1 }), { delayMs: 4_000 })
        yield* awaitDrained(sql, schema)

        const book = yield* ledger(sql, schema)
        const [early] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM ${results} r JOIN ${jobs} j ON j.id = r.job_id WHERE r.at < j.run_at`
        const [rescued] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM ${jobs} j, jsonb_array_elements(j.errors) e WHERE e->>'kind' = 'rescued'`
        const byNode = yield* sql<{ node: string; n: number }>`
        SELECT node, count(*)::int AS n FROM ${results} GROUP BY node ORDER BY node`
        yield* report("clock-skew", {
          ...ledgerFigures(book),
          inFlightAtFault: 0,
          recoverMs: null,
          skewMs: 10_000,
          startedBeforeRunAt: early!.n,
          rescues: rescued!.n,
          runsByNode: Object.fromEntries(byNode.map((r) => [r.node, r.n]))
        })
        expect(book.completed).toBe(2_200)
        expect(book.twice).toEqual([])
        expect(early!.n).toBe(0)
        expect(rescued!.n).toBe(0)
        expect(byNode.length).toBe(3)
      })
  )
})
