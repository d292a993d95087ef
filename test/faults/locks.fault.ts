/**
 * Row-lock order on PostgreSQL: a runner's heartbeat and its settles touch
 * the same running jobs at the same time, from two pool connections. Found by
 * the SIGKILL scenario, where a heartbeat died with "deadlock detected" and
 * the runner reported its store unreachable; fixed in the PostgreSQL store.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../src/JobStore.js"
import { databaseUrl } from "../setup/pg.js"
import { setup } from "./harness.js"

describe("fault: concurrent writes to the same jobs", () => {
  // Heartbeat and settle lock their rows in id order; before that, this
  // deadlocked in about 2 rounds of 3.
  it.live(
    "a heartbeat and a settle over the same 200 jobs, ten times: neither deadlocks",
    () =>
      Effect.gen(function* () {
        const { store } = yield* setup(databaseUrl(), "locks")
        const failures: Array<string> = []
        for (let round = 0; round < 10; round++) {
          yield* store.enqueue(
            Array.from(
              { length: 200 },
              (): JobStore.EnqueueInput => ({
                kind: "k",
                queue: "q",
                payload: {},
                priority: 0,
                maxAttempts: 3
              })
            )
          )
          const claimed = yield* store.claim({
            queues: ["q"],
            kinds: ["k"],
            limit: 200,
            leaseMs: 30_000,
            owner: "o"
          })
          const leases = claimed.map((job) => ({ id: job.id, fence: job.fence }))
          const outcomes = claimed.map((job) => ({
            id: job.id,
            fence: job.fence,
            outcome: { _tag: "completed" } as const
          }))
          const results = yield* Effect.all(
            [
              Effect.either(store.heartbeat("o", leases, 30_000)),
              Effect.either(store.settle(outcomes.reverse()))
            ],
            { concurrency: "unbounded" }
          )
          for (const result of results) if (result._tag === "Left") failures.push(result.left.message)
        }
        expect(failures).toEqual([])
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})
