/**
 * The sharded store: the conformance suite over three memory stores (the
 * same suite runs over three PostgreSQL servers in
 * test/ShardedStore.pg.test.ts), and what only a sharded store does:
 * placement, ids that carry their shard, merged reads, and claims that go on
 * while a shard is down.
 */

import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Route from "../src/internal/sharded/route.js"
import * as Job from "../src/Job.js"
import * as JobRunner from "../src/JobRunner.js"
import * as JobStore from "../src/JobStore.js"
import * as Leader from "../src/Leader.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as ShardedStore from "../src/ShardedStore.js"
import { conformance } from "./store/conformance.js"
import { input, request } from "./store/helpers.js"

const threeMemoryShards = Effect.flatMap(
  Effect.all([MemoryStore.make, MemoryStore.make, MemoryStore.make]),
  (stores) => ShardedStore.make(stores.map((store, shard) => ({ shard, store })))
)

conformance("sharded over three memory stores", {
  layer: Layer.effect(JobStore.JobStore, threeMemoryShards),
  settleAndClaim: false,
  // Limits hold per shard (see ShardedStore), so jobs placed before a rule are counted by their own shard only.
  wholeScopeLimits: false
})

/** A store whose every call fails while `down` is set, as a shard whose server is gone. */
const flaky = (store: JobStore.Service, state: { down: boolean }): JobStore.Service => {
  const gate = <A>(effect: Effect.Effect<A, JobStore.JobStoreError>) =>
    Effect.suspend(() =>
      state.down ? Effect.fail(new JobStore.JobStoreError({ message: "connection refused" })) : effect
    )
  return {
    ...store,
    enqueue: (jobs) => gate(store.enqueue(jobs)),
    claim: (r) => gate(store.claim(r)),
    heartbeat: (o, l, ms) => gate(store.heartbeat(o, l, ms)),
    settle: (s) => gate(store.settle(s)),
    get: (id) => gate(store.get(id)),
    list: (f) => gate(store.list(f)),
    counts: gate(store.counts),
    ping: gate(store.ping),
    flowState: (o) => gate(store.flowState(o))
  }
}

/**
 * A store whose calls, while `hung` is set, wait (without failing) until it
 * is unset: a shard whose server froze or whose packets are dropped. Counts
 * the claims it was sent.
 */
const hanging = (store: JobStore.Service) => {
  let release = Effect.runSync(Deferred.make<void>())
  const state = {
    hung: false,
    claims: 0,
    hang: () => {
      state.hung = true
      release = Effect.runSync(Deferred.make<void>())
    },
    wake: () => {
      state.hung = false
      Effect.runSync(Deferred.succeed(release, undefined))
    }
  }
  const gate = <A>(effect: Effect.Effect<A, JobStore.JobStoreError>) =>
    Effect.suspend(() => (state.hung ? Effect.zipRight(Deferred.await(release), effect) : effect))
  const service: JobStore.Service = {
    ...store,
    claim: (r) =>
      Effect.suspend(() => {
        state.claims++
        return gate(store.claim(r))
      }),
    heartbeat: (o, l, ms) => gate(store.heartbeat(o, l, ms)),
    settle: (s) => gate(store.settle(s)),
    counts: gate(store.counts)
  }
  return { service, state }
}

const shardOfId = (id: string) => Route.localId(id)!.shard

describe("ShardedStore", () => {
  it("places by a stable hash: the same key always on the same shard, every shard used", () => {
    // Pinned: a change of hash would move every key of a running cluster.
    expect(
      ["tenant-1", "tenant-2", "tenant-3", "acme", "globex", ""].map((k) => Route.shardOf(k, [0, 1, 2]))
    ).toEqual(
      ["tenant-1", "tenant-2", "tenant-3", "acme", "globex", ""].map((k) => Route.shardOf(k, [2, 0, 1]))
    )
    expect(Route.hash53("tenant-1", 0)).toBe(8976432172893728)
    expect(Array.from({ length: 12 }, (_, i) => Route.shardOf(`p:t${i}`, [0, 1, 2]))).toEqual([
      2, 2, 1, 0, 1, 2, 2, 2, 0, 1, 2, 2
    ])
    const counts = [0, 0, 0]
    for (let i = 0; i < 3_000; i++) counts[Route.shardOf(`p:t${i}`, [0, 1, 2])]!++
    for (const c of counts) expect(c).toBeGreaterThan(800)
  })

  it("adding a shard moves only the keys the new shard wins, about a quarter of them", () => {
    let moved = 0
    for (let i = 0; i < 4_000; i++) {
      const before = Route.shardOf(`p:t${i}`, [0, 1, 2])
      const after = Route.shardOf(`p:t${i}`, [0, 1, 2, 3])
      if (before !== after) {
        expect(after).toBe(3)
        moved++
      }
    }
    expect(moved).toBeGreaterThan(800)
    expect(moved).toBeLessThan(1_200)
  })

  it.effect("ids carry their shard: a partition key's jobs share one; get, cancel and retry find them", () =>
    Effect.gen(function* () {
      const store = yield* threeMemoryShards
      const results = yield* store.enqueue(
        Array.from({ length: 30 }, (_, i) => input({ partition: `t${i % 10}` }))
      )
      const shardsOfKey = new Map<string, Set<number>>()
      results.forEach((r, i) => {
        const key = `t${i % 10}`
        shardsOfKey.set(key, (shardsOfKey.get(key) ?? new Set()).add(shardOfId(r.id)))
      })
      for (const shards of shardsOfKey.values()) expect(shards.size).toBe(1)
      expect(new Set(results.map((r) => shardOfId(r.id))).size).toBe(3)
      const job = yield* store.get(results[7]!.id)
      expect(job?.partition).toBe("t7")
      expect(yield* store.cancel(results[7]!.id)).toEqual({ _tag: "cancelled" })
      expect((yield* store.retry(results[7]!.id))._tag).toBe("retried")
      // Ids no shard has: a shard number that is not configured, or no id at all.
      expect(yield* store.get(String(1 * Route.shardSlots + 9))).toBeUndefined()
      expect(yield* store.cancel("0")).toEqual({ _tag: "not-found" })
    })
  )

  it.effect("claims take turns over the shards: with a backlog on each, each serves a third", () =>
    Effect.gen(function* () {
      const store = yield* threeMemoryShards
      yield* store.enqueue(Array.from({ length: 300 }, (_, i) => input({ partition: `t${i}` })))
      const served = [0, 0, 0]
      for (let i = 0; i < 30; i++)
        for (const job of yield* store.claim(request({ limit: 3 }))) served[shardOfId(job.id)]!++
      expect(served).toEqual([30, 30, 30])
    })
  )

  it.effect("a shard that is down holds back only its own jobs, and health says which", () =>
    Effect.gen(function* () {
      const states = [{ down: false }, { down: false }, { down: false }]
      const stores = yield* Effect.all([MemoryStore.make, MemoryStore.make, MemoryStore.make])
      const store = yield* ShardedStore.make(
        stores.map((s, shard) => ({ shard, store: flaky(s, states[shard]!), name: `db-${shard}` }))
      )
      const enqueued = yield* store.enqueue(
        Array.from({ length: 60 }, (_, i) => input({ partition: `t${i}` }))
      )
      const onShard1 = enqueued.filter((r) => shardOfId(r.id) === 1).length
      states[1]!.down = true
      const claimed = yield* store.claim(request({ limit: 100 }))
      expect(claimed.length).toBe(60 - onShard1)
      expect(claimed.every((j) => shardOfId(j.id) !== 1)).toBe(true)
      expect(store.shardHealth().map((h) => h.reachable)).toEqual([true, false, true])
      expect(store.shardHealth()[1]!.lastError).toContain("connection refused")
      const ping = yield* Effect.flip(store.ping)
      expect(ping.message).toContain("db-1")
      // Claimed before it went down: settles of its jobs are deferred (the rest apply), and
      // their leases are not reported lost, as nobody can take them while it is down.
      states[1]!.down = false
      yield* TestClock.adjust("5 seconds")
      const [held] = yield* store.claim(request({ limit: 1, queues: ["q"], kinds: ["k"] })).pipe(
        Effect.map((jobs) => jobs.filter((j) => shardOfId(j.id) === 1)),
        Effect.repeat({ until: (jobs) => jobs.length > 0 })
      )
      states[1]!.down = true
      const mixed = [held!, claimed[0]!]
      const settled = yield* store.settle(
        mixed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
      )
      expect(settled.map((r) => [r.applied, r.deferred ?? false])).toEqual([
        [false, true],
        [true, false]
      ])
      const other = claimed[1]!
      const leases = yield* store.heartbeat(
        "runner-a",
        [held!, other].map((j) => ({ id: j.id, fence: j.fence })),
        30_000
      )
      expect(leases).toEqual([
        { id: held!.id, held: true, cancelRequested: false },
        { id: other.id, held: true, cancelRequested: false }
      ])
      // Only the unreachable shard needed: the call fails, as with an unreachable store.
      expect(
        (yield* Effect.flip(store.heartbeat("runner-a", [{ id: held!.id, fence: held!.fence }], 30_000)))
          .message
      ).toContain("db-1")
      const onShard1Left = onShard1 - 1
      // Back up: after its backoff the shard is asked again and its jobs run.
      states[1]!.down = false
      yield* TestClock.adjust("5 seconds")
      const rest = yield* store.claim(request({ limit: 100 }))
      expect(rest.length).toBe(onShard1Left)
      expect(store.shardHealth().every((h) => h.reachable)).toBe(true)
      // Every shard down: the claim fails and names them all.
      for (const s of states) s.down = true
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(store.claim(request()))
      expect(error.message).toMatch(/db-0/)
    })
  )

  it.effect("a shard that hangs holds back only its own jobs: a late claim's jobs go back unattempted", () =>
    Effect.gen(function* () {
      const stores = yield* Effect.all([MemoryStore.make, MemoryStore.make, MemoryStore.make])
      const shards = stores.map(hanging)
      const store = yield* ShardedStore.make(
        shards.map((s, shard) => ({ shard, store: s.service, name: `db-${shard}` })),
        { answerWithin: "2 seconds" }
      )
      const enqueued = yield* store.enqueue(
        Array.from({ length: 60 }, (_, i) => input({ partition: `t${i}` }))
      )
      const onShard1 = enqueued.filter((r) => shardOfId(r.id) === 1).map((r) => r.id)
      expect(onShard1.length).toBeGreaterThan(0)
      const first = yield* store.claim(request({ limit: 6 }))
      const held = first.filter((j) => shardOfId(j.id) === 1)
      const other = first.find((j) => shardOfId(j.id) === 0)!
      expect(held.length).toBeGreaterThan(0)

      shards[1]!.state.hang()
      // The claim answers with the other shards' jobs once shard 1 has had its 2 seconds.
      const claiming = yield* Effect.fork(store.claim(request({ limit: 100 })))
      yield* TestClock.adjust("2 seconds")
      const claimed = yield* Fiber.join(claiming)
      expect(claimed.length).toBe(60 - onShard1.length - (first.length - held.length))
      expect(claimed.every((j) => shardOfId(j.id) !== 1)).toBe(true)
      expect(store.shardHealth().map((h) => h.reachable)).toEqual([true, false, true])
      expect(store.shardHealth()[1]!.lastError).toContain("did not answer within 2s")
      // Heartbeats and settles spanning the hung shard answer for the others in time.
      const beating = yield* Effect.fork(
        store.heartbeat(
          "runner-a",
          [held[0]!, other].map((j) => ({ id: j.id, fence: j.fence })),
          30_000
        )
      )
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(beating)).toEqual([
        { id: held[0]!.id, held: true, cancelRequested: false },
        { id: other.id, held: true, cancelRequested: false }
      ])
      const settling = yield* Effect.fork(
        store.settle(
          [held[0]!, other].map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
        )
      )
      yield* TestClock.adjust("2 seconds")
      expect((yield* Fiber.join(settling)).map((r) => [r.applied, r.deferred ?? false])).toEqual([
        [false, true],
        [true, false]
      ])
      // Past its backoff, claims still leave it alone while its first claim is out.
      yield* TestClock.adjust("10 seconds")
      yield* store.claim(request({ limit: 100 }))
      expect(shards[1]!.state.claims).toBe(2)

      // It answers at last: the claim it was sent takes its waiting jobs, and hands them straight back.
      shards[1]!.state.wake()
      yield* Effect.yieldNow()
      const waiting = onShard1.filter((id) => !held.some((j) => j.id === id))
      for (const id of waiting) {
        const job = (yield* store.get(id))!
        expect([job.state, job.attempt]).toEqual(["available", 0])
      }
      const rest = yield* store.claim(request({ limit: 100 }))
      expect(rest.map((j) => j.id).sort()).toEqual([...waiting].sort())
      expect(rest.every((j) => j.attempt === 1)).toBe(true)
      expect(store.shardHealth().every((h) => h.reachable)).toBe(true)
    })
  )

  it.effect(
    "a runner refuses a lease with no room for a heartbeat that waits answerWithin for a hung shard",
    () =>
      Effect.gen(function* () {
        const Ping = Job.make("ping", { payload: Schema.Struct({}) })
        const store = (answerWithin: Duration.DurationInput) =>
          ShardedStore.layer(
            Effect.map(Effect.all([MemoryStore.make, MemoryStore.make]), (stores) =>
              stores.map((store, shard) => ({ shard, store }))
            ),
            { answerWithin }
          )
        const runner = (answerWithin: Duration.DurationInput) =>
          JobRunner.make(Job.handlers(Job.handle(Ping, () => Effect.void)), {
            leaseDuration: "3 seconds",
            heartbeatInterval: "1 second"
          }).pipe(Effect.scoped, Effect.provide(store(answerWithin)))
        // The default 5 s outlasts the 3 s lease: jobs on the healthy shard would lose theirs.
        const error = yield* Effect.flip(runner("5 seconds"))
        expect(error._tag).toBe("InvalidRunnerOptions")
        expect(error.message).toContain("answerWithin")
        expect(error.message).toContain("leaseDuration (3000 ms)")
        expect((yield* Effect.flip(runner("2 seconds")))._tag).toBe("InvalidRunnerOptions")
        yield* runner("1 second")
      })
  )

  it.effect(
    "every node prunes a sharded store's shards, leader or not; on one store only the leader does",
    () =>
      Effect.gen(function* () {
        const K = Job.make("k", { payload: Schema.Struct({ n: Schema.Number }) })
        const handlers = Job.handlers(Job.handle(K, () => Effect.void))
        const runnerOn = (store: JobStore.Service) =>
          Effect.gen(function* () {
            const scope = yield* Scope.make()
            yield* Layer.buildWithScope(
              JobRunner.layer(handlers, {
                queues: ["q"],
                pollInterval: "1 second",
                retention: { completed: "1 minute", interval: "1 minute" }
              }).pipe(
                Layer.provide(Layer.succeed(JobStore.JobStore, store)),
                // The leader's lock lives on a server that is down, or on another node.
                Layer.provide(Layer.succeed(Leader.Leader, Leader.fromConstant(false)))
              ),
              scope
            )
            return scope
          })
        const finishedThenPruned = (store: JobStore.Service) =>
          Effect.gen(function* () {
            yield* store.enqueue(
              Array.from({ length: 30 }, (_, n) => input({ payload: { n }, partition: `t${n}` }))
            )
            const scope = yield* runnerOn(store)
            yield* TestClock.adjust("2 seconds")
            const done = (yield* store.counts).find((c) => c.queue === "q" && c.state === "completed")
            expect(done?.count).toBe(30)
            for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 minute")
            yield* Scope.close(scope, Exit.void)
            return (yield* store.list({ states: ["completed"], limit: 100 })).jobs.length
          })
        const sharded = yield* threeMemoryShards
        expect(yield* finishedThenPruned(sharded)).toBe(0)
        expect(yield* finishedThenPruned(yield* MemoryStore.make)).toBe(30)
      })
  )

  it.effect("shard numbers must be unique whole numbers from 0 to 255", () =>
    Effect.gen(function* () {
      const memory = yield* MemoryStore.make
      expect((yield* Effect.flip(ShardedStore.make([]))).message).toContain("at least one shard")
      expect(
        (yield* Effect.flip(
          ShardedStore.make([
            { shard: 0, store: memory },
            { shard: 0, store: memory }
          ])
        )).message
      ).toContain("given twice")
      expect((yield* Effect.flip(ShardedStore.make([{ shard: 256, store: memory }]))).message).toContain(
        "from 0 to 255"
      )
    })
  )
})
