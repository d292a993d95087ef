import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as JobStore from "../../../src/JobStore.js"
import { between, getJob, request, type StoreTest, settleOne, started, timed } from "../helpers.js"

const boom = { kind: "failure", message: "Error: boom" }

export const settleSuite = (test: StoreTest) =>
  describe("settle", () => {
    test("what a handler produced is stored as every engine can hold it: NUL, huge delays, huge messages", ({
      store
    }) =>
      Effect.gen(function* () {
        const nul = yield* started(store)
        const far = yield* started(store)
        const long = yield* started(store)
        const plain = yield* started(store)
        const { result, before, after } = yield* timed(
          store,
          store.settle([
            {
              id: nul.id,
              fence: nul.fence,
              outcome: {
                _tag: "retry",
                delayMs: 0,
                error: { kind: "fail\u0000ure", message: "bad\u0000byte \uD800" }
              }
            },
            { id: far.id, fence: far.fence, outcome: { _tag: "snooze", delayMs: Number.POSITIVE_INFINITY } },
            {
              id: long.id,
              fence: long.fence,
              outcome: {
                _tag: "discard",
                error: { kind: "failure", message: "x".repeat(JobStore.maxErrorMessageLength + 10) }
              }
            },
            { id: plain.id, fence: plain.fence, outcome: { _tag: "completed" } }
          ])
        )
        expect(result.map((r) => r.state)).toEqual(["retryable", "scheduled", "discarded", "completed"])
        const stored = yield* getJob(store, nul.id)
        expect(stored.errors.map((e) => [e.kind, e.message])).toEqual([
          ["fail\uFFFDure", "bad\uFFFDbyte \uFFFD"]
        ])
        between(
          (yield* getJob(store, far.id)).runAt,
          before + JobStore.maxDelayMs,
          after + JobStore.maxDelayMs
        )
        const cut = (yield* getJob(store, long.id)).errors[0]!.message
        expect(cut.startsWith("x".repeat(JobStore.maxErrorMessageLength))).toBe(true)
        expect(cut).toContain("10 more characters cut")
      }))

    test("error text that array and SQL syntax use is stored verbatim: quotes, backslashes, braces, NULL", ({
      store
    }) =>
      Effect.gen(function* () {
        const texts = [
          `it's "quoted", a back\\slash \\" and \\\\, {a,b} $1`,
          "NULL",
          '"',
          "\\",
          "",
          " spaced , comma } ünïcödé"
        ]
        const jobs = yield* Effect.forEach(texts, () => started(store))
        const done = yield* started(store)
        const result = yield* store.settle([
          ...jobs.map((job, i) => ({
            id: job.id,
            fence: job.fence,
            outcome: { _tag: "discard" as const, error: { kind: `kind ${texts[i]}`, message: texts[i]! } }
          })),
          { id: done.id, fence: done.fence, outcome: { _tag: "completed" } }
        ])
        expect(result.map((r) => r.state)).toEqual([...texts.map(() => "discarded"), "completed"])
        for (const [i, job] of jobs.entries()) {
          const stored = yield* getJob(store, job.id)
          expect(stored.errors.map((e) => [e.kind, e.message])).toEqual([[`kind ${texts[i]}`, texts[i]]])
        }
      }))

    test("an id twice in one batch: the first settlement applies, the later one is not applied", ({
      store
    }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        const other = yield* started(store)
        const results = yield* store.settle([
          { id: job.id, fence: job.fence, outcome: { _tag: "completed" } },
          { id: other.id, fence: other.fence, outcome: { _tag: "completed" } },
          {
            id: job.id,
            fence: job.fence,
            outcome: { _tag: "retry", delayMs: 0, error: { kind: "failure", message: "late" } }
          }
        ])
        expect(results).toEqual([
          { id: job.id, applied: true, state: "completed" },
          { id: other.id, applied: true, state: "completed" },
          { id: job.id, applied: false, state: null }
        ])
        const after = yield* getJob(store, job.id)
        expect(after.state).toBe("completed")
        expect(after.errors).toEqual([])
      }))

    test("completed: final, lease ended (its owner kept as the runner that ran it), finalizedAt stamped", ({
      store
    }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        const { result, before, after } = yield* timed(store, settleOne(store, job, { _tag: "completed" }))
        expect(result).toEqual({ id: job.id, applied: true, state: "completed" })
        const done = yield* getJob(store, job.id)
        expect(done).toMatchObject({
          state: "completed",
          attempt: 1,
          leaseOwner: job.leaseOwner,
          leaseExpiresAt: null
        })
        between(done.finalizedAt, before, after)
        expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
      }))

    test("retry: retryable at now + delay with the error recorded for this attempt", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 5 })
        const { result, before, after } = yield* timed(
          store,
          settleOne(store, job, { _tag: "retry", delayMs: 30_000, error: boom })
        )
        expect(result).toEqual({ id: job.id, applied: true, state: "retryable" })
        const failed = yield* getJob(store, job.id)
        expect(failed).toMatchObject({ state: "retryable", attempt: 1, leaseOwner: null, finalizedAt: null })
        between(failed.runAt, before + 30_000, after + 30_000)
        expect(failed.errors).toHaveLength(1)
        expect(failed.errors[0]).toMatchObject({ attempt: 1, kind: "failure", message: "Error: boom" })
        between(failed.errors[0]!.at, before, after)

        expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
        yield* advance(31_000)
        const [again] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(again).toMatchObject({ id: job.id, attempt: 2, state: "running" })
        expect(again!.fence).toBeGreaterThan(job.fence)
        yield* settleOne(store, again!, {
          _tag: "retry",
          delayMs: 0,
          error: { kind: "timeout", message: "late" }
        })
        const twice = yield* getJob(store, job.id)
        expect(twice.errors.map((e) => [e.attempt, e.kind])).toEqual([
          [1, "failure"],
          [2, "timeout"]
        ])
        expect(twice.state).toBe("retryable")
        const [third] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(third).toMatchObject({ id: job.id, attempt: 3 })
      }))

    test("discard: final with the error recorded", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        const result = yield* settleOne(store, job, {
          _tag: "discard",
          error: { kind: "defect", message: "bad" }
        })
        expect(result).toEqual({ id: job.id, applied: true, state: "discarded" })
        const done = yield* getJob(store, job.id)
        expect(done).toMatchObject({ state: "discarded", leaseOwner: null })
        expect(done.finalizedAt).not.toBeNull()
        expect(done.errors).toMatchObject([{ attempt: 1, kind: "defect", message: "bad" }])
      }))

    test("snooze: runs again after the delay without counting the attempt", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 1 })
        const { result, before, after } = yield* timed(
          store,
          settleOne(store, job, { _tag: "snooze", delayMs: 20_000 })
        )
        expect(result).toEqual({ id: job.id, applied: true, state: "scheduled" })
        const snoozed = yield* getJob(store, job.id)
        expect(snoozed).toMatchObject({ state: "scheduled", attempt: 0, errors: [], leaseOwner: null })
        between(snoozed.runAt, before + 20_000, after + 20_000)
        expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
        yield* advance(21_000)
        const [again] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(again).toMatchObject({ id: job.id, attempt: 1 })
      }))

    test("cancelled: final, with the error when one is given", ({ store }) =>
      Effect.gen(function* () {
        const plain = yield* started(store)
        expect(yield* settleOne(store, plain, { _tag: "cancelled" })).toEqual({
          id: plain.id,
          applied: true,
          state: "cancelled"
        })
        expect(yield* getJob(store, plain.id)).toMatchObject({ state: "cancelled", errors: [] })
        const withError = yield* started(store)
        yield* settleOne(store, withError, {
          _tag: "cancelled",
          error: { kind: "cancelled", message: "by user" }
        })
        const done = yield* getJob(store, withError.id)
        expect(done.state).toBe("cancelled")
        expect(done.finalizedAt).not.toBeNull()
        expect(done.errors).toMatchObject([{ attempt: 1, kind: "cancelled", message: "by user" }])
      }))

    test("release: available again at once, attempt not counted", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 1 })
        const result = yield* settleOne(store, job, { _tag: "release" })
        expect(result).toEqual({ id: job.id, applied: true, state: "available" })
        expect(yield* getJob(store, job.id)).toMatchObject({
          state: "available",
          attempt: 0,
          errors: [],
          leaseOwner: null,
          leaseExpiresAt: null
        })
        const [again] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(again).toMatchObject({ id: job.id, attempt: 1 })
      }))

    test("one call settles many jobs, each with its own result", ({ store }) =>
      Effect.gen(function* () {
        const a = yield* started(store)
        const b = yield* started(store)
        const results = yield* store.settle([
          { id: a.id, fence: a.fence, outcome: { _tag: "completed" } },
          { id: b.id, fence: b.fence + 100, outcome: { _tag: "completed" } },
          { id: "987654321", fence: 1, outcome: { _tag: "completed" } }
        ])
        expect(results).toEqual([
          { id: a.id, applied: true, state: "completed" },
          { id: b.id, applied: false, state: null },
          { id: "987654321", applied: false, state: null }
        ])
        expect((yield* getJob(store, b.id)).state).toBe("running")
      }))
  })

export const fencingSuite = (test: StoreTest) =>
  describe("fencing", () => {
    test("a second settle of the same attempt changes nothing", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        yield* settleOne(store, job, { _tag: "completed" })
        const before = yield* getJob(store, job.id)
        const again = yield* settleOne(store, job, { _tag: "retry", delayMs: 0, error: boom })
        expect(again).toEqual({ id: job.id, applied: false, state: null })
        expect(yield* getJob(store, job.id)).toEqual(before)
      }))

    test("a settle with a stale fence changes nothing", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        const result = yield* settleOne(store, { id: job.id, fence: job.fence - 1 }, { _tag: "completed" })
        expect(result.applied).toBe(false)
        expect(yield* getJob(store, job.id)).toEqual(job)
      }))

    test("after a rescue and a re-claim, the old runner's settle is ignored", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "old", leaseMs: 10_000 })
        yield* advance(11_000)
        expect((yield* store.rescue(100)).map((r) => r.id)).toContain(job.id)
        const stale = yield* settleOne(store, job, { _tag: "completed" })
        expect(stale.applied).toBe(false)
        const [again] = yield* store.claim(request({ kinds: [job.kind], owner: "new" }))
        expect(again).toMatchObject({ id: job.id, leaseOwner: "new", attempt: 2 })
        for (const outcome of [
          { _tag: "completed" },
          { _tag: "discard", error: boom },
          { _tag: "release" }
        ] as const) {
          expect((yield* settleOne(store, job, outcome)).applied).toBe(false)
        }
        expect(yield* getJob(store, job.id)).toEqual(again)
        expect(yield* settleOne(store, again!, { _tag: "completed" })).toEqual({
          id: job.id,
          applied: true,
          state: "completed"
        })
      }))

    test("a settle after the job was cancelled and finalised is ignored", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        expect((yield* store.cancel(job.id))._tag).toBe("requested")
        yield* settleOne(store, job, { _tag: "cancelled" })
        expect((yield* settleOne(store, job, { _tag: "completed" })).applied).toBe(false)
        expect((yield* getJob(store, job.id)).state).toBe("cancelled")
      }))

    for (const outcome of [
      { _tag: "retry", delayMs: 0, error: boom },
      { _tag: "snooze", delayMs: 0 },
      { _tag: "release" }
    ] as const) {
      test(`a pending cancel wins over a ${outcome._tag}: the job ends cancelled`, ({ store }) =>
        Effect.gen(function* () {
          const job = yield* started(store)
          yield* store.cancel(job.id)
          const result = yield* settleOne(store, job, outcome)
          expect(result).toEqual({ id: job.id, applied: true, state: "cancelled" })
          const done = yield* getJob(store, job.id)
          expect(done.state).toBe("cancelled")
          expect(done.finalizedAt).not.toBeNull()
          expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
        }))
    }
  })
