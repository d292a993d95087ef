import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { between, enqueueOne, getJob, input, request, type StoreTest, sortIds, timed } from "../helpers.js"

export const enqueueSuite = (test: StoreTest) =>
  describe("enqueue and get", () => {
    test("a job reads back with every field it was given and the documented defaults", ({ store }) =>
      Effect.gen(function* () {
        const payload = { to: "a@example.com", tags: ["x", "y"], nested: { n: 1.5, ok: true, none: null } }
        const { result, before, after } = yield* timed(
          store,
          enqueueOne(store, {
            kind: "send_email",
            queue: "mail",
            payload,
            priority: 5,
            maxAttempts: 7,
            dedupeKey: "welcome:a",
            traceId: "0af7651916cd43dd8448eb211c80319c",
            spanId: "b7ad6b7169203331"
          })
        )
        expect(result.deduped).toBe(false)
        const job = yield* getJob(store, result.id)
        expect(job).toMatchObject({
          id: result.id,
          kind: "send_email",
          queue: "mail",
          payload,
          state: "available",
          priority: 5,
          attempt: 0,
          maxAttempts: 7,
          attemptedAt: null,
          finalizedAt: null,
          leaseOwner: null,
          leaseExpiresAt: null,
          fence: 0,
          dedupeKey: "welcome:a",
          cancelRequested: false,
          errors: [],
          traceId: "0af7651916cd43dd8448eb211c80319c",
          spanId: "b7ad6b7169203331"
        })
        between(job.createdAt, before, after)
        between(job.runAt, before, after)
      }))

    test("optional fields read back as null", ({ store }) =>
      Effect.gen(function* () {
        const { id } = yield* enqueueOne(store)
        const job = yield* getJob(store, id)
        expect(job.dedupeKey).toBeNull()
        expect(job.traceId).toBeNull()
        expect(job.spanId).toBeNull()
      }))

    test("get of an unknown id is undefined", ({ store }) =>
      Effect.gen(function* () {
        expect(yield* store.get("987654321")).toBeUndefined()
      }))

    test("delayMs schedules the job that far from now", ({ store }) =>
      Effect.gen(function* () {
        const { result, before, after } = yield* timed(store, enqueueOne(store, { delayMs: 60_000 }))
        const job = yield* getJob(store, result.id)
        expect(job.state).toBe("scheduled")
        between(job.runAt, before + 60_000, after + 60_000)
      }))

    test("an absolute runAt wins over delayMs; a past runAt is available at once", ({ store }) =>
      Effect.gen(function* () {
        const now = yield* store.now
        const future = yield* enqueueOne(store, { runAt: now + 3_600_000, delayMs: 5 })
        const past = yield* enqueueOne(store, { runAt: now - 60_000, delayMs: 3_600_000 })
        const f = yield* getJob(store, future.id)
        const p = yield* getJob(store, past.id)
        expect(f).toMatchObject({ state: "scheduled", runAt: now + 3_600_000 })
        expect(p).toMatchObject({ state: "available", runAt: now - 60_000 })
      }))

    test("a bulk enqueue inserts every job, results and ids in input order", ({ store }) =>
      Effect.gen(function* () {
        const inputs = Array.from({ length: 25 }, (_, i) => input({ payload: { i }, priority: i % 3 }))
        const results = yield* store.enqueue(inputs)
        expect(results).toHaveLength(25)
        expect(results.every((r) => !r.deduped)).toBe(true)
        const ids = results.map((r) => r.id)
        expect(new Set(ids).size).toBe(25)
        expect(sortIds(ids)).toEqual(ids)
        for (const [i, id] of ids.entries()) {
          const job = yield* getJob(store, id)
          expect(job.payload).toEqual({ i })
          expect(job.priority).toBe(i % 3)
        }
      }))

    test("a concurrent reader sees a bulk enqueue whole or not at all", ({ store }) =>
      Effect.gen(function* () {
        const size = 400
        const observed: Array<number> = []
        const watch = Effect.gen(function* () {
          for (let i = 0; i < 40; i++) {
            const counts = yield* store.counts
            observed.push(counts.reduce((n, c) => n + c.count, 0))
            yield* Effect.yieldNow()
          }
        })
        const write = Effect.zipRight(
          Effect.yieldNow(),
          store.enqueue(Array.from({ length: size }, (_, i) => input({ payload: { i } })))
        )
        yield* Effect.all([watch, write], { concurrency: "unbounded" })
        expect(observed.filter((n) => n !== 0 && n !== size)).toEqual([])
        expect((yield* store.list({ limit: 1000 })).jobs).toHaveLength(size)
      }))

    test("an empty bulk enqueue does nothing", ({ store }) =>
      Effect.gen(function* () {
        expect(yield* store.enqueue([])).toEqual([])
        expect(yield* store.claim(request())).toEqual([])
      }))

    test("ids keep increasing across calls", ({ store }) =>
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (let i = 0; i < 12; i++) ids.push((yield* enqueueOne(store)).id)
        expect(sortIds(ids)).toEqual(ids)
        expect(new Set(ids).size).toBe(12)
      }))

    test("ping succeeds and the engine names itself", ({ store }) =>
      Effect.gen(function* () {
        yield* store.ping
        expect(store.engine.length).toBeGreaterThan(0)
      }))
  })
