import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import {
  awaitWakeup,
  enqueueOne,
  freshKind,
  getJob,
  input,
  request,
  type StoreTest,
  started
} from "../helpers.js"

const minute = 60_000

export const cronSuite = (test: StoreTest) =>
  describe("cron slots", () => {
    test("a slot is enqueued once; the same slot again inserts nothing", ({ store }) =>
      Effect.gen(function* () {
        const job = input({ kind: "report", payload: { slot: 1 } })
        const first = yield* store.enqueueCronSlot({ name: "nightly", slot: 10 * minute, job })
        expect(first?.deduped).toBe(false)
        expect(yield* getJob(store, first!.id)).toMatchObject({ kind: "report", payload: { slot: 1 } })
        expect(yield* store.enqueueCronSlot({ name: "nightly", slot: 10 * minute, job })).toBeUndefined()
        expect((yield* store.list({ kinds: ["report"] })).jobs).toHaveLength(1)
      }))

    test("concurrent callers for one slot enqueue exactly one job", ({ store }) =>
      Effect.gen(function* () {
        const job = input({ kind: "tick" })
        const results = yield* Effect.all(
          Array.from({ length: 12 }, () =>
            store.enqueueCronSlot({ name: "every-minute", slot: 5 * minute, job })
          ),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r !== undefined)).toHaveLength(1)
        expect((yield* store.list({ kinds: ["tick"] })).jobs).toHaveLength(1)
      }))

    test("names are independent, and lastCronSlot is the latest slot taken", ({ store }) =>
      Effect.gen(function* () {
        expect(yield* store.lastCronSlot("a")).toBeUndefined()
        yield* store.enqueueCronSlot({ name: "a", slot: 1 * minute, job: input({ kind: "ca" }) })
        yield* store.enqueueCronSlot({ name: "a", slot: 2 * minute, job: input({ kind: "ca" }) })
        const b = yield* store.enqueueCronSlot({ name: "b", slot: 1 * minute, job: input({ kind: "cb" }) })
        expect(b).toBeDefined()
        expect(yield* store.lastCronSlot("a")).toBe(2 * minute)
        expect(yield* store.lastCronSlot("b")).toBe(1 * minute)
        expect((yield* store.list({ kinds: ["ca"] })).jobs).toHaveLength(2)
      }))

    test("slots reached out of order are each taken once", ({ store }) =>
      Effect.gen(function* () {
        const job = input({ kind: "ooo" })
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 10 * minute, job })).toBeDefined()
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 30 * minute, job })).toBeDefined()
        // A node that fell behind reaches slot 20 after another took slot 30: it is still taken, once.
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 20 * minute, job })).toBeDefined()
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 20 * minute, job })).toBeUndefined()
        // Even one older than the first slot taken.
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 5 * minute, job })).toBeDefined()
        expect(yield* store.enqueueCronSlot({ name: "ooo", slot: 5 * minute, job })).toBeUndefined()
        expect(yield* store.lastCronSlot("ooo")).toBe(30 * minute)
        expect((yield* store.list({ kinds: ["ooo"] })).jobs).toHaveLength(4)
      }))

    test("prune keeps the latest slot of each name, which stays taken", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = input({ kind: "old_slots" })
        for (const slot of [1, 2, 3]) yield* store.enqueueCronSlot({ name: "old", slot: slot * minute, job })
        yield* advance(2 * 86_400_000)
        yield* store.prune({
          completedMs: 86_400_000,
          discardedMs: 86_400_000,
          cancelledMs: 86_400_000,
          limit: 100
        })
        expect(yield* store.lastCronSlot("old")).toBe(3 * minute)
        expect(yield* store.enqueueCronSlot({ name: "old", slot: 3 * minute, job })).toBeUndefined()
        expect(yield* store.enqueueCronSlot({ name: "old", slot: 4 * minute, job })).toBeDefined()
      }))

    test("a slot's job can be scheduled for later and still dedupes by key", ({ store }) =>
      Effect.gen(function* () {
        const live = yield* enqueueOne(store, { kind: "cron_k", dedupeKey: "only-one" })
        const result = yield* store.enqueueCronSlot({
          name: "c",
          slot: minute,
          job: input({ kind: "cron_k", dedupeKey: "only-one" })
        })
        expect(result).toEqual({ id: live.id, deduped: true })
        expect(yield* store.lastCronSlot("c")).toBe(minute)
      }))
  })

export const wakeupSuite = (test: StoreTest) =>
  describe("wakeups", () => {
    test("an enqueue of available work hints its queue", ({ store, hints }) =>
      Effect.gen(function* () {
        if (!hints) return
        const hint = yield* awaitWakeup(
          store,
          (w) => w._tag === "enqueued" && w.queue === "hinted",
          enqueueOne(store, { queue: "hinted" })
        )
        expect(Option.getOrUndefined(hint)).toEqual({ _tag: "enqueued", queue: "hinted" })
      }))

    test("a retry of a finished job hints its queue", ({ store, hints }) =>
      Effect.gen(function* () {
        if (!hints) return
        const job = yield* started(store, { queue: "again" })
        yield* store.settle([{ id: job.id, fence: job.fence, outcome: { _tag: "completed" } }])
        const hint = yield* awaitWakeup(
          store,
          (w) => w._tag === "enqueued" && w.queue === "again",
          Effect.gen(function* () {
            yield* store.retry(job.id)
            const [claimed] = yield* store.claim(request({ queues: ["again"], kinds: [job.kind] }))
            yield* store.settle([{ id: claimed!.id, fence: claimed!.fence, outcome: { _tag: "completed" } }])
          })
        )
        expect(Option.isSome(hint)).toBe(true)
      }))

    test("a settle that makes the job due now hints its queue", ({ store, hints, advance }) =>
      Effect.gen(function* () {
        if (!hints) return
        for (const outcome of [
          { _tag: "retry", delayMs: 0, error: { kind: "failure", message: "again" } },
          { _tag: "snooze", delayMs: 0 },
          { _tag: "release" }
        ] as const) {
          // Scheduled, so its enqueue hints nothing; then due by the clock alone.
          const queue = `due_${outcome._tag}`
          const kind = freshKind()
          yield* enqueueOne(store, { queue, kind, delayMs: 1000, maxAttempts: 1000 })
          yield* advance(1000)
          // Each try claims the job again (the last settle made it due) and settles it.
          const hint = yield* awaitWakeup(
            store,
            (w) => w._tag === "enqueued" && w.queue === queue,
            Effect.gen(function* () {
              const [job] = yield* store.claim(request({ queues: [queue], kinds: [kind], limit: 1 }))
              if (job !== undefined) yield* store.settle([{ id: job.id, fence: job.fence, outcome }])
            })
          )
          expect(Option.isSome(hint), outcome._tag).toBe(true)
        }
      }))

    test("a resume hints the queue", ({ store, hints }) =>
      Effect.gen(function* () {
        if (!hints) return
        yield* enqueueOne(store, { queue: "held" })
        const hint = yield* awaitWakeup(
          store,
          (w) => w._tag === "enqueued" && w.queue === "held",
          Effect.zipRight(store.pause("held"), store.resume("held"))
        )
        expect(Option.isSome(hint)).toBe(true)
      }))

    test("a cancel of a running job hints its id", ({ store, hints }) =>
      Effect.gen(function* () {
        if (!hints) return
        const job = yield* started(store)
        const hint = yield* awaitWakeup(store, (w) => w._tag === "cancel", store.cancel(job.id))
        expect(Option.getOrUndefined(hint)).toEqual({ _tag: "cancel", id: job.id })
      }))
  })
