import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Crew from "../src/Crew.js"
import * as Lock from "../src/Lock.js"
import * as Worker from "../src/Worker.js"

const gc = Worker.periodic(
  "gc",
  { schedule: "1 minute", runOnStart: true, singleton: true },
  Effect.sleep("10 seconds")
)

/** Start two crews, each provided its own build of `layer`; the skips of their first ticks. */
const twoCrews = (layer: typeof Lock.layerMemory) =>
  Effect.gen(function* () {
    const a = yield* Crew.start(gc).pipe(Effect.provide(layer))
    const b = yield* Crew.start(gc).pipe(Effect.provide(layer))
    yield* TestClock.adjust("10 seconds")
    const rows = [yield* a.statusOf("gc"), yield* b.statusOf("gc")]
    return rows.map((row) => ({ successes: row.successes, skips: row.skips }))
  })

describe("Lock.layerMemory", () => {
  it.scoped("crews given layerMemory separately share one lock table and exclude each other", () =>
    Effect.gen(function* () {
      expect(yield* twoCrews(Lock.layerMemory)).toEqual([
        { successes: 1, skips: 0 },
        { successes: 0, skips: 1 }
      ])
    })
  )

  it.scoped("layerMemoryIsolated builds a table of its own each time", () =>
    Effect.gen(function* () {
      expect(yield* twoCrews(Lock.layerMemoryIsolated)).toEqual([
        { successes: 1, skips: 0 },
        { successes: 1, skips: 0 }
      ])
    })
  )

  it.effect("a lock is released when its effect ends, however it ends", () =>
    Effect.gen(function* () {
      const lock = yield* Lock.Lock
      expect(yield* Effect.flip(lock.tryWith("k", Effect.fail("boom")))).toBe("boom")
      expect(yield* lock.tryWith("k", Effect.succeed(1))).toEqual(Option.some(1))
    }).pipe(Effect.provide(Lock.layerMemory))
  )
})
