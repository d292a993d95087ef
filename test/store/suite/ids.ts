import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { enqueueOne, getJob, request, type StoreTest, started } from "../helpers.js"

/** Text that looks like the id `id` but is not how any engine writes it. */
const lookalikes = (id: string): Array<string> => [
  `0${id}`,
  `+${id}`,
  ` ${id}`,
  `${id} `,
  `${id}.0`,
  `${id}e0`,
  `-${id}`,
  "",
  "0",
  "abc",
  "9007199254740993",
  "99999999999999999999"
]

export const idSuite = (test: StoreTest) =>
  describe("job ids", () => {
    test("text that is not an id as the store writes it names no job, for every operation", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { queue: "q" })
        for (const id of lookalikes(job.id)) {
          expect(yield* store.get(id), JSON.stringify(id)).toBeUndefined()
          expect(yield* store.cancel(id), JSON.stringify(id)).toEqual({ _tag: "not-found" })
          expect(yield* store.retry(id), JSON.stringify(id)).toEqual({ _tag: "not-found" })
          expect(yield* store.heartbeat("runner-a", [{ id, fence: job.fence }], 30_000)).toEqual([
            { id, held: false, cancelRequested: false }
          ])
          expect(yield* store.settle([{ id, fence: job.fence, outcome: { _tag: "completed" } }])).toEqual([
            { id, applied: false, state: null }
          ])
        }
        expect(yield* getJob(store, job.id)).toMatchObject({ state: "running", cancelRequested: false })
      }))

    test("a list cursor that is not an id gives an empty last page", ({ store }) =>
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (let i = 0; i < 3; i++) ids.push((yield* enqueueOne(store)).id)
        const newest = ids[ids.length - 1]!
        for (const cursor of lookalikes(newest)) {
          expect(yield* store.list({ cursor }), JSON.stringify(cursor)).toEqual({
            jobs: [],
            nextCursor: null
          })
        }
        // The id itself pages on.
        const page = yield* store.list({ cursor: newest })
        expect(page.jobs.map((j) => j.id)).toEqual(ids.slice(0, -1).reverse())
      }))

    test("claims come in priority, run-at, id order, ids compared as numbers", ({ store }) =>
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (let i = 0; i < 12; i++) ids.push((yield* enqueueOne(store, { priority: i % 2 })).id)
        const claimed = yield* store.claim(request({ limit: 12 }))
        const byNumber = (a: string, b: string) => Number(a) - Number(b)
        const even = ids.filter((_, i) => i % 2 === 0).sort(byNumber)
        const odd = ids.filter((_, i) => i % 2 === 1).sort(byNumber)
        expect(claimed.map((j) => j.id)).toEqual([...even, ...odd])
      }))
  })

export const rescueMessageSuite = (test: StoreTest) =>
  describe("rescue error", () => {
    test("a rescued attempt records the same error on every engine, naming the runner", ({
      store,
      advance
    }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { leaseMs: 10_000, owner: "host-7:4242" })
        yield* advance(11_000)
        yield* store.rescue(10)
        const [error] = (yield* getJob(store, job.id)).errors
        expect(error).toMatchObject({
          attempt: 1,
          kind: "rescued",
          message:
            "the lease held by host-7:4242 expired before the attempt was settled: the runner died or stopped sending heartbeats"
        })
      }))
  })
