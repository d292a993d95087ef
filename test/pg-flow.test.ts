/**
 * PostgreSQL flow control across real processes.
 *
 * Four node processes (test/fixtures/pg-flow-node.ts) claim from one queue
 * in a loop, each on its own store and connections, under a rule of
 * `global: 5, perPartition: 2`. Meanwhile a sampler connection reads the
 * running jobs per partition key in one statement (one snapshot) over and
 * over. Each process reports, per job, an interval inside the job's real
 * running time (from its claim's return to just before its settle), so the
 * audit's overlaps happened for real. The scenario runs once; each test
 * checks one guarantee in what was recorded.
 */
import * as Path from "node:path"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { beforeAll, describe, expect, it } from "vitest"
import * as FlowControl from "../src/FlowControl.js"
import { migrations } from "../src/internal/pg/schema.js"
import type * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import { type Node, spawnFixture } from "./setup/nodes.js"
import { clientLayer, databaseUrl, dropSchema, freshSchema } from "./setup/pg.js"

const fixture = Path.join(import.meta.dirname, "fixtures", "pg-flow-node.ts")
const globalLimit = 5
const perPartition = 2
const nodes = 4

/** Three keys with a backlog, sixteen small ones, and jobs without a key. */
const keyOf = (i: number): string | undefined =>
  i % 10 < 6 ? ["a", "b", "c"][i % 3] : i % 10 < 9 ? `t${i % 16}` : undefined
const total = 500

const spawnNode = (schema: string, name: string) =>
  spawnFixture(fixture, name, { DATABASE_URL: databaseUrl(), NS_SCHEMA: schema, NS_NODE: name })

/** The most intervals open at once: ends sort before starts at the same instant. */
const maxOverlap = (intervals: ReadonlyArray<readonly [number, number]>) => {
  const events = intervals.flatMap(([from, to]) => [
    [from, 1],
    [to, -1]
  ])
  events.sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!)
  let open = 0
  let most = 0
  for (const [, delta] of events) {
    open += delta!
    most = Math.max(most, open)
  }
  return most
}

const scenario = Effect.gen(function* () {
  const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
  const sql = Context.get(context, SqlClient.SqlClient)
  const client = Context.get(context, PgClient.PgClient)
  const schema = freshSchema("flowmp")
  yield* Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
  yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  yield* sql.unsafe(`CREATE TABLE ${schema}.runs (job_id bigint, node text, partition text, attempt integer,
    claimed_at float8, settling_at float8)`)
  const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
    Effect.provideService(PgClient.PgClient, client)
  )
  yield* store.declareLimits([
    FlowControl.toRule("queue", "flow", { concurrency: { global: globalLimit, perPartition } })
  ])
  yield* store.enqueue(
    Array.from({ length: total }, (_, i) => ({
      kind: "fw",
      queue: "flow",
      payload: { i },
      priority: 0,
      maxAttempts: 3,
      partition: keyOf(i)
    }))
  )

  // The sampler: running jobs per key, read in one statement (one snapshot).
  const samples: Array<{ total: number; perKey: number }> = []
  const sampler = yield* Effect.fork(
    Effect.forever(
      Effect.map(
        sql<{ p: string | null; n: number }>`SELECT partition_key AS p, count(*)::int AS n
          FROM ${sql(`${schema}.jobs`)} WHERE state = 'running' AND lease_expires_at > now()
          GROUP BY partition_key`,
        (rows) => {
          samples.push({
            total: rows.reduce((n, r) => n + r.n, 0),
            perKey: Math.max(0, ...rows.filter((r) => r.p !== null).map((r) => r.n))
          })
        }
      )
    )
  )

  const running: Array<Node> = []
  for (let n = 1; n <= nodes; n++) running.push(yield* spawnNode(schema, `n${n}`))
  const codes = yield* Effect.promise(() =>
    Promise.race([
      Promise.all(running.map((node) => node.exited)),
      new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 240_000))
    ])
  )
  yield* Fiber.interrupt(sampler)
  if (codes === "timeout" || codes.some((code) => code !== 0)) {
    for (const node of running) console.error(`--- ${node.name} ---\n${node.output()}`)
  }
  return {
    codes,
    samples,
    states: yield* sql<{ state: string; attempt: number; n: number }>`
      SELECT state, attempt, count(*)::int AS n FROM ${sql(`${schema}.jobs_all`)} GROUP BY state, attempt`,
    runs: yield* sql<{ job_id: string; node: string; partition: string | null; from: number; to: number }>`
      SELECT job_id::text, node, partition, claimed_at AS "from", settling_at AS "to" FROM ${sql(`${schema}.runs`)}`
  }
}).pipe(Effect.scoped)

type Report = Effect.Effect.Success<typeof scenario>

describe(`PostgreSQL flow control, ${nodes} claiming processes, global ${globalLimit}, perPartition ${perPartition}`, () => {
  let r: Report
  beforeAll(async () => {
    r = await Effect.runPromise(scenario)
    const most = Math.max(...r.samples.map((s) => s.total))
    console.log(
      `${r.samples.length} samples, most running ${most} (per key ${Math.max(...r.samples.map((s) => s.perKey))}); audit overlap ${maxOverlap(r.runs.map((x) => [x.from, x.to]))}`
    )
  }, 300_000)

  it("every process ran to the end and every job completed, once", () => {
    expect(r.codes).toEqual(Array.from({ length: nodes }, () => 0))
    expect(r.states).toEqual([{ state: "completed", attempt: 1, n: total }])
    expect(r.runs).toHaveLength(total)
    expect(new Set(r.runs.map((x) => x.job_id)).size).toBe(total)
  })

  it("the work was spread over the processes", () => {
    expect(new Set(r.runs.map((x) => x.node)).size).toBeGreaterThanOrEqual(2)
  })

  it("no sample saw more than global running, nor more than perPartition of one key", () => {
    expect(r.samples.length).toBeGreaterThan(20)
    // The limits were reached, so they were put to the test.
    expect(Math.max(...r.samples.map((s) => s.total))).toBeGreaterThanOrEqual(3)
    for (const sample of r.samples) {
      expect(sample.total).toBeLessThanOrEqual(globalLimit)
      expect(sample.perKey).toBeLessThanOrEqual(perPartition)
    }
  })

  it("no instant in the processes' own reports had more running than the limits allow", () => {
    expect(maxOverlap(r.runs.map((x) => [x.from, x.to]))).toBeLessThanOrEqual(globalLimit)
    const byKey = new Map<string, Array<readonly [number, number]>>()
    for (const x of r.runs) {
      if (x.partition === null) continue
      byKey.set(x.partition, [...(byKey.get(x.partition) ?? []), [x.from, x.to]])
    }
    expect(byKey.size).toBe(19)
    for (const [key, intervals] of byKey) {
      expect(maxOverlap(intervals), `key ${key}`).toBeLessThanOrEqual(perPartition)
    }
  })
})

describe("PostgreSQL flow control, migration 6 next to nodes on the previous version", () => {
  it("a node still on migration 5's statements enqueues (without keys) and claims (with claim_rows) as before", async () => {
    const program = Effect.gen(function* () {
      const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const client = Context.get(context, PgClient.PgClient)
      const schema = freshSchema("flowmig")
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      yield* sql`CREATE SCHEMA ${sql(schema)}`
      const upTo5 = yield* Migrator.make({})({
        loader: Effect.map(migrations(schema), (all) => all.filter(([id]) => id <= 5)),
        table: `${schema}.migrations`
      }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      expect(upTo5.map(([id]) => id)).toEqual([1, 2, 3, 4, 5])
      expect(
        yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      ).toEqual([
        [6, "flow_control"],
        [7, "retryable_index"],
        [8, "finished_jobs"],
        [9, "keyed_probe_by_index"],
        [10, "settle_function"],
        [11, "global_shard_room_first"],
        [12, "running_key_indexes_keyed_only"],
        [13, "one_due_index_for_unkeyed_jobs"],
        [14, "enqueue_shared_batch"],
        [15, "paced_rate_limits"]
      ])
      const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      // The previous release's enqueue document: ten positions, no partition key.
      const [old] = yield* sql<{ ids: string }>`SELECT ids FROM ${sql(`${schema}.enqueue`)}(
        ${JSON.stringify([["k", "q", { n: 1 }, 0, 3, null, null, null, null, null]])}::jsonb, now(), false)`
      const [keyed] = yield* store.enqueue([
        { kind: "k", queue: "q", payload: {}, priority: 0, maxAttempts: 3, partition: "t" }
      ])
      expect((yield* store.get(old!.ids))!.partition).toBeNull()
      expect((yield* store.get(keyed!.id))!.partition).toBe("t")
      // The previous release's claim: claim_rows, which knows no keys and no rules.
      const claimed = yield* sql<{ id: string }>`SELECT id FROM ${sql(`${schema}.claim_rows`)}(
        ${["k"]}::text[], ${["q"]}::text[], 10, 'old-node', 30000::float8, now())`
      expect(claimed.map((r) => r.id).sort()).toEqual([old!.ids, keyed!.id].sort())
      expect(
        yield* store.claim({ queues: ["q"], kinds: ["k"], limit: 10, leaseMs: 30_000, owner: "new-node" })
      ).toEqual([])
    }).pipe(Effect.scoped)
    await Effect.runPromise(program)
  })
})

describe("PostgreSQL global limits over shards", () => {
  it("a global limit lowered while jobs run under more shards still caps the running jobs", async () => {
    const program = Effect.gen(function* () {
      const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const client = Context.get(context, PgClient.PgClient)
      const schema = freshSchema("flowshard")
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      const claim = (limit: number) =>
        store.claim({ queues: ["q"], kinds: ["k"], limit, leaseMs: 60_000, owner: "r" })
      const declare = (global: number) =>
        store.declareLimits([FlowControl.toRule("queue", "q", { concurrency: { global } })])
      yield* store.enqueue(
        Array.from({ length: 300 }, (_, i) => ({
          kind: "k",
          queue: "q",
          payload: {},
          priority: 0,
          maxAttempts: 3,
          partition: `t${i % 30}`
        }))
      )
      // 100 over 4 shards of 25.
      yield* declare(100)
      const first: Array<JobStore.JobRecord> = []
      for (let i = 0; i < 10; i++) first.push(...(yield* claim(25)))
      expect(first).toHaveLength(100)
      const shards = yield* sql<{ shard: number; n: number }>`SELECT flow_shard AS shard, count(*)::int AS n
        FROM ${sql(`${schema}.jobs`)} WHERE state = 'running' GROUP BY flow_shard ORDER BY flow_shard`
      expect(shards).toEqual([0, 1, 2, 3].map((shard) => ({ shard, n: 25 })))
      // Lowered to 50 over 2 shards: the jobs of shards 2 and 3 count against both.
      yield* declare(50)
      expect(yield* claim(25)).toEqual([])
      const settle = (jobs: ReadonlyArray<JobStore.JobRecord>) =>
        store.settle(
          jobs.map((job) => ({ id: job.id, fence: job.fence, outcome: { _tag: "completed" as const } }))
        )
      yield* settle(first.slice(0, 60))
      // 40 still run; at most 10 more may start, however they are claimed.
      const more: Array<JobStore.JobRecord> = []
      for (let i = 0; i < 6; i++) more.push(...(yield* claim(25)))
      expect(more.length).toBeLessThanOrEqual(10)
      const [running] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.jobs`)}
        WHERE state = 'running'`
      expect(running!.n).toBeLessThanOrEqual(50)
      // Once the old jobs finish, the full 50 run again.
      yield* settle([...first.slice(60), ...more])
      const again: Array<JobStore.JobRecord> = []
      for (let i = 0; i < 6; i++) again.push(...(yield* claim(25)))
      expect(again).toHaveLength(50)
    }).pipe(Effect.scoped)
    await Effect.runPromise(program)
  })
})

describe("PostgreSQL flowState", () => {
  it("reads one snapshot on its own, and works inside the application's transaction too", async () => {
    const program = Effect.gen(function* () {
      const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const client = Context.get(context, PgClient.PgClient)
      const schema = freshSchema("flowstate")
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      yield* store.declareLimits([FlowControl.toRule("kind", "k", { concurrency: { perPartition: 1 } })])
      yield* store.enqueue([
        { kind: "k", queue: "q", payload: {}, priority: 0, maxAttempts: 3, partition: "t" }
      ])
      const alone = yield* store.flowState({ due: true })
      expect(alone.due).toEqual([{ queue: "q", kind: "k", partition: "t", due: 1 }])
      // In the caller's transaction, after it already ran a statement.
      const inside = yield* sql`SELECT 1`.pipe(
        Effect.zipRight(store.flowState({ due: true })),
        sql.withTransaction,
        Effect.provideService(SqlClient.SqlClient, sql)
      )
      expect(inside.due).toEqual(alone.due)
      expect(inside.rules).toEqual(alone.rules)
    }).pipe(Effect.scoped)
    await Effect.runPromise(program)
  })
})

describe("PostgreSQL flow control over several queues and kinds", () => {
  it("a claim of several queues fills the batch queue by queue, each under its own rules", async () => {
    const program = Effect.gen(function* () {
      const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const client = Context.get(context, PgClient.PgClient)
      const schema = freshSchema("flowmulti")
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      yield* store.declareLimits([
        FlowControl.toRule("queue", "limited", { concurrency: { perPartition: 1 } }),
        FlowControl.toRule("kind", "capped", { concurrency: { global: 2 } })
      ])
      const job = (queue: string, kind: string, partition?: string, priority = 0) => ({
        kind,
        queue,
        payload: {},
        priority,
        maxAttempts: 3,
        partition
      })
      yield* store.enqueue([
        ...Array.from({ length: 4 }, () => job("limited", "free", "a")),
        ...Array.from({ length: 4 }, () => job("limited", "free", "b")),
        ...Array.from({ length: 5 }, () => job("plain", "free", undefined, 1)),
        ...Array.from({ length: 5 }, () => job("plain", "capped", undefined, 1))
      ])
      const claimed = yield* store.claim({
        queues: ["plain", "limited"],
        kinds: ["free", "capped"],
        limit: 20,
        leaseMs: 60_000,
        owner: "r"
      })
      const count = (f: (j: JobStore.JobRecord) => boolean) => claimed.filter(f).length
      // One of each key in "limited"; every free job of "plain" and two capped ones.
      expect(count((j) => j.queue === "limited" && j.partition === "a")).toBe(1)
      expect(count((j) => j.queue === "limited" && j.partition === "b")).toBe(1)
      expect(count((j) => j.queue === "plain" && j.kind === "free")).toBe(5)
      expect(count((j) => j.kind === "capped")).toBe(2)
      expect(claimed).toHaveLength(9)
      // Held back, untouched.
      const [untouched] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.jobs`)}
        WHERE state = 'available' AND attempt = 0 AND fence = 0`
      expect(untouched!.n).toBe(18 - 9)
    }).pipe(Effect.scoped)
    await Effect.runPromise(program)
  })
})
