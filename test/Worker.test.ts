import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Crew from "../src/Crew.js"
import * as Lock from "../src/Lock.js"
import * as Worker from "../src/Worker.js"

/** Record the virtual time of every call. */
const recorder = Effect.map(Ref.make<Array<number>>([]), (times) => ({
  times,
  tick: Effect.flatMap(TestClock.currentTimeMillis, (now) => Ref.update(times, (xs) => [...xs, now]))
}))

const statusOf = (handle: Crew.Handle, name: string) =>
  Effect.map(handle.status, (rows) => {
    const row = rows.find((r) => r.name === name)
    if (row === undefined) throw new Error(`no status row for ${name}`)
    return row
  })

describe("Worker.periodic", () => {
  it.scoped("ticks on a plain interval and records every tick", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const handle = yield* Crew.start(Worker.periodic("count", { schedule: "1 second" }, tick))
      yield* TestClock.adjust("10 seconds")
      expect(yield* Ref.get(times)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => s * 1000))
      const status = yield* statusOf(handle, "count")
      expect(status).toMatchObject({
        kind: "periodic",
        state: "idle",
        schedule: "every 1s",
        runs: 10,
        successes: 10,
        failures: 0,
        lastStartAt: 10_000,
        lastFinishAt: 10_000,
        lastSuccessAt: 10_000,
        nextTickAt: 11_000
      })
    })
  )

  it.scoped("ticks on any Schedule", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      yield* Crew.start(
        Worker.periodic("fib", { schedule: Schedule.fibonacci("1 second"), description: "fibonacci" }, tick)
      )
      yield* TestClock.adjust("20 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 2000, 4000, 7000, 12000, 20000])
    })
  )

  it.scoped("runs once on start when asked", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      yield* Crew.start(Worker.periodic("eager", { schedule: "1 minute", runOnStart: true }, tick))
      yield* TestClock.adjust("2 minutes")
      expect(yield* Ref.get(times)).toEqual([0, 60_000, 120_000])
    })
  )

  it.scoped("never overlaps a tick with itself: an overrun delays the next tick", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      yield* Crew.start(
        Worker.periodic("slow", { schedule: "1 second" }, Effect.zipRight(tick, Effect.sleep("3 seconds")))
      )
      yield* TestClock.adjust("10 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 5000, 9000])
    })
  )

  it.scoped("with Schedule.fixed an overrun collapses the missed ticks into one immediate tick", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const calls = yield* Ref.make(0)
      const body = Effect.zipRight(
        tick,
        Effect.flatMap(
          Ref.getAndUpdate(calls, (n) => n + 1),
          (n) => (n === 0 ? Effect.sleep("3500 millis") : Effect.void)
        )
      )
      yield* Crew.start(Worker.periodic("fixed", { schedule: Schedule.fixed("1 second") }, body))
      yield* TestClock.adjust("7 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 4500, 5000, 6000, 7000])
    })
  )

  it.scoped("a failed tick is recorded and the schedule continues; onError sees the cause", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const errors = yield* Ref.make<Array<string>>([])
      const tick = Effect.flatMap(
        Ref.updateAndGet(calls, (n) => n + 1),
        (n) => (n <= 2 ? Effect.fail(`boom ${n}`) : Effect.void)
      )
      const handle = yield* Crew.start(
        Worker.periodic(
          "flaky",
          {
            schedule: "1 second",
            onError: (cause) => Ref.update(errors, (xs) => [...xs, Cause.pretty(cause)])
          },
          tick
        )
      )
      yield* TestClock.adjust("2 seconds")
      let status = yield* statusOf(handle, "flaky")
      expect(status).toMatchObject({
        runs: 2,
        failures: 2,
        successes: 0,
        consecutiveFailures: 2,
        lastFailureAt: 2000
      })
      expect(status.lastError).toContain("boom 2")
      expect((yield* Ref.get(errors)).length).toBe(2)
      expect((yield* Ref.get(errors))[0]).toContain("boom 1")
      yield* TestClock.adjust("1 second")
      status = yield* statusOf(handle, "flaky")
      expect(status).toMatchObject({
        runs: 3,
        failures: 2,
        successes: 1,
        consecutiveFailures: 0,
        restarts: 0
      })
      expect(status.state).toBe("idle")
    })
  )

  it.scoped("a tick that runs past its timeout is interrupted and recorded as a failure", () =>
    Effect.gen(function* () {
      const finished = yield* Ref.make(0)
      const handle = yield* Crew.start(
        Worker.periodic(
          "stuck",
          { schedule: "10 seconds", timeout: "2 seconds" },
          Effect.zipRight(
            Effect.sleep("5 seconds"),
            Ref.update(finished, (n) => n + 1)
          )
        )
      )
      yield* TestClock.adjust("12 seconds")
      const status = yield* statusOf(handle, "stuck")
      expect(yield* Ref.get(finished)).toBe(0)
      expect(status).toMatchObject({
        runs: 1,
        failures: 1,
        lastFailureAt: 12_000,
        state: "idle",
        nextTickAt: 22_000
      })
      expect(status.lastError).toContain("timed out")
    })
  )

  it.scoped("shouldRun false skips the tick without failing it", () =>
    Effect.gen(function* () {
      const open = yield* Ref.make(false)
      const { times, tick } = yield* recorder
      const handle = yield* Crew.start(
        Worker.periodic("gated", { schedule: "1 second", shouldRun: Ref.get(open) }, tick)
      )
      yield* TestClock.adjust("3 seconds")
      expect(yield* Ref.get(times)).toEqual([])
      expect(yield* statusOf(handle, "gated")).toMatchObject({
        runs: 0,
        skips: 3,
        failures: 0,
        state: "idle"
      })
      yield* Ref.set(open, true)
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(times)).toEqual([4000, 5000])
      expect(yield* statusOf(handle, "gated")).toMatchObject({ runs: 2, skips: 3, successes: 2 })
    })
  )

  it.scoped("a jittered first tick lands within the jitter bound", () =>
    Effect.gen(function* () {
      const firsts = yield* Ref.make<Array<number>>([])
      const workers = Array.from({ length: 20 }, (_, i) =>
        Worker.periodic(
          `w${i}`,
          { schedule: "1 minute", initialJitter: "10 seconds" },
          Effect.flatMap(TestClock.currentTimeMillis, (now) => Ref.update(firsts, (xs) => [...xs, now]))
        )
      )
      yield* Crew.start(Crew.make("herd", workers))
      yield* TestClock.adjust("59999 millis")
      expect(yield* Ref.get(firsts)).toEqual([])
      yield* TestClock.adjust("10001 millis")
      const ticks = yield* Ref.get(firsts)
      expect(ticks.length).toBe(20)
      for (const t of ticks) {
        expect(t).toBeGreaterThanOrEqual(60_000)
        expect(t).toBeLessThan(70_000)
      }
      expect(new Set(ticks).size).toBeGreaterThan(1)
    })
  )

  it.scoped("the jitter comes from Effect's Random, so a fixed Random pins it", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      yield* Crew.start(
        Worker.periodic(
          "pinned",
          { schedule: "1 minute", initialJitter: "10 seconds", runOnStart: true },
          tick
        )
      ).pipe(Effect.withRandom(Random.fixed([0.25])))
      yield* TestClock.adjust("2 minutes")
      expect(yield* Ref.get(times)).toEqual([2500, 62_500])
    })
  )

  it.scoped("a singleton tick is skipped while another replica holds the lock", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const worker = Worker.periodic(
        "gc",
        { schedule: "1 second", singleton: true },
        Effect.zipRight(tick, Effect.sleep("1500 millis"))
      )
      const a = yield* Crew.start(worker)
      const b = yield* Crew.start(worker)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(times)).toEqual([1000])
      const rows = [yield* statusOf(a, "gc"), yield* statusOf(b, "gc")]
      expect(rows.map((r) => r.skips).sort()).toEqual([0, 1])
      expect(rows.every((r) => r.failures === 0)).toBe(true)
    }).pipe(Effect.provide(Lock.layerMemory))
  )
})

describe("Worker.periodic startup", () => {
  /** Record `label@time` lines. */
  const journal = Effect.map(Ref.make<Array<string>>([]), (lines) => ({
    lines,
    note: (label: string) =>
      Effect.flatMap(TestClock.currentTimeMillis, (now) =>
        Ref.update(lines, (xs) => [...xs, `${label}@${now}`])
      )
  }))

  it.scoped("runs once before the first tick; the schedule starts when it ends", () =>
    Effect.gen(function* () {
      const { lines, note } = yield* journal
      const handle = yield* Crew.start(
        Worker.periodic(
          "warm",
          {
            schedule: "1 second",
            startup: Effect.zipRight(note("startup"), Effect.sleep("500 millis"))
          },
          note("tick")
        )
      )
      expect(yield* statusOf(handle, "warm")).toMatchObject({ state: "starting", nextTickAt: null })
      yield* TestClock.adjust("3500 millis")
      expect(yield* Ref.get(lines)).toEqual(["startup@0", "tick@1500", "tick@2500", "tick@3500"])
      expect(yield* statusOf(handle, "warm")).toMatchObject({ state: "idle", runs: 3, restarts: 0 })
    })
  )

  it.scoped("a failed startup fails the run: restarted with backoff, startup again first", () =>
    Effect.gen(function* () {
      const { lines, note } = yield* journal
      const failures = yield* Ref.make(2)
      const startup = Effect.gen(function* () {
        yield* note(`startup#${yield* Worker.attempt}`)
        if ((yield* Ref.getAndUpdate(failures, (n) => n - 1)) > 0) return yield* Effect.fail("no database")
      })
      const handle = yield* Crew.start(
        Worker.periodic(
          "warm",
          {
            schedule: "2 seconds",
            runOnStart: true,
            startup,
            backoff: Schedule.exponential("1 second"),
            onError: () => note("onError")
          },
          note("tick")
        )
      )
      yield* TestClock.adjust("500 millis")
      const backingOff = yield* statusOf(handle, "warm")
      expect(backingOff).toMatchObject({ state: "backing off", failures: 1, nextRestartAt: 1000 })
      expect(backingOff.lastError).toContain("no database")
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(lines)).toEqual([
        "startup#0@0",
        "startup#1@1000",
        "startup#2@3000",
        "tick@3000",
        "tick@5000"
      ])
      expect(yield* statusOf(handle, "warm")).toMatchObject({
        state: "idle",
        restarts: 2,
        failures: 2,
        successes: 2
      })
    })
  )

  it.scoped("runs again when the worker is restarted", () =>
    Effect.gen(function* () {
      const { lines, note } = yield* journal
      const handle = yield* Crew.start(
        Worker.periodic("warm", { schedule: "1 minute", startup: note("startup") }, note("tick"))
      )
      yield* TestClock.adjust("1 minute")
      yield* handle.restart("warm")
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(lines)).toEqual(["startup@0", "tick@60000", "startup@60000", "tick@120000"])
    })
  )

  it.scoped("a forced tick waits for the startup; a stop interrupts it", () =>
    Effect.gen(function* () {
      const { lines, note } = yield* journal
      const scope = yield* Scope.make()
      const startup = Effect.zipRight(
        note("startup"),
        Effect.sleep("1 second").pipe(Effect.onInterrupt(() => note("startup interrupted")))
      )
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("quick", { schedule: "1 hour", startup: Effect.sleep("1 second") }, note("quick")),
          Worker.periodic(
            "slow",
            { schedule: "1 hour", startup: Effect.zipRight(startup, startup) },
            note("slow")
          )
        ])
      ).pipe(Scope.extend(scope))
      const forced = yield* Effect.fork(handle.tick("app/quick"))
      yield* TestClock.adjust("500 millis")
      expect(yield* Ref.get(lines)).toEqual(["startup@0"])
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(forced)).toEqual({ _tag: "success" })
      yield* Scope.close(scope, Exit.void)
      // the forced tick ran once the startup ended; the slow startup was interrupted in its second step
      expect([...(yield* Ref.get(lines))].sort()).toEqual([
        "quick@1000",
        "startup interrupted@1000",
        "startup@0",
        "startup@1000"
      ])
      expect(yield* statusOf(handle, "app/slow")).toMatchObject({ state: "stopped", runs: 0, failures: 0 })
    })
  )
})

describe("ticks due together", () => {
  /** `count` workers `app/w0`, `app/w1`, … on a 1 s interval, each running `tick`. */
  const herd = <E, R>(count: number, tick: (i: number) => Effect.Effect<unknown, E, R>) =>
    Crew.make(
      "app",
      Array.from({ length: count }, (_, i) => Worker.periodic(`w${i}`, { schedule: "1 second" }, tick(i)))
    )

  it.scoped("share a few fibers, each tick with its own worker's services and log annotation", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<{ run: string; annotated: unknown; fiber: string }>>([])
      yield* Crew.start(
        herd(50, () =>
          Effect.gen(function* () {
            const run = yield* Worker.CurrentRun
            const annotations = yield* Effect.logAnnotations
            const fiber = yield* Effect.fiberId
            yield* Ref.update(seen, (xs) => [
              ...xs,
              {
                run: run.name,
                annotated: Option.getOrUndefined(HashMap.get(annotations, "worker")),
                fiber: FiberId.threadName(fiber)
              }
            ])
          })
        )
      )
      yield* TestClock.adjust("1 second")
      const rows = yield* Ref.get(seen)
      expect(rows.map((r) => r.run).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `app/w${i}`).sort())
      for (const row of rows) expect(row.annotated).toBe(row.run)
      // one batch fiber ran them (a fiber per tick before)
      expect(new Set(rows.map((r) => r.fiber)).size).toBeLessThan(5)
    })
  )

  it.scoped("a tick that suspends keeps its fiber; the ticks after it start at once", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const finished = yield* Ref.make(0)
      yield* Crew.start(
        herd(3, (i) =>
          i === 0
            ? Effect.zipRight(
                Effect.sleep("10 seconds"),
                Ref.update(finished, (n) => n + 1)
              )
            : tick
        )
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(times)).toEqual([1000, 1000])
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 1000, 2000, 2000, 3000, 3000])
      expect(yield* Ref.get(finished)).toBe(0)
      yield* TestClock.adjust("8 seconds")
      expect(yield* Ref.get(finished)).toBe(1)
    })
  )

  it.scoped("what a tick forks is interrupted when the tick ends, as with a fiber per tick", () =>
    Effect.gen(function* () {
      const forked = yield* Ref.make<Array<Fiber.RuntimeFiber<never>>>([])
      const { times, tick } = yield* recorder
      yield* Crew.start(
        herd(3, (i) =>
          i === 1
            ? Effect.flatMap(Effect.fork(Effect.never), (f) => Ref.update(forked, (xs) => [...xs, f]))
            : // the next tick of the pass keeps the shared fiber busy
              i === 2
              ? Effect.sleep("1 hour")
              : tick
        )
      )
      yield* TestClock.adjust("1 second")
      const [child] = yield* Ref.get(forked)
      const exit = yield* Fiber.poll(child!)
      expect(Option.isSome(exit) && Exit.isInterrupted(exit.value)).toBe(true)
      expect(yield* Ref.get(times)).toEqual([1000])
    })
  )

  it.scoped("a fiber ref one tick sets does not reach the next worker's tick", () =>
    Effect.gen(function* () {
      const ref = FiberRef.unsafeMake(0)
      const read = yield* Ref.make<Array<number>>([])
      yield* Crew.start(
        herd(4, (i) =>
          Effect.zipRight(
            Effect.flatMap(FiberRef.get(ref), (v) => Ref.update(read, (xs) => [...xs, v])),
            FiberRef.set(ref, i + 1)
          )
        )
      )
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(read)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    })
  )

  it.scoped("stopping a worker interrupts its suspended tick without touching the others", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const stopped = yield* Ref.make(false)
      const handle = yield* Crew.start(
        herd(2, (i) => (i === 0 ? Effect.onInterrupt(Effect.never, () => Ref.set(stopped, true)) : tick))
      )
      yield* TestClock.adjust("1 second")
      yield* handle.remove("app/w0")
      expect(yield* Ref.get(stopped)).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(times)).toEqual([1000, 2000])
      expect((yield* handle.status).map((r) => r.name)).not.toContain("app/w0")
    })
  )

  it.scopedLive(
    "workers started together get one first tick, an interval after the last of them started",
    () =>
      Effect.gen(function* () {
        const before = Date.now()
        const handle = yield* Crew.start(herd(2000, () => Effect.void))
        const after = Date.now()
        const firsts = new Set(
          (yield* handle.status).flatMap((r) => (r.kind === "periodic" ? [r.nextTickAt] : []))
        )
        // starting 2,000 workers takes milliseconds: one first tick each before, one for all now
        expect(firsts.size).toBe(1)
        const [first] = firsts
        expect(first).toBeGreaterThanOrEqual(before + 1000)
        expect(first).toBeLessThanOrEqual(after + 1000)
      })
  )

  it.live("on the live clock, workers tick from a Node timer and stop with their crew", () =>
    Effect.gen(function* () {
      const ticks = yield* Queue.unbounded<string>()
      const scope = yield* Scope.make()
      yield* Crew.start(
        Crew.make("live", [
          Worker.periodic("a", { schedule: "5 millis" }, Queue.offer(ticks, "a")),
          Worker.periodic("b", { schedule: "7 millis" }, Queue.offer(ticks, "b"))
        ])
      ).pipe(Scope.extend(scope))
      const seen = new Set<string>()
      for (let taken = 0; seen.size < 2 || taken < 6; taken++) seen.add(yield* Queue.take(ticks))
      yield* Scope.close(scope, Exit.void)
      yield* Queue.takeAll(ticks)
      yield* Effect.sleep("50 millis")
      expect(yield* Queue.size(ticks)).toBe(0)
    })
  )
})

describe("worker types", () => {
  it("a worker needs the Lock service only when it is a singleton, and never needs Children", () => {
    const plain: Worker.Worker<never, never> = Worker.periodic("a", { schedule: "1 second" }, Effect.void)
    const single = Worker.periodic("b", { schedule: "1 second", singleton: true }, Effect.void)
    // @ts-expect-error a singleton worker requires the Lock service
    const missing: Worker.Worker<never, never> = single
    const provided: Worker.Worker<never, Lock.Lock> = single
    const parent: Worker.Worker<never, never> = Worker.make(
      "parent",
      Effect.flatMap(Crew.Children, (children) => children.list)
    )
    expect([plain, missing, provided, parent].map((w) => w.kind)).toEqual([
      "periodic",
      "periodic",
      "periodic",
      "long-running"
    ])
  })
})

describe("Worker.cron", () => {
  it.scoped("ticks on the cron slots of its time zone, across a day boundary", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const worker = yield* Worker.cron("midnight", "0 0 * * *", { tz: "Asia/Tokyo" }, tick)
      const handle = yield* Crew.start(worker)
      expect((yield* statusOf(handle, "midnight")).nextTickAt).toBe(Date.UTC(1970, 0, 1, 15))
      yield* TestClock.adjust("2 days")
      // midnight in Tokyo (UTC+9) is 15:00 UTC of the previous day
      expect(yield* Ref.get(times)).toEqual([Date.UTC(1970, 0, 1, 15), Date.UTC(1970, 0, 2, 15)])
      expect(yield* statusOf(handle, "midnight")).toMatchObject({
        schedule: "cron 0 0 * * * (Asia/Tokyo)",
        nextTickAt: Date.UTC(1970, 0, 3, 15)
      })
    })
  )

  it.scoped("across daylight-saving changes: the same wall-clock time, exactly once a day", () =>
    Effect.gen(function* () {
      const run = (cron: string, from: number) =>
        Effect.gen(function* () {
          yield* TestClock.setTime(from)
          const { times, tick } = yield* recorder
          yield* Crew.start(yield* Worker.cron("dst", cron, { tz: "Europe/Paris" }, tick))
          yield* TestClock.adjust("4 days")
          return (yield* Ref.get(times)).map((t) => new Date(t).toISOString().slice(5, 16))
        }).pipe(Effect.scoped)
      const spring = Date.UTC(2026, 2, 27, 12) // clocks go forward on 29 March, 02:00 -> 03:00
      const autumn = Date.UTC(2026, 9, 23, 12) // clocks go back on 25 October, 03:00 -> 02:00
      // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer
      expect(yield* run("0 9 * * *", spring)).toEqual([
        "03-28T08:00",
        "03-29T07:00",
        "03-30T07:00",
        "03-31T07:00"
      ])
      // 02:30 does not exist on 29 March: that day's tick runs an hour later (03:30 local)
      expect(yield* run("30 2 * * *", spring)).toEqual([
        "03-28T01:30",
        "03-29T01:30",
        "03-30T00:30",
        "03-31T00:30"
      ])
      // 02:30 happens twice on 25 October: the tick runs once, at the first
      expect(yield* run("30 2 * * *", autumn)).toEqual([
        "10-24T00:30",
        "10-25T00:30",
        "10-26T01:30",
        "10-27T01:30"
      ])
    })
  )

  it.scoped("defaults to UTC", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      yield* Crew.start(yield* Worker.cron("three", "0 3 * * *", {}, tick))
      yield* TestClock.adjust("1 day")
      expect(yield* Ref.get(times)).toEqual([Date.UTC(1970, 0, 1, 3)])
    })
  )

  it("rejects an invalid expression or zone when the worker is defined", () => {
    const bad = Worker.cron("bad", "61 * * * *", {}, Effect.void)
    expect(Either.isLeft(bad)).toBe(true)
    const zone = Worker.cron("zone", "0 3 * * *", { tz: "Mars/Olympus" }, Effect.void)
    expect(Either.isLeft(zone)).toBe(true)
    if (Either.isLeft(zone)) {
      expect(zone.left._tag).toBe("InvalidCron")
      expect(zone.left.message).toContain("Mars/Olympus")
    }
  })
})

describe("forced tick", () => {
  it.scoped("runs one tick now through the same path and returns its outcome", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const open = yield* Ref.make(true)
      const handle = yield* Crew.start(
        Worker.periodic("report", { schedule: "1 hour", shouldRun: Ref.get(open) }, tick)
      )
      yield* TestClock.adjust("5 minutes")
      expect(yield* handle.tick("report")).toEqual({ _tag: "success" })
      expect(yield* Ref.get(times)).toEqual([300_000])
      yield* Ref.set(open, false)
      expect(yield* handle.tick("report")).toEqual({ _tag: "skipped", reason: "shouldRun returned false" })
      const status = yield* statusOf(handle, "report")
      expect(status).toMatchObject({ runs: 1, skips: 1, nextTickAt: 3_600_000 })
    })
  )

  it.scoped("reports failures and timeouts as outcomes", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("jobs", [
          Worker.periodic("fails", { schedule: "1 hour" }, Effect.fail("nope")),
          Worker.periodic("hangs", { schedule: "1 hour", timeout: "1 second" }, Effect.never)
        ])
      )
      const failed = yield* handle.tick("jobs/fails")
      expect(failed._tag).toBe("failure")
      if (failed._tag === "failure") expect(failed.error).toContain("nope")
      const hung = yield* Effect.fork(handle.tick("jobs/hangs"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(hung)).toEqual({ _tag: "timeout" })
    })
  )

  it.scoped("waits for a tick in flight instead of overlapping it", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* recorder
      const handle = yield* Crew.start(
        Worker.periodic("busy", { schedule: "10 seconds" }, Effect.zipRight(tick, Effect.sleep("4 seconds")))
      )
      yield* TestClock.adjust("11 seconds")
      const forced = yield* Effect.fork(handle.tick("busy"))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(times)).toEqual([10_000])
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(times)).toEqual([10_000, 14_000])
      yield* TestClock.adjust("4 seconds")
      expect(yield* Fiber.join(forced)).toEqual({ _tag: "success" })
    })
  )

  it.scoped("a tick that forces its own worker does not overlap itself", () =>
    Effect.gen(function* () {
      const active = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const outcomes = yield* Ref.make<Array<Worker.TickOutcome>>([])
      const handleRef = yield* Ref.make<Crew.Handle | undefined>(undefined)
      const calls = yield* Ref.make(0)
      const tick = Effect.gen(function* () {
        const n = yield* Ref.updateAndGet(active, (x) => x + 1)
        yield* Ref.update(peak, (p) => Math.max(p, n))
        if ((yield* Ref.getAndUpdate(calls, (c) => c + 1)) === 0) {
          const handle = yield* Ref.get(handleRef)
          // started synchronously, inside this tick
          const runtime = yield* Effect.runtime<never>()
          Runtime.runFork(runtime)(
            Effect.flatMap(handle!.tick("self"), (o) => Ref.update(outcomes, (xs) => [...xs, o]))
          )
        }
        yield* Ref.update(active, (x) => x - 1)
      })
      const handle = yield* Crew.start(Worker.periodic("self", { schedule: "1 minute" }, tick))
      yield* Ref.set(handleRef, handle)
      yield* TestClock.adjust("1 minute")
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(peak)).toBe(1)
      expect(yield* Ref.get(calls)).toBe(2)
      expect(yield* Ref.get(outcomes)).toEqual([{ _tag: "success" }])
    })
  )

  it.scoped("fails for unknown or non-periodic workers", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Crew.make("app", [Worker.make("loop", Effect.never)]))
      const missing = yield* Effect.flip(handle.tick("app/nope"))
      expect(missing._tag).toBe("WorkerNotFound")
      const notPeriodic = yield* Effect.flip(handle.tick("app/loop"))
      expect(notPeriodic._tag).toBe("NotPeriodic")
      expect(notPeriodic.message).toContain("long-running")
    })
  )
})

describe("Worker.consumer", () => {
  it.scoped("handles queue items with bounded concurrency", () =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<number>()
      const inFlight = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const done = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Worker.consumer(
          "resize",
          queue,
          (n: number) =>
            Effect.gen(function* () {
              const now = yield* Ref.updateAndGet(inFlight, (x) => x + 1)
              yield* Ref.update(peak, (p) => Math.max(p, now))
              yield* Effect.sleep("1 second")
              yield* Ref.update(inFlight, (x) => x - 1)
              yield* Ref.update(done, (xs) => [...xs, n])
            }),
          { concurrency: 3 }
        )
      )
      yield* Queue.offerAll(queue, [1, 2, 3, 4, 5, 6, 7])
      yield* TestClock.adjust("1 second")
      expect((yield* Ref.get(done)).length).toBe(3)
      yield* TestClock.adjust("2 seconds")
      expect((yield* Ref.get(done)).sort()).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(yield* Ref.get(peak)).toBe(3)
      expect(yield* statusOf(handle, "resize")).toMatchObject({ runs: 7, successes: 7, state: "idle" })
    })
  )

  it.scoped("a handler failure fails the run and the restart policy applies; the queue keeps its items", () =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<number>()
      const seen = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Worker.consumer(
          "picky",
          queue,
          (n: number) =>
            Effect.zipRight(
              Ref.update(seen, (xs) => [...xs, n]),
              n === 2 ? Effect.fail("two") : Effect.void
            ),
          { backoff: Schedule.spaced("1 second") }
        )
      )
      yield* Queue.offerAll(queue, [1, 2, 3])
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(seen)).toEqual([1, 2, 3])
      expect(yield* statusOf(handle, "picky")).toMatchObject({ failures: 1, restarts: 1, successes: 2 })
    })
  )

  it.scoped("consumes a Stream", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<number>>([])
      yield* Crew.start(
        Worker.consumer(
          "numbers",
          Stream.make(1, 2, 3),
          (n: number) => Ref.update(seen, (xs) => [...xs, n]),
          {
            restart: "transient"
          }
        )
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(seen)).toEqual([1, 2, 3])
    })
  )
})

describe("Worker.batchConsumer", () => {
  it.scoped("flushes on size or on time, whichever comes first", () =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<number>()
      const batches = yield* Ref.make<Array<[number, Array<number>]>>([])
      const handle = yield* Crew.start(
        Worker.batchConsumer(
          "flush",
          queue,
          (batch) =>
            Effect.flatMap(TestClock.currentTimeMillis, (now) =>
              Ref.update(batches, (xs) => [...xs, [now, [...batch]] as [number, Array<number>]])
            ),
          { maxSize: 3, maxWait: "5 seconds" }
        )
      )
      yield* Queue.offerAll(queue, [1, 2, 3, 4])
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(batches)).toEqual([[0, [1, 2, 3]]])
      yield* TestClock.adjust("3 seconds")
      yield* Queue.offer(queue, 5)
      yield* TestClock.adjust("999 millis")
      expect((yield* Ref.get(batches)).length).toBe(1)
      yield* TestClock.adjust("1 milli")
      expect(yield* Ref.get(batches)).toEqual([
        [0, [1, 2, 3]],
        [5000, [4, 5]]
      ])
      expect(yield* statusOf(handle, "flush")).toMatchObject({ kind: "batch", runs: 2, successes: 2 })
    })
  )

  it.scoped("a partial batch is flushed when the worker stops, from a Queue and from a Stream", () =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<number>()
      const batches = yield* Ref.make<Array<Array<number>>>([])
      const record = (batch: Chunk.Chunk<number>) => Ref.update(batches, (xs) => [...xs, [...batch]])
      const options = { maxSize: 10, maxWait: "1 minute" } as const
      const scope = yield* Scope.make()
      yield* Crew.start(
        Crew.make("both", [
          Worker.batchConsumer("from-queue", queue, record, options),
          Worker.batchConsumer("from-stream", Stream.concat(Stream.make(7, 8), Stream.never), record, options)
        ])
      ).pipe(Scope.extend(scope))
      yield* Queue.offerAll(queue, [1, 2, 3])
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(batches)).toEqual([])
      yield* Scope.close(scope, Exit.void)
      expect((yield* Ref.get(batches)).sort((a, b) => a[0]! - b[0]!)).toEqual([
        [1, 2, 3],
        [7, 8]
      ])
    })
  )

  it.scoped("batches a Stream", () =>
    Effect.gen(function* () {
      const batches = yield* Ref.make<Array<Array<number>>>([])
      yield* Crew.start(
        Worker.batchConsumer(
          "chunks",
          Stream.range(1, 5),
          (batch) => Ref.update(batches, (xs) => [...xs, [...batch]]),
          { maxSize: 2, maxWait: "1 second", restart: "transient" }
        )
      )
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(batches)).toEqual([[1, 2], [3, 4], [5]])
    })
  )
})
