/**
 * Flow control as a user declares it: limits on kinds and queues, partition
 * keys on enqueue, and a runner that keeps to them. Store-level semantics on
 * every engine are in the conformance suite (test/store/suite/flow.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Events from "nightshift/Events"
import * as FlowControl from "nightshift/FlowControl"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as JobRunner from "nightshift/JobRunner"
import * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"

const Payload = Schema.Struct({ tenant: Schema.String, n: Schema.Number })

const Base = JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer), Layer.provideMerge(Events.layer))

/** Let the runner's fibers run for a while of test time. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) {
    yield* TestClock.adjust("10 millis")
    yield* Effect.yieldNow()
  }
})

const startRunner = <R>(handlers: Job.Handlers<R>, options: JobRunner.Options = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(JobRunner.layer(handlers, options), scope)
    return scope
  })

describe("FlowControl definitions", () => {
  it("Job.make refuses limits no job can have", () => {
    const bad: Array<Partial<Job.KindOptions<any, any, never>>> = [
      { concurrency: { global: 0 } },
      { concurrency: { perPartition: -1 } },
      { concurrency: { global: Number.NaN } },
      { concurrency: { global: 1.5 } },
      { concurrency: {} },
      { rateLimit: { limit: 0, per: "1 second" } },
      { rateLimit: { limit: 10, per: "0 seconds" } },
      { rateLimit: { limit: 10, per: "not a duration" as any } },
      { rateLimit: { limit: 10, per: "1 second", by: "tenant" as any } },
      { rateLimit: { limit: 10, per: "1 second", burst: 0 } },
      { rateLimit: { limit: 10, per: "1 second", burst: 11 } },
      { rateLimit: { limit: 10, per: "1 second", burst: 2.5 } }
    ]
    for (const options of bad) {
      const error = (() => {
        try {
          Job.make("limited", { payload: Payload, ...options })
          return undefined
        } catch (e) {
          return e
        }
      })()
      expect(error, JSON.stringify(options)).toBeInstanceOf(FlowControl.InvalidLimits)
      expect((error as FlowControl.InvalidLimits).message).toMatch(/Job.make\("limited"\)/)
    }
    const ok = Job.make("limited", {
      payload: Payload,
      concurrency: { global: 20, perPartition: 2 },
      rateLimit: { limit: 100, per: "1 second", by: "partition" }
    })
    expect(FlowControl.toRule("kind", ok.name, ok.limits)).toEqual({
      scope: "kind",
      name: "limited",
      global: 20,
      perPartition: 2,
      rateLimit: 100,
      rateWindowMs: 1000,
      rateByPartition: true,
      rateBurst: null
    })
  })

  it.effect("a runner refuses invalid queue limits before it starts", () =>
    Effect.gen(function* () {
      const Plain = Job.make("plain", { payload: Payload })
      const handlers = Job.handlers(Job.handle(Plain, () => Effect.void))
      const exit = yield* Effect.exit(
        Effect.scoped(JobRunner.make(handlers, { queueLimits: { default: { concurrency: { global: -2 } } } }))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Option.getOrThrow(
        Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable(c)))
      )
      expect(String(error)).toMatch(/queueLimits.default: concurrency.global must be an integer/)
    }).pipe(Effect.provide(Base))
  )
})

describe("partition keys on enqueue", () => {
  const Tenant = Job.make("tenant_task", { payload: Payload, partition: (p) => p.tenant })

  it.effect("a kind derives the key from the payload; an enqueue option wins", () =>
    Effect.gen(function* () {
      const derived = yield* JobQueue.enqueue(Tenant, { tenant: "acme", n: 1 })
      const given = yield* JobQueue.enqueue(Tenant, { tenant: "acme", n: 2 }, { partition: "other" })
      const queue = yield* JobQueue.JobQueue
      expect(Option.getOrThrow(yield* queue.get(derived.id)).partition).toBe("acme")
      expect(Option.getOrThrow(yield* queue.get(given.id)).partition).toBe("other")
    }).pipe(Effect.provide(Base))
  )

  it.effect("a key that cannot be stored is InvalidOptions and nothing is written", () =>
    Effect.gen(function* () {
      const Plain = Job.make("plain_task", { payload: Payload })
      const bad: Array<unknown> = ["", "x".repeat(1001), "a\u0000b", "\uD800", 42]
      for (const partition of bad) {
        const error = yield* Effect.flip(
          JobQueue.enqueue(Plain, { tenant: "t", n: 1 }, { partition: partition as string })
        )
        expect(error._tag, String(partition)).toBe("InvalidOptions")
        expect(error.message).toMatch(/partition must be/)
      }
      const Throws = Job.make("throws_task", {
        payload: Payload,
        partition: () => {
          throw new Error("no tenant here")
        }
      })
      const thrown = yield* Effect.flip(JobQueue.enqueue(Throws, { tenant: "t", n: 1 }))
      expect(thrown.message).toMatch(/could not derive a partition from the payload: no tenant here/)
      const Long = Job.make("long_task", { payload: Payload, partition: (p) => p.tenant.repeat(600) })
      const long = yield* Effect.flip(JobQueue.enqueue(Long, { tenant: "ab", n: 1 }))
      expect(long.message).toMatch(
        /the partition that kind long_task derives from the payload: partition must be 1 to 1000/
      )
      const counts = yield* (yield* JobQueue.JobQueue).counts
      expect(counts).toEqual([])
    }).pipe(Effect.provide(Base))
  )
})

describe("a runner under flow control", () => {
  it.effect("never runs more than perPartition jobs of a key, and runs every job", () =>
    Effect.gen(function* () {
      const Limited = Job.make("per_tenant", {
        payload: Payload,
        partition: (p) => p.tenant,
        concurrency: { perPartition: 2 }
      })
      const running = new Map<string, number>()
      const most = new Map<string, number>()
      let done = 0
      const handlers = Job.handlers(
        Job.handle(Limited, (p) =>
          Effect.gen(function* () {
            const now = (running.get(p.tenant) ?? 0) + 1
            running.set(p.tenant, now)
            most.set(p.tenant, Math.max(most.get(p.tenant) ?? 0, now))
            yield* Effect.sleep("100 millis")
            running.set(p.tenant, running.get(p.tenant)! - 1)
            done++
          })
        )
      )
      for (let i = 0; i < 12; i++) yield* JobQueue.enqueue(Limited, { tenant: i % 3 === 0 ? "b" : "a", n: i })
      const scope = yield* startRunner(handlers, { concurrency: 10 })
      // While a's jobs wait, get and list say why.
      yield* settle
      const queue = yield* JobQueue.JobQueue
      const page = yield* queue.list({ states: ["available"] })
      expect(page.jobs.length).toBeGreaterThan(0)
      for (const job of page.jobs) expect(job.waiting).toBe("partition at limit")
      for (let i = 0; i < 60 && done < 12; i++) yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(done).toBe(12)
      expect(most.get("a")).toBe(2)
      expect(most.get("b")).toBe(2)
    }).pipe(Effect.provide(Base))
  )

  it.effect(
    "a runner a global limit held back, with nothing running, claims again soon after a place frees, not at its next poll",
    () =>
      Effect.gen(function* () {
        const First = Job.make("first", { payload: Payload, queue: "expensive" })
        const Second = Job.make("second", { payload: Payload, queue: "expensive" })
        const gate = yield* Deferred.make<void>()
        const secondStarted = yield* Deferred.make<void>()
        const options = {
          concurrency: 5,
          pollInterval: "1 hour" as const,
          queueLimits: { expensive: { concurrency: { global: 1 } } }
        }
        yield* JobQueue.enqueue(First, { tenant: "t", n: 1 })
        const a = yield* startRunner(Job.handlers(Job.handle(First, () => Deferred.await(gate))), options)
        yield* settle
        // The place is taken: the second runner's claims come back empty, and it runs nothing.
        yield* JobQueue.enqueue(Second, { tenant: "t", n: 2 })
        const b = yield* startRunner(
          Job.handlers(Job.handle(Second, () => Deferred.succeed(secondStarted, undefined))),
          options
        )
        for (let i = 0; i < 10; i++) yield* settle
        expect(yield* Deferred.isDone(secondStarted)).toBe(false)
        // The first job ends on the other runner: no wake-up reaches this one, its poll is an hour off.
        yield* Deferred.succeed(gate, undefined)
        for (let i = 0; i < 60 && !(yield* Deferred.isDone(secondStarted)); i++) yield* settle
        expect(yield* Deferred.isDone(secondStarted)).toBe(true)
        yield* Scope.close(a, Exit.void)
        yield* Scope.close(b, Exit.void)
      }).pipe(Effect.provide(Base))
  )

  it.effect(
    "a runner alone fills every place of a global limit at once, though one claim takes one share",
    () =>
      Effect.gen(function* () {
        const Work = Job.make("wide", { payload: Payload, concurrency: { global: 100 } })
        const gate = yield* Deferred.make<void>()
        let running = 0
        const handlers = Job.handlers(
          Job.handle(Work, () =>
            Effect.gen(function* () {
              running++
              yield* Deferred.await(gate)
            })
          )
        )
        for (let i = 0; i < 150; i++) yield* JobQueue.enqueue(Work, { tenant: `t${i % 10}`, n: i })
        // A claim takes 25 of the 100 places (one share); the poll is an hour off.
        const scope = yield* startRunner(handlers, { concurrency: 150, pollInterval: "1 hour" })
        for (let i = 0; i < 20 && running < 100; i++) yield* settle
        expect(running).toBe(100)
        yield* Deferred.succeed(gate, undefined)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.provide(Base))
  )

  it.effect("a queue's global limit holds across two runners", () =>
    Effect.gen(function* () {
      const Work = Job.make("capped", { payload: Payload, queue: "expensive" })
      let running = 0
      let most = 0
      let done = 0
      const gate = yield* Deferred.make<void>()
      const handlers = Job.handlers(
        Job.handle(Work, () =>
          Effect.gen(function* () {
            running++
            most = Math.max(most, running)
            yield* Deferred.await(gate)
            yield* Effect.sleep("10 millis")
            running--
            done++
          })
        )
      )
      for (let i = 0; i < 20; i++) yield* JobQueue.enqueue(Work, { tenant: "t", n: i })
      const options = { concurrency: 10, queueLimits: { expensive: { concurrency: { global: 3 } } } }
      const a = yield* startRunner(handlers, options)
      const b = yield* startRunner(handlers, options)
      yield* settle
      expect(running).toBe(3)
      yield* Deferred.succeed(gate, undefined)
      for (let i = 0; i < 60 && done < 20; i++) yield* settle
      yield* Scope.close(a, Exit.void)
      yield* Scope.close(b, Exit.void)
      expect(done).toBe(20)
      expect(most).toBe(3)
    }).pipe(Effect.provide(Base))
  )

  it.effect(
    "with a store that settles and claims in one call, settles carry the claims and the limit holds",
    () => {
      let rides = 0
      // The memory store, its `settleAndClaim` calls counted.
      const Riding = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store) => ({
          ...store,
          settleAndClaim: (settlements: ReadonlyArray<JobStore.Settlement>, request: JobStore.ClaimRequest) =>
            Effect.tap(store.settleAndClaim!(settlements, request), () => {
              rides++
            })
        }))
      ).pipe(Layer.provide(MemoryStore.layer))
      return Effect.gen(function* () {
        const Work = Job.make("capped_riding", {
          payload: Payload,
          partition: (p) => p.tenant,
          concurrency: { global: 3 }
        })
        let running = 0
        let most = 0
        const runs = new Map<number, number>()
        const handlers = Job.handlers(
          Job.handle(Work, ({ n }) =>
            Effect.gen(function* () {
              running++
              most = Math.max(most, running)
              runs.set(n, (runs.get(n) ?? 0) + 1)
              yield* Effect.sleep("10 millis")
              running--
            })
          )
        )
        for (let i = 0; i < 40; i++) yield* JobQueue.enqueue(Work, { tenant: `t${i % 4}`, n: i })
        const a = yield* startRunner(handlers, { concurrency: 10 })
        const b = yield* startRunner(handlers, { concurrency: 10 })
        for (let i = 0; i < 100 && runs.size < 40; i++) yield* settle
        yield* Scope.close(a, Exit.void)
        yield* Scope.close(b, Exit.void)
        expect(runs.size).toBe(40)
        expect(Array.from(runs.values()).every((c) => c === 1)).toBe(true)
        expect(most).toBe(3)
        expect(rides).toBeGreaterThan(0)
      }).pipe(
        Effect.provide(JobQueue.layer.pipe(Layer.provideMerge(Riding), Layer.provideMerge(Events.layer)))
      )
    }
  )

  it.effect(
    "a settle-and-claim call that never answers does not hold up shutdown; the job is rescued later",
    () => {
      const called = Deferred.unsafeMake<void>(FiberId.none)
      // The memory store, except that a settle with a claim hangs (a database that stopped answering).
      const Hanging = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store) => ({
          ...store,
          settleAndClaim: () => Effect.zipRight(Deferred.succeed(called, undefined), Effect.never)
        }))
      ).pipe(Layer.provideMerge(MemoryStore.layer))
      return Effect.gen(function* () {
        const Work = Job.make("capped_hanging", { payload: Payload, concurrency: { global: 1 } })
        const handlers = Job.handlers(Job.handle(Work, () => Effect.void))
        const first = yield* JobQueue.enqueue(Work, { tenant: "t", n: 0 })
        yield* JobQueue.enqueue(Work, { tenant: "t", n: 1 })
        const scope = yield* startRunner(handlers, { concurrency: 10, shutdownTimeout: "2 seconds" })
        // The first claim comes back short (one of ten): the first job's outcome goes with a claim.
        yield* settle
        yield* Deferred.await(called)
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        for (let i = 0; i < 20 && closing.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
        // The hung call cannot be interrupted (a claim it made must reach the runner): the
        // supervisor gives up on the settler after its shutdown timeout instead of waiting for it.
        expect(closing.unsafePoll()).not.toBeNull()
        const store = yield* JobStore.JobStore
        expect((yield* store.get(first.id))?.state).toBe("running")
        yield* TestClock.adjust("1 minute") // past the lease
        expect((yield* store.rescue(10)).map((r) => r.id)).toEqual([first.id])
      }).pipe(
        Effect.provide(JobQueue.layer.pipe(Layer.provideMerge(Hanging), Layer.provideMerge(Events.layer)))
      )
    }
  )

  it.effect("a runner stores its kinds' and queues' limits, and clears those no longer declared", () =>
    Effect.gen(function* () {
      const store = yield* JobStore.JobStore
      yield* store.declareLimits([FlowControl.toRule("kind", "was_limited", { concurrency: { global: 1 } })])
      const WasLimited = Job.make("was_limited", { payload: Payload })
      const Rated = Job.make("rated", { payload: Payload, rateLimit: { limit: 5, per: "1 second" } })
      const handlers = Job.handlers(
        Job.handle(WasLimited, () => Effect.void),
        Job.handle(Rated, () => Effect.void)
      )
      const scope = yield* startRunner(handlers, {
        queueLimits: { default: { concurrency: { perPartition: 4 } } }
      })
      yield* settle
      const { rules } = yield* store.flowState({ due: false })
      expect(rules.map((r) => `${r.scope}:${r.name}`)).toEqual(["kind:rated", "queue:default"])
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Base))
  )

  it.effect("a rate limit spaces starts: at most limit per window, one per fifth of it", () =>
    Effect.gen(function* () {
      const Rated = Job.make("rated_calls", { payload: Payload, rateLimit: { limit: 5, per: "1 second" } })
      const starts: Array<number> = []
      const handlers = Job.handlers(
        Job.handle(Rated, () =>
          Effect.flatMap(
            Effect.clockWith((c) => c.currentTimeMillis),
            (t) => Effect.sync(() => starts.push(t))
          )
        )
      )
      for (let i = 0; i < 20; i++) yield* JobQueue.enqueue(Rated, { tenant: "t", n: i })
      const scope = yield* startRunner(handlers, { concurrency: 10 })
      for (let i = 0; i < 40 && starts.length < 20; i++) yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(starts).toHaveLength(20)
      // Any two starts 5 apart are a full window apart, and any two starts are paced 200 ms apart.
      for (let i = 5; i < starts.length; i++) expect(starts[i]! - starts[i - 5]!).toBeGreaterThanOrEqual(1000)
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(200)
      // And the limiter does not starve the kind: the runner tries again an eighth of a pace
      // span after an empty claim, so 20 starts at 5 per second take 3.8 s and at most 25 ms
      // more per start.
      expect(starts[19]! - starts[0]!).toBeLessThanOrEqual(19 * 225)
    }).pipe(Effect.provide(Base))
  )

  it.effect("autoscale does not add slots for jobs a limit holds back", () =>
    Effect.gen(function* () {
      const OneAtATime = Job.make("one_at_a_time", {
        payload: Payload,
        partition: (p) => p.tenant,
        concurrency: { perPartition: 1 }
      })
      const gate = yield* Deferred.make<void>()
      const handlers = Job.handlers(Job.handle(OneAtATime, () => Deferred.await(gate)))
      for (let i = 0; i < 12; i++) yield* JobQueue.enqueue(OneAtATime, { tenant: "solo", n: i })
      const scope = yield* Scope.make()
      const runner = yield* Layer.buildWithScope(
        JobRunner.layer(handlers, { autoscale: { min: 1, max: 10 } }),
        scope
      ).pipe(Effect.map((context) => Context.get(context, JobRunner.JobRunner)))
      for (let i = 0; i < 30; i++) yield* settle
      const status = yield* runner.status
      expect(status.running).toBe(1)
      // 11 jobs wait, all held back by the key's limit: one slot is all that can be used.
      expect(status.concurrency).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Base))
  )
})
