import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../../src/JobStore.js"
import { enqueueOne, freshKind, getJob, input, type StoreTest, settleOne, started } from "../helpers.js"

type Ctx = Parameters<Parameters<StoreTest>[1]>[0]

/** Put a job with dedupe key "key" into `state`; returns its id and kind. */
const jobIn = (ctx: Ctx, state: JobStore.JobState) =>
  Effect.gen(function* () {
    const { store } = ctx
    const kind = freshKind()
    if (state === "scheduled")
      return { kind, id: (yield* enqueueOne(store, { kind, dedupeKey: "key", delayMs: 60_000 })).id }
    if (state === "available") return { kind, id: (yield* enqueueOne(store, { kind, dedupeKey: "key" })).id }
    const job = yield* started(store, { kind, dedupeKey: "key" })
    const outcome: JobStore.Outcome | undefined =
      state === "retryable"
        ? { _tag: "retry", delayMs: 60_000, error: { kind: "failure", message: "boom" } }
        : state === "completed"
          ? { _tag: "completed" }
          : state === "discarded"
            ? { _tag: "discard", error: { kind: "failure", message: "bad input" } }
            : state === "cancelled"
              ? { _tag: "cancelled" }
              : undefined
    if (outcome !== undefined) expect((yield* settleOne(store, job, outcome)).applied).toBe(true)
    expect((yield* getJob(store, job.id)).state).toBe(state)
    return { kind, id: job.id }
  })

export const dedupeSuite = (test: StoreTest) =>
  describe("dedupe", () => {
    for (const state of ["scheduled", "available", "running", "retryable"] as const) {
      test(`a new job folds into a ${state} job with the same kind and key`, (ctx) =>
        Effect.gen(function* () {
          const live = yield* jobIn(ctx, state)
          const again = yield* enqueueOne(ctx.store, {
            kind: live.kind,
            dedupeKey: "key",
            payload: { other: true }
          })
          expect(again).toEqual({ id: live.id, deduped: true })
          const job = yield* getJob(ctx.store, live.id)
          expect(job.state).toBe(state)
          expect(job.payload).toEqual({ n: 1 })
        }))
    }

    for (const state of ["completed", "discarded", "cancelled"] as const) {
      test(`the key is free again once the job is ${state}`, (ctx) =>
        Effect.gen(function* () {
          const done = yield* jobIn(ctx, state)
          const again = yield* enqueueOne(ctx.store, { kind: done.kind, dedupeKey: "key" })
          expect(again.deduped).toBe(false)
          expect(again.id).not.toBe(done.id)
          expect((yield* enqueueOne(ctx.store, { kind: done.kind, dedupeKey: "key" })).id).toBe(again.id)
        }))
    }

    test("the same key under another kind, and jobs without a key, are not folded", ({ store }) =>
      Effect.gen(function* () {
        const a = yield* enqueueOne(store, { kind: "a", dedupeKey: "shared" })
        const b = yield* enqueueOne(store, { kind: "b", dedupeKey: "shared" })
        const c1 = yield* enqueueOne(store, { kind: "a" })
        const c2 = yield* enqueueOne(store, { kind: "a" })
        expect([a.deduped, b.deduped, c1.deduped, c2.deduped]).toEqual([false, false, false, false])
        expect(new Set([a.id, b.id, c1.id, c2.id]).size).toBe(4)
      }))

    test("the key is per kind, not per queue", ({ store }) =>
      Effect.gen(function* () {
        const a = yield* enqueueOne(store, { queue: "one", dedupeKey: "k" })
        const b = yield* enqueueOne(store, { queue: "two", dedupeKey: "k" })
        expect(b).toEqual({ id: a.id, deduped: true })
      }))

    test("jobs with the same key inside one bulk enqueue fold into the first", ({ store }) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue([
          input({ dedupeKey: "x", payload: { i: 0 } }),
          input({ payload: { i: 1 } }),
          input({ dedupeKey: "x", payload: { i: 2 } }),
          input({ dedupeKey: "y", payload: { i: 3 } }),
          input({ dedupeKey: "y", payload: { i: 4 } })
        ])
        expect(results.map((r) => r.deduped)).toEqual([false, false, true, false, true])
        expect(results[2]!.id).toBe(results[0]!.id)
        expect(results[4]!.id).toBe(results[3]!.id)
        expect((yield* getJob(store, results[0]!.id)).payload).toEqual({ i: 0 })
        const page = yield* store.list({})
        expect(page.jobs).toHaveLength(3)
      }))

    test("a bulk enqueue folds into a job already stored", ({ store }) =>
      Effect.gen(function* () {
        const first = yield* enqueueOne(store, { dedupeKey: "x" })
        const results = yield* store.enqueue([input({ dedupeKey: "x" }), input({ dedupeKey: "z" })])
        expect(results[0]).toEqual({ id: first.id, deduped: true })
        expect(results[1]!.deduped).toBe(false)
      }))

    test("concurrent enqueues with the same key create exactly one job", ({ store }) =>
      Effect.gen(function* () {
        const results = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => enqueueOne(store, { dedupeKey: "race", payload: { i } })),
          { concurrency: "unbounded" }
        )
        expect(new Set(results.map((r) => r.id)).size).toBe(1)
        expect(results.filter((r) => !r.deduped)).toHaveLength(1)
        expect((yield* store.list({})).jobs).toHaveLength(1)
      }))

    test("concurrent bulk enqueues sharing keys create one job per key", ({ store }) =>
      Effect.gen(function* () {
        const batch = (n: number) =>
          store.enqueue(["a", "b", "c"].map((key) => input({ dedupeKey: key, payload: { n } })))
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, n) => batch(n)),
          { concurrency: "unbounded" }
        )
        for (const column of [0, 1, 2]) {
          const ids = new Set(results.map((r) => r[column]!.id))
          expect(ids.size).toBe(1)
        }
        expect((yield* store.list({})).jobs).toHaveLength(3)
      }))
  })
