import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as JobStore from "nightshift/JobStore"
import * as Testing from "nightshift/Testing"

const Work = Job.make("work", {
  payload: Schema.Struct({ n: Schema.Number }),
  retry: { maxAttempts: 4, backoff: Schedule.exponential("1 second") },
  timeout: "10 seconds"
})

const getJob = (id: string) => Effect.flatMap(JobStore.JobStore, (s) => s.get(id)).pipe(Effect.map((j) => j!))

describe("Job handlers and what their failures mean", () => {
  it.effect("a typed failure retries with the kind's backoff, keeps every error, then discards", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(Job.handle(Work, () => Effect.fail(new Error("smtp down"))))
      const { id } = yield* JobQueue.enqueue(Work, { n: 1 })
      const runAts: Array<number> = []
      for (let i = 0; i < 4; i++) {
        yield* Testing.drain(handlers)
        const job = yield* getJob(id)
        runAts.push(job.runAt)
        if (job.state === "retryable") yield* TestClock.setTime(job.runAt)
      }
      const job = yield* getJob(id)
      expect(job.state).toBe("discarded")
      expect(job.attempt).toBe(4)
      expect(job.errors.map((e) => [e.attempt, e.kind])).toEqual([
        [1, "failure"],
        [2, "failure"],
        [3, "failure"],
        [4, "failure"]
      ])
      expect(job.errors[0]!.message).toContain("smtp down")
      // exponential from 1 s: 1 s, 2 s, 4 s after each failure
      expect([runAts[0], runAts[1]! - runAts[0]!, runAts[2]! - runAts[1]!]).toEqual([1000, 2000, 4000])
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("Discard ends the job at once; Retry with a delay overrides the backoff", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(
        Job.handle(
          Work,
          ({ n }): Effect.Effect<void, Job.Discard | Job.Retry> =>
            n === 1
              ? Effect.fail(new Job.Discard({ reason: "bad address" }))
              : Effect.fail(new Job.Retry({ reason: "later", delay: "90 seconds" }))
        )
      )
      const a = yield* JobQueue.enqueue(Work, { n: 1 })
      const b = yield* JobQueue.enqueue(Work, { n: 2 })
      yield* Testing.drain(handlers)
      const ja = yield* getJob(a.id)
      const jb = yield* getJob(b.id)
      expect([ja.state, ja.attempt, ja.errors[0]?.kind]).toEqual(["discarded", 1, "discard"])
      expect(ja.errors[0]?.message).toContain("bad address")
      expect([jb.state, jb.runAt]).toEqual(["retryable", 90_000])
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("Snooze runs the job again later without counting the attempt", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const handlers = Job.handlers(
        Job.handle(Work, () =>
          Effect.flatMap(
            Ref.getAndUpdate(runs, (n) => n + 1),
            (n) => (n < 2 ? Effect.fail(new Job.Snooze({ duration: "5 minutes" })) : Effect.void)
          )
        )
      )
      const { id } = yield* JobQueue.enqueue(Work, { n: 1 })
      yield* Testing.drain(handlers)
      const snoozed = yield* getJob(id)
      expect([snoozed.state, snoozed.attempt, snoozed.runAt, snoozed.errors.length]).toEqual([
        "scheduled",
        0,
        300_000,
        0
      ])
      const result = yield* Testing.drain(handlers, { advanceTime: true })
      expect(result.completed).toBe(1)
      const done = yield* getJob(id)
      expect([done.state, done.attempt]).toEqual(["completed", 1])
      expect(yield* Ref.get(runs)).toBe(3)
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("a defect and a timeout are failed attempts with their cause kept", () =>
    Effect.gen(function* () {
      const handlers = Job.handlers(
        Job.handle(Work, ({ n }) => (n === 1 ? Effect.die(new Error("boom")) : Effect.never))
      )
      const a = yield* JobQueue.enqueue(Work, { n: 1 })
      const b = yield* JobQueue.enqueue(Work, { n: 2 })
      const fiber = yield* Effect.fork(Testing.drain(handlers))
      yield* TestClock.adjust("10 seconds")
      yield* fiber.await
      const ja = yield* getJob(a.id)
      const jb = yield* getJob(b.id)
      expect([ja.state, ja.errors[0]?.kind]).toEqual(["retryable", "defect"])
      expect(ja.errors[0]?.message).toContain("boom")
      expect([jb.state, jb.errors[0]?.kind]).toEqual(["retryable", "timeout"])
      expect(jb.errors[0]?.message).toContain("timed out after 10s")
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("a stored payload that no longer decodes is discarded with the decode error", () =>
    Effect.gen(function* () {
      const store = yield* JobStore.JobStore
      const [r] = yield* store.enqueue([
        { kind: "work", queue: "default", payload: { n: "not a number" }, priority: 0, maxAttempts: 3 }
      ])
      const handlers = Job.handlers(Job.handle(Work, () => Effect.void))
      yield* Testing.drain(handlers)
      const job = yield* getJob(r!.id)
      expect([job.state, job.errors[0]?.kind]).toEqual(["discarded", "decode"])
      expect(job.errors[0]?.message).toContain("Expected number")
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("a job of a kind without a handler is left for a runner that knows it", () =>
    Effect.gen(function* () {
      const Other = Job.make("other", { payload: Schema.Struct({}) })
      const { id } = yield* JobQueue.enqueue(Other, {})
      yield* Testing.drain(Job.handlers(Job.handle(Work, () => Effect.void)))
      expect((yield* getJob(id)).state).toBe("available")
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("jittered backoff stays within its bounds", () =>
    Effect.gen(function* () {
      const Jittery = Job.make("jittery", {
        payload: Schema.Struct({}),
        retry: { maxAttempts: 5, backoff: Schedule.exponential("10 seconds").pipe(Schedule.jittered) }
      })
      const handlers = Job.handlers(Job.handle(Jittery, () => Effect.fail("nope")))
      for (const [seed, expected] of [
        [0, 8_000],
        [1, 12_000]
      ] as const) {
        const { id } = yield* JobQueue.enqueue(Jittery, {})
        const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
        yield* Testing.drain(handlers).pipe(Effect.withRandom(Random.fixed([seed])))
        expect((yield* getJob(id)).runAt - now).toBe(expected)
      }
    }).pipe(Effect.provide(Testing.layer))
  )

  it("Job.handlers refuses a kind handled twice with a tagged DuplicateHandler", () => {
    const thrown = (() => {
      try {
        Job.handlers(
          Job.handle(Work, () => Effect.void),
          Job.handle(Work, () => Effect.void)
        )
      } catch (error) {
        return error
      }
    })()
    expect(thrown).toBeInstanceOf(Job.DuplicateHandler)
    expect(thrown).toMatchObject({ _tag: "DuplicateHandler", kind: "work" })
    expect(String((thrown as Error).message)).toContain('kind "work" is handled twice')
  })

  it("Job.make refuses, at definition, what no job can have, with a tagged InvalidJobKind", () => {
    const payload = Schema.Unknown
    const cases: ReadonlyArray<readonly [string, Job.KindOptions<unknown, unknown, never>, string]> = [
      ["send email", { payload }, 'invalid kind name "send email"'],
      ["", { payload }, 'invalid kind name ""'],
      ["ok", { payload, queue: "a/b" }, 'invalid queue name "a/b"'],
      ["ok", { payload, priority: 1.5 }, "priority must be an integer"],
      ["ok", { payload, priority: 40_000 }, "priority must be an integer"],
      ["ok", { payload, retry: { maxAttempts: 0 } }, "retry.maxAttempts must be an integer from 1"],
      ["ok", { payload, retry: { maxAttempts: Number.NaN } }, "retry.maxAttempts must be an integer from 1"],
      ["ok", { payload, timeout: 0 }, "timeout must be a positive duration"]
    ]
    for (const [name, options, message] of cases) {
      let thrown: unknown
      try {
        Job.make(name, options)
      } catch (error) {
        thrown = error
      }
      expect(thrown, `${name} ${JSON.stringify(options)}`).toBeInstanceOf(Job.InvalidJobKind)
      expect((thrown as Job.InvalidJobKind).message).toContain(message)
      expect((thrown as Job.InvalidJobKind).kind).toBe(name)
    }
    // The limits themselves are fine.
    expect(Job.make("a.b:c-d_1", { payload, priority: -32768, retry: { maxAttempts: 1_000_000 } }).name).toBe(
      "a.b:c-d_1"
    )
  })
})

describe("testing helpers", () => {
  it.effect("assertEnqueued and assertNotEnqueued match by kind and payload", () =>
    Effect.gen(function* () {
      yield* JobQueue.enqueue(Work, { n: 7 })
      yield* Testing.assertEnqueued(Work)
      yield* Testing.assertEnqueued(Work, { n: 7 })
      yield* Testing.assertEnqueued(Work, (p) => p.n > 5)
      yield* Testing.assertNotEnqueued(Work, { n: 8 })
      const error = yield* Effect.flip(Testing.assertEnqueued(Work, { n: 8 }))
      expect(error.message).toContain('{"n":8}')
      expect((yield* Effect.flip(Testing.assertNotEnqueued(Work)))._tag).toBe("AssertionFailed")
    }).pipe(Effect.provide(Testing.layer))
  )

  it.effect("perform runs one job inline through the attempt path", () =>
    Effect.gen(function* () {
      const ok = Job.handle(Work, () => Effect.void)
      const bad = Job.handle(Work, () => Effect.fail(new Job.Discard({ reason: "no" })))
      expect(yield* Testing.perform(ok, { n: 1 })).toEqual({ _tag: "completed" })
      expect((yield* Testing.perform(bad, { n: 1 }))?._tag).toBe("discard")
      const last = yield* Testing.perform(
        Job.handle(Work, () => Effect.fail("x")),
        { n: 1 },
        { attempt: 4, maxAttempts: 4 }
      )
      expect(last?._tag).toBe("discard")
    })
  )

  it.effect("drain with advanceTime runs scheduled jobs and retries until none is left", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<number>>([])
      const handlers = Job.handlers(
        Job.handle(Work, ({ n }, ctx) =>
          Effect.zipRight(
            Ref.update(seen, (xs) => [...xs, n]),
            ctx.attempt < 2 ? Effect.fail("first attempt fails") : Effect.void
          )
        )
      )
      yield* JobQueue.enqueue(Work, { n: 1 }, { delay: "1 hour" })
      yield* JobQueue.enqueue(Work, { n: 2 })
      const result = yield* Testing.drain(handlers, { advanceTime: true })
      expect(result).toMatchObject({ completed: 2, retried: 2 })
      expect(yield* Ref.get(seen)).toEqual([2, 2, 1, 1])
      const left = yield* Effect.flatMap(JobQueue.JobQueue, (q) =>
        q.list({ states: ["available", "scheduled", "retryable"] })
      )
      expect(left.jobs).toHaveLength(0)
      expect(Option.isSome(yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.get("1")))).toBe(true)
    }).pipe(Effect.provide(Testing.layer))
  )
})
