import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Crew from "../src/Crew.js"
import * as History from "../src/internal/worker/history.js"
import * as Worker from "../src/Worker.js"
import type * as WorkerStatus from "../src/WorkerStatus.js"

/** A tick that fails on every odd call with `boom <n>`. */
const everyOther = (calls: Ref.Ref<number>) =>
  Effect.flatMap(
    Ref.updateAndGet(calls, (n) => n + 1),
    (n) => (n % 2 === 1 ? Effect.fail(`boom ${n}`) : Effect.void)
  )

describe("tick history", () => {
  it.scoped("keeps the newest 16 ticks of a periodic worker, with start, duration, outcome and error", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("sync", { schedule: "1 second" }, everyOther(calls)),
          Worker.periodic("slow", { schedule: "10 seconds" }, Effect.sleep("250 millis"))
        ])
      )
      yield* TestClock.adjust("40 seconds")
      const history = yield* handle.history("app/sync")
      expect(history.ticksRecorded).toBe(40)
      expect(history.ticksKept).toBe(History.ticksPerWorker)
      expect(history.ticks).toHaveLength(16)
      // Newest first: tick n started at n seconds.
      expect(history.ticks.map((t) => t.startedAt)).toEqual(
        Array.from({ length: 16 }, (_, i) => (40 - i) * 1000)
      )
      expect(history.ticks[0]!.outcome).toEqual({ _tag: "success" })
      const failed = history.ticks[1]!
      expect(failed.outcome._tag).toBe("failure")
      expect(failed.outcome._tag === "failure" && failed.outcome.error).toContain("boom 39")
      expect(failed.forced).toBe(false)
      // The other worker's ring is its own: a slow tick's duration, and only its ticks.
      const slow = yield* handle.history("app/slow")
      expect(slow.ticks.map((t) => [t.startedAt, t.durationMs, t.outcome._tag])).toEqual([
        [30_500, 250, "success"],
        [20_250, 250, "success"],
        [10_000, 250, "success"]
      ])
    })
  )

  it.scoped("marks forced ticks, and records skips with their reason", () =>
    Effect.gen(function* () {
      const open = yield* Ref.make(false)
      const handle = yield* Crew.start(
        Worker.periodic("gated", { schedule: "1 minute", shouldRun: Ref.get(open) }, Effect.void)
      )
      yield* TestClock.adjust("1 minute")
      yield* Ref.set(open, true)
      yield* handle.tick("gated")
      const { ticks } = yield* handle.history("gated")
      expect(ticks.map((t) => [t.forced, t.outcome])).toEqual([
        [true, { _tag: "success" }],
        [false, { _tag: "skipped", reason: "shouldRun returned false" }]
      ])
    })
  )

  it.scoped("records a timed-out tick with the time it was given, and a tick the stop interrupted", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("slow", { schedule: "1 second", timeout: "100 millis" }, Effect.sleep("1 second")),
          Worker.periodic("long", { schedule: "1 second" }, Effect.sleep("1 hour"))
        ])
      )
      yield* TestClock.adjust("1500 millis")
      const slow = yield* handle.history("app/slow")
      expect(slow.ticks.map((t) => [t.startedAt, t.durationMs, t.outcome._tag])).toEqual([
        [1000, 100, "timeout"]
      ])
      yield* handle.restart("app/long")
      const long = yield* handle.history("app/long")
      expect(long.ticks.map((t) => [t.startedAt, t.durationMs, t.outcome._tag])).toEqual([
        [1000, 500, "interrupted"]
      ])
      expect(long.restarts.map((r) => r.reason)).toEqual(["requested"])
    })
  )

  it.scoped("shares a bounded table of error texts: the oldest are pushed out", () =>
    Effect.gen(function* () {
      const n = History.errorTexts + 20
      const workers = Array.from({ length: n }, (_, i) =>
        Worker.periodic(`w${i}`, { schedule: "1 minute" }, Effect.fail(`distinct failure ${i}`))
      )
      const handle = yield* Crew.start(Crew.make("app", workers))
      yield* TestClock.adjust("1 minute")
      const errorOf = (name: string) =>
        Effect.map(handle.history(name), (h) => {
          const outcome = h.ticks[0]!.outcome
          return outcome._tag === "failure" ? outcome.error : outcome._tag
        })
      expect(yield* errorOf("app/w0")).toBe(History.droppedText)
      expect(yield* errorOf("app/w19")).toBe(History.droppedText)
      expect(yield* errorOf("app/w20")).toContain("distinct failure 20")
      expect(yield* errorOf(`app/w${n - 1}`)).toContain(`distinct failure ${n - 1}`)
    })
  )

  it.scoped("a worker failing alike tick after tick keeps one entry of the table", () =>
    Effect.gen(function* () {
      const n = History.errorTexts - 56
      const workers = Array.from({ length: n }, (_, i) =>
        Worker.periodic(`w${i}`, { schedule: "100 seconds" }, Effect.fail(`distinct failure ${i}`))
      )
      const same = Worker.periodic("same", { schedule: "1 second" }, Effect.fail("always the same failure"))
      const handle = yield* Crew.start(Crew.make("app", [same, ...workers]))
      yield* TestClock.adjust("100 seconds")
      // 100 alike failures and n distinct ones: 100 + n entries would push w0's out; n + 1 do not.
      const w0 = (yield* handle.history("app/w0")).ticks[0]!.outcome
      expect(w0._tag === "failure" && w0.error).toContain("distinct failure 0")
      const { ticks } = yield* handle.history("app/same")
      expect(ticks).toHaveLength(16)
      for (const tick of ticks) {
        expect(tick.outcome._tag === "failure" && tick.outcome.error).toContain("always the same failure")
      }
    })
  )

  it.scoped("a removed worker's ring is handed to the next and starts empty", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [Worker.periodic("a", { schedule: "1 second" }, Effect.void)])
      )
      yield* TestClock.adjust("5 seconds")
      expect((yield* handle.history("app/a")).ticks).toHaveLength(5)
      yield* handle.remove("app/a")
      yield* handle.add(Worker.periodic("b", { schedule: "1 second" }, Effect.fail("b failed")))
      yield* TestClock.adjust("2 seconds")
      const b = yield* handle.history("app/b")
      expect(b.ticksRecorded).toBe(2)
      expect(b.ticks.every((t) => t.outcome._tag === "failure")).toBe(true)
      expect((yield* Effect.flip(handle.history("app/a")))._tag).toBe("WorkerNotFound")
    })
  )
})

describe("restart history", () => {
  it.scoped("records each restart with its cause and backoff, newest first, at most 10", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("flaky", Effect.fail("flaky failed"), {
            backoff: Schedule.exponential("1 second"),
            maxRestarts: 100,
            restartWindow: "1 hour"
          })
        ])
      )
      yield* TestClock.adjust("20 seconds")
      const early = yield* handle.history("app/flaky")
      expect(early.ticks).toEqual([])
      expect(early.restarts.map((r) => [r.at, r.reason, r.attempt, r.backoffMs, r.restartAt])).toEqual([
        [15_000, "failed", 4, 16_000, 31_000],
        [7_000, "failed", 3, 8_000, 15_000],
        [3_000, "failed", 2, 4_000, 7_000],
        [1_000, "failed", 1, 2_000, 3_000],
        [0, "failed", 0, 1_000, 1_000]
      ])
      expect(early.restarts[0]!.error).toContain("flaky failed")
      yield* TestClock.adjust("3 hours")
      const late = yield* handle.history("app/flaky")
      expect(late.restartsKept).toBe(History.restartsPerWorker)
      expect(late.restarts).toHaveLength(10)
      expect(late.restarts[0]!.attempt).toBeGreaterThan(late.restarts[9]!.attempt)
      expect(late.restarts[0]!.attempt - late.restarts[9]!.attempt).toBe(9)
    })
  )

  it.scoped("records a requested restart, an exit and giving up", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("steady", Effect.never),
          Worker.make("done", Effect.void, {
            backoff: Schedule.spaced("1 second"),
            maxRestarts: 2,
            onMaxRestarts: "stop"
          })
        ])
      )
      yield* TestClock.adjust("2 seconds")
      yield* handle.restart("app/steady")
      const steady = yield* handle.history("app/steady")
      expect(steady.restarts.map((r) => [r.at, r.reason, r.backoffMs])).toEqual([[2000, "requested", null]])
      yield* TestClock.adjust("10 seconds")
      const done = yield* handle.history("app/done")
      expect(done.restarts.map((r) => r.reason)).toEqual(["gave up", "exited", "exited"])
      expect(done.restarts[0]!.error).toContain("needed more than 2 restarts")
    })
  )
})

describe("supervision tree", () => {
  it.scoped("nests crews, their workers and dynamic children in start order, with their policies", () =>
    Effect.gen(function* () {
      const parent = Worker.make(
        "parent",
        Effect.flatMap(Crew.Children, (children) =>
          Effect.zipRight(children.add(Worker.make("kid", Effect.never)), Effect.never)
        )
      )
      const handle = yield* Crew.start(
        Crew.make("app", [
          Crew.make("inner", [Worker.periodic("tick", { schedule: "1 second" }, Effect.void)], {
            maxRestarts: 3,
            onMaxRestarts: "stop"
          }),
          parent
        ])
      )
      yield* TestClock.adjust("1 second")
      const shape = (node: WorkerStatus.TreeNode): unknown => [node.name, node.kind, node.children.map(shape)]
      const tree = yield* handle.tree
      expect(tree.map(shape)).toEqual([
        [
          "app",
          "crew",
          [
            ["app/inner", "crew", [["app/inner/tick", "periodic", []]]],
            ["app/parent", "long-running", [["app/parent/kid", "long-running", []]]]
          ]
        ]
      ])
      const inner = tree[0]!.children[0]!
      expect(inner).toMatchObject({ maxRestarts: 3, restartWindowMs: 60_000, onMaxRestarts: "stop" })
      expect(inner.state).toBe("running")
    })
  )
})
