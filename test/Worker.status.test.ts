import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Crew from "../src/Crew.js"
import * as Worker from "../src/Worker.js"
import type * as WorkerStatus from "../src/WorkerStatus.js"

const statusOf = (handle: Crew.Handle, name: string) =>
  Effect.map(handle.status, (rows) => {
    const row = rows.find((r) => r.name === name)
    if (row === undefined) throw new Error(`no status row for ${name}`)
    return row
  })

const times = (row: WorkerStatus.WorkerStatus) =>
  [
    row.nextTickAt,
    row.nextRestartAt,
    row.lastStartAt,
    row.lastFinishAt,
    row.lastSuccessAt,
    row.lastFailureAt
  ].filter((t): t is number => t !== null)

/** Record the virtual time of every call. */
const recorder = Effect.map(Ref.make<Array<number>>([]), (ref) => ({
  ref,
  tick: Effect.flatMap(TestClock.currentTimeMillis, (now) => Ref.update(ref, (xs) => [...xs, now]))
}))

describe("initial jitter", () => {
  it.scoped("the status shows the first tick's time during the jitter (interval, Schedule, runOnStart)", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("interval", { schedule: "1 minute", initialJitter: "10 seconds" }, Effect.void),
          Worker.periodic(
            "fixed",
            { schedule: Schedule.fixed("1 minute"), initialJitter: "10 seconds" },
            Effect.void
          ),
          Worker.periodic(
            "eager",
            { schedule: "1 minute", initialJitter: "10 seconds", runOnStart: true },
            Effect.void
          )
        ])
      ).pipe(Effect.withRandom(Random.fixed([0.25])))
      yield* TestClock.adjust("1 second")
      expect((yield* statusOf(handle, "app/interval")).nextTickAt).toBe(62_500)
      expect((yield* statusOf(handle, "app/fixed")).nextTickAt).toBe(62_500)
      expect((yield* statusOf(handle, "app/eager")).nextTickAt).toBe(2_500)
    })
  )

  it.scoped("the jitter is a whole number of milliseconds, so ticks land on whole milliseconds", () =>
    Effect.gen(function* () {
      const { ref, tick } = yield* recorder
      const handle = yield* Crew.start(
        Worker.periodic("odd", { schedule: "1 minute", initialJitter: "10 seconds", runOnStart: true }, tick)
      ).pipe(Effect.withRandom(Random.fixed([0.189949251234])))
      yield* TestClock.adjust("3 minutes")
      const ticks = yield* Ref.get(ref)
      expect(ticks).toEqual([1899, 61_899, 121_899])
      const row = yield* statusOf(handle, "odd")
      for (const t of times(row)) expect(Number.isInteger(t)).toBe(true)
      expect(row.nextTickAt).toBe(181_899)
    })
  )

  it.scoped("the default backoff is jittered, and its nextRestartAt is a whole millisecond", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Worker.make("flaky", Effect.fail("boom"), { maxRestarts: 100 })).pipe(
        Effect.withRandom(Random.fixed([0.123456789]))
      )
      yield* TestClock.adjust("1 millis")
      const row = yield* statusOf(handle, "flaky")
      expect(row.state).toBe("backing off")
      // 100 ms × (0.8 + 0.4 × 0.123456789) = 84.94 ms, jittered, rounded up
      expect(row.nextRestartAt).toBe(85)
      for (const t of times(row)) expect(Number.isInteger(t)).toBe(true)
    })
  )
})
