import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as JobStore from "../../../src/JobStore.js"
import {
  between,
  enqueueOne,
  getJob,
  input,
  type StoreTest,
  settleOne,
  sortIds,
  started,
  timed
} from "../helpers.js"

const boom = { kind: "failure", message: "Error: boom\n    at handler (app.ts:1:1)" }

/** Every job a filter lists, following cursors (a bounded filter's pages may be short). */
const listAll = (store: JobStore.Service, filter: JobStore.ListFilter) =>
  Effect.gen(function* () {
    const ids: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page: JobStore.ListPage = yield* store.list({ ...filter, cursor })
      ids.push(...page.jobs.map((j) => j.id))
      cursor = page.nextCursor
      pages++
    } while (cursor !== null)
    return { ids, pages }
  })

const skipped = (result: JobStore.BulkResult) => result.skipped.map((s) => [s.id, s.reason, s.state])

export const attemptSuite = (test: StoreTest) =>
  describe("attempt history", () => {
    test("a failed attempt records when it started and the runner that held it", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "node-7" })
        const { before, after } = yield* timed(
          store,
          settleOne(store, job, { _tag: "retry", delayMs: 0, error: boom })
        )
        const [error] = (yield* getJob(store, job.id)).errors
        expect(error).toMatchObject({ attempt: 1, kind: "failure", message: boom.message, node: "node-7" })
        expect(error!.startedAt).toBe(job.attemptedAt)
        between(error!.at, before, after)
      }))

    test("a completed job keeps the runner of its last attempt; other states name none", ({ store }) =>
      Effect.gen(function* () {
        const done = yield* started(store, {}, { owner: "node-1" })
        yield* settleOne(store, done, { _tag: "completed" })
        expect(yield* getJob(store, done.id)).toMatchObject({
          state: "completed",
          leaseOwner: "node-1",
          leaseExpiresAt: null,
          attemptedAt: done.attemptedAt
        })
        const failed = yield* started(store, {}, { owner: "node-2" })
        yield* settleOne(store, failed, { _tag: "discard", error: boom })
        expect(yield* getJob(store, failed.id)).toMatchObject({ state: "discarded", leaseOwner: null })
        expect((yield* store.retry(done.id))._tag).toBe("retried")
        expect(yield* getJob(store, done.id)).toMatchObject({ state: "available", leaseOwner: null })
      }))

    test("a rescued attempt records its start and runner too", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "node-9", leaseMs: 1_000 })
        yield* advance(2_000)
        yield* store.rescue(10)
        const [error] = (yield* getJob(store, job.id)).errors
        expect(error).toMatchObject({ kind: "rescued", node: "node-9", startedAt: job.attemptedAt })
      }))
  })

export const searchSuite = (test: StoreTest) =>
  describe("list filters", () => {
    test("payload path equality: same JSON type and value, nested keys, no match on other types", ({
      store
    }) =>
      Effect.gen(function* () {
        const jobs = yield* store.enqueue([
          input({ payload: { tenantId: "t-42", order: { id: 7 } } }),
          input({ payload: { tenantId: "t-41", order: { id: 7 } } }),
          input({ payload: { tenantId: 42, flag: true, none: null } }),
          input({ payload: { tenantId: "t-42", flag: false } }),
          input({ payload: "t-42" }),
          input({ payload: ["t-42"] })
        ])
        const ids = jobs.map((j) => j.id)
        const search = (path: ReadonlyArray<string>, value: JobStore.JsonScalar) =>
          Effect.map(listAll(store, { payload: { path, value } }), (r) => r.ids)
        expect(yield* search(["tenantId"], "t-42")).toEqual([ids[3], ids[0]])
        expect(yield* search(["tenantId"], 42)).toEqual([ids[2]])
        expect(yield* search(["tenantId"], "42")).toEqual([])
        expect(yield* search(["order", "id"], 7)).toEqual([ids[1], ids[0]])
        expect(yield* search(["flag"], true)).toEqual([ids[2]])
        expect(yield* search(["flag"], false)).toEqual([ids[3]])
        expect(yield* search(["none"], null)).toEqual([ids[2]])
        expect(yield* search(["missing"], null)).toEqual([])
        // A path no engine can search matches nothing.
        expect(yield* search(["a'b"], "x")).toEqual([])
        expect(yield* search([], "x")).toEqual([])
      }))

    test("dedupe key, id range and creation time; combined with state and kind", ({ store, advance }) =>
      Effect.gen(function* () {
        const a = yield* enqueueOne(store, { dedupeKey: "order-1" })
        const b = yield* enqueueOne(store, { dedupeKey: "order-2", kind: "other" })
        const t0 = yield* store.now
        yield* advance(60_000)
        const c = yield* enqueueOne(store, { dedupeKey: "order-1", kind: "other" })
        const d = yield* enqueueOne(store)
        yield* store.cancel(a.id)
        const ids = (filter: JobStore.ListFilter) => Effect.map(listAll(store, filter), (r) => r.ids)
        expect(yield* ids({ dedupeKey: "order-1" })).toEqual(sortIds([c.id, a.id]).reverse())
        expect(yield* ids({ dedupeKey: "order-1", states: ["cancelled"] })).toEqual([a.id])
        expect(yield* ids({ dedupeKey: "order-1", kinds: ["other"] })).toEqual([c.id])
        // Id ranges by the ids themselves (a sharded store's ids follow enqueue order only per shard).
        const [n1, n2, n3, n4] = sortIds([a.id, b.id, c.id, d.id]).reverse()
        expect(yield* ids({ idFrom: n3!, idTo: n2! })).toEqual([n2, n3])
        expect(yield* ids({ idFrom: n2! })).toEqual([n1, n2])
        expect(yield* ids({ idTo: n4! })).toEqual([n4])
        const newestFirst = (...xs: Array<string>) => sortIds(xs).reverse()
        expect(yield* ids({ createdFrom: t0 + 30_000 })).toEqual(newestFirst(d.id, c.id))
        expect(yield* ids({ createdTo: t0 + 30_000 })).toEqual(newestFirst(b.id, a.id))
        expect(yield* ids({ createdFrom: t0 + 30_000, kinds: ["k"] })).toEqual([d.id])
        expect(yield* ids({ idFrom: n2!, idTo: n3! })).toEqual([])
        expect(yield* ids({ idFrom: "0" })).toEqual([])
      }))

    test("a bounded filter reads one window of ids per page and leads on with its cursor", ({ store }) =>
      Effect.gen(function* () {
        const n = JobStore.listScanWindow + 5
        const batch = Array.from({ length: n }, (_, i) =>
          input({ payload: { tenantId: i === 0 || i === n - 1 ? "needle" : "hay" } })
        )
        const results = yield* store.enqueue(batch)
        const first = results[0]!.id
        const last = results[n - 1]!.id
        const page = yield* store.list({ payload: { path: ["tenantId"], value: "needle" }, limit: 10 })
        // The newest window holds only the newest needle; the cursor leads to the older one.
        expect(page.jobs.map((j) => j.id)).toEqual([last])
        expect(page.nextCursor).not.toBeNull()
        const next = yield* store.list({
          payload: { path: ["tenantId"], value: "needle" },
          limit: 10,
          cursor: page.nextCursor
        })
        expect(next.jobs.map((j) => j.id)).toEqual([first])
        expect(next.nextCursor).toBeNull()
        // A full page ends at its last job, as an unbounded one does.
        const hay = yield* store.list({ payload: { path: ["tenantId"], value: "hay" }, limit: 3 })
        expect(hay.jobs).toHaveLength(3)
        expect(hay.nextCursor).toBe(hay.jobs[2]!.id)
      }))
  })

export const bulkSuite = (test: StoreTest) =>
  describe("bulk operations", () => {
    test("retryMany: final jobs become available; others are skipped with why; nothing else changes", ({
      store
    }) =>
      Effect.gen(function* () {
        const discarded: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const job = yield* started(store)
          yield* settleOne(store, job, { _tag: "discard", error: boom })
          discarded.push(job.id)
        }
        const waiting = yield* enqueueOne(store)
        const result = yield* store.retryMany([...discarded, waiting.id, discarded[0]!, "999999", "x"])
        expect([...result.changed].sort()).toEqual([...discarded].sort())
        expect(result.requested).toEqual([])
        expect(skipped(result)).toEqual([
          [waiting.id, "state", "available"],
          ["999999", "not-found", null],
          ["x", "not-found", null]
        ])
        for (const id of discarded) {
          const job = yield* getJob(store, id)
          expect(job).toMatchObject({ state: "available", finalizedAt: null })
          expect(job.maxAttempts).toBeGreaterThan(job.attempt)
        }
      }))

    test("retryMany: of final jobs sharing a dedupe key only one is retried, and none while a live one holds it", ({
      store
    }) =>
      Effect.gen(function* () {
        const one = yield* enqueueOne(store, { dedupeKey: "k1" })
        yield* store.cancel(one.id)
        const two = yield* enqueueOne(store, { dedupeKey: "k1" })
        yield* store.cancel(two.id)
        const three = yield* enqueueOne(store, { dedupeKey: "k2" })
        yield* store.cancel(three.id)
        yield* enqueueOne(store, { dedupeKey: "k2" })
        const result = yield* store.retryMany([one.id, two.id, three.id])
        expect(result.changed).toEqual([two.id])
        expect(skipped(result)).toEqual([
          [one.id, "dedupe", "cancelled"],
          [three.id, "dedupe", "cancelled"]
        ])
      }))

    test("cancelMany: waiting jobs end cancelled, running ones are asked, final ones skipped", ({ store }) =>
      Effect.gen(function* () {
        const waiting = yield* enqueueOne(store)
        const later = yield* enqueueOne(store, { delayMs: 3_600_000 })
        const running = yield* started(store)
        const done = yield* started(store)
        yield* settleOne(store, done, { _tag: "completed" })
        const result = yield* store.cancelMany([waiting.id, later.id, running.id, done.id])
        expect(result.changed).toEqual([waiting.id, later.id])
        // What the cancelled events carry, so that announcing them reads nothing back.
        expect(result.cancelled).toEqual([
          { id: waiting.id, kind: "k", queue: "q", attempt: 0 },
          { id: later.id, kind: "k", queue: "q", attempt: 0 }
        ])
        expect(result.requested).toEqual([running.id])
        expect(skipped(result)).toEqual([[done.id, "state", "completed"]])
        expect((yield* getJob(store, waiting.id)).state).toBe("cancelled")
        expect(yield* getJob(store, running.id)).toMatchObject({ state: "running", cancelRequested: true })
      }))

    test("deleteMany: every job but running ones; a deleted job frees its dedupe key", ({ store }) =>
      Effect.gen(function* () {
        const keyed = yield* enqueueOne(store, { dedupeKey: "d" })
        const running = yield* started(store)
        const done = yield* started(store)
        yield* settleOne(store, done, { _tag: "completed" })
        const result = yield* store.deleteMany([keyed.id, running.id, done.id, "12345678"])
        expect(result.changed).toEqual([keyed.id, done.id])
        expect(skipped(result)).toEqual([
          [running.id, "state", "running"],
          ["12345678", "not-found", null]
        ])
        expect(yield* store.get(keyed.id)).toBeUndefined()
        expect(yield* store.get(done.id)).toBeUndefined()
        const again = yield* enqueueOne(store, { dedupeKey: "d" })
        expect(again.deduped).toBe(false)
        expect((yield* store.counts).reduce((n, c) => n + c.count, 0)).toBe(2)
      }))

    test("bulk calls past maxBulkIds are split and every id is answered", ({ store }) =>
      Effect.gen(function* () {
        const n = JobStore.maxBulkIds + 7
        const results = yield* store.enqueue(Array.from({ length: n }, () => input()))
        const result = yield* store.cancelMany(results.map((r) => r.id))
        expect(result.changed).toHaveLength(n)
        const cancelled = yield* store.counts
        expect(cancelled).toEqual([{ queue: "q", state: "cancelled", count: n }])
      }))

    test("runNow: a scheduled or retryable job becomes available now", ({ store }) =>
      Effect.gen(function* () {
        const later = yield* enqueueOne(store, { delayMs: 3_600_000 })
        const due = yield* enqueueOne(store)
        const failed = yield* started(store)
        yield* settleOne(store, failed, { _tag: "retry", delayMs: 3_600_000, error: boom })
        const done = yield* started(store)
        yield* settleOne(store, done, { _tag: "completed" })
        const { before, result, after } = yield* timed(store, store.runNow(later.id))
        expect(result).toEqual({ _tag: "moved" })
        const moved = yield* getJob(store, later.id)
        expect(moved.state).toBe("available")
        between(moved.runAt, before, after)
        expect(yield* store.runNow(failed.id)).toEqual({ _tag: "moved" })
        expect(yield* store.runNow(due.id)).toEqual({ _tag: "due" })
        expect(yield* store.runNow(done.id)).toEqual({ _tag: "not-waiting", state: "completed" })
        expect(yield* store.runNow("424242")).toEqual({ _tag: "not-found" })
        expect(yield* store.runNow("nope")).toEqual({ _tag: "not-found" })
      }))
  })
