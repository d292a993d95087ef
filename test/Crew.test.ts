import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as Crew from "../src/Crew.js"
import * as Worker from "../src/Worker.js"

const now = TestClock.currentTimeMillis

/** A program that records its start time, then fails. */
const failing = (starts: Ref.Ref<Array<number>>) =>
  Effect.flatMap(now, (t) => Ref.update(starts, (xs) => [...xs, t])).pipe(
    Effect.zipRight(Effect.fail("boom"))
  )

/** A program that records its start, runs forever, and records its stop. */
const tracked = (log: Ref.Ref<Array<string>>, name: string) =>
  Effect.zipRight(
    Ref.update(log, (xs) => [...xs, `start ${name}`]),
    Effect.never.pipe(Effect.onInterrupt(() => Ref.update(log, (xs) => [...xs, `stop ${name}`])))
  )

const statusOf = (handle: Crew.Handle, name: string) =>
  Effect.map(handle.status, (rows) => {
    const row = rows.find((r) => r.name === name)
    if (row === undefined) throw new Error(`no status row for ${name}`)
    return row
  })

describe("restart policies", () => {
  it.scoped("permanent: restarts with backoff at the expected virtual times", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("flaky", failing(starts), {
            backoff: Schedule.exponential("1 second"),
            maxRestarts: 100
          })
        ])
      )
      yield* TestClock.adjust("20 seconds")
      expect(yield* Ref.get(starts)).toEqual([0, 1000, 3000, 7000, 15000])
      const flaky = yield* statusOf(handle, "app/flaky")
      expect(flaky).toMatchObject({
        state: "backing off",
        restarts: 4,
        runs: 5,
        failures: 5,
        consecutiveFailures: 5,
        lastStartAt: 15000,
        lastFailureAt: 15000,
        nextRestartAt: 31000
      })
      expect(flaky.lastError).toContain("boom")
    })
  )

  it.scoped("permanent: also restarts a program that ends successfully", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Worker.make(
          "once",
          Effect.flatMap(now, (t) => Ref.update(starts, (xs) => [...xs, t])),
          {
            backoff: Schedule.spaced("1 second")
          }
        )
      )
      yield* TestClock.adjust("3 seconds")
      expect(yield* Ref.get(starts)).toEqual([0, 1000, 2000, 3000])
      expect(yield* statusOf(handle, "once")).toMatchObject({ successes: 4, failures: 0, restarts: 3 })
    })
  )

  it.scoped("the default backoff is exponential from 100 ms, jittered", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      yield* Crew.start(Worker.make("flaky", failing(starts), { maxRestarts: 100 }))
      yield* TestClock.adjust("1 minute")
      const times = yield* Ref.get(starts)
      const gaps = times.slice(1).map((t, i) => t - times[i]!)
      expect(gaps.length).toBeGreaterThan(5)
      gaps.slice(0, 5).forEach((gap, i) => {
        expect(gap).toBeGreaterThanOrEqual(100 * 2 ** i * 0.8)
        expect(gap).toBeLessThanOrEqual(100 * 2 ** i * 1.2)
      })
    })
  )

  it.scoped("transient: restarts after a failure, not after a success", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const program = Effect.flatMap(
        Ref.updateAndGet(calls, (n) => n + 1),
        (n) => (n < 3 ? Effect.fail("no") : Effect.void)
      )
      const handle = yield* Crew.start(
        Worker.make("job", program, { restart: "transient", backoff: Schedule.spaced("1 second") })
      )
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(calls)).toBe(3)
      expect(yield* statusOf(handle, "job")).toMatchObject({
        state: "stopped",
        failures: 2,
        successes: 1,
        restarts: 2
      })
    })
  )

  it.scoped("temporary: never restarts; a failure leaves it failed", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(Worker.make("once", failing(starts), { restart: "temporary" }))
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(starts)).toEqual([0])
      expect(yield* statusOf(handle, "once")).toMatchObject({ state: "failed", failures: 1, restarts: 0 })
    })
  )
})

describe("restart attempt", () => {
  it.scoped("a worker reads its restart attempt: 0 on the first run, n after the nth restart", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<string>>([])
      const program = Effect.gen(function* () {
        const run = yield* Worker.CurrentRun
        const attempt = yield* Worker.attempt
        const at = yield* now
        yield* Ref.update(seen, (xs) => [...xs, `${run.name}#${attempt}@${at}`])
        if (attempt < 2) return yield* Effect.fail("boom")
        return yield* Effect.never
      })
      const ticks = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("flaky", program, { backoff: Schedule.exponential("1 second") }),
          Worker.periodic(
            "tick",
            { schedule: "1 second" },
            Effect.flatMap(Worker.attempt, (n) => Ref.update(ticks, (xs) => [...xs, n]))
          )
        ])
      )
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(seen)).toEqual(["app/flaky#0@0", "app/flaky#1@1000", "app/flaky#2@3000"])
      yield* handle.restart("app/flaky")
      yield* handle.restart("app/tick")
      yield* TestClock.adjust("1 second")
      expect((yield* Ref.get(seen)).at(-1)).toBe("app/flaky#3@5000")
      expect(yield* Ref.get(ticks)).toEqual([0, 0, 0, 0, 0, 1])
    })
  )

  it.scoped("a worker added again, or started again by its restarted parent crew, starts over at 0", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<number>>([])
      const record = Effect.flatMap(Worker.attempt, (n) => Ref.update(seen, (xs) => [...xs, n]))
      const handle = yield* Crew.start(
        Crew.make("app", [Crew.make("inner", [Worker.make("child", record, { restart: "transient" })])])
      )
      yield* handle.add(Worker.make("once", record, { restart: "transient" }))
      yield* handle.restart("app/once")
      yield* handle.replace(Worker.make("once", record, { restart: "transient" }))
      yield* handle.restart("app/inner/child")
      yield* handle.restart("app/inner")
      yield* TestClock.adjust("1 second")
      // child 0; once 0, 1, replaced 0; child restarted 1; inner restarted: its child starts again at 0
      expect(yield* Ref.get(seen)).toEqual([0, 0, 1, 0, 1, 0])
      expect(yield* statusOf(handle, "app/inner/child")).toMatchObject({ restarts: 1, runs: 3 })
    })
  )
})

describe("restart intensity", () => {
  it.scoped("more restarts than maxRestarts within the window marks the worker failed and escalates", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const log = yield* Ref.make<Array<string>>([])
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("steady", tracked(log, "steady")),
          Worker.make("flaky", failing(starts), {
            backoff: Schedule.spaced("1 second"),
            maxRestarts: 3,
            restartWindow: "1 minute"
          })
        ])
      )
      const waiter = yield* Effect.fork(handle.await)
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.await(waiter)
      expect(yield* Ref.get(starts)).toEqual([0, 1000, 2000, 3000])
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(handle.await)
      expect(error._tag).toBe("CrewFailed")
      expect(error.worker).toBe("app/flaky")
      expect(error.message).toContain("more than 3 restarts within 1m")
      expect(yield* statusOf(handle, "app/flaky")).toMatchObject({ state: "failed", restarts: 3 })
      expect(yield* statusOf(handle, "app")).toMatchObject({ state: "failed" })
      // the rest of the tree was shut down
      expect(yield* Ref.get(log)).toEqual(["start steady", "stop steady"])
      expect(yield* statusOf(handle, "app/steady")).toMatchObject({ state: "stopped" })
    })
  )

  it.scoped("with the defaults a crash-looping worker gives up at its sixth failure", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(Crew.make("app", [Worker.make("crashy", failing(starts))]))
      const waiter = yield* Effect.fork(Effect.flip(handle.await))
      yield* TestClock.adjust("1 minute")
      expect((yield* Ref.get(starts)).length).toBe(6)
      expect((yield* Fiber.join(waiter)).worker).toBe("app/crashy")
    })
  )

  it.scoped("restarts older than the window do not count", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Worker.make("slow-flaky", failing(starts), {
          backoff: Schedule.spaced("30 seconds"),
          maxRestarts: 2,
          restartWindow: "1 minute"
        })
      )
      yield* TestClock.adjust("5 minutes")
      expect((yield* Ref.get(starts)).length).toBe(11)
      expect((yield* statusOf(handle, "slow-flaky")).state).toBe("backing off")
    })
  )

  it.scoped('onMaxRestarts: "stop" stops only that worker', () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("flaky", failing(starts), {
            backoff: Schedule.spaced("1 second"),
            maxRestarts: 1,
            onMaxRestarts: "stop"
          }),
          Worker.make("steady", Effect.never)
        ])
      )
      const waiter = yield* Effect.fork(handle.await)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(starts)).toEqual([0, 1000])
      expect(yield* statusOf(handle, "app/flaky")).toMatchObject({ state: "failed" })
      expect(yield* statusOf(handle, "app/steady")).toMatchObject({ state: "running" })
      expect(waiter.unsafePoll()).toBeNull()
    })
  )

  it.scoped("a finite backoff schedule that ends counts as giving up", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Worker.make("flaky", failing(starts), {
          backoff: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))),
          onMaxRestarts: "stop"
        })
      )
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(starts)).toEqual([0, 1000, 2000])
      const status = yield* statusOf(handle, "flaky")
      expect(status.state).toBe("failed")
    })
  )
})

describe("nested crews", () => {
  it.scoped(
    "an escalation restarts the inner crew with its whole subtree; siblings outside are untouched",
    () =>
      Effect.gen(function* () {
        const log = yield* Ref.make<Array<string>>([])
        const starts = yield* Ref.make<Array<number>>([])
        const inner = Crew.make(
          "inner",
          [
            Worker.make("a", tracked(log, "a")),
            Worker.make("bad", failing(starts), { backoff: Schedule.spaced("1 second"), maxRestarts: 1 })
          ],
          { backoff: Schedule.spaced("10 seconds") }
        )
        const handle = yield* Crew.start(Crew.make("outer", [Worker.make("b", tracked(log, "b")), inner]))
        yield* TestClock.adjust("1 second")
        expect(yield* Ref.get(log)).toEqual(["start b", "start a", "stop a"])
        expect(yield* statusOf(handle, "outer/inner")).toMatchObject({ state: "backing off", failures: 1 })
        expect((yield* statusOf(handle, "outer/inner")).lastError).toContain("outer/inner/bad")
        yield* TestClock.adjust("10 seconds")
        expect(yield* Ref.get(log)).toEqual(["start b", "start a", "stop a", "start a"])
        expect(yield* Ref.get(starts)).toEqual([0, 1000, 11000])
        expect(yield* statusOf(handle, "outer/inner")).toMatchObject({ state: "running", restarts: 1 })
        expect(yield* statusOf(handle, "outer/inner/a")).toMatchObject({ state: "running", runs: 2 })
        expect(yield* statusOf(handle, "outer/b")).toMatchObject({ state: "running", runs: 1, restarts: 0 })
      })
  )
})

describe("dynamic children", () => {
  it.scoped("a running worker adds, replaces, lists and removes children through Children", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const parent = Worker.make(
        "parent",
        Effect.gen(function* () {
          const children = yield* Crew.Children
          yield* children.add(Worker.make("one", tracked(log, "one")))
          yield* children.add(Worker.make("two", tracked(log, "two")))
          const duplicate = yield* Effect.flip(children.add(Worker.make("two", Effect.never)))
          yield* Ref.update(log, (xs) => [...xs, duplicate._tag])
          yield* children.replace(Worker.make("one", tracked(log, "one-v2")))
          yield* children.remove("two")
          const names = (yield* children.list).map((s) => s.name)
          yield* Ref.update(log, (xs) => [...xs, `list ${names.join(",")}`])
          return yield* Effect.never
        })
      )
      const handle = yield* Crew.start(parent)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(log)).toEqual([
        "start one",
        "start two",
        "DuplicateWorker",
        "stop one",
        "start one-v2",
        "stop two",
        "list parent/one"
      ])
      const names = (yield* handle.status).map((s) => s.name)
      expect(names).toEqual(["parent", "parent/one"])
    })
  )

  it.scoped("children stop when their parent stops", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const parent = Worker.make(
        "parent",
        Effect.gen(function* () {
          const children = yield* Crew.Children
          yield* children.add(Worker.make("child", tracked(log, "child")))
          yield* Effect.sleep("5 seconds")
          return yield* Effect.fail("parent gave up")
        }),
        { restart: "temporary" }
      )
      const handle = yield* Crew.start(parent)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(log)).toEqual(["start child", "stop child"])
      expect(yield* statusOf(handle, "parent")).toMatchObject({ state: "failed" })
      // the child ended with its parent's run: no row describes it any more
      expect((yield* handle.status).map((row) => row.name)).toEqual(["parent"])
    })
  )

  it.scoped(
    "a restarted parent's old dynamic children leave the status table; one added again starts a fresh row",
    () =>
      Effect.gen(function* () {
        const parent = Worker.make(
          "parent",
          Effect.gen(function* () {
            const children = yield* Crew.Children
            const attempt = yield* Worker.attempt
            // the first run's child fails on every tick; later runs add a healthy one
            yield* children.add(
              Worker.periodic(
                "sync",
                { schedule: "1 second" },
                attempt === 0 ? Effect.fail("down") : Effect.void
              )
            )
            if (attempt === 0) yield* children.add(Worker.make("extra", Effect.never))
            return yield* Effect.never
          })
        )
        const handle = yield* Crew.start(parent)
        yield* TestClock.adjust("3 seconds")
        expect(yield* statusOf(handle, "parent/sync")).toMatchObject({ failures: 3, consecutiveFailures: 3 })
        yield* handle.restart("parent")
        yield* TestClock.adjust("1 second")
        const rows = yield* handle.status
        expect(rows.map((row) => row.name)).toEqual(["parent", "parent/sync"])
        expect(rows[1]).toMatchObject({
          runs: 1,
          successes: 1,
          failures: 0,
          consecutiveFailures: 0,
          restarts: 0,
          lastError: null,
          lastFailureAt: null
        })
      })
  )

  it.scoped("a replaced child's row describes the new worker, not the old one's failures", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Crew.make("app", []))
      yield* handle.add(Worker.periodic("sync", { schedule: "1 second" }, Effect.fail("down")))
      yield* TestClock.adjust("2 seconds")
      expect(yield* statusOf(handle, "app/sync")).toMatchObject({ failures: 2, consecutiveFailures: 2 })
      yield* handle.replace(Worker.periodic("sync", { schedule: "10 seconds" }, Effect.void))
      expect(yield* statusOf(handle, "app/sync")).toMatchObject({
        schedule: "every 10s",
        runs: 0,
        failures: 0,
        consecutiveFailures: 0,
        lastError: null,
        nextTickAt: 12_000
      })
    })
  )

  it.scoped("the handle manages top-level children of the started crew", () =>
    Effect.gen(function* () {
      const { times, tick } = yield* Effect.map(Ref.make<Array<number>>([]), (times) => ({
        times,
        tick: Effect.flatMap(now, (t) => Ref.update(times, (xs) => [...xs, t]))
      }))
      const handle = yield* Crew.start(Crew.make("app", []))
      yield* handle.add(Worker.periodic("late", { schedule: "1 second" }, tick))
      expect((yield* Effect.flip(handle.add(Worker.make("late", Effect.never))))._tag).toBe("DuplicateWorker")
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 2000])
      expect((yield* handle.list).map((s) => s.name)).toEqual(["app/late"])
      yield* handle.replace(Worker.periodic("late", { schedule: "10 seconds" }, tick))
      yield* TestClock.adjust("10 seconds")
      expect(yield* Ref.get(times)).toEqual([1000, 2000, 12000])
      // the replacement's row is its own: one tick so far
      expect(yield* statusOf(handle, "app/late")).toMatchObject({ schedule: "every 10s", runs: 1 })
      yield* handle.remove("app/late")
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(times)).toEqual([1000, 2000, 12000])
      expect((yield* handle.status).map((s) => s.name)).toEqual(["app"])
      expect((yield* Effect.flip(handle.remove("app/late")))._tag).toBe("WorkerNotFound")
    })
  )

  it.scoped("restart(name) stops a worker and starts it again now, without backoff", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const handle = yield* Crew.start(Crew.make("app", [Worker.make("loop", tracked(log, "loop"))]))
      yield* TestClock.adjust("1 second")
      yield* handle.restart("app/loop")
      expect(yield* Ref.get(log)).toEqual(["start loop", "stop loop", "start loop"])
      expect(yield* statusOf(handle, "app/loop")).toMatchObject({ state: "running", restarts: 1, runs: 2 })
      expect((yield* Effect.flip(handle.restart("app/nope")))._tag).toBe("WorkerNotFound")
    })
  )
})

describe("looking a worker up by name", () => {
  it.scoped("statusOf returns one worker's status row, nested names included", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const handle = yield* Crew.start(
        Crew.make("app", [
          Crew.make("inner", [
            Worker.make("flaky", failing(starts), { backoff: Schedule.spaced("1 second") })
          ]),
          Worker.periodic("report", { schedule: "1 minute" }, Effect.void)
        ])
      )
      yield* TestClock.adjust("1500 millis")
      const flaky = yield* handle.statusOf("app/inner/flaky")
      expect(flaky).toMatchObject({ name: "app/inner/flaky", kind: "long-running", failures: 2, restarts: 1 })
      expect(flaky).toEqual((yield* handle.status).find((row) => row.name === "app/inner/flaky"))
      expect(yield* handle.statusOf("app")).toMatchObject({ kind: "crew", state: "running" })
      expect(yield* handle.statusOf("app/report")).toMatchObject({ kind: "periodic", nextTickAt: 60_000 })
    })
  )

  it.scoped("fails with WorkerNotFound for a name not in the tree, or a short name", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Crew.make("app", [Worker.make("loop", Effect.never)]))
      const missing = yield* Effect.flip(handle.statusOf("app/nope"))
      expect(missing).toBeInstanceOf(Crew.WorkerNotFound)
      expect(missing.worker).toBe("app/nope")
      expect((yield* Effect.flip(handle.statusOf("loop")))._tag).toBe("WorkerNotFound")
      yield* handle.remove("app/loop")
      expect((yield* Effect.flip(handle.statusOf("app/loop")))._tag).toBe("WorkerNotFound")
    })
  )
})

describe("handle names", () => {
  it.scoped("statusOf, tick, restart and remove all take the full name; a short name is not found", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(
        Crew.make("app", [
          Crew.make("inner", [Worker.make("deep", Effect.never)]),
          Worker.periodic("report", { schedule: "1 minute" }, Effect.void),
          Worker.make("loop", Effect.never)
        ])
      )
      yield* handle.add(Worker.make("late", Effect.never))
      const short = ["report", "loop", "late", "deep", "inner/deep"]
      for (const name of short) {
        expect((yield* Effect.flip(handle.statusOf(name)))._tag).toBe("WorkerNotFound")
        expect((yield* Effect.flip(handle.tick(name)))._tag).toBe("WorkerNotFound")
        expect((yield* Effect.flip(handle.restart(name)))._tag).toBe("WorkerNotFound")
        expect((yield* Effect.flip(handle.remove(name)))._tag).toBe("WorkerNotFound")
      }
      expect(yield* handle.tick("app/report")).toEqual({ _tag: "success" })
      yield* handle.restart("app/loop")
      expect(yield* handle.statusOf("app/loop")).toMatchObject({ restarts: 1 })
      yield* handle.remove("app/late")
      yield* handle.remove("app/inner/deep")
      yield* handle.remove("app/loop")
      expect((yield* handle.status).map((row) => row.name)).toEqual(["app", "app/inner", "app/report"])
      // the started crew itself is not a child of anything
      expect((yield* Effect.flip(handle.remove("app")))._tag).toBe("WorkerNotFound")
    })
  )
})

describe("shutdown", () => {
  it.effect("stops workers in reverse start order when the scope closes", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const scope = yield* Scope.make()
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("first", tracked(log, "first")),
          Crew.make("middle", [Worker.make("m1", tracked(log, "m1")), Worker.make("m2", tracked(log, "m2"))]),
          Worker.make("last", tracked(log, "last"))
        ])
      ).pipe(Scope.extend(scope))
      yield* TestClock.adjust("1 second")
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(log)).toEqual([
        "start first",
        "start m1",
        "start m2",
        "start last",
        "stop last",
        "stop m2",
        "stop m1",
        "stop first"
      ])
      const states = (yield* handle.status).map((s) => `${s.name}:${s.state}`)
      expect(states).toEqual([
        "app:stopped",
        "app/first:stopped",
        "app/middle:stopped",
        "app/middle/m1:stopped",
        "app/middle/m2:stopped",
        "app/last:stopped"
      ])
      yield* handle.await
    })
  )

  it.effect("a worker that does not stop within its timeout is reported and left behind", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const scope = yield* Scope.make()
      const stubborn = Effect.uninterruptible(Effect.sleep("1 hour"))
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("polite", tracked(log, "polite")),
          Worker.make("stubborn", stubborn, { shutdownTimeout: "5 seconds" })
        ])
      ).pipe(Scope.extend(scope))
      yield* TestClock.adjust("1 second")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("4 seconds")
      expect(closing.unsafePoll()).toBeNull()
      expect(yield* Ref.get(log)).toEqual(["start polite"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(yield* Ref.get(log)).toEqual(["start polite", "stop polite"])
      const stubbornStatus = yield* statusOf(handle, "app/stubborn")
      expect(stubbornStatus.state).toBe("failed")
      expect(stubbornStatus.lastError).toContain("did not stop within its shutdown timeout of 5s")
    })
  )

  it.effect("closing during a backoff cancels the pending restart", () =>
    Effect.gen(function* () {
      const starts = yield* Ref.make<Array<number>>([])
      const scope = yield* Scope.make()
      const handle = yield* Crew.start(
        Worker.make("flaky", failing(starts), { backoff: Schedule.spaced("10 seconds") })
      ).pipe(Scope.extend(scope))
      yield* TestClock.adjust("1 second")
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(starts)).toEqual([0])
      expect(yield* statusOf(handle, "flaky")).toMatchObject({ state: "stopped", nextRestartAt: null })
    })
  )
})

describe("status and observability", () => {
  it.scoped("changes streams every status change", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Worker.periodic("tick", { schedule: "1 second" }, Effect.void))
      const collected = yield* handle.changes.pipe(
        Stream.filter((s) => s.name === "tick"),
        Stream.take(4),
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      const rows = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(rows.map((r) => `${r.state}@${r.runs}`)).toEqual(["running@1", "idle@1", "running@2", "idle@2"])
      expect(rows[1]).toMatchObject({ nextTickAt: 2000, successes: 1 })
    })
  )

  it.scoped("counts ticks by outcome in a metric", () =>
    Effect.gen(function* () {
      const failures = Worker.metrics.ticks.pipe(Metric.tagged("outcome", "failure"))
      const before = (yield* Metric.value(failures)).count
      yield* Crew.start(Worker.periodic("bad", { schedule: "1 second" }, Effect.fail("x")))
      yield* TestClock.adjust("3 seconds")
      expect((yield* Metric.value(failures)).count - before).toBe(3)
    })
  )

  it.scoped("the running gauge follows workers starting and stopping", () =>
    Effect.gen(function* () {
      const running = () => Effect.map(Metric.value(Worker.metrics.running), (s) => s.value)
      const before = yield* running()
      const handle = yield* Crew.start(
        Crew.make("app", [
          Worker.make("a", Effect.never),
          Worker.periodic("b", { schedule: "1 second" }, Effect.void),
          Worker.make("c", Effect.void, { restart: "temporary" })
        ])
      )
      yield* TestClock.adjust("1 second")
      expect((yield* running()) - before).toBe(2)
      yield* handle.remove("app/a")
      expect((yield* running()) - before).toBe(1)
    })
  )

  it.scoped("with an exporting tracer, every tick and every run gets a span", () =>
    Effect.gen(function* () {
      const spans: Array<{ name: string; worker: unknown; ended: boolean }> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
          const record = { name, worker: attributes.get("nightshift.worker"), ended: false }
          spans.push(record)
          return {
            _tag: "Span",
            name,
            spanId: String(spans.length),
            traceId: "t",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes,
            links,
            sampled: true,
            kind,
            end: () => {
              record.ended = true
            },
            attribute: (key, value) => attributes.set(key, value),
            event: () => {},
            addLinks: () => {}
          }
        },
        context: (f) => f()
      })
      yield* Crew.start(
        Crew.make("app", [
          Worker.periodic("tick", { schedule: "1 second" }, Effect.void),
          Worker.make("loop", Effect.never)
        ])
      ).pipe(Effect.withTracer(tracer))
      yield* TestClock.adjust("2 seconds")
      const ticks = spans.filter((s) => s.name === "nightshift.worker.tick")
      expect(ticks.map((s) => [s.worker, s.ended])).toEqual([
        ["app/tick", true],
        ["app/tick", true]
      ])
      const runs = spans.filter((s) => s.name === "nightshift.worker.run").map((s) => s.worker)
      expect(runs).toContain("app/loop")
    })
  )

  it.scoped("log lines carry the worker name", () =>
    Effect.gen(function* () {
      const lines: Array<unknown> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push([Option.getOrUndefined(HashMap.get(annotations, "worker")), message])
      })
      yield* Crew.start(
        Crew.make("app", [Worker.periodic("chatty", { schedule: "1 second" }, Effect.logInfo("hello"))])
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* TestClock.adjust("1 second")
      expect(lines).toContainEqual(["app/chatty", ["hello"]])
    })
  )

  it.scoped("Crew.layer provides the handle as the Crew service", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.Crew
      expect((yield* handle.status).map((s) => s.name)).toEqual(["svc", "svc/idle"])
    }).pipe(Effect.provide(Layer.fresh(Crew.layer("svc", [Worker.make("idle", Effect.never)]))))
  )
})
