import { describe, expect, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
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

describe("schedule descriptions", () => {
  it.scoped("a cron worker given a DateTime.TimeZone shows the zone's name", () =>
    Effect.gen(function* () {
      const named = yield* Worker.cron(
        "named",
        "0 9 * * *",
        { tz: DateTime.zoneUnsafeMakeNamed("Asia/Tokyo") },
        Effect.void
      )
      const offset = yield* Worker.cron(
        "offset",
        "0 9 * * *",
        { tz: DateTime.zoneMakeOffset(9 * 3_600_000) },
        Effect.void
      )
      const handle = yield* Crew.start(Crew.make("app", [named, offset]))
      expect((yield* statusOf(handle, "app/named")).schedule).toBe("cron 0 9 * * * (Asia/Tokyo)")
      expect((yield* statusOf(handle, "app/offset")).schedule).toBe("cron 0 9 * * * (+09:00)")
    })
  )

  it.scoped("spaced, fixed and exponential schedules are described; others by the caller", () =>
    Effect.gen(function* () {
      const { ref, tick } = yield* recorder
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("spaced", { schedule: Worker.spaced("5 minutes") }, Effect.void),
          Worker.periodic("fixed", { schedule: Worker.fixed("1 minute") }, tick),
          Worker.periodic("exp", { schedule: Worker.exponential("1 second") }, Effect.void),
          Worker.periodic("custom", { schedule: Schedule.fibonacci("1 second") }, Effect.void),
          Worker.periodic(
            "described",
            { schedule: Schedule.fibonacci("1 second").pipe(Worker.described("fibonacci from 1s")) },
            Effect.void
          ),
          Worker.periodic(
            "option",
            { schedule: Worker.spaced("1 minute"), description: "every minute" },
            Effect.void
          )
        ])
      )
      const schedules = (yield* handle.status).map((row) => [row.name, row.schedule])
      expect(schedules).toEqual([
        ["app", null],
        ["app/spaced", "every 5m"],
        ["app/fixed", "every 1m (fixed)"],
        ["app/exp", "exponential from 1s, ×2"],
        ["app/custom", "custom schedule"],
        ["app/described", "fibonacci from 1s"],
        ["app/option", "every minute"]
      ])
      // the described schedules are the schedules they describe
      yield* TestClock.adjust("3 minutes")
      expect(yield* Ref.get(ref)).toEqual([60_000, 120_000, 180_000])
      // exponential from 1 s: ticks at 1, 3, 7, …, 127 s, the next at 255 s
      expect((yield* statusOf(handle, "app/exp")).nextTickAt).toBe(255_000)
    })
  )
})
