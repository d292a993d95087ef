import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as TestClock from "effect/TestClock"
import * as CronJob from "nightshift/CronJob"
import * as Events from "nightshift/Events"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as JobRunner from "nightshift/JobRunner"
import * as JobStore from "nightshift/JobStore"
import * as Leader from "nightshift/Leader"
import * as MemoryStore from "nightshift/MemoryStore"
import * as Metrics from "nightshift/Metrics"
import { aheadTarget } from "../src/internal/runner/engine.js"
import { slowed } from "./store/helpers.js"

const Task = Job.make("task", {
  payload: Schema.Struct({ n: Schema.Number }),
  retry: { maxAttempts: 3, backoff: Schedule.spaced("1 minute") }
})

const Base = JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer), Layer.provideMerge(Events.layer))

/** The producer and event bus on a given store service (a wrapper of a real store, in these tests). */
const onStore = (store: JobStore.Service) =>
  JobQueue.layer.pipe(
    Layer.provideMerge(Layer.succeed(JobStore.JobStore, store)),
    Layer.provideMerge(Events.layer)
  )

/** A memory store that records how many outcomes each settle call writes. */
const countingSettles = Effect.map(MemoryStore.make, (real) => {
  const sizes: Array<number> = []
  const counting: JobStore.Service = {
    ...real,
    settle: (settlements) =>
      Effect.zipRight(
        Effect.sync(() => sizes.push(settlements.length)),
        real.settle(settlements)
      )
  }
  return { sizes, counting }
})

/** A memory store whose claims each take 10 ms of the test clock (a round trip to measure), recording their limits. */
const slowClaims = Effect.map(MemoryStore.make, (real) => {
  const limits: Array<number> = []
  const slow: JobStore.Service = {
    ...real,
    claim: (request) =>
      Effect.zipRight(
        Effect.zipRight(
          Effect.sync(() => limits.push(request.limit)),
          Effect.sleep("10 millis")
        ),
        real.claim(request)
      )
  }
  return { limits, slow }
})

/** The queue depth gauge's value for (queue, state). */
const depthGauge = (queue: string, state: string) =>
  Effect.map(
    Metric.value(Metrics.queueDepth.pipe(Metric.tagged("queue", queue), Metric.tagged("state", state))),
    (gauge) => gauge.value
  )

/** Start a runner in a fresh child scope of the test; returns the scope so a test can shut it down. */
const startRunner = <R>(handlers: Job.Handlers<R>, options: JobRunner.Options = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(JobRunner.layer(handlers, options), scope)
    return { scope, runner: context.unsafeMap.get(JobRunner.JobRunner.key) as JobRunner.Service }
  })

/** Wait until `n` events of the given tags were published. */
const awaitEvents = (n: number, tags: ReadonlyArray<Events.JobEvent["_tag"]>) =>
  Effect.gen(function* () {
    const events = yield* Events.Events
    const sub = yield* events.subscribe
    return yield* sub.pipe(
      Stream.filter((e) => tags.includes(e._tag)),
      Stream.take(n),
      Stream.runCollect,
      Effect.fork
    )
  })

/** Handlers for `Task` that each take `duration`, and the most that ran at once. */
const peakTracking = (duration: Duration.DurationInput) =>
  Effect.gen(function* () {
    const active = yield* Ref.make(0)
    const peak = yield* Ref.make(0)
    const handlers = Job.handlers(
      Job.handle(Task, () =>
        Effect.gen(function* () {
          const now = yield* Ref.updateAndGet(active, (n) => n + 1)
          yield* Ref.update(peak, (p) => Math.max(p, now))
          yield* Effect.sleep(duration)
          yield* Ref.update(active, (n) => n - 1)
        })
      )
    )
    return { handlers, peak }
  })

const job = (id: string) => Effect.flatMap(JobStore.JobStore, (s) => s.get(id)).pipe(Effect.map((j) => j!))

describe("JobRunner", () => {
  it.scoped("claims and completes every job, never more at once than its concurrency", () =>
    Effect.gen(function* () {
      const { handlers, peak } = yield* peakTracking("1 second")
      const done = yield* awaitEvents(40, ["completed"])
      yield* JobQueue.enqueueMany(Array.from({ length: 40 }, (_, n) => JobQueue.item(Task, { n })))
      yield* startRunner(handlers, { concurrency: 4 })
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      const events = yield* done.await
      expect(Exit.isSuccess(events)).toBe(true)
      expect(yield* Ref.get(peak)).toBe(4)
      const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
      expect(counts).toEqual([{ queue: "default", state: "completed", count: 40 }])
    }).pipe(Effect.provide(Base))
  )

  it.scoped("wakes on enqueue without waiting for the poll interval", () =>
    Effect.gen(function* () {
      const ran = yield* Deferred.make<number>()
      const handlers = Job.handlers(Job.handle(Task, ({ n }) => Deferred.succeed(ran, n)))
      yield* startRunner(handlers, { pollInterval: "1 hour" })
      yield* TestClock.adjust("1 millis")
      yield* JobQueue.enqueue(Task, { n: 7 })
      expect(yield* Deferred.await(ran)).toBe(7)
    }).pipe(Effect.provide(Base))
  )

  it.scoped(
    "an idle runner claims once per job: the end of an attempt does not claim an empty queue again",
    () =>
      Effect.gen(function* () {
        const real = yield* MemoryStore.make
        const claimed: Array<number> = []
        const counting: JobStore.Service = {
          ...real,
          claim: (request) =>
            Effect.tap(real.claim(request), (jobs) => Effect.sync(() => claimed.push(jobs.length)))
        }
        yield* Effect.gen(function* () {
          const ran = yield* Queue.unbounded<number>()
          const handlers = Job.handlers(Job.handle(Task, ({ n }) => Queue.offer(ran, n)))
          yield* startRunner(handlers, { pollInterval: "1 hour" })
          yield* TestClock.adjust("1 millis")
          for (let n = 0; n < 5; n++) {
            const done = yield* awaitEvents(1, ["completed"])
            yield* JobQueue.enqueue(Task, { n })
            expect(yield* Queue.take(ran)).toBe(n)
            expect(Exit.isSuccess(yield* done.await)).toBe(true)
            // Whatever the end of the attempt set off has run before the next enqueue.
            yield* TestClock.adjust("1 millis")
          }
        }).pipe(Effect.provide(onStore(counting)))
        // The claim at start found nothing; then one claim per enqueue's wake-up, each finding its job.
        expect(claimed).toEqual([0, 1, 1, 1, 1, 1])
      })
  )

  it.scoped("claims only kinds it has handlers for", () =>
    Effect.gen(function* () {
      const Other = Job.make("other", { payload: Schema.Struct({}) })
      const other = yield* JobQueue.enqueue(Other, {})
      const done = yield* awaitEvents(1, ["completed"])
      yield* JobQueue.enqueue(Task, { n: 1 })
      yield* startRunner(Job.handlers(Job.handle(Task, () => Effect.void)))
      yield* done.await
      yield* TestClock.adjust("10 seconds")
      expect((yield* job(other.id)).state).toBe("available")
    }).pipe(Effect.provide(Base))
  )

  it.scoped("cancelling a running job interrupts it, runs its finalizers and ends it cancelled", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const finalized = yield* Ref.make(false)
      const handlers = Job.handlers(
        Job.handle(Task, () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.ensuring(Ref.set(finalized, true))
          )
        )
      )
      const cancelled = yield* awaitEvents(1, ["cancelled"])
      const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
      yield* startRunner(handlers)
      yield* Deferred.await(started)
      const result = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.cancel(id))
      expect(result._tag).toBe("requested")
      yield* cancelled.await
      expect(yield* Ref.get(finalized)).toBe(true)
      const j = yield* job(id)
      expect(j.state).toBe("cancelled")
    }).pipe(Effect.provide(Base))
  )

  it.scoped("shutdown lets running jobs finish within the timeout and releases the rest", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(
        Job.handle(Task, ({ n }) => (n === 1 ? Effect.sleep("2 seconds") : Effect.never))
      )
      const started = yield* awaitEvents(2, ["started"])
      const quick = yield* JobQueue.enqueue(Task, { n: 1 })
      const stuck = yield* JobQueue.enqueue(Task, { n: 2 })
      const { scope } = yield* startRunner(handlers, { shutdownTimeout: "5 seconds" })
      yield* started.await
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("2 seconds")
      expect((yield* job(quick.id)).state).toBe("completed")
      expect((yield* job(stuck.id)).state).toBe("running")
      yield* TestClock.adjust("3 seconds")
      yield* closing.await
      const released = yield* job(stuck.id)
      expect(released.state).toBe("available")
      expect(released.attempt).toBe(0)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("heartbeats keep a long job's lease; a dead runner's job is rescued after its lease", () =>
    Effect.gen(function* () {
      const store = yield* JobStore.JobStore
      const runs = yield* Ref.make(0)
      const handlers = Job.handlers(
        Job.handle(Task, ({ n }) =>
          Effect.zipRight(
            Ref.update(runs, (r) => r + 1),
            n === 1 ? Effect.sleep("2 minutes") : Effect.void
          )
        )
      )
      // a job claimed by a runner that then died
      const orphan = yield* JobQueue.enqueue(Task, { n: 2 })
      yield* store.claim({ queues: ["default"], kinds: ["task"], limit: 1, leaseMs: 30_000, owner: "dead" })
      const long = yield* JobQueue.enqueue(Task, { n: 1 })
      yield* startRunner(handlers, { leaseDuration: "30 seconds", rescueInterval: "5 seconds" })
      for (let i = 0; i < 24; i++) yield* TestClock.adjust("5 seconds")
      const longJob = yield* job(long.id)
      expect([longJob.state, longJob.attempt, longJob.errors.length]).toEqual(["completed", 1, 0])
      const orphanJob = yield* job(orphan.id)
      expect(orphanJob.state).toBe("completed")
      expect(orphanJob.attempt).toBe(2)
      expect(orphanJob.errors.map((e) => e.kind)).toEqual(["rescued"])
      expect(yield* Ref.get(runs)).toBe(2)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("a retried job runs again after its backoff", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(
        Job.handle(Task, (_, ctx) => (ctx.attempt === 1 ? Effect.fail("flaky") : Effect.void))
      )
      const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
      yield* startRunner(handlers, { pollInterval: "1 second" })
      yield* TestClock.adjust("1 second")
      expect((yield* job(id)).state).toBe("retryable")
      for (let i = 0; i < 61; i++) yield* TestClock.adjust("1 second")
      const j = yield* job(id)
      expect([j.state, j.attempt]).toEqual(["completed", 2])
    }).pipe(Effect.provide(Base))
  )

  it.scoped("enqueues one job per cron slot even with two runners declaring it", () =>
    Effect.gen(function* () {
      const every5 = Either.getOrThrow(CronJob.make(Task, { n: 0 }, "*/5 * * * *"))
      const handlers = Job.handlers(Job.handle(Task, () => Effect.void))
      yield* startRunner(handlers, { cron: [every5], pollInterval: "1 hour" })
      yield* startRunner(handlers, { cron: [every5], pollInterval: "1 hour" })
      for (let i = 0; i < 16; i++) yield* TestClock.adjust("1 minute")
      const page = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.list({ kinds: ["task"] }))
      expect(page.jobs).toHaveLength(3)
      const store = yield* JobStore.JobStore
      expect(yield* store.lastCronSlot("task")).toBe(15 * 60_000)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("with backfill, a runner starting after downtime enqueues every missed slot, oldest first", () =>
    Effect.gen(function* () {
      const hourly = Either.getOrThrow(CronJob.make(Task, { n: 0 }, "0 * * * *", { backfill: true }))
      const store = yield* JobStore.JobStore
      const input = yield* JobQueue.toInput(Task, { n: 0 }, {}, { _tag: "None" } as never)
      yield* store.enqueueCronSlot({ name: "task", slot: 0, job: input })
      yield* TestClock.setTime(3 * 3_600_000 + 600_000) // 03:10, slots 01:00–03:00 missed
      yield* startRunner(Job.handlers<never>(), { cron: [hourly] })
      yield* TestClock.adjust("1 millis")
      expect(yield* store.lastCronSlot("task")).toBe(3 * 3_600_000)
      const page = yield* store.list({ kinds: ["task"] })
      expect(page.jobs).toHaveLength(4)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("backfill enqueues at most its limit of missed slots, the most recent", () =>
    Effect.gen(function* () {
      const minutely = Either.getOrThrow(CronJob.make(Task, { n: 0 }, "* * * * *", { backfill: 5 }))
      expect(minutely.backfillLimit).toBe(5)
      const store = yield* JobStore.JobStore
      const input = yield* JobQueue.toInput(Task, { n: 0 }, {}, { _tag: "None" } as never)
      yield* store.enqueueCronSlot({ name: "task", slot: 0, job: input })
      yield* TestClock.setTime(24 * 3_600_000 + 30_000) // a day later: 1,440 slots missed
      yield* startRunner(Job.handlers<never>(), { cron: [minutely] })
      yield* TestClock.adjust("1 millis")
      const page = yield* store.list({ kinds: ["task"] })
      expect(page.jobs).toHaveLength(6)
      expect(yield* store.lastCronSlot("task")).toBe(24 * 3_600_000)
      expect(
        Either.getOrThrow(CronJob.make(Task, { n: 0 }, "* * * * *", { backfill: true })).backfillLimit
      ).toBe(CronJob.maxBackfill)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("a node that does not lead still tries every cron slot and rescues expired leases", () =>
    Effect.gen(function* () {
      const every5 = Either.getOrThrow(CronJob.make(Task, { n: 0 }, "*/5 * * * *"))
      const store = yield* JobStore.JobStore
      const { id } = yield* JobQueue.enqueue(Task, { n: 9 }, { queue: "elsewhere" })
      // A process that died holding a job: its lease runs out after 30 s.
      yield* store.claim({ owner: "dead", queues: ["elsewhere"], kinds: ["task"], limit: 1, leaseMs: 30_000 })
      yield* startRunner(Job.handlers<never>(), { cron: [every5], pollInterval: "1 hour" }).pipe(
        Effect.provideService(Leader.Leader, Leader.fromConstant(false))
      )
      for (let i = 0; i < 6; i++) yield* TestClock.adjust("1 minute")
      expect((yield* store.list({ kinds: ["task"], queues: ["default"] })).jobs).toHaveLength(1)
      expect((yield* job(id)).state).toBe("retryable")
    }).pipe(Effect.provide(Base))
  )

  it.scoped("prunes finished jobs after their retention", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(Job.handle(Task, () => Effect.void))
      const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
      yield* startRunner(handlers, {
        pollInterval: "1 hour",
        retention: { completed: "1 minute", interval: "1 minute" }
      })
      yield* TestClock.adjust("1 second")
      expect((yield* job(id)).state).toBe("completed")
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 minute")
      expect(yield* Effect.flatMap(JobStore.JobStore, (s) => s.get(id))).toBeUndefined()
    }).pipe(Effect.provide(Base))
  )

  it.scoped("autoscales concurrency with the number of waiting jobs", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(Job.handle(Task, () => Effect.never))
      const { runner } = yield* startRunner(handlers, { autoscale: { min: 2, max: 8 } })
      yield* TestClock.adjust("1 second")
      expect((yield* runner.status).concurrency).toBe(2)
      yield* JobQueue.enqueueMany(Array.from({ length: 20 }, (_, n) => JobQueue.item(Task, { n })))
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      const status = yield* runner.status
      expect(status.concurrency).toBe(8)
      expect(status.running).toBe(8)
    }).pipe(Effect.provide(Base))
  )

  it.scoped("backs off while the store is unreachable, reports unhealthy, and loses nothing", () =>
    Effect.gen(function* () {
      const real = yield* MemoryStore.make
      const down = yield* Ref.make(true)
      const flaky: JobStore.Service = {
        ...real,
        claim: (req) =>
          Effect.flatMap(Ref.get(down), (d) =>
            d ? Effect.fail(new JobStore.JobStoreError({ message: "connection refused" })) : real.claim(req)
          )
      }
      const layer = onStore(flaky)
      yield* Effect.gen(function* () {
        const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
        const { runner } = yield* startRunner(Job.handlers(Job.handle(Task, () => Effect.void)))
        yield* TestClock.adjust("5 seconds")
        const sick = yield* runner.status
        expect(sick.healthy).toBe(false)
        expect(sick.lastError).toContain("connection refused")
        yield* Ref.set(down, false)
        yield* TestClock.adjust("1 minute")
        expect((yield* runner.status).healthy).toBe(true)
        expect((yield* job(id)).state).toBe("completed")
      }).pipe(Effect.provide(layer))
    })
  )

  it.scoped(
    "prefetch claims ahead in one call, runs no more than its concurrency, keeps buffered leases, and hands the buffer back at shutdown",
    () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        const limits: Array<number> = []
        const counting: JobStore.Service = {
          ...store,
          claim: (request) =>
            Effect.zipRight(
              Effect.sync(() => limits.push(request.limit)),
              store.claim(request)
            )
        }
        const { handlers, peak } = yield* peakTracking("20 seconds")
        const ids = (yield* JobQueue.enqueueMany(
          Array.from({ length: 20 }, (_, n) => JobQueue.item(Task, { n }))
        )).map((r) => r.id)
        const { scope, runner } = yield* startRunner(handlers, {
          concurrency: 2,
          prefetch: 6,
          leaseDuration: "30 seconds",
          shutdownTimeout: "1 second",
          pollInterval: "1 hour"
        }).pipe(Effect.provideService(JobStore.JobStore, counting))
        yield* TestClock.adjust("1 millis")
        const first = yield* runner.status
        expect([first.running, first.prefetched]).toEqual([2, 6])
        expect(limits).toEqual([8])

        // A buffered job that is cancelled leaves the buffer and ends cancelled.
        expect((yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.cancel(ids[7]!)))._tag).toBeDefined()
        yield* TestClock.adjust("1 second")
        expect((yield* job(ids[7]!)).state).toBe("cancelled")
        expect((yield* runner.status).prefetched).toBe(5)

        // ids[6] waits in the buffer for 40 s, past its 30 s lease: heartbeats keep it ours.
        yield* TestClock.adjust("44 seconds")
        const waiting = yield* job(ids[6]!)
        expect([waiting.state, waiting.attempt, waiting.fence]).toEqual(["running", 1, 1])
        expect(yield* Ref.get(peak)).toBe(2)
        expect(limits.every((n) => n <= 8)).toBe(true)

        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("2 seconds")
        yield* closing.await
        const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
        const byState = Object.fromEntries(counts.map((c) => [c.state, c.count]))
        expect(byState).toEqual({ completed: 4, cancelled: 1, available: 15 })
        for (const id of ids) {
          const j = yield* job(id)
          if (j.state === "available") expect(j.attempt).toBe(0)
        }
      }).pipe(Effect.provide(Base))
  )

  it("the default (adaptive) prefetch holds what starts in four claim round trips, bounded by the lease and its maximum", () => {
    // Nothing measured yet: claims for free slots only.
    expect(aheadTarget(undefined, undefined, 30_000, 500)).toBe(0)
    expect(aheadTarget(5, undefined, 30_000, 500)).toBe(0)
    // 2 starts per ms, 10 ms claims: 4 round trips hold 80 jobs.
    expect(aheadTarget(2, 10, 30_000, 500)).toBe(80)
    // Never more than the maximum.
    expect(aheadTarget(20, 10, 30_000, 500)).toBe(500)
    // Never more than starts in a tenth of the lease: a 1 s lease with 50 ms claims holds 100 ms of starts.
    expect(aheadTarget(2, 50, 1_000, 500)).toBe(200)
    expect(aheadTarget(2, 5_000, 30_000, 10_000)).toBe(6_000)
    // Slow jobs (10 per second) with 1 ms claims: nothing ahead.
    expect(aheadTarget(0.01, 1, 30_000, 500)).toBe(0)
  })

  it.scoped(
    "by default a runner claims for its free slots until it has measured, then claims ahead of quick jobs, never past its maximum, and releases what it holds at shutdown",
    () =>
      Effect.gen(function* () {
        const { limits, slow } = yield* slowClaims
        const prefetched: Array<number> = []
        yield* Effect.gen(function* () {
          const started = yield* Ref.make(0)
          const gate = yield* Deferred.make<void>()
          // Quick jobs until 300 have started; the rest wait for the gate (so some stay buffered).
          const handlers = Job.handlers(
            Job.handle(Task, () =>
              Effect.flatMap(
                Ref.updateAndGet(started, (n) => n + 1),
                (n) => (n > 300 ? Deferred.await(gate) : Effect.void)
              )
            )
          )
          const ids = (yield* JobQueue.enqueueMany(
            Array.from({ length: 1_000 }, (_, n) => JobQueue.item(Task, { n }))
          )).map((r) => r.id)
          const { scope, runner } = yield* startRunner(handlers, {
            concurrency: 2,
            pollInterval: "1 hour",
            shutdownTimeout: "1 second"
          })
          for (let i = 0; i < 100; i++) {
            yield* TestClock.adjust("10 millis")
            prefetched.push((yield* runner.status).prefetched)
          }
          expect(limits[0]).toBe(2)
          expect(Math.max(...limits)).toBeGreaterThan(2)
          // min(500, 50 × concurrency) ahead, plus the free slots.
          expect(limits.every((n) => n <= 102)).toBe(true)
          expect(prefetched.every((n) => n <= 100)).toBe(true)
          const held = (yield* runner.status).prefetched
          expect(held).toBeGreaterThan(0)

          const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
          yield* TestClock.adjust("2 seconds")
          yield* closing.await
          const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
          const byState = Object.fromEntries(counts.map((c) => [c.state, c.count]))
          // The two waiting at the gate are released at the shutdown timeout, the buffered ones at once.
          expect(byState.completed).toBe(300)
          expect(byState.running).toBeUndefined()
          expect(byState.available).toBe(700)
          // Released without using an attempt (all but the two that had started).
          const unused = yield* Effect.forEach(ids, (id) =>
            Effect.map(job(id), (j) => j.state === "available" && j.attempt === 0)
          )
          expect(unused.filter(Boolean).length).toBeGreaterThanOrEqual(698)
        }).pipe(Effect.provide(onStore(slow)))
      })
  )

  it.scoped("by default a runner of slow jobs claims no more than its free slots (nothing ahead)", () =>
    Effect.gen(function* () {
      const { limits, slow } = yield* slowClaims
      yield* Effect.gen(function* () {
        const { handlers } = yield* peakTracking("1 second")
        yield* JobQueue.enqueueMany(Array.from({ length: 8 }, (_, n) => JobQueue.item(Task, { n })))
        const { runner } = yield* startRunner(handlers, { concurrency: 2, pollInterval: "1 hour" })
        const prefetched: Array<number> = []
        for (let i = 0; i < 500; i++) {
          yield* TestClock.adjust("10 millis")
          prefetched.push((yield* runner.status).prefetched)
        }
        const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
        expect(counts).toEqual([{ queue: "default", state: "completed", count: 8 }])
        expect(limits.length).toBeGreaterThanOrEqual(4)
        expect(limits.every((n) => n <= 2)).toBe(true)
        expect(prefetched.every((n) => n === 0)).toBe(true)
      }).pipe(Effect.provide(onStore(slow)))
    })
  )

  it.scoped(
    "a buffered job whose lease was not renewed for too long (heartbeats failing) is released and claimed again, not started on the old lease",
    () =>
      Effect.gen(function* () {
        const real = yield* MemoryStore.make
        const released: Array<string> = []
        const failingHeartbeats: JobStore.Service = {
          ...real,
          heartbeat: () => Effect.fail(new JobStore.JobStoreError({ message: "heartbeat refused" })),
          settle: (settlements) =>
            Effect.zipRight(
              Effect.sync(() => {
                for (const s of settlements) if (s.outcome._tag === "release") released.push(s.id)
              }),
              real.settle(settlements)
            )
        }
        yield* Effect.gen(function* () {
          const runs = new Map<number, number>()
          const handlers = Job.handlers(
            Job.handle(Task, ({ n }) =>
              Effect.zipRight(
                Effect.sync(() => runs.set(n, (runs.get(n) ?? 0) + 1)),
                n === 0 ? Effect.sleep("40 seconds") : Effect.void
              )
            )
          )
          const ids = (yield* JobQueue.enqueueMany(
            Array.from({ length: 4 }, (_, n) => JobQueue.item(Task, { n }))
          )).map((r) => r.id)
          yield* startRunner(handlers, {
            concurrency: 1,
            prefetch: 3,
            leaseDuration: "30 seconds",
            rescueInterval: "1 hour",
            pollInterval: "1 hour"
          })
          yield* TestClock.adjust("1 millis")
          // Job 0 runs; 1–3 wait in the buffer while no heartbeat gets through.
          for (let i = 0; i < 45; i++) yield* TestClock.adjust("1 second")
          expect(released.sort()).toEqual(ids.slice(1).sort())
          for (const n of [0, 1, 2, 3]) expect(runs.get(n)).toBe(1)
          for (const id of ids.slice(1)) {
            const j = yield* job(id)
            // claimed a second time (fence 2) before it ran; the release did not use an attempt
            expect([j.state, j.fence, j.attempt]).toEqual(["completed", 2, 1])
          }
        }).pipe(Effect.provide(onStore(failingHeartbeats)))
      })
  )

  describe("attempts run back to back on a fiber, each as isolated as on its own", () => {
    /** Enqueue `n` tasks and run them at concurrency 1 with 50 held ahead, until all completed. */
    const runAll = <R>(n: number, handlers: Job.Handlers<R>) =>
      Effect.gen(function* () {
        const done = yield* awaitEvents(n, ["completed"])
        yield* JobQueue.enqueueMany(Array.from({ length: n }, (_, i) => JobQueue.item(Task, { n: i })))
        yield* startRunner(handlers, { concurrency: 1, prefetch: 50 })
        yield* done.await
      })

    it.scoped("quick jobs share fibers, and each sees only its own log annotations", () =>
      Effect.gen(function* () {
        const fibers = new Set<string>()
        const seen: Array<[string, unknown, unknown]> = []
        yield* runAll(
          40,
          Job.handlers(
            Job.handle(Task, (_, ctx) =>
              Effect.gen(function* () {
                fibers.add(FiberId.threadName(yield* Effect.fiberId))
                const annotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)
                seen.push([
                  ctx.id,
                  Option.getOrUndefined(HashMap.get(annotations, "job.id")),
                  Option.getOrUndefined(HashMap.get(annotations, "job.attempt"))
                ])
              })
            )
          )
        )
        expect(seen).toHaveLength(40)
        for (const [id, annotated, attempt] of seen) {
          expect(annotated).toBe(id)
          expect(attempt).toBe(1)
        }
        // Without reuse there would be one fiber per job.
        expect(fibers.size).toBeLessThan(20)
      }).pipe(Effect.provide(Base))
    )

    it.scoped("the running gauge counts the job a handler runs in, after a lane took it", () =>
      Effect.gen(function* () {
        const seen: Array<number> = []
        const gauge = Metrics.jobsRunning.pipe(Metric.tagged("runner", "gauge-runner"))
        const done = yield* awaitEvents(20, ["completed"])
        yield* JobQueue.enqueueMany(Array.from({ length: 20 }, (_, i) => JobQueue.item(Task, { n: i })))
        yield* startRunner(
          Job.handlers(
            Job.handle(Task, () =>
              Effect.flatMap(Metric.value(gauge), (state) => Effect.sync(() => seen.push(state.value)))
            )
          ),
          { concurrency: 1, prefetch: 50, id: "gauge-runner" }
        )
        yield* done.await
        expect(seen).toEqual(Array.from({ length: 20 }, () => 1))
      }).pipe(Effect.provide(Base))
    )

    it.scoped("a fiber ref a handler sets does not leak into the next attempt", () =>
      Effect.gen(function* () {
        const ref = FiberRef.unsafeMake("unset")
        const seen: Array<string> = []
        const fibers = new Set<string>()
        yield* runAll(
          30,
          Job.handlers(
            Job.handle(Task, ({ n }) =>
              Effect.gen(function* () {
                fibers.add(FiberId.threadName(yield* Effect.fiberId))
                seen.push(yield* FiberRef.get(ref))
                if (n % 3 === 0) yield* FiberRef.set(ref, `set by ${n}`)
              })
            )
          )
        )
        expect(seen).toEqual(Array.from({ length: 30 }, () => "unset"))
        // Setting one does not cost the attempts after it their shared fiber.
        expect(fibers.size).toBeLessThan(10)
      }).pipe(Effect.provide(Base))
    )

    it.scoped("with a kind's timeout, a late attempt times out and the ones after it complete", () =>
      Effect.gen(function* () {
        const Timed = Job.make("timed_lane", {
          payload: Schema.Struct({ n: Schema.Number }),
          timeout: "1 second",
          retry: { maxAttempts: 1 }
        })
        const done = yield* awaitEvents(20, ["completed", "discarded"])
        yield* JobQueue.enqueueMany(Array.from({ length: 20 }, (_, n) => JobQueue.item(Timed, { n })))
        yield* startRunner(
          Job.handlers(Job.handle(Timed, ({ n }) => (n === 10 ? Effect.never : Effect.void))),
          { concurrency: 1, prefetch: 50 }
        )
        for (let i = 0; i < 5; i++) yield* TestClock.adjust("500 millis")
        const events = yield* done.await
        expect(Exit.isSuccess(events)).toBe(true)
        const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
        expect(counts).toEqual(
          expect.arrayContaining([
            { queue: "default", state: "completed", count: 19 },
            { queue: "default", state: "discarded", count: 1 }
          ])
        )
      }).pipe(Effect.provide(Base))
    )

    it.scoped("a fiber a handler forks and leaves running is interrupted when its attempt ends", () =>
      Effect.gen(function* () {
        const interrupted: Array<number> = []
        const ran: Array<number> = []
        yield* runAll(
          20,
          Job.handlers(
            Job.handle(Task, ({ n }) =>
              Effect.gen(function* () {
                ran.push(n)
                if (n % 4 === 0) {
                  const forked = yield* Deferred.make<void>()
                  yield* Effect.fork(
                    Effect.onInterrupt(
                      Effect.zipRight(Deferred.succeed(forked, undefined), Effect.never),
                      () => Effect.sync(() => interrupted.push(n))
                    )
                  )
                  yield* Deferred.await(forked)
                }
              })
            )
          )
        )
        // Interrupting a forked fiber completes on the scheduler, after the attempt's end.
        yield* Effect.repeat(Effect.yieldNow(), { until: () => interrupted.length === 5, times: 1_000 })
        expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i))
        expect(interrupted.sort((a, b) => a - b)).toEqual([0, 4, 8, 12, 16])
      }).pipe(Effect.provide(Base))
    )

    it.scoped("cancelling a running job ends only that job: the ones after it run to completion", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const completed: Array<number> = []
        const handlers = Job.handlers(
          Job.handle(Task, ({ n }) =>
            n === 0
              ? Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
              : Effect.zipRight(
                  Effect.sleep("10 millis"),
                  Effect.sync(() => completed.push(n))
                )
          )
        )
        const done = yield* awaitEvents(10, ["completed", "cancelled"])
        const items = yield* JobQueue.enqueueMany(
          Array.from({ length: 10 }, (_, n) => JobQueue.item(Task, { n }))
        )
        yield* startRunner(handlers, { concurrency: 1, prefetch: 50 })
        yield* Deferred.await(started)
        yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.cancel(items[0]!.id))
        for (let i = 0; i < 20; i++) yield* TestClock.adjust("10 millis")
        yield* done.await
        expect((yield* job(items[0]!.id)).state).toBe("cancelled")
        for (const item of items.slice(1)) {
          const j = yield* job(item.id)
          expect(j.state).toBe("completed")
          expect(j.attempt).toBe(1)
        }
        expect(completed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
      }).pipe(Effect.provide(Base))
    )
  })

  it.scoped("a burst of 500 quick jobs: every outcome is written, several to a settle call", () =>
    Effect.gen(function* () {
      const { sizes, counting } = yield* countingSettles
      yield* Effect.gen(function* () {
        yield* JobQueue.enqueueMany(Array.from({ length: 500 }, (_, n) => JobQueue.item(Task, { n })))
        const done = yield* awaitEvents(500, ["completed"])
        yield* startRunner(Job.handlers(Job.handle(Task, () => Effect.void)), { concurrency: 20 })
        yield* done.await
        const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
        expect(counts).toEqual([{ queue: "default", state: "completed", count: 500 }])
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(500)
        expect(sizes.length).toBeLessThan(100)
      }).pipe(Effect.provide(onStore(counting)))
    })
  )

  it.scoped(
    "a finished job whose outcome the store is slow to take keeps its lease: it is not rescued and run again",
    () =>
      Effect.gen(function* () {
        const real = yield* MemoryStore.make
        let refusing = true
        const stalling: JobStore.Service = {
          ...real,
          settle: (settlements) =>
            Effect.suspend(() =>
              refusing
                ? Effect.fail(new JobStore.JobStoreError({ message: "statement timeout" }))
                : real.settle(settlements)
            )
        }
        yield* Effect.gen(function* () {
          const ran = yield* Ref.make(0)
          const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
          yield* startRunner(Job.handlers(Job.handle(Task, () => Ref.update(ran, (n) => n + 1))), {
            pollInterval: "1 second"
          })
          // Two minutes of failed settles, four times the 30 s lease, with the rescuer running.
          for (let i = 0; i < 120; i++) yield* TestClock.adjust("1 second")
          expect(yield* Ref.get(ran)).toBe(1)
          expect((yield* job(id)).state).toBe("running")
          refusing = false
          for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
          const done = yield* job(id)
          expect([done.state, done.attempt]).toEqual(["completed", 1])
          expect(yield* Ref.get(ran)).toBe(1)
        }).pipe(Effect.provide(onStore(stalling)))
      })
  )

  it.scoped("settleBatchSize bounds the outcomes written in one settle call", () =>
    Effect.gen(function* () {
      const { sizes, counting } = yield* countingSettles
      yield* Effect.gen(function* () {
        yield* JobQueue.enqueueMany(Array.from({ length: 200 }, (_, n) => JobQueue.item(Task, { n })))
        const done = yield* awaitEvents(200, ["completed"])
        yield* startRunner(Job.handlers(Job.handle(Task, () => Effect.void)), {
          concurrency: 20,
          settleBatchSize: 3
        })
        yield* done.await
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(200)
        expect(Math.max(...sizes)).toBeLessThanOrEqual(3)
        expect(Math.max(...sizes)).toBeGreaterThan(1)
      }).pipe(Effect.provide(onStore(counting)))
    })
  )

  it.effect("settleBatchSize must be a whole number of at least 1", () =>
    Effect.gen(function* () {
      for (const settleBatchSize of [0, 2.5]) {
        const error = yield* Effect.flip(
          JobRunner.make(Job.handlers(Job.handle(Task, () => Effect.void)), { settleBatchSize }).pipe(
            Effect.scoped,
            Effect.provide(MemoryStore.layer)
          )
        )
        expect(error.message).toContain("settleBatchSize")
      }
    })
  )

  it.effect("leaseDuration must be at most JobStore.maxLeaseMs: a longer one is refused", () =>
    Effect.gen(function* () {
      const make = (leaseDuration: Duration.DurationInput) =>
        JobRunner.make(Job.handlers(Job.handle(Task, () => Effect.void)), {
          leaseDuration,
          heartbeatInterval: "10 seconds"
        }).pipe(Effect.scoped, Effect.provide(MemoryStore.layer))
      for (const leaseDuration of ["25 hours", JobStore.maxLeaseMs + 1] as const) {
        const error = yield* Effect.flip(make(leaseDuration))
        expect(error._tag).toBe("InvalidRunnerOptions")
        expect(error.message).toContain(`leaseDuration (${Duration.toMillis(leaseDuration)} ms)`)
        expect(error.message).toContain("JobStore.maxLeaseMs")
      }
      yield* make(JobStore.maxLeaseMs)
    })
  )

  it.scoped("the queue depth gauge reads 0 once a queue is drained", () =>
    Effect.gen(function* () {
      const Drained = Job.make("depth_probe", { payload: Schema.Struct({}), queue: "depth-probe" })
      yield* JobQueue.enqueueMany([
        JobQueue.item(Drained, {}, { delay: "30 seconds" }),
        JobQueue.item(Drained, {}, { delay: "30 seconds" })
      ])
      const done = yield* awaitEvents(2, ["completed"])
      yield* startRunner(Job.handlers(Job.handle(Drained, () => Effect.void)), {
        queues: ["depth-probe"],
        retention: { completed: "0 millis", interval: "10 seconds" }
      })
      yield* TestClock.adjust("6 seconds")
      expect(yield* depthGauge("depth-probe", "scheduled")).toBe(2)
      yield* TestClock.adjust("30 seconds")
      yield* done.await
      // Prune and sample passes: the finished rows are gone, so counts have nothing for the queue.
      for (let i = 0; i < 4; i++) yield* TestClock.adjust("10 seconds")
      expect(yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)).toEqual([])
      expect(yield* depthGauge("depth-probe", "scheduled")).toBe(0)
      expect(yield* depthGauge("depth-probe", "available")).toBe(0)
      expect(yield* depthGauge("depth-probe", "completed")).toBe(0)
    }).pipe(Effect.provide(Base))
  )

  describe("the depth sampler", () => {
    /** A memory store whose depth counts take `countTime` of the test clock, recording when each began. */
    const timedDepth = (countTime: Duration.DurationInput) =>
      Effect.map(MemoryStore.make, (real) => {
        const starts: Array<number> = []
        const store: JobStore.Service = {
          ...real,
          depth: slowed(starts, countTime, real.depth)
        }
        return { starts, store }
      })
    const Probe = Job.make("depth_leader_probe", { payload: Schema.Struct({}), queue: "depth-leader" })

    it.scoped("only the leader writes the depth gauges; one that loses leadership sets its own to 0", () =>
      Effect.gen(function* () {
        const { starts, store: counting } = yield* timedDepth(0)
        const sizes = { liveRows: 7, deadRows: 1, tableBytes: 8192, indexBytes: 4096, finishedBytes: 0 }
        const store: JobStore.Service = { ...counting, tableStats: Effect.succeed(sizes) }
        const liveRows = Effect.map(
          Metric.value(Metrics.storeRows.pipe(Metric.tagged("kind", "live"))),
          (gauge) => gauge.value
        )
        const leading = yield* SubscriptionRef.make(true)
        yield* Effect.gen(function* () {
          yield* JobQueue.enqueueMany(
            Array.from({ length: 3 }, () => JobQueue.item(Probe, {}, { delay: "1 hour" }))
          )
          yield* startRunner(Job.handlers(Job.handle(Probe, () => Effect.void)), {
            queues: ["depth-leader"]
          }).pipe(Effect.provideService(Leader.Leader, Leader.fromRef("this-node", leading)))
          yield* TestClock.adjust("6 seconds")
          expect([starts.length, yield* depthGauge("depth-leader", "scheduled"), yield* liveRows]).toEqual([
            1, 3, 7
          ])
          yield* SubscriptionRef.set(leading, false)
          yield* TestClock.adjust("5 seconds")
          // Another process reports now; a count left here would be summed with (or shadow) its own.
          expect([yield* depthGauge("depth-leader", "scheduled"), yield* liveRows]).toEqual([0, 0])
          for (let i = 0; i < 4; i++) yield* TestClock.adjust("5 seconds")
          expect(starts.length).toBe(1)
          yield* SubscriptionRef.set(leading, true)
          yield* TestClock.adjust("5 seconds")
          expect([starts.length, yield* depthGauge("depth-leader", "scheduled")]).toEqual([2, 3])
        }).pipe(Effect.provide(onStore(store)))
      })
    )

    it.scoped("a runner that autoscales counts waiting jobs without leading, and writes no gauge", () =>
      Effect.gen(function* () {
        const { store } = yield* timedDepth(0)
        yield* Effect.gen(function* () {
          const Busy = Job.make("depth_autoscale_probe", {
            payload: Schema.Struct({}),
            queue: "depth-autoscale"
          })
          yield* JobQueue.enqueueMany(Array.from({ length: 20 }, () => JobQueue.item(Busy, {})))
          const { runner } = yield* startRunner(Job.handlers(Job.handle(Busy, () => Effect.never)), {
            queues: ["depth-autoscale"],
            autoscale: { min: 2, max: 8 }
          }).pipe(Effect.provideService(Leader.Leader, Leader.fromConstant(false)))
          for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
          expect((yield* runner.status).running).toBe(8)
          expect(yield* depthGauge("depth-autoscale", "available")).toBe(0)
          expect(yield* depthGauge("depth-autoscale", "running")).toBe(0)
        }).pipe(Effect.provide(onStore(store)))
      })
    )

    it.scoped("a slow count spaces the next sample to 20 times its duration", () =>
      Effect.gen(function* () {
        const { starts, store } = yield* timedDepth("1 second")
        yield* Effect.gen(function* () {
          yield* startRunner(Job.handlers(Job.handle(Probe, () => Effect.void)), { queues: ["depth-leader"] })
          // The first sample starts 5 s in and takes 1 s: the next waits 20 s, not 5.
          yield* TestClock.adjust("25 seconds")
          expect(starts).toEqual([5_000])
          yield* TestClock.adjust("2 seconds")
          expect(starts).toEqual([5_000, 26_000])
        }).pipe(Effect.provide(onStore(store)))
      })
    )
  })

  describe("attempts that cannot run normally still count and end", () => {
    const rawEnqueue = (kind: string, payload: unknown, maxAttempts: number) =>
      Effect.flatMap(JobStore.JobStore, (store) =>
        Effect.map(
          store.enqueue([{ kind, queue: "default", payload, priority: 0, maxAttempts }]),
          ([r]) => r!.id
        )
      )
    const finalJob = (id: string) =>
      Effect.flatMap(JobStore.JobStore, (store) => store.get(id)).pipe(
        Effect.filterOrFail((job) => job !== undefined && ["discarded", "completed"].includes(job.state)),
        Effect.retry(Schedule.spaced("1 second").pipe(Schedule.upTo("2 minutes"))),
        Effect.tap(() => TestClock.adjust("0 millis")),
        Effect.map((job) => job!)
      )
    const drive = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const fiber = yield* Effect.fork(self)
        for (let i = 0; i < 60 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
        return yield* Fiber.join(fiber)
      })

    it.scoped("a payload whose decode error cannot be printed is discarded after one attempt", () =>
      Effect.gen(function* () {
        let deep: unknown = 1
        for (let i = 0; i < 200_000; i++) deep = { n: deep }
        const ran = yield* Ref.make(0)
        yield* startRunner(Job.handlers(Job.handle(Task, () => Ref.update(ran, (n) => n + 1))))
        const id = yield* rawEnqueue(Task.name, deep, 3)
        const job = yield* drive(finalJob(id))
        expect([job.state, job.attempt, job.errors.length]).toEqual(["discarded", 1, 1])
        expect(job.errors[0]?.kind).toBe("decode")
        expect(yield* Ref.get(ran)).toBe(0)
      }).pipe(Effect.provide(Base))
    )

    it.scoped("a failure in the runner's own handling of an attempt counts it, up to maxAttempts", () =>
      Effect.gen(function* () {
        const Throwing = Job.make("throwing_decode", {
          payload: Schema.transform(Schema.Number, Schema.Number, {
            strict: true,
            decode: () => {
              throw new Error("decoder bug")
            },
            encode: (n) => n
          }),
          retry: { maxAttempts: 2 }
        })
        yield* startRunner(Job.handlers(Job.handle(Throwing, () => Effect.void)))
        const id = yield* rawEnqueue(Throwing.name, 1, 2)
        const job = yield* drive(finalJob(id))
        expect([job.state, job.attempt]).toEqual(["discarded", 2])
        expect(job.errors.map((e) => e.kind)).toEqual(["defect", "defect"])
      }).pipe(Effect.provide(Base))
    )

    it.scoped("a row already past its attempt limit is discarded at claim without running", () =>
      Effect.gen(function* () {
        const ran = yield* Ref.make(0)
        yield* startRunner(Job.handlers(Job.handle(Task, () => Ref.update(ran, (n) => n + 1))))
        const id = yield* rawEnqueue(Task.name, { n: 1 }, 0)
        const job = yield* drive(finalJob(id))
        expect([job.state, job.attempt]).toEqual(["discarded", 1])
        expect(job.errors[0]?.kind).toBe("attempts")
        expect(yield* Ref.get(ran)).toBe(0)
      }).pipe(Effect.provide(Base))
    )
  })

  it.scoped(
    "a store that stops taking outcomes does not hold up shutdown: a warning after the flush budget, and the job is rescued later",
    () =>
      Effect.gen(function* () {
        const real = yield* MemoryStore.make
        const refusing: JobStore.Service = {
          ...real,
          settle: () => Effect.fail(new JobStore.JobStoreError({ message: "connection refused" }))
        }
        const layer = onStore(refusing)
        const warnings: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(String(message))
        })
        yield* Effect.gen(function* () {
          const { id } = yield* JobQueue.enqueue(Task, { n: 1 })
          const ran = yield* Deferred.make<void>()
          const { scope } = yield* startRunner(
            Job.handlers(Job.handle(Task, () => Deferred.succeed(ran, undefined)))
          )
          yield* Deferred.await(ran)
          yield* TestClock.adjust("1 second") // the settle fails and is retried
          const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
          for (let i = 0; i < 10 && closing.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
          expect(closing.unsafePoll()).not.toBeNull() // would never end if the last outcome were retried forever
          expect(warnings.some((w) => w.includes("did not take 1 job outcome(s) within 4s"))).toBe(true)
          expect((yield* job(id)).state).toBe("running")
          yield* TestClock.adjust("1 minute") // past the lease
          expect((yield* real.rescue(10)).map((r) => r.id)).toEqual([id])
          expect((yield* job(id)).state).toBe("retryable") // due again, its lost attempt counted
        }).pipe(Effect.provide(layer), Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      })
  )

  it.scoped(
    "a handler's log lines carry the job's id, kind and attempt, and the runner's own lines do not",
    () =>
      Effect.gen(function* () {
        const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
        const capture = Logger.make(({ message, annotations }) => {
          lines.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
        })
        const done = yield* awaitEvents(1, ["completed"])
        const { id } = yield* JobQueue.enqueue(Task, { n: 3 })
        yield* startRunner(Job.handlers(Job.handle(Task, ({ n }) => Effect.log(`working on ${n}`)))).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, capture))
        )
        yield* done.await
        const line = lines.find((l) => String(l.message).includes("working on 3"))
        expect(line?.annotations).toMatchObject({ "job.id": id, "job.kind": "task", "job.attempt": 1 })
        expect(lines.filter((l) => l.annotations["job.id"] !== undefined)).toHaveLength(1)
      }).pipe(Effect.provide(Base))
  )
})

describe("JobRunner on an in-process store", () => {
  it.live(
    "a backlog drain lets the event loop run timers and I/O (heartbeats, the poll, the admin API)",
    () =>
      Effect.gen(function* () {
        // Memory-store calls complete synchronously: without a turn of the event loop now and then,
        // a 10 ms timer set when the drain starts would fire only once the backlog is gone.
        const total = 50_000
        let done = 0
        const handlers = Job.handlers(
          Job.handle(Task, () =>
            Effect.sync(() => {
              done++
            })
          )
        )
        yield* JobQueue.enqueueMany(Array.from({ length: total }, (_, n) => JobQueue.item(Task, { n })))
        let doneWhenTimerFired: number | undefined
        const timer = setTimeout(() => {
          doneWhenTimerFired = done
        }, 10)
        const { scope } = yield* startRunner(handlers, { concurrency: 10 })
        while (done < total) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        clearTimeout(timer)
        yield* Scope.close(scope, Exit.void)
        expect(doneWhenTimerFired).toBeDefined()
        expect(doneWhenTimerFired!).toBeLessThan(total)
      }).pipe(Effect.provide(Base))
  )
})
