import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { enqueueOne, freshKind, getJob, request, type StoreTest, settleOne, started } from "../helpers.js"

export const cancelSuite = (test: StoreTest) =>
  describe("cancel", () => {
    test("a queued job becomes cancelled, is never claimed, and frees its dedupe key", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        const available = yield* enqueueOne(store, { kind, dedupeKey: "d" })
        const scheduled = yield* enqueueOne(store, { kind, delayMs: 60_000 })
        expect(yield* store.cancel(available.id)).toEqual({ _tag: "cancelled" })
        expect(yield* store.cancel(scheduled.id)).toEqual({ _tag: "cancelled" })
        for (const id of [available.id, scheduled.id]) {
          const job = yield* getJob(store, id)
          expect(job.state).toBe("cancelled")
          expect(job.finalizedAt).not.toBeNull()
        }
        expect(yield* store.claim(request({ kinds: [kind] }))).toEqual([])
        const again = yield* enqueueOne(store, { kind, dedupeKey: "d" })
        expect(again.deduped).toBe(false)
      }))

    test("a retryable job waiting for its next attempt is cancelled at once", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        yield* settleOne(store, job, {
          _tag: "retry",
          delayMs: 10_000,
          error: { kind: "failure", message: "x" }
        })
        expect(yield* store.cancel(job.id)).toEqual({ _tag: "cancelled" })
        yield* advance(11_000)
        expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
      }))

    test("a running job gets a cancel request that its runner sees", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "r1" })
        expect(yield* store.cancel(job.id)).toEqual({ _tag: "requested", owner: "r1" })
        expect(yield* getJob(store, job.id)).toMatchObject({ state: "running", cancelRequested: true })
        expect(yield* store.cancel(job.id)).toEqual({ _tag: "requested", owner: "r1" })
        const [status] = yield* store.heartbeat("r1", [job], 30_000)
        expect(status).toEqual({ id: job.id, held: true, cancelRequested: true })
        expect(yield* settleOne(store, job, { _tag: "cancelled" })).toMatchObject({
          applied: true,
          state: "cancelled"
        })
      }))

    test("a finished job reports its final state", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        yield* settleOne(store, job, { _tag: "completed" })
        expect(yield* store.cancel(job.id)).toEqual({ _tag: "final", state: "completed" })
        expect((yield* getJob(store, job.id)).state).toBe("completed")
        const queued = yield* enqueueOne(store)
        yield* store.cancel(queued.id)
        expect(yield* store.cancel(queued.id)).toEqual({ _tag: "final", state: "cancelled" })
      }))

    test("an unknown id is not found", ({ store }) =>
      Effect.gen(function* () {
        expect(yield* store.cancel("987654321")).toEqual({ _tag: "not-found" })
      }))
  })

export const retrySuite = (test: StoreTest) =>
  describe("retry", () => {
    test("a discarded job with no attempts left is available again and gets another attempt", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 1 })
        yield* settleOne(store, job, { _tag: "discard", error: { kind: "failure", message: "x" } })
        expect(yield* store.retry(job.id)).toEqual({ _tag: "retried" })
        const retried = yield* getJob(store, job.id)
        expect(retried).toMatchObject({ state: "available", finalizedAt: null, attempt: 1 })
        expect(retried.maxAttempts).toBeGreaterThanOrEqual(2)
        expect(retried.errors).toHaveLength(1)
        const [again] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(again).toMatchObject({ id: job.id, attempt: 2 })
        expect(again!.attempt).toBeLessThanOrEqual(again!.maxAttempts)
      }))

    test("a cancelled job is available again, without its old cancel request", ({ store }) =>
      Effect.gen(function* () {
        const queued = yield* enqueueOne(store, { kind: "retry_me" })
        yield* store.cancel(queued.id)
        const running = yield* started(store)
        yield* store.cancel(running.id)
        yield* settleOne(store, running, { _tag: "cancelled" })
        for (const id of [queued.id, running.id]) {
          expect(yield* store.retry(id)).toEqual({ _tag: "retried" })
          expect(yield* getJob(store, id)).toMatchObject({ state: "available", cancelRequested: false })
        }
        const claimed = yield* store.claim(request({ kinds: ["retry_me", running.kind] }))
        expect(claimed.map((j) => j.id).sort()).toEqual([queued.id, running.id].sort())
      }))

    test("a completed job can be run again", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        yield* settleOne(store, job, { _tag: "completed" })
        expect(yield* store.retry(job.id)).toEqual({ _tag: "retried" })
        expect((yield* getJob(store, job.id)).state).toBe("available")
      }))

    test("a retried job takes its dedupe key back", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { dedupeKey: "d" })
        yield* settleOne(store, job, { _tag: "discard", error: { kind: "failure", message: "x" } })
        yield* store.retry(job.id)
        expect(yield* enqueueOne(store, { kind: job.kind, dedupeKey: "d" })).toEqual({
          id: job.id,
          deduped: true
        })
      }))

    test("a finished job whose dedupe key another live job now holds is not retried", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { dedupeKey: "d" })
        yield* settleOne(store, job, { _tag: "discard", error: { kind: "failure", message: "x" } })
        const successor = yield* enqueueOne(store, { kind: job.kind, dedupeKey: "d" })
        expect(successor.deduped).toBe(false)
        expect(yield* store.retry(job.id)).toEqual({ _tag: "not-retryable", state: "discarded" })
        expect((yield* getJob(store, job.id)).state).toBe("discarded")
      }))

    test("an active job is not retryable; an unknown id is not found", ({ store }) =>
      Effect.gen(function* () {
        const available = yield* enqueueOne(store)
        const scheduled = yield* enqueueOne(store, { delayMs: 60_000 })
        const running = yield* started(store)
        expect(yield* store.retry(available.id)).toEqual({ _tag: "not-retryable", state: "available" })
        expect(yield* store.retry(scheduled.id)).toEqual({ _tag: "not-retryable", state: "scheduled" })
        expect(yield* store.retry(running.id)).toEqual({ _tag: "not-retryable", state: "running" })
        expect(yield* store.retry("987654321")).toEqual({ _tag: "not-found" })
      }))
  })
