import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as TestClock from "effect/TestClock"
import { Heap } from "../src/internal/memory/heap.js"
import * as JobStore from "../src/JobStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import { conformance } from "./store/conformance.js"
import { input, request } from "./store/helpers.js"

conformance("memory", { layer: MemoryStore.layer })

const withStore = <A, E>(f: (store: JobStore.Service) => Effect.Effect<A, E>) =>
  Effect.flatMap(MemoryStore.make, f)

type Op =
  | { readonly _tag: "enqueue"; readonly priority: number; readonly offset: number; readonly kind: string }
  | { readonly _tag: "claim"; readonly limit: number; readonly kinds: ReadonlyArray<string> }
  | { readonly _tag: "cancel"; readonly pick: number }
  | { readonly _tag: "advance"; readonly ms: number }

const kinds = ["a", "b", "c"]
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      _tag: fc.constant("enqueue" as const),
      priority: fc.integer({ min: -2, max: 2 }),
      offset: fc.integer({ min: -5, max: 5 }).map((n) => n * 1_000),
      kind: fc.constantFrom(...kinds)
    }),
    weight: 6
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("claim" as const),
      limit: fc.integer({ min: 1, max: 4 }),
      kinds: fc.subarray(kinds, { minLength: 1 })
    }),
    weight: 3
  },
  { arbitrary: fc.record({ _tag: fc.constant("cancel" as const), pick: fc.nat() }), weight: 1 },
  {
    arbitrary: fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 4_000 }) }),
    weight: 2
  }
)

interface ModelJob {
  readonly id: string
  readonly priority: number
  readonly runAt: number
  readonly kind: string
  waiting: boolean
}

/** Claim order computed the slow, obvious way. */
const modelClaim = (jobs: Array<ModelJob>, now: number, limit: number, wanted: ReadonlyArray<string>) =>
  jobs
    .filter((j) => j.waiting && j.runAt <= now && wanted.includes(j.kind))
    .sort((x, y) => x.priority - y.priority || x.runAt - y.runAt || Number(x.id) - Number(y.id))
    .slice(0, limit)

describe("MemoryStore", () => {
  it.effect("ids are increasing decimal strings starting at 1", () =>
    withStore((store) =>
      Effect.gen(function* () {
        const results = yield* store.enqueue(Array.from({ length: 11 }, () => input()))
        expect(results.map((r) => r.id)).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"])
        const page = yield* store.list({ limit: 3, cursor: "10" })
        expect(page.jobs.map((j) => j.id)).toEqual(["9", "8", "7"])
      })
    )
  )

  it.effect("reads time from the Clock, so TestClock drives run-at and leases", () =>
    withStore((store) =>
      Effect.gen(function* () {
        yield* TestClock.setTime(1_000_000)
        expect(yield* store.now).toBe(1_000_000)
        const { id } = (yield* store.enqueue([input({ delayMs: 500 })]))[0]!
        expect((yield* store.get(id))?.runAt).toBe(1_000_500)
        yield* TestClock.adjust(500)
        const [job] = yield* store.claim(request({ leaseMs: 1_000 }))
        expect(job).toMatchObject({ id, attemptedAt: 1_000_500, leaseExpiresAt: 1_001_500 })
        yield* TestClock.adjust(999)
        expect(yield* store.rescue(10)).toEqual([])
        yield* TestClock.adjust(1)
        expect((yield* store.rescue(10)).map((r) => r.id)).toEqual([id])
      })
    )
  )

  it.effect.prop(
    "claims follow (priority, run-at, id) over any mix of enqueues, claims, cancels and time",
    { ops: fc.array(op, { maxLength: 120 }) },
    ({ ops }) =>
      withStore((store) =>
        Effect.gen(function* () {
          const model: Array<ModelJob> = []
          for (const step of ops) {
            const now = yield* store.now
            if (step._tag === "enqueue") {
              const [r] = yield* store.enqueue([
                input({ kind: step.kind, priority: step.priority, runAt: now + step.offset })
              ])
              model.push({
                id: r!.id,
                priority: step.priority,
                runAt: now + step.offset,
                kind: step.kind,
                waiting: true
              })
            } else if (step._tag === "claim") {
              const expected = modelClaim(model, now, step.limit, step.kinds)
              for (const job of expected) job.waiting = false
              const claimed = yield* store.claim(request({ limit: step.limit, kinds: step.kinds }))
              expect(claimed.map((j) => j.id)).toEqual(expected.map((j) => j.id))
            } else if (step._tag === "cancel" && model.length > 0) {
              const job = model[step.pick % model.length]!
              const result = yield* store.cancel(job.id)
              if (job.waiting) expect(result._tag).toBe("cancelled")
              job.waiting = false
            } else if (step._tag === "advance") {
              yield* TestClock.adjust(step.ms)
            }
          }
        })
      ),
    { fastCheck: { numRuns: 150 } }
  )

  it.effect("many heartbeats leave rescue exact", () =>
    withStore((store) =>
      Effect.gen(function* () {
        yield* store.enqueue([input(), input(), input()])
        const jobs = yield* store.claim(request({ leaseMs: 1_000, owner: "r" }))
        const kept = jobs.slice(0, 2)
        yield* TestClock.adjust(500)
        for (let i = 0; i < 1_500; i++) yield* store.heartbeat("r", kept, 1_000)
        yield* TestClock.adjust(600)
        expect((yield* store.rescue(10)).map((r) => r.id)).toEqual([jobs[2]!.id])
        yield* TestClock.adjust(399)
        expect(yield* store.rescue(10)).toEqual([])
        yield* TestClock.adjust(1)
        expect((yield* store.rescue(10)).map((r) => r.id)).toEqual(kept.map((j) => j.id))
      })
    )
  )

  it.effect("listing stays exact after pruning thousands of jobs", () =>
    withStore((store) =>
      Effect.gen(function* () {
        const total = 3_000
        yield* store.enqueue(
          Array.from({ length: total }, (_, i) => input({ kind: i % 10 === 0 ? "keep" : "k" }))
        )
        const claimed = yield* store.claim(request({ limit: total }))
        yield* store.settle(
          claimed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
        )
        yield* TestClock.adjust(10_000)
        const retention = { completedMs: 1_000, discardedMs: 1_000, cancelledMs: 1_000, limit: 1_000 }
        let pruned = 0
        for (let n = yield* store.prune(retention); n > 0; n = yield* store.prune(retention)) pruned += n
        expect(pruned).toBe(total - total / 10)
        const page = yield* store.list({ limit: 5, cursor: "2992" })
        expect(page.jobs.map((j) => j.id)).toEqual(["2991", "2981", "2971", "2961", "2951"])
        expect(yield* store.counts).toEqual([{ queue: "q", state: "available", count: total / 10 }])
      })
    )
  )

  it.effect("a store made by the layer is fresh each time it is built", () =>
    Effect.gen(function* () {
      const first = yield* Effect.provide(
        Effect.flatMap(JobStore.JobStore, (s) => s.enqueue([input()])),
        MemoryStore.layer
      )
      const second = yield* Effect.provide(
        Effect.flatMap(JobStore.JobStore, (s) => s.enqueue([input()])),
        MemoryStore.layer
      )
      expect(first[0]!.id).toBe("1")
      expect(second[0]!.id).toBe("1")
    })
  )
})

describe("internal heap", () => {
  interface Item {
    seq: number
    deleted: boolean
    readonly key: readonly [number, number, number]
  }
  const compare = (a: Item, b: Item) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]
  const step = fc.oneof(
    fc
      .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.nat(50))
      .map((key) => ({ push: key })),
    fc.constant({ pop: true as const }),
    fc.nat().map((n) => ({ stale: n }))
  )

  it.prop(
    "pops current values in key order, in or out of push order",
    [fc.array(step, { maxLength: 300 })],
    ([steps]) => {
      const heap = new Heap<Item>()
      const live: Array<Item> = []
      // keys are unique, as (priority, run-at, id) is: the last part is made unique here
      let n = 0
      for (const s of steps) {
        if ("push" in s) {
          const key: Item["key"] = [s.push[0], s.push[1], s.push[2] * 1_000 + n++]
          const item: Item = { seq: 0, deleted: false, key }
          heap.push(item.key[0], item.key[1], item.key[2], item)
          live.push(item)
        } else if ("stale" in s) {
          const item = live.splice(s.stale % Math.max(1, live.length), 1)[0]
          if (item !== undefined) item.seq++
        } else {
          live.sort(compare)
          const expected = live.shift()
          expect(heap.clean() ? heap.pop() : undefined).toBe(expected)
        }
      }
      live.sort(compare)
      const rest: Array<Item> = []
      while (heap.clean()) rest.push(heap.pop()!)
      expect(rest.map((i) => i.key)).toEqual(live.map((i) => i.key))
    }
  )
})
