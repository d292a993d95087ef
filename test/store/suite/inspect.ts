import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as JobStore from "../../../src/JobStore.js"
import { enqueueOne, input, request, type StoreTest, settleOne, started } from "../helpers.js"

const hour = 3_600_000
const retention = { completedMs: 1 * hour, discardedMs: 2 * hour, cancelledMs: 3 * hour, limit: 1000 }

/** Finish `n` jobs in each final state; returns their ids per state. */
const finished = (store: JobStore.Service, n: number) =>
  Effect.gen(function* () {
    const ids = {
      completed: [] as Array<string>,
      discarded: [] as Array<string>,
      cancelled: [] as Array<string>
    }
    for (let i = 0; i < n; i++) {
      const c = yield* started(store)
      yield* settleOne(store, c, { _tag: "completed" })
      ids.completed.push(c.id)
      const d = yield* started(store)
      yield* settleOne(store, d, { _tag: "discard", error: { kind: "failure", message: "x" } })
      ids.discarded.push(d.id)
      const x = yield* enqueueOne(store)
      yield* store.cancel(x.id)
      ids.cancelled.push(x.id)
    }
    return ids
  })

const exists = (store: JobStore.Service, ids: ReadonlyArray<string>) =>
  Effect.forEach(ids, (id) => Effect.map(store.get(id), (job) => job !== undefined))

export const pruneSuite = (test: StoreTest) =>
  describe("prune", () => {
    test("deletes final jobs older than their state's retention, and nothing else", ({ store, advance }) =>
      Effect.gen(function* () {
        const ids = yield* finished(store, 2)
        const scheduled = yield* enqueueOne(store, { delayMs: 100 * hour })
        const running = yield* started(store, {}, { leaseMs: 100 * hour })
        const retryable = yield* started(store)
        yield* settleOne(store, retryable, {
          _tag: "retry",
          delayMs: 100 * hour,
          error: { kind: "failure", message: "x" }
        })
        const available = yield* enqueueOne(store, { kind: "never_claimed" })

        yield* advance(hour - 60_000)
        expect(yield* store.prune(retention)).toBe(0)
        yield* advance(2 * 60_000)
        expect(yield* store.prune(retention)).toBe(2)
        expect(yield* exists(store, ids.completed)).toEqual([false, false])
        expect(yield* exists(store, [...ids.discarded, ...ids.cancelled])).toEqual([true, true, true, true])
        yield* advance(hour)
        expect(yield* store.prune(retention)).toBe(2)
        expect(yield* exists(store, ids.discarded)).toEqual([false, false])
        yield* advance(hour)
        expect(yield* store.prune(retention)).toBe(2)
        expect(yield* exists(store, ids.cancelled)).toEqual([false, false])
        yield* advance(10 * hour)
        expect(yield* store.prune(retention)).toBe(0)
        const active = [scheduled.id, running.id, retryable.id, available.id]
        expect(yield* exists(store, active)).toEqual([true, true, true, true])
      }))

    test.editable(
      "a final job without a finish time is pruned on its latest attempt, else its creation",
      ({ store, advance, edit }) =>
        Effect.gen(function* () {
          const completed = yield* started(store)
          yield* settleOne(store, completed, { _tag: "completed" })
          const cancelled = yield* enqueueOne(store)
          yield* store.cancel(cancelled.id)
          yield* edit(completed.id, { finalizedAt: null })
          yield* edit(cancelled.id, { finalizedAt: null })
          expect((yield* store.get(completed.id))?.finalizedAt).toBeNull()
          yield* advance(hour - 60_000)
          expect(yield* store.prune(retention)).toBe(0)
          yield* advance(2 * 60_000)
          expect(yield* store.prune(retention)).toBe(1)
          expect(yield* exists(store, [completed.id, cancelled.id])).toEqual([false, true])
          yield* advance(2 * hour)
          expect(yield* store.prune(retention)).toBe(1)
          expect(yield* exists(store, [cancelled.id])).toEqual([false])
        })
    )

    test("one call deletes at most limit jobs; repeated calls finish the work", ({ store, advance }) =>
      Effect.gen(function* () {
        const ids = yield* finished(store, 3)
        yield* advance(4 * hour)
        const counts: Array<number> = []
        for (let i = 0; i < 6; i++) counts.push(yield* store.prune({ ...retention, limit: 4 }))
        expect(counts).toEqual([4, 4, 1, 0, 0, 0])
        const all = [...ids.completed, ...ids.discarded, ...ids.cancelled]
        expect((yield* exists(store, all)).filter(Boolean)).toEqual([])
      }))

    test("a retried job is no longer final and is not pruned", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store)
        yield* settleOne(store, job, { _tag: "discard", error: { kind: "failure", message: "x" } })
        yield* advance(3 * hour)
        yield* store.retry(job.id)
        expect(yield* store.prune(retention)).toBe(0)
        expect((yield* store.get(job.id))?.state).toBe("available")
      }))
  })

const sortCounts = (counts: ReadonlyArray<JobStore.QueueCount>) =>
  [...counts].sort((a, b) => (a.queue + a.state).localeCompare(b.queue + b.state))

export const countsSuite = (test: StoreTest) =>
  describe("counts", () => {
    test("an empty store has no counts", ({ store }) =>
      Effect.gen(function* () {
        expect(yield* store.counts).toEqual([])
      }))

    test("counts jobs per queue and state, leaving out zeros", ({ store }) =>
      Effect.gen(function* () {
        yield* store.enqueue([input({ queue: "a" }), input({ queue: "a" }), input({ queue: "b" })])
        yield* enqueueOne(store, { queue: "b", delayMs: 60_000 })
        const running = yield* started(store, { queue: "a" })
        const done = yield* started(store, { queue: "b" })
        yield* settleOne(store, done, { _tag: "completed" })
        expect(running.queue).toBe("a")
        expect(sortCounts(yield* store.counts)).toEqual(
          sortCounts([
            { queue: "a", state: "available", count: 2 },
            { queue: "a", state: "running", count: 1 },
            { queue: "b", state: "available", count: 1 },
            { queue: "b", state: "scheduled", count: 1 },
            { queue: "b", state: "completed", count: 1 }
          ])
        )
      }))

    test("counts follow jobs through claim, settle, cancel and prune", ({ store, advance }) =>
      Effect.gen(function* () {
        yield* store.enqueue([input(), input(), input()])
        const claimed = yield* store.claim(request({ limit: 2 }))
        yield* settleOne(store, claimed[0]!, { _tag: "completed" })
        yield* store.cancel(claimed[1]!.id)
        yield* settleOne(store, claimed[1]!, { _tag: "cancelled" })
        expect(sortCounts(yield* store.counts)).toEqual(
          sortCounts([
            { queue: "q", state: "available", count: 1 },
            { queue: "q", state: "completed", count: 1 },
            { queue: "q", state: "cancelled", count: 1 }
          ])
        )
        yield* advance(4 * hour)
        yield* store.prune(retention)
        expect(yield* store.counts).toEqual([{ queue: "q", state: "available", count: 1 }])
      }))
  })

export const listSuite = (test: StoreTest) =>
  describe("list", () => {
    test("a page holds at most maxListLimit jobs on every engine; its nextCursor leads on to the rest", ({
      store
    }) =>
      Effect.gen(function* () {
        const total = JobStore.maxListLimit + 2
        yield* store.enqueue(Array.from({ length: total }, (_, i) => input({ kind: "many", payload: { i } })))
        const first = yield* store.list({ kinds: ["many"], limit: 10 * JobStore.maxListLimit })
        expect(first.jobs).toHaveLength(JobStore.maxListLimit)
        expect(first.nextCursor).not.toBeNull()
        const rest = yield* store.list({
          kinds: ["many"],
          limit: 10 * JobStore.maxListLimit,
          cursor: first.nextCursor
        })
        expect(rest.jobs).toHaveLength(2)
        expect(rest.nextCursor).toBeNull()
        // Fractions round down, anything below 1 asks for 1, and no number at all for the default.
        expect((yield* store.list({ kinds: ["many"], limit: 2.9 })).jobs).toHaveLength(2)
        expect((yield* store.list({ kinds: ["many"], limit: 0 })).jobs).toHaveLength(1)
        expect((yield* store.list({ kinds: ["many"], limit: Number.NaN })).jobs).toHaveLength(
          JobStore.defaultListLimit
        )
      }))

    test("pages newest first with a cursor, without duplicates or gaps", ({ store }) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue(Array.from({ length: 25 }, (_, i) => input({ payload: { i } })))
        const newestFirst = results.map((r) => r.id).reverse()
        const seen: Array<string> = []
        const pageSizes: Array<number> = []
        let cursor: string | undefined
        for (let page = 0; page < 10; page++) {
          const result = yield* store.list({ limit: 10, cursor })
          pageSizes.push(result.jobs.length)
          seen.push(...result.jobs.map((j) => j.id))
          if (result.nextCursor === null) break
          cursor = result.nextCursor
        }
        expect(pageSizes).toEqual([10, 10, 5])
        expect(seen).toEqual(newestFirst)
      }))

    test("a page's nextCursor goes back as the cursor as it is; a null cursor starts from the newest", ({
      store
    }) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue(Array.from({ length: 5 }, () => input()))
        const seen: Array<string> = []
        let cursor: string | null = null
        do {
          const page: JobStore.ListPage = yield* store.list({ limit: 2, cursor })
          seen.push(...page.jobs.map((j) => j.id))
          cursor = page.nextCursor
        } while (cursor !== null && seen.length < 10)
        expect(seen).toEqual(results.map((r) => r.id).reverse())
      }))

    test("an exactly full last page has no next cursor", ({ store }) =>
      Effect.gen(function* () {
        yield* store.enqueue(Array.from({ length: 4 }, () => input()))
        const first = yield* store.list({ limit: 2 })
        expect(first.nextCursor).not.toBeNull()
        const second = yield* store.list({ limit: 2, cursor: first.nextCursor! })
        expect(second.jobs).toHaveLength(2)
        expect(second.nextCursor).toBeNull()
      }))

    test("filters by state, kind and queue, combined", ({ store }) =>
      Effect.gen(function* () {
        const [a1, , b1, a2] = yield* store.enqueue([
          input({ kind: "a", queue: "x" }),
          input({ kind: "b", queue: "x" }),
          input({ kind: "b", queue: "y" }),
          input({ kind: "a", queue: "y" })
        ])
        const [running] = yield* store.claim(request({ kinds: ["a"], queues: ["x"] }))
        expect(running?.id).toBe(a1!.id)
        const ids = (filter: JobStore.ListFilter) =>
          Effect.map(store.list(filter), (page) => page.jobs.map((j) => j.id))
        expect(yield* ids({ states: ["running"] })).toEqual([a1!.id])
        expect(yield* ids({ kinds: ["a"] })).toEqual([a2!.id, a1!.id])
        expect(yield* ids({ queues: ["y"] })).toEqual([a2!.id, b1!.id])
        expect(yield* ids({ kinds: ["a"], queues: ["y"], states: ["available"] })).toEqual([a2!.id])
        expect(yield* ids({ states: ["available", "running"], kinds: ["a"] })).toEqual([a2!.id, a1!.id])
        expect(yield* ids({ states: ["completed"] })).toEqual([])
      }))

    test("filtered pages fill up across non-matching jobs", ({ store }) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue(
          Array.from({ length: 30 }, (_, i) => input({ kind: i % 3 === 0 ? "rare" : "common" }))
        )
        const rare = results
          .filter((_, i) => i % 3 === 0)
          .map((r) => r.id)
          .reverse()
        const first = yield* store.list({ kinds: ["rare"], limit: 4 })
        const second = yield* store.list({ kinds: ["rare"], limit: 4, cursor: first.nextCursor! })
        const third = yield* store.list({ kinds: ["rare"], limit: 4, cursor: second.nextCursor! })
        expect([...first.jobs, ...second.jobs, ...third.jobs].map((j) => j.id)).toEqual(rare)
        expect(third.nextCursor).toBeNull()
      }))

    test("listed jobs carry their full record", ({ store }) =>
      Effect.gen(function* () {
        const { id } = yield* enqueueOne(store, { payload: { deep: { x: [1] } }, dedupeKey: "d" })
        const { jobs } = yield* store.list({})
        expect(jobs).toEqual([yield* store.get(id)])
      }))
  })

export const activitySuite = (test: StoreTest) =>
  describe("activity", () => {
    test("counts what finished, was retried and started in a span, once, with start latencies", ({
      store,
      advance
    }) =>
      Effect.gen(function* () {
        const fail = { kind: "failure", message: "boom" }
        yield* store.enqueue([input(), input(), input(), input()])
        yield* advance(1000)
        const since = yield* store.now
        yield* advance(1000)
        const [done, retried, discarded, running] = yield* store.claim(request({ limit: 4 }))
        yield* settleOne(store, done!, { _tag: "completed" })
        yield* settleOne(store, retried!, { _tag: "retry", delayMs: 60_000, error: fail })
        yield* settleOne(store, discarded!, { _tag: "discard", error: fail })
        const waiting = yield* enqueueOne(store)
        yield* store.cancel(waiting.id)
        yield* advance(1)

        const first = yield* store.activity(since)
        expect(first).toMatchObject({ completed: 1, discarded: 1, cancelled: 1, retried: 1 })
        // Depth: the waiting and running jobs only, per queue and state.
        expect(sortCounts([...first.depth])).toEqual(
          sortCounts([
            { queue: "q", state: "retryable", count: 1 },
            { queue: "q", state: "running", count: 1 }
          ])
        )
        expect(first.now).toBeGreaterThan(since)
        // The completed, discarded and running jobs started in the span, 2 s after they were due.
        expect(first.latencies).toHaveLength(3)
        for (const ms of first.latencies) {
          expect(ms).toBeGreaterThanOrEqual(1999)
          expect(ms).toBeLessThan(60_000)
        }

        // The next span counts nothing of the first one again.
        yield* advance(61_000)
        const [again] = yield* store.claim(request({ limit: 4 }))
        expect(again!.id).toBe(retried!.id)
        yield* settleOne(store, running!, { _tag: "completed" })
        yield* advance(1)
        const second = yield* store.activity(first.now)
        expect(second).toMatchObject({ completed: 1, discarded: 0, cancelled: 0, retried: 0 })
        // the retried job started again as soon as it was due; the one that completed started in the first span
        expect(second.latencies).toHaveLength(1)

        yield* advance(1)
        yield* settleOne(store, again!, { _tag: "retry", delayMs: 1000, error: fail })
        yield* advance(1)
        const third = yield* store.activity(second.now)
        expect(third).toMatchObject({ completed: 0, retried: 1 })
        expect(third.latencies).toEqual([])
      }))
  })
