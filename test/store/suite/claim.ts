import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  between,
  drain,
  enqueueOne,
  getJob,
  input,
  request,
  type StoreTest,
  sortIds,
  started,
  timed
} from "../helpers.js"

const claimIds = (jobs: ReadonlyArray<{ readonly id: string }>) => jobs.map((j) => j.id)

export const claimSuite = (test: StoreTest) =>
  describe("claim", () => {
    test("takes jobs by priority, then run-at, then id", ({ store }) =>
      Effect.gen(function* () {
        const now = yield* store.now
        const [low, late, early1, early2, urgent] = yield* store.enqueue([
          input({ priority: 5, runAt: now - 5_000 }),
          input({ priority: 0, runAt: now - 1_000 }),
          input({ priority: 0, runAt: now - 3_000 }),
          input({ priority: 0, runAt: now - 3_000 }),
          input({ priority: -1, runAt: now })
        ])
        const order: Array<string> = []
        for (let i = 0; i < 5; i++) order.push(...claimIds(yield* store.claim(request({ limit: 1 }))))
        expect(order).toEqual([urgent!.id, early1!.id, early2!.id, late!.id, low!.id])
      }))

    test("a batch claim takes the best jobs and at most limit of them", ({ store }) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue(
          Array.from({ length: 6 }, (_, i) => input({ priority: 6 - i, payload: { i } }))
        )
        const ids = results.map((r) => r.id)
        const first = yield* store.claim(request({ limit: 2 }))
        expect(sortIds(claimIds(first))).toEqual(sortIds([ids[5]!, ids[4]!]))
        const rest = yield* store.claim(request({ limit: 10 }))
        expect(rest).toHaveLength(4)
        expect(yield* store.claim(request())).toEqual([])
      }))

    test("a claimed job is running under a lease with attempt and fence counted", ({ store }) =>
      Effect.gen(function* () {
        const { id } = yield* enqueueOne(store, { payload: { a: [1, 2] } })
        const { result, before, after } = yield* timed(
          store,
          store.claim(request({ owner: "runner-x", leaseMs: 45_000 }))
        )
        expect(result).toHaveLength(1)
        const claimed = result[0]!
        expect(claimed).toMatchObject({
          id,
          state: "running",
          attempt: 1,
          leaseOwner: "runner-x",
          payload: { a: [1, 2] }
        })
        expect(claimed.fence).toBeGreaterThan(0)
        between(claimed.attemptedAt, before, after)
        between(claimed.leaseExpiresAt, before + 45_000, after + 45_000)
        expect(yield* getJob(store, id)).toEqual(claimed)
      }))

    test("every claim of the same job gets a new, higher fence", ({ store }) =>
      Effect.gen(function* () {
        const first = yield* started(store)
        yield* store.settle([{ id: first.id, fence: first.fence, outcome: { _tag: "release" } }])
        const [second] = yield* store.claim(request({ kinds: [first.kind] }))
        expect(second?.id).toBe(first.id)
        expect(second!.fence).toBeGreaterThan(first.fence)
      }))

    test("a limit of zero claims nothing", ({ store }) =>
      Effect.gen(function* () {
        yield* enqueueOne(store)
        expect(yield* store.claim(request({ limit: 0 }))).toEqual([])
      }))

    test("only the requested queues are claimed", ({ store }) =>
      Effect.gen(function* () {
        const a = yield* enqueueOne(store, { queue: "a" })
        const b = yield* enqueueOne(store, { queue: "b" })
        yield* enqueueOne(store, { queue: "c" })
        const jobs = yield* store.claim(request({ queues: ["a", "b"] }))
        expect(sortIds(claimIds(jobs))).toEqual(sortIds([a.id, b.id]))
      }))

    test("only the kinds the runner handles are claimed", ({ store }) =>
      Effect.gen(function* () {
        const handled = yield* enqueueOne(store, { kind: "handled" })
        yield* enqueueOne(store, { kind: "other", priority: -10 })
        const jobs = yield* store.claim(request({ kinds: ["handled", "absent"] }))
        expect(claimIds(jobs)).toEqual([handled.id])
        expect(yield* store.claim(request({ kinds: [] }))).toEqual([])
        expect(yield* store.claim(request({ queues: [], kinds: ["other"] }))).toEqual([])
      }))

    test("a paused queue is skipped until it is resumed", ({ store }) =>
      Effect.gen(function* () {
        const paused = yield* enqueueOne(store, { queue: "slow" })
        const open = yield* enqueueOne(store, { queue: "fast" })
        yield* store.pause("slow")
        yield* store.pause("slow")
        expect(yield* store.paused).toEqual(["slow"])
        const jobs = yield* store.claim(request({ queues: ["slow", "fast"] }))
        expect(claimIds(jobs)).toEqual([open.id])
        yield* store.resume("slow")
        expect(yield* store.paused).toEqual([])
        expect(claimIds(yield* store.claim(request({ queues: ["slow"] })))).toEqual([paused.id])
      }))

    test("paused lists the paused queues in code-point order of their names", ({ store }) =>
      Effect.gen(function* () {
        for (const queue of ["b", "é", "a", "C", "z", "_", "a2"]) yield* store.pause(queue)
        expect(yield* store.paused).toEqual(["C", "_", "a", "a2", "b", "z", "é"])
      }))

    test("pausing a queue does not block enqueues into it", ({ store }) =>
      Effect.gen(function* () {
        yield* store.pause("q")
        const { id } = yield* enqueueOne(store)
        expect((yield* getJob(store, id)).state).toBe("available")
        yield* store.resume("q")
        expect(claimIds(yield* store.claim(request()))).toEqual([id])
      }))

    test("a scheduled job is not claimable before its run-at and is claimable after", ({ store, advance }) =>
      Effect.gen(function* () {
        const { id } = yield* enqueueOne(store, { delayMs: 60_000 })
        expect(yield* store.claim(request())).toEqual([])
        yield* advance(58_000)
        expect(yield* store.claim(request())).toEqual([])
        yield* advance(2_000)
        const jobs = yield* store.claim(request())
        expect(claimIds(jobs)).toEqual([id])
        expect(jobs[0]).toMatchObject({ state: "running", attempt: 1 })
      }))

    test("a due scheduled job competes in priority order with available ones", ({ store, advance }) =>
      Effect.gen(function* () {
        const later = yield* enqueueOne(store, { priority: 0, delayMs: 10_000 })
        const now = yield* enqueueOne(store, { priority: 1 })
        yield* advance(11_000)
        expect(claimIds(yield* store.claim(request({ limit: 1 })))).toEqual([later.id])
        expect(claimIds(yield* store.claim(request({ limit: 1 })))).toEqual([now.id])
      }))

    test("concurrent claimers never receive the same job", ({ store }) =>
      Effect.gen(function* () {
        const total = 300
        yield* store.enqueue(
          Array.from({ length: total }, (_, i) => input({ priority: i % 4, payload: { i } }))
        )
        const claimers = Array.from({ length: 8 }, (_, i) =>
          drain(store, { owner: `runner-${i}`, limit: 1 + (i % 5) })
        )
        const perClaimer = yield* Effect.all(claimers, { concurrency: "unbounded" })
        const all = perClaimer.flat()
        expect(all).toHaveLength(total)
        expect(new Set(all).size).toBe(total)
      }))
  })
