/**
 * Nightshift as a contestant: the PostgreSQL, SQLite and memory stores, with
 * the library's public API only (`JobQueue.enqueueMany`, `JobRunner.layer`)
 * and default runner settings apart from the concurrency; the
 * `nightshift-pg-prefetch` contestant also claims up to 500 jobs ahead
 * (`prefetch: 500`), the counterpart of graphile-worker's `localQueue` size
 * 500 in its perfTest settings.
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import pg from "pg"
import * as Job from "../../src/Job.js"
import * as JobQueue from "../../src/JobQueue.js"
import * as JobRunner from "../../src/JobRunner.js"
import type * as JobStore from "../../src/JobStore.js"
import * as MemoryStore from "../../src/MemoryStore.js"
import * as PgStore from "../../src/PgStore.js"
import * as SqliteStore from "../../src/SqliteStore.js"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver, OnJob } from "./driver.js"

const Noop = Job.make("bench_noop", { payload: Schema.Struct({ i: Schema.Number, t: Schema.Number }) })

export type Engine = "pg" | "pg-sharded" | "sqlite" | "memory"

const engineOf = (spec: ChildSpec): Engine =>
  spec.driver === "nightshift-pg" ||
  spec.driver === "nightshift-pg-prefetch" ||
  spec.driver === "nightshift-pg-keyed"
    ? "pg"
    : spec.driver === "nightshift-pg-sharded"
      ? "pg-sharded"
      : spec.driver === "nightshift-sqlite"
        ? "sqlite"
        : "memory"

/** The shards of `nightshift-pg-sharded`: `BENCH_SHARD_URLS`, comma-separated (set by bench/sharded.ts). */
const shardUrls = () => {
  const urls = process.env.BENCH_SHARD_URLS
  if (urls === undefined || urls === "") throw new Error("nightshift-pg-sharded needs BENCH_SHARD_URLS")
  return urls.split(",")
}

/** Keyed contestants give job i the partition key `p<i % 1000>` (what spreads jobs over shards). */
const keyed = (spec: ChildSpec) =>
  spec.driver === "nightshift-pg-keyed" || spec.driver === "nightshift-pg-sharded"
const itemOf = (spec: ChildSpec, i: number) =>
  JobQueue.item(Noop, { i, t: 0 }, keyed(spec) ? { partition: `p${i % 1000}` } : undefined)

export const sqliteFile = (spec: ChildSpec) => join(spec.tmpDir, `${spec.namespace}.db`)

export const storeLayer = (
  spec: ChildSpec,
  engine: Engine
): Layer.Layer<JobStore.JobStore, JobStore.JobStoreError> => {
  switch (engine) {
    case "pg":
      return PgStore.layerUrl(spec.databaseUrl, { schema: spec.namespace })
    case "pg-sharded":
      return PgStore.layerSharded(shardUrls(), { schema: spec.namespace })
    case "sqlite":
      return SqliteStore.layer({ filename: sqliteFile(spec) })
    case "memory":
      return MemoryStore.layer
  }
}

/** The SQL client the PostgreSQL and SQLite store layers provide beside the store. */
const withSql = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(Effect.serviceOption(SqlClient.SqlClient), (sql) =>
    Option.isSome(sql) ? f(sql.value) : Effect.dieMessage("this store has no SqlClient")
  )

/** Jobs completed: a count of the finished jobs' table's completed partitions (PG), or the store's queue counts. */
const completed = (
  spec: ChildSpec,
  engine: Engine
): Effect.Effect<number, JobStore.JobStoreError | SqlError, JobQueue.JobQueue> =>
  engine === "pg"
    ? withSql((sql) =>
        sql<{
          n: number
        }>`SELECT count(*)::int AS n FROM ${sql(spec.namespace)}.jobs_all WHERE state = 'completed'`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0)
        )
      )
    : Effect.map(JobQueue.JobQueue.pipe(Effect.flatMap((q) => q.counts)), (counts) =>
        counts.filter((c) => c.state === "completed").reduce((sum, c) => sum + c.count, 0)
      )

/**
 * Clone one enqueued job `n - 1` times in SQL, so a large backlog has exactly
 * the shape the library writes (every column but the id and the payload).
 */
const cloneInSql = (schema: string, n: number) =>
  Effect.gen(function* () {
    const [template] = yield* JobQueue.enqueueMany([JobQueue.item(Noop, { i: 0, t: 0 })])
    yield* withSql((sql) =>
      Effect.gen(function* () {
        const columns = (yield* sql<{ column_name: string }>`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = ${schema} AND table_name = 'jobs' AND column_name NOT IN ('id', 'payload')`).map(
          (r) => `"${r.column_name}"`
        )
        const list = columns.join(", ")
        yield* sql.unsafe(
          `INSERT INTO "${schema}".jobs (${list}, payload)
       SELECT ${list}, jsonb_build_object('i', g, 't', 0) FROM "${schema}".jobs, generate_series(1, $1::int - 1) AS g
       WHERE id = $2::bigint`,
          [n, template!.id]
        )
        yield* sql.unsafe(`ANALYZE "${schema}".jobs`)
        // The fill writes a large backlog's WAL in one statement; without a checkpoint here, the one
        // it triggers would run during the timed drain of the larger backlog only
        // (`BENCH_W5_NO_CHECKPOINT=1` leaves it out, to compare).
        if (process.env.BENCH_W5_NO_CHECKPOINT !== "1") yield* sql.unsafe("CHECKPOINT")
      })
    )
  })

/**
 * Runner options added to every Nightshift worker, from the JSON in
 * `BENCH_NIGHTSHIFT_OPTIONS` (for experiments with bench/ab.ts; unset in
 * `npm run bench`).
 */
const extraOptions = (): JobRunner.Options => {
  const json = process.env.BENCH_NIGHTSHIFT_OPTIONS
  return json === undefined || json === "" ? {} : (JSON.parse(json) as JobRunner.Options)
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const engine = engineOf(spec)
  const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(storeLayer(spec, engine))))
  let worker: Scope.CloseableScope | undefined

  const startWorker = (concurrency: number, onJob: OnJob) =>
    runtime.runPromise(
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const handlers = Job.handlers(Job.handle(Noop, ({ i, t }) => Effect.sync(() => onJob(i, t))))
        yield* Layer.buildWithScope(
          JobRunner.layer(handlers, {
            concurrency,
            ...(spec.driver === "nightshift-pg-prefetch" ? { prefetch: 500 } : {}),
            ...extraOptions()
          }),
          scope
        )
        worker = scope
      })
    )

  return {
    setup: () => runtime.runPromise(Effect.void),
    enqueueBulk: (n) =>
      runtime.runPromise(
        Effect.asVoid(JobQueue.enqueueMany(Array.from({ length: n }, (_, i) => itemOf(spec, i))))
      ),
    enqueueOne: (i, t) => runtime.runPromise(Effect.asVoid(JobQueue.enqueue(Noop, { i, t }))),
    startWorker,
    stopWorker: () =>
      worker === undefined ? Promise.resolve() : runtime.runPromise(Scope.close(worker, Exit.void)),
    committed: () => runtime.runPromise(completed(spec, engine)),
    fill: (n) =>
      engine === "pg"
        ? runtime.runPromise(cloneInSql(spec.namespace, n))
        : runtime.runPromise(
            Effect.asVoid(
              JobQueue.enqueueMany(Array.from({ length: n }, (_, i) => JobQueue.item(Noop, { i, t: 0 })))
            )
          ),
    teardown: async () => {
      if (engine === "pg") {
        await runtime.runPromise(withSql((sql) => sql`DROP SCHEMA IF EXISTS ${sql(spec.namespace)} CASCADE`))
      }
      if (engine === "pg-sharded") {
        for (const url of shardUrls()) {
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          await client.query(`DROP SCHEMA IF EXISTS "${spec.namespace}" CASCADE`)
          await client.end()
        }
      }
      await runtime.dispose()
      if (engine === "sqlite") {
        for (const suffix of ["", "-wal", "-shm"]) rmSync(`${sqliteFile(spec)}${suffix}`, { force: true })
      }
    }
  }
}
