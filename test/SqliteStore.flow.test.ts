/**
 * SqliteStore flow control across connections: stores on one file (two in
 * this process, then three processes) claim concurrently under a global
 * limit and a per-partition limit, and no committed state ever holds more
 * running jobs than the limits allow.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FlowControl from "../src/FlowControl.js"
import * as JobStore from "../src/JobStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { srcDir, startChild as startSqliteChild } from "./fixtures/sqliteChild.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nightshift-sqlite-flow-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempFile = () => path.join(dir, `flow-${++files}.db`)

const kind = "limited"
const global = 5
const perPartition = 2
const partitions = ["a", "b", "c", "d"]
const limits = FlowControl.toRule("kind", kind, { concurrency: { global, perPartition } })

const seed = (store: JobStore.Service, perKey: number) =>
  Effect.gen(function* () {
    yield* store.declareLimits([limits])
    const results = yield* store.enqueue(
      Array.from({ length: perKey * partitions.length }, (_, i) => ({
        kind,
        queue: "q",
        payload: { i },
        priority: 0,
        maxAttempts: 3,
        partition: partitions[i % partitions.length]
      }))
    )
    return results.map((r) => r.id)
  })

/** The most jobs of the kind running in all, and in one partition, in one snapshot of the file. */
const running = (store: JobStore.Service) =>
  Effect.map(store.flowState({ due: false }), (state) => {
    const mine = state.running.filter((g) => g.kind === kind)
    const byKey = new Map<string, number>()
    for (const g of mine) {
      if (g.partition !== null) byKey.set(g.partition, (byKey.get(g.partition) ?? 0) + g.running)
    }
    return { total: mine.reduce((n, g) => n + g.running, 0), perKey: Math.max(0, ...byKey.values()) }
  })

const request = (owner: string): JobStore.ClaimRequest => ({
  queues: ["q"],
  kinds: [kind],
  limit: 4,
  leaseMs: 600_000,
  owner
})

describe("SqliteStore flow-controlled claim", () => {
  const store = SqliteStore.layer({ filename: ":memory:" })
  const job = (overrides: Partial<JobStore.EnqueueInput>): JobStore.EnqueueInput => ({
    kind: "k",
    queue: "q",
    payload: null,
    priority: 0,
    maxAttempts: 3,
    ...overrides
  })

  it.effect("a claim of several queues fills the batch queue by queue, best due job first", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      // "keyed" has jobs with keys (claimed fairly); "plain" has none, and the best job.
      yield* s.enqueue([
        job({ queue: "keyed", partition: "x" }),
        job({ queue: "keyed", partition: "x" }),
        job({ queue: "keyed", partition: "y" })
      ])
      const [urgent, second] = yield* s.enqueue([
        job({ queue: "plain", priority: -1 }),
        job({ queue: "plain", priority: -1 })
      ])
      const jobs = yield* s.claim({
        queues: ["keyed", "plain"],
        kinds: ["k"],
        limit: 4,
        leaseMs: 60_000,
        owner: "o"
      })
      expect(jobs.map((j) => j.queue).sort()).toEqual(["keyed", "keyed", "plain", "plain"])
      expect(jobs.filter((j) => j.queue === "plain").map((j) => j.id)).toEqual([urgent!.id, second!.id])
      // One job of each key: x's second waits for the next claim.
      expect(
        jobs
          .filter((j) => j.queue === "keyed")
          .map((j) => j.partition)
          .sort()
      ).toEqual(["x", "y"])
      const rest = yield* s.claim({
        queues: ["keyed", "plain"],
        kinds: ["k"],
        limit: 4,
        leaseMs: 60_000,
        owner: "o"
      })
      expect(rest.map((j) => j.partition)).toEqual(["x"])
    }).pipe(Effect.provide(store))
  )

  const keyName = (i: number) => `p${String(i).padStart(3, "0")}`
  const partitionsOf = (jobs: ReadonlyArray<JobStore.JobRecord>) => jobs.map((j) => j.partition!)

  it.effect("claims go round many keys in turn: every key once before any key twice", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      yield* s.enqueue(
        Array.from({ length: 300 }, (_, i) => job({ kind: "ring", partition: keyName(i % 150) }))
      )
      const claim = s.claim({ queues: ["q"], kinds: ["ring"], limit: 40, leaseMs: 60_000, owner: "o" })
      const first = [...(yield* claim), ...(yield* claim), ...(yield* claim)]
      expect(new Set(partitionsOf(first)).size).toBe(120)
      const fourth = partitionsOf(yield* claim)
      expect(fourth).toHaveLength(40)
      const counts = new Map<string, number>()
      for (const key of [...partitionsOf(first), ...fourth]) counts.set(key, (counts.get(key) ?? 0) + 1)
      // The last 30 keys, then round again from the first: 10 keys have their second job.
      expect(counts.size).toBe(150)
      expect([...counts.values()].filter((n) => n === 2)).toHaveLength(10)
      expect(fourth.filter((key) => counts.get(key) === 2).sort()).toEqual(
        Array.from({ length: 10 }, (_, i) => keyName(i))
      )
    }).pipe(Effect.provide(store))
  )

  it.effect("keys held back at their limit are stepped over, and a later claim finds the ones freed", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      yield* s.declareLimits([FlowControl.toRule("kind", "held", { concurrency: { perPartition: 1 } })])
      yield* s.enqueue(
        Array.from({ length: 300 }, (_, i) => job({ kind: "held", partition: keyName(i % 100) }))
      )
      const claim = s.claim({ queues: ["q"], kinds: ["held"], limit: 30, leaseMs: 60_000, owner: "o" })
      const taken: Array<JobStore.JobRecord> = []
      for (let i = 0; i < 4; i++) taken.push(...(yield* claim))
      expect(taken).toHaveLength(100)
      expect(new Set(partitionsOf(taken)).size).toBe(100)
      expect(yield* claim).toEqual([])
      // Free keys p000 … p009: the next claims find exactly them, one job each.
      yield* s.settle(
        taken
          .filter((j) => j.partition! < keyName(10))
          .map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } as const }))
      )
      const again = [...(yield* claim), ...(yield* claim)]
      expect(partitionsOf(again).sort()).toEqual(Array.from({ length: 10 }, (_, i) => keyName(i)))
    }).pipe(Effect.provide(store))
  )

  it.effect("under a global limit a claim takes exactly the room left, one job per key", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      yield* s.declareLimits([FlowControl.toRule("kind", "room", { concurrency: { global: 7 } })])
      yield* s.enqueue(
        Array.from({ length: 200 }, (_, i) => job({ kind: "room", partition: keyName(i % 100) }))
      )
      const claim = s.claim({ queues: ["q"], kinds: ["room"], limit: 50, leaseMs: 60_000, owner: "o" })
      const first = yield* claim
      expect(new Set(partitionsOf(first)).size).toBe(7)
      expect(yield* claim).toEqual([])
      yield* s.settle(
        first.slice(0, 3).map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
      )
      const next = partitionsOf(yield* claim)
      // The ring goes on after the last key served.
      expect(next.sort()).toEqual([keyName(7), keyName(8), keyName(9)])
    }).pipe(Effect.provide(store))
  )

  it.effect(
    "a keyed job whose fence is exhausted is discarded by the flow-controlled claim and counts no start",
    () =>
      Effect.gen(function* () {
        const s = yield* JobStore.JobStore
        const sql = yield* SqlClient.SqlClient
        yield* s.declareLimits([FlowControl.toRule("kind", "k", { rateLimit: { limit: 1, per: "1 hour" } })])
        const [worn, fresh] = yield* s.enqueue([job({ partition: "p" }), job({ partition: "p" })])
        yield* sql`UPDATE nightshift_jobs SET fence = ${JobStore.maxCounter} WHERE id = ${Number(worn!.id)}`
        const claimed = yield* s.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 60_000, owner: "o" })
        expect(claimed).toEqual([])
        expect((yield* s.get(worn!.id))?.state).toBe("discarded")
        // The discard used no start of the rate limit: the next job starts.
        const next = yield* s.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 60_000, owner: "o" })
        expect(next.map((j) => j.id)).toEqual([fresh!.id])
      }).pipe(Effect.provide(store))
  )
})

describe("SqliteStore flow control across connections", () => {
  it.effect(
    "two stores on one file interleave claims and never exceed the global or per-partition limit",
    () =>
      Effect.gen(function* () {
        const filename = yield* Effect.sync(tempFile)
        const program = Effect.gen(function* () {
          const a = yield* JobStore.JobStore
          return yield* Effect.gen(function* () {
            const b = yield* JobStore.JobStore
            const ids = yield* seed(a, 6)
            const stores = [a, b]
            const held: Array<ReadonlyArray<JobStore.JobRecord>> = [[], []]
            const claimed: Array<string> = []
            let most = { total: 0, perKey: 0 }
            for (let round = 0; claimed.length < ids.length && round < 200; round++) {
              const i = round % 2
              const store = stores[i]!
              const jobs = yield* store.claim(request(`store-${i}`))
              claimed.push(...jobs.map((j) => j.id))
              const now = yield* running(store)
              most = { total: Math.max(most.total, now.total), perKey: Math.max(most.perKey, now.perKey) }
              expect(now.total).toBeLessThanOrEqual(global)
              expect(now.perKey).toBeLessThanOrEqual(perPartition)
              // Each store finishes what it held before this claim, so the other's claims meet running jobs.
              yield* store.settle(
                held[i]!.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } as const }))
              )
              held[i] = jobs
            }
            expect([...claimed].sort()).toEqual([...ids].sort())
            // The limits were reached, so they were what held the claims back.
            expect(most).toEqual({ total: global, perKey: perPartition })
          }).pipe(Effect.provide(SqliteStore.layer({ filename })))
        })
        yield* program.pipe(Effect.provide(SqliteStore.layer({ filename })))
      })
  )
})

/**
 * A child process that claims the limited kind in a loop until every job
 * is done: it claims at most two jobs at a time, reads how many jobs run
 * (keeping the most it saw), holds its jobs for a moment with the write lock
 * free, and finishes them before it claims again. One process never holds
 * more than two jobs, so the other two together hold at most four and a
 * claim while jobs are due always meets a free place under the global limit
 * of five: no process can be starved by the others' tight loops, and five
 * running at once means all three held jobs together.
 */
const childScript = `
import * as Effect from "effect/Effect"
import * as JobStore from ${JSON.stringify(path.join(srcDir, "JobStore.ts"))}
import * as SqliteStore from ${JSON.stringify(path.join(srcDir, "SqliteStore.ts"))}
import { once } from "node:events"
const kind = ${JSON.stringify(kind)}
const program = Effect.gen(function* () {
  const store = yield* JobStore.JobStore
  console.log("ready")
  yield* Effect.promise(() => once(process.stdin, "data"))
  const claimed = []
  let most = { total: 0, perKey: 0 }
  for (let idle = 0; idle < 400; ) {
    const jobs = yield* store.claim({ queues: ["q"], kinds: [kind], limit: 2, leaseMs: 600000, owner: String(process.pid) })
    claimed.push(...jobs.map((j) => j.id))
    const state = yield* store.flowState({ due: true })
    const mine = state.running.filter((g) => g.kind === kind)
    const byKey = new Map()
    for (const g of mine) if (g.partition !== null) byKey.set(g.partition, (byKey.get(g.partition) ?? 0) + g.running)
    const total = mine.reduce((n, g) => n + g.running, 0)
    most = { total: Math.max(most.total, total), perKey: Math.max(most.perKey, ...byKey.values()) }
    if (jobs.length === 0) {
      const due = state.due.filter((g) => g.kind === kind).reduce((n, g) => n + g.due, 0)
      if (due === 0 && total === 0) break
      idle++
      yield* Effect.sleep("5 millis")
      continue
    }
    yield* Effect.sleep("2 millis")
    yield* store.settle(jobs.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } })))
  }
  console.log(JSON.stringify({ claimed, most }))
})
Effect.runPromise(Effect.provide(program, SqliteStore.layer({ filename: process.env.NIGHTSHIFT_FILE }))).then(
  () => process.exit(0),
  (e) => { console.error(e); process.exit(1) }
)
`

interface ChildResult {
  readonly claimed: ReadonlyArray<string>
  readonly most: { readonly total: number; readonly perKey: number }
}

const startChild = (filename: string) => startSqliteChild<ChildResult>(childScript, filename)

describe("SqliteStore flow control across processes", () => {
  it.live(
    "three processes claiming on one file never exceed the global or per-partition limit, and every job runs once",
    () =>
      Effect.gen(function* () {
        const filename = tempFile()
        const children = [startChild(filename), startChild(filename), startChild(filename)]
        yield* Effect.promise(() => Promise.all(children.map((c) => c.ready)))
        const ids = yield* Effect.flatMap(JobStore.JobStore, (store) => seed(store, 40)).pipe(
          Effect.provide(SqliteStore.layer({ filename }))
        )
        for (const c of children) c.go()
        const results = yield* Effect.promise(() => Promise.all(children.map((c) => c.done)))
        const claimed = results.flatMap((r) => r.claimed)
        expect([...claimed].sort()).toEqual([...ids].sort())
        for (const r of results) {
          expect(r.most.total).toBeLessThanOrEqual(global)
          expect(r.most.perKey).toBeLessThanOrEqual(perPartition)
        }
        // Every process took part, and all three held jobs at once (one holds at most two).
        for (const r of results) expect(r.claimed.length).toBeGreaterThan(0)
        expect(Math.max(...results.map((r) => r.most.total))).toBe(global)
      }),
    60_000
  )
})
