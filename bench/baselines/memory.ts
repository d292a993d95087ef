/**
 * The in-memory baseline of the 100k drain: an Effect `Queue` holding the
 * jobs, and `concurrency` consumer fibers that each take a job, fork one
 * fiber for it (as a runner must, to time out or cancel it alone) and join
 * it. No store, no settling, no bookkeeping.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type { Baseline } from "../contestants/driver.js"
import { now } from "../lib/protocol.js"

const drain = (rows: number, concurrency: number) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<{ readonly i: number }>()
    yield* Queue.offerAll(
      queue,
      Array.from({ length: rows }, (_, i) => ({ i }))
    )
    let done = 0
    const handler = (_job: { readonly i: number }) =>
      Effect.sync(() => {
        done++
      })
    const consumer = Effect.gen(function* () {
      while (true) {
        const job = yield* Queue.poll(queue)
        if (job._tag === "None") return
        yield* Fiber.join(yield* Effect.fork(handler(job.value)))
      }
    })
    const t0 = now()
    yield* Effect.all(
      Array.from({ length: concurrency }, () => consumer),
      { concurrency: "unbounded" }
    )
    return { ms: now() - t0, rows: done }
  })

export const make = async (): Promise<Baseline> => ({
  run: ({ rows = 100_000, concurrency = 10 }) => Effect.runPromise(drain(rows, concurrency))
})
