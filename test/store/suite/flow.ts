import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FlowControl from "../../../src/FlowControl.js"
import { withWaiting } from "../../../src/internal/store/flow.js"
import type * as JobStore from "../../../src/JobStore.js"
import { freshKind, getJob, input, request, type StoreTest, settleOne } from "../helpers.js"

const rule = (scope: "kind" | "queue", name: string, limits: FlowControl.Limits) =>
  FlowControl.toRule(scope, name, limits)

/** Enqueue `n` jobs of a kind and partition; returns their ids in order. */
const enqueueN = (
  store: JobStore.Service,
  n: number,
  overrides: Partial<JobStore.EnqueueInput> = {}
): Effect.Effect<Array<string>, JobStore.JobStoreError> =>
  Effect.map(
    store.enqueue(Array.from({ length: n }, (_, i) => input({ payload: { i }, ...overrides }))),
    (results) => results.map((r) => r.id)
  )

const byPartition = (jobs: ReadonlyArray<JobStore.JobRecord>) => {
  const counts: Record<string, number> = {}
  for (const job of jobs) counts[job.partition ?? "(none)"] = (counts[job.partition ?? "(none)"] ?? 0) + 1
  return counts
}

const waitingOf = (store: JobStore.Service, id: string) =>
  Effect.gen(function* () {
    const job = yield* getJob(store, id)
    const [withReason] = yield* withWaiting(store, [job])
    return withReason!.waiting
  })

export const flowSuite = (test: StoreTest) =>
  describe("flow control", () => {
    test("a job keeps its partition key; without one it is null", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        const [keyed, plain] = yield* store.enqueue([input({ kind, partition: "tenant-1" }), input({ kind })])
        expect((yield* getJob(store, keyed!.id)).partition).toBe("tenant-1")
        expect((yield* getJob(store, plain!.id)).partition).toBeNull()
        const claimed = yield* store.claim(request({ kinds: [kind] }))
        expect(claimed.map((j) => j.partition).sort()).toEqual([null, "tenant-1"].sort())
      }))

    test("declared rules are stored per scope and name, replaced, and removed by an empty rule", ({
      store
    }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([
          rule("kind", kind, { concurrency: { global: 5 } }),
          rule("queue", "q", { rateLimit: { limit: 10, per: "1 second", by: "partition", burst: 4 } })
        ])
        let state = yield* store.flowState({ due: false })
        expect([...state.rules].sort((a, b) => a.scope.localeCompare(b.scope))).toEqual([
          {
            scope: "kind",
            name: kind,
            global: 5,
            perPartition: null,
            rateLimit: null,
            rateWindowMs: null,
            rateByPartition: false,
            rateBurst: null
          },
          {
            scope: "queue",
            name: "q",
            global: null,
            perPartition: null,
            rateLimit: 10,
            rateWindowMs: 1000,
            rateByPartition: true,
            rateBurst: 4
          }
        ])
        yield* store.declareLimits([
          rule("kind", kind, { concurrency: { perPartition: 2 } }),
          rule("queue", "q", {})
        ])
        state = yield* store.flowState({ due: false })
        expect(state.rules).toEqual([
          {
            scope: "kind",
            name: kind,
            global: null,
            perPartition: 2,
            rateLimit: null,
            rateWindowMs: null,
            rateByPartition: false,
            rateBurst: null
          }
        ])
      }))

    test("perPartition caps running jobs per key; held-back jobs stay available with no attempt", ({
      store
    }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { perPartition: 2 } })])
        const a = yield* enqueueN(store, 5, { kind, partition: "a" })
        yield* enqueueN(store, 5, { kind, partition: "b" })
        const first = yield* store.claim(request({ kinds: [kind], limit: 10 }))
        expect(byPartition(first)).toEqual({ a: 2, b: 2 })
        expect(yield* store.claim(request({ kinds: [kind], limit: 10, owner: "runner-b" }))).toEqual([])
        const waiting = yield* getJob(store, a[4]!)
        expect(waiting).toMatchObject({ state: "available", attempt: 0, fence: 0 })
        // Finishing one job of "a" frees exactly one place of "a".
        const doneA = first.find((j) => j.partition === "a")!
        yield* settleOne(store, doneA, { _tag: "completed" })
        const next = yield* store.claim(request({ kinds: [kind], limit: 10 }))
        expect(byPartition(next)).toEqual({ a: 1 })
      }))

    test("jobs without a partition key are not held by perPartition", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { perPartition: 1 } })])
        yield* enqueueN(store, 4, { kind })
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(4)
      }))

    test("global caps running jobs of a kind across claims and owners", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { global: 3 } })])
        yield* enqueueN(store, 6, { kind, partition: "x" })
        yield* enqueueN(store, 6, { kind })
        const a = yield* store.claim(request({ kinds: [kind], limit: 2, owner: "runner-a" }))
        const b = yield* store.claim(request({ kinds: [kind], limit: 10, owner: "runner-b" }))
        expect(a.length + b.length).toBe(3)
        expect(yield* store.claim(request({ kinds: [kind], limit: 10, owner: "runner-c" }))).toEqual([])
        yield* settleOne(store, b[0] ?? a[0]!, { _tag: "completed" })
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(1)
      }))

    test("one claim takes at most one shard's share of a global limit, so several runners share it", ({
      store
    }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        // 50 is split over two shards of 25 (a limit under 50 is one shard: the whole limit).
        yield* store.declareLimits([rule("kind", kind, { concurrency: { global: 50 } })])
        yield* enqueueN(store, 80, { kind, partition: "x" })
        const a = yield* store.claim(request({ kinds: [kind], limit: 100, owner: "runner-a" }))
        expect(a).toHaveLength(25)
        const b = yield* store.claim(request({ kinds: [kind], limit: 100, owner: "runner-b" }))
        expect(b).toHaveLength(25)
        expect(yield* store.claim(request({ kinds: [kind], limit: 100, owner: "runner-c" }))).toEqual([])
        yield* settleOne(store, a[0]!, { _tag: "completed" })
        expect(yield* store.claim(request({ kinds: [kind], limit: 100, owner: "runner-c" }))).toHaveLength(1)
      }))

    test.settleAndClaim(
      "settleAndClaim: the claim takes the places the settle freed, in one transaction",
      ({ store }) =>
        Effect.gen(function* () {
          expect(store.settleAndClaim).toBeDefined()
          const kind = freshKind()
          yield* store.declareLimits([rule("kind", kind, { concurrency: { global: 2 } })])
          yield* enqueueN(store, 5, { kind })
          const req = request({ kinds: [kind], limit: 5 })
          const [a, b, ...none] = yield* store.claim(req)
          expect(none).toEqual([])
          expect(yield* store.claim(req)).toEqual([])
          // Text PostgreSQL's statement carries as literals: quotes, backslashes, braces, NULL.
          const message = `it's "quoted", a back\\slash \\' and $1, {a,b} NULL, ünïcödé`
          const { claimed, settled } = yield* store.settleAndClaim!(
            [
              { id: a!.id, fence: a!.fence, outcome: { _tag: "completed" } },
              {
                id: b!.id,
                fence: b!.fence,
                outcome: { _tag: "retry", delayMs: 60_000, error: { kind: "failure", message } }
              }
            ],
            req
          )
          expect(settled).toEqual([
            { id: a!.id, applied: true, state: "completed" },
            { id: b!.id, applied: true, state: "retryable" }
          ])
          // Both places the settle freed, and no more: the limit holds across the two.
          expect(claimed.map((j) => j.state)).toEqual(["running", "running"])
          expect(claimed.map((j) => j.id)).not.toContain(b!.id)
          expect(yield* store.claim(req)).toEqual([])
          expect((yield* getJob(store, b!.id)).errors.map((e) => e.message)).toEqual([message])
          // A settle whose fence no longer matches changes nothing, and its claim finds the limit full.
          const stale = yield* store.settleAndClaim!(
            [{ id: a!.id, fence: a!.fence, outcome: { _tag: "completed" } }],
            req
          )
          expect(stale).toEqual({ settled: [{ id: a!.id, applied: false, state: null }], claimed: [] })
        })
    )

    test("a queue's global limit counts every kind in the queue", ({ store }) =>
      Effect.gen(function* () {
        const queue = `q_${freshKind()}`
        const k1 = freshKind()
        const k2 = freshKind()
        yield* store.declareLimits([rule("queue", queue, { concurrency: { global: 3 } })])
        yield* enqueueN(store, 3, { kind: k1, queue })
        yield* enqueueN(store, 3, { kind: k2, queue })
        const first = yield* store.claim(request({ queues: [queue], kinds: [k1], limit: 2 }))
        expect(first).toHaveLength(2)
        const second = yield* store.claim(request({ queues: [queue], kinds: [k2], limit: 10 }))
        expect(second).toHaveLength(1)
      }))

    test.wholeScopeLimits("jobs already running when a limit is declared count against it", ({ store }) =>
      Effect.gen(function* () {
        const queue = `q_${freshKind()}`
        const kind = freshKind()
        const other = freshKind()
        const claimAll = (kinds: Array<string>) => store.claim(request({ queues: [queue], kinds, limit: 10 }))
        // Claimed with no rule in force: two jobs without a key, then one of key "a" and one of another kind.
        yield* enqueueN(store, 2, { kind, queue })
        expect(yield* claimAll([kind])).toHaveLength(2)
        yield* enqueueN(store, 1, { kind, queue, partition: "a" })
        yield* enqueueN(store, 1, { kind: other, queue })
        expect(yield* claimAll([kind, other])).toHaveLength(2)
        yield* store.declareLimits([
          rule("kind", kind, { concurrency: { global: 4, perPartition: 1 } }),
          rule("queue", queue, { concurrency: { global: 6 } })
        ])
        yield* enqueueN(store, 3, { kind, queue, partition: "a" })
        yield* enqueueN(store, 3, { kind, queue })
        // The kind runs 3 of its 4: one more, and not of key "a", which is at its limit.
        expect(byPartition(yield* claimAll([kind]))).toEqual({ "(none)": 1 })
        // The queue runs 5 of its 6 (every kind): one more of the other kind, then none.
        yield* enqueueN(store, 3, { kind: other, queue })
        expect(yield* claimAll([other])).toHaveLength(1)
        expect(yield* claimAll([kind, other])).toEqual([])
      })
    )

    test("a queue's rule and a kind's rule both hold", ({ store }) =>
      Effect.gen(function* () {
        const queue = `q_${freshKind()}`
        const kind = freshKind()
        yield* store.declareLimits([
          rule("queue", queue, { concurrency: { global: 10 } }),
          rule("kind", kind, { concurrency: { perPartition: 1 } })
        ])
        yield* enqueueN(store, 3, { kind, queue, partition: "p" })
        yield* enqueueN(store, 3, { kind, queue, partition: "r" })
        expect(
          byPartition(yield* store.claim(request({ queues: [queue], kinds: [kind], limit: 10 })))
        ).toEqual({
          p: 1,
          r: 1
        })
      }))

    test("a rate limit allows at most limit starts in any window, and at most a tenth of them in any tenth", ({
      advance,
      store
    }) =>
      Effect.gen(function* () {
        // 15 per 10 s: paced at 2 (a tenth, rounded up) per 1,333 ms (10 s × 2 / 15).
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { rateLimit: { limit: 15, per: "10 seconds" } })])
        yield* enqueueN(store, 100, { kind })
        const starts: Array<number> = []
        for (let step = 0; step < 300; step++) {
          const claimed = yield* store.claim(request({ kinds: [kind], limit: 10 }))
          for (const job of claimed) {
            starts.push(job.attemptedAt!)
            // Finished jobs still count: a start is a start.
            yield* settleOne(store, job, { _tag: "completed" })
          }
          yield* advance(100)
        }
        const most = (spanMs: number) =>
          Math.max(...starts.map((t) => starts.filter((u) => u >= t && u < t + spanMs).length))
        expect(most(10_000)).toBe(15)
        expect(most(10_000 * (2 / 15))).toBe(2)
        // 30 s at 1.5 a second, claimed every 100 ms: the pace loses at most a step per span.
        expect(starts.length).toBeGreaterThanOrEqual(40)
        expect(starts.length).toBeLessThanOrEqual(45)
      }))

    test("a rate's burst sets its pace: `burst: limit` lets a whole window's starts go at once", ({
      advance,
      store
    }) =>
      Effect.gen(function* () {
        const whole = freshKind()
        const paced = freshKind()
        yield* store.declareLimits([
          rule("kind", whole, { rateLimit: { limit: 3, per: "1 hour", burst: 3 } }),
          // 12 a second in bursts of 4: at most 4 in any 333 ms.
          rule("kind", paced, { rateLimit: { limit: 12, per: "1 second", burst: 4 } })
        ])
        yield* enqueueN(store, 5, { kind: whole })
        yield* enqueueN(store, 20, { kind: paced })
        expect(yield* store.claim(request({ kinds: [whole], limit: 10 }))).toHaveLength(3)
        expect(yield* store.claim(request({ kinds: [paced], limit: 10 }))).toHaveLength(4)
        yield* advance(300)
        expect(yield* store.claim(request({ kinds: [paced], limit: 10 }))).toEqual([])
        yield* advance(40)
        expect(yield* store.claim(request({ kinds: [paced], limit: 10 }))).toHaveLength(4)
        yield* advance(30 * 60_000)
        expect(yield* store.claim(request({ kinds: [whole], limit: 10 }))).toEqual([])
      }))

    test("a claim whose clock reads earlier still counts every start in its window", ({
      advance,
      rewind,
      store
    }) =>
      Effect.gen(function* () {
        // A claim may read "now" and then wait for a lock while a later claim expires old starts.
        // 3 a second: paced at 1 per 333 ms.
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { rateLimit: { limit: 3, per: "1 second" } })])
        yield* enqueueN(store, 10, { kind })
        for (let i = 0; i < 2; i++) {
          expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(1)
          yield* advance(400)
        }
        yield* advance(700)
        expect(yield* store.claim(request({ kinds: [kind], limit: 1 }))).toHaveLength(1)
        // Back to 0.9 s after the first start: its window holds the 2 before and the 1 after.
        yield* rewind(600)
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toEqual([])
        const state = yield* store.flowState({ due: false })
        expect(state.rate.filter((r) => r.name === kind).map((r) => r.starts)).toEqual([3])
      }))

    test("a rate limit by partition counts each key on its own", ({ store }) =>
      Effect.gen(function* () {
        // 20 a minute per key: paced at 2 per 6 s.
        const kind = freshKind()
        yield* store.declareLimits([
          rule("kind", kind, { rateLimit: { limit: 20, per: "1 minute", by: "partition" } })
        ])
        yield* enqueueN(store, 4, { kind, partition: "a" })
        yield* enqueueN(store, 4, { kind, partition: "b" })
        const first = yield* store.claim(request({ kinds: [kind], limit: 10 }))
        expect(byPartition(first)).toEqual({ a: 2, b: 2 })
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toEqual([])
      }))

    test("a retry starts again and counts against the rate limit again", ({ advance, store }) =>
      Effect.gen(function* () {
        // 2 a minute: paced at 1 per 30 s.
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { rateLimit: { limit: 2, per: "1 minute" } })])
        yield* enqueueN(store, 1, { kind })
        const [job] = yield* store.claim(request({ kinds: [kind] }))
        yield* settleOne(store, job!, { _tag: "retry", delayMs: 0, error: { kind: "failure", message: "x" } })
        yield* advance(30_000)
        const [again] = yield* store.claim(request({ kinds: [kind] }))
        expect(again?.id).toBe(job!.id)
        yield* settleOne(store, again!, {
          _tag: "retry",
          delayMs: 0,
          error: { kind: "failure", message: "x" }
        })
        yield* advance(29_000)
        expect(yield* store.claim(request({ kinds: [kind] }))).toEqual([])
        yield* advance(1_001)
        expect(yield* store.claim(request({ kinds: [kind] }))).toHaveLength(1)
      }))

    test("a cancelled, retried, snoozed or released job frees its place", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { global: 1 } })])
        yield* enqueueN(store, 5, { kind })
        const outcomes: Array<JobStore.Outcome> = [
          { _tag: "cancelled" },
          { _tag: "retry", delayMs: 60_000, error: { kind: "failure", message: "x" } },
          { _tag: "snooze", delayMs: 60_000 },
          { _tag: "release" }
        ]
        for (const outcome of outcomes) {
          const [job] = yield* store.claim(request({ kinds: [kind], limit: 5 }))
          expect(job, outcome._tag).toBeDefined()
          expect(yield* store.claim(request({ kinds: [kind], limit: 5 }))).toEqual([])
          yield* settleOne(store, job!, outcome)
        }
        expect(yield* store.claim(request({ kinds: [kind], limit: 5 }))).toHaveLength(1)
      }))

    test("a cancel of a running job's record frees its place once the runner settles it", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { global: 1 } })])
        const [id] = yield* enqueueN(store, 2, { kind })
        const [job] = yield* store.claim(request({ kinds: [kind] }))
        expect(job!.id).toBe(id)
        expect((yield* store.cancel(id!))._tag).toBe("requested")
        expect(yield* store.claim(request({ kinds: [kind] }))).toEqual([])
        yield* settleOne(store, job!, { _tag: "cancelled" })
        expect(yield* store.claim(request({ kinds: [kind] }))).toHaveLength(1)
      }))

    test("an expired lease frees its place, and so does the rescue", ({ advance, store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { perPartition: 1 } })])
        yield* enqueueN(store, 3, { kind, partition: "t" })
        const [first] = yield* store.claim(request({ kinds: [kind], leaseMs: 1_000 }))
        expect(first).toBeDefined()
        expect(yield* store.claim(request({ kinds: [kind], leaseMs: 1_000 }))).toEqual([])
        yield* advance(1_500)
        // Lease expired, not yet rescued: the place is free.
        const [second] = yield* store.claim(request({ kinds: [kind], leaseMs: 60_000 }))
        expect(second).toBeDefined()
        const rescued = yield* store.rescue(10)
        expect(rescued.map((r) => r.id)).toEqual([first!.id])
        expect(yield* store.claim(request({ kinds: [kind] }))).toEqual([])
      }))

    test("a changed limit takes effect at the next claim", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([rule("kind", kind, { concurrency: { perPartition: 1 } })])
        yield* enqueueN(store, 5, { kind, partition: "a" })
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(1)
        yield* store.declareLimits([rule("kind", kind, { concurrency: { perPartition: 3 } })])
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(2)
        yield* store.declareLimits([rule("kind", kind, {})])
        expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(2)
      }))

    test("claims serve partitions in turn: a small key does not wait behind a backlog", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* enqueueN(store, 40, { kind, partition: "A" })
        const b = yield* enqueueN(store, 3, { kind, partition: "B" })
        const served: Array<string> = []
        for (let i = 0; i < 6; i++) {
          for (const job of yield* store.claim(request({ kinds: [kind], limit: 2 }))) served.push(job.id)
        }
        // Each claim of 2 takes one job of each key with due work.
        for (const id of b) expect(served).toContain(id)
      }))

    test("jobs without a key take their turn like one more key", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* enqueueN(store, 10, { kind })
        yield* enqueueN(store, 2, { kind, partition: "x" })
        const jobs = yield* store.claim(request({ kinds: [kind], limit: 2 }))
        expect(byPartition(jobs)).toEqual({ "(none)": 1, x: 1 })
      }))

    test("within a partition, priority and run-at order hold", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        const now = yield* store.now
        const [late, early, urgent] = yield* store.enqueue([
          input({ kind, partition: "p", runAt: now - 1_000 }),
          input({ kind, partition: "p", runAt: now - 5_000 }),
          input({ kind, partition: "p", priority: -5, runAt: now })
        ])
        yield* enqueueN(store, 3, { kind, partition: "o" })
        const order: Array<string> = []
        for (let i = 0; i < 6; i++) {
          for (const job of yield* store.claim(request({ kinds: [kind], limit: 1 }))) {
            if (job.partition === "p") order.push(job.id)
          }
        }
        expect(order).toEqual([urgent!.id, early!.id, late!.id])
      }))

    test("a held-back job says why it waits", ({ advance, store }) =>
      Effect.gen(function* () {
        const perKind = freshKind()
        const globalKind = freshKind()
        const rateKind = freshKind()
        yield* store.declareLimits([
          rule("kind", perKind, { concurrency: { perPartition: 1 } }),
          rule("kind", globalKind, { concurrency: { global: 1 } }),
          rule("kind", rateKind, { rateLimit: { limit: 1, per: "1 hour" } })
        ])
        const [, per2] = yield* enqueueN(store, 2, { kind: perKind, partition: "t" })
        const [, global2] = yield* enqueueN(store, 2, { kind: globalKind })
        const [, rate2] = yield* enqueueN(store, 2, { kind: rateKind })
        const [free] = yield* enqueueN(store, 1, { kind: freshKind() })
        const [later] = yield* enqueueN(store, 1, { kind: freshKind(), delayMs: 60_000 })
        const paused = `q_${freshKind()}`
        const [held] = yield* enqueueN(store, 1, { kind: freshKind(), queue: paused })
        yield* store.pause(paused)
        for (const kind of [perKind, globalKind, rateKind]) {
          expect(yield* store.claim(request({ kinds: [kind], limit: 10 }))).toHaveLength(1)
        }
        yield* advance(1)
        expect(yield* waitingOf(store, per2!)).toBe("partition at limit")
        expect(yield* waitingOf(store, global2!)).toBe("global limit")
        expect(yield* waitingOf(store, rate2!)).toBe("rate limited")
        expect(yield* waitingOf(store, free!)).toBeNull()
        expect(yield* waitingOf(store, later!)).toBe("scheduled")
        expect(yield* waitingOf(store, held!)).toBe("queue paused")
      }))

    test("flowState groups running and due jobs by queue, kind and key, and counts rate usage", ({ store }) =>
      Effect.gen(function* () {
        const kind = freshKind()
        yield* store.declareLimits([
          rule("kind", kind, { rateLimit: { limit: 100, per: "1 minute", by: "partition" } })
        ])
        yield* enqueueN(store, 3, { kind, partition: "a" })
        yield* enqueueN(store, 2, { kind })
        yield* enqueueN(store, 1, { kind, delayMs: 60_000 })
        yield* store.claim(request({ kinds: [kind], limit: 2 }))
        const state = yield* store.flowState({ due: true })
        const mine = <T extends { readonly kind: string }>(groups: ReadonlyArray<T>) =>
          groups.filter((g) => g.kind === kind)
        const running = mine(state.running)
        const due = mine(state.due)
        expect(running.reduce((n, g) => n + g.running, 0)).toBe(2)
        expect(due.reduce((n, g) => n + g.due, 0)).toBe(3)
        for (const g of [...running, ...due]) expect(g.queue).toBe("q")
        const rate = state.rate.filter((r) => r.name === kind)
        expect(rate.reduce((n, r) => n + r.starts, 0)).toBe(2)
        // Both within the rule's pace span (100 a minute: 10 per 6 s).
        expect(rate.reduce((n, r) => n + r.recent, 0)).toBe(2)
        for (const r of rate) expect(r.scope).toBe("kind")
      }))
  })
