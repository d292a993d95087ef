/**
 * What only the PostgreSQL engine owes, tested on a real server: migrations
 * under concurrency, the database clock, the claim index, bulk enqueue with
 * coalesced notifications, transactional enqueue, a listener that survives
 * its connection, and cross-node cancel hints. The shared behaviour is in
 * test/PgStore.conformance.test.ts.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Ctx from "../src/internal/pg/context.js"
import * as Direct from "../src/internal/pg/direct.js"
import * as Functions from "../src/internal/pg/functions.js"
import * as Jobs from "../src/internal/pg/jobs.js"
import { columns } from "../src/internal/pg/rows.js"
import { messageOf } from "../src/internal/pg/schema.js"
import * as Wakeups from "../src/internal/pg/wakeups.js"
import * as Core from "../src/internal/store/core.js"
import * as Hints from "../src/internal/store/hints.js"
import * as Open from "../src/internal/store/open.js"
import * as Target from "../src/internal/store/target.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import * as Store from "../src/Store.js"
import {
  clientLayer,
  databaseUrl,
  dropSchema,
  eventually,
  freshSchema,
  migrateFurther,
  migrateUpTo
} from "./setup/pg.js"

/** A node: its own pool and (unless told otherwise) its own store on `schema`. */
const node = (schema: string, options: PgStore.Options = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 8 }))
    const client = Context.get(context, PgClient.PgClient)
    const store = yield* PgStore.make({ schema, listenerHeartbeat: "200 millis", ...options }).pipe(
      Effect.provideService(PgClient.PgClient, client)
    )
    return { store, client, sql: client.withoutTransforms() }
  })

/** A fresh migrated schema and a first node on it; the schema is dropped afterwards. */
const setup = (label: string, options: PgStore.Options = {}) =>
  Effect.gen(function* () {
    const schema = freshSchema(label)
    const first = yield* node(schema, options)
    yield* Effect.addFinalizer(() =>
      dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, first.sql))
    )
    return { schema, ...first }
  })

const input = (overrides: Partial<JobStore.EnqueueInput> = {}): JobStore.EnqueueInput => ({
  kind: "k",
  queue: "q",
  payload: { n: 1 },
  priority: 0,
  maxAttempts: 3,
  ...overrides
})

const dbNow = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ now: number }>`SELECT floor(extract(epoch from clock_timestamp()) * 1000)::float8 AS now`,
    (rows) => rows[0]!.now
  )

/** A clock `offsetMs` ahead of the real one, as a node with a wrong clock would have. */
const skewed = (offsetMs: number): Clock.Clock => {
  const live = Clock.make()
  const millis = () => live.unsafeCurrentTimeMillis() + offsetMs
  const nanos = () => live.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    unsafeCurrentTimeNanos: nanos,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => live.sleep(duration)
  }
}

/**
 * Watch the raw notifications of a schema's channel on a connection of its
 * own. `settle` sends a marker and waits for it, so that everything notified
 * before it has arrived; it returns the payloads seen so far (heartbeats left out).
 */
const observe = (schema: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 2 }))
    const client = Context.get(context, PgClient.PgClient)
    const seen = yield* Ref.make<ReadonlyArray<string>>([])
    const channel = `${schema}_wakeup`
    yield* client.listen(channel).pipe(
      Stream.runForEach((payload) => Ref.update(seen, (all) => [...all, payload])),
      Effect.forkScoped
    )
    let markers = 0
    const settle = Effect.gen(function* () {
      const marker = `marker-${++markers}`
      yield* eventually(
        `marker ${marker} arrives`,
        Effect.gen(function* () {
          yield* client`SELECT pg_notify(${channel}, ${marker})`
          yield* Effect.sleep("20 millis")
          return (yield* Ref.get(seen)).includes(marker)
        })
      )
      return (yield* Ref.get(seen)).filter((p) => !p.startsWith("marker-") && !p.includes('"t":"h"'))
    })
    yield* settle
    return { settle, reset: Ref.set(seen, []) }
  })

/** Subscribe to `wakeups` and repeat `trigger` until a matching hint arrives. */
const awaitHint = <E, R>(
  store: JobStore.Service,
  match: (w: JobStore.Wakeup) => boolean,
  trigger: Effect.Effect<unknown, E, R>
) =>
  Effect.gen(function* () {
    const fiber = yield* store.wakeups.pipe(Stream.filter(match), Stream.runHead, Effect.fork)
    for (let i = 0; i < 200; i++) {
      yield* trigger
      yield* Effect.sleep("50 millis")
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return Option.getOrUndefined(yield* done.value)
    }
    yield* Fiber.interrupt(fiber)
    return undefined
  })

describe("PgStore migrations", () => {
  it.live("several processes migrating one schema at once: one applies, the others find nothing to do", () =>
    Effect.gen(function* () {
      const schema = freshSchema("mig")
      const migrateOnOwnPool = PgStore.migrate({ schema }).pipe(
        Effect.provide(clientLayer({ maxConnections: 2 }))
      )
      const results = yield* Effect.all(
        Array.from({ length: 4 }, () => migrateOnOwnPool),
        {
          concurrency: "unbounded"
        }
      )
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      expect(results.filter((r) => r.length > 0)).toEqual([
        [
          [1, "create_jobs"],
          [2, "hot_path_functions"],
          [3, "claim_by_queue"],
          [4, "claim_skips_exhausted_rows"],
          [5, "fewer_steps_per_statement"],
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
        ]
      ])
      const rows = yield* sql<{
        migration_id: number
      }>`SELECT migration_id FROM ${sql(`${schema}.migrations`)}`
      expect(rows.map((r) => r.migration_id).sort((a, b) => a - b)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
      ])
      expect(yield* PgStore.migrate({ schema })).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(clientLayer({ maxConnections: 2 })))
  )

  it.live("a node on an up-to-date schema starts without waiting for the migration lock", () =>
    Effect.gen(function* () {
      const { schema, sql } = yield* setup("current")
      // Another session holds the lock a migrating node takes (as a node applying an upgrade would).
      const held = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      yield* sql
        .withTransaction(
          Effect.zipRight(
            sql`SELECT pg_advisory_xact_lock(hashtextextended(${`nightshift.migrate:${schema}`}, 0))`,
            Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release))
          )
        )
        .pipe(Effect.forkScoped)
      yield* Deferred.await(held)
      const ran = yield* PgStore.migrate({ schema }).pipe(
        Effect.provide(clientLayer({ maxConnections: 2 })),
        Effect.timeoutFail({
          duration: "10 seconds",
          onTimeout: () => new Error("the migration check waited for the lock")
        })
      )
      expect(ran).toEqual([])
      yield* Deferred.succeed(release, undefined)
    }).pipe(Effect.scoped)
  )

  it.live("the store lives in the schema it is given, and a bad schema name is refused before any SQL", () =>
    Effect.gen(function* () {
      const { schema, sql } = yield* setup("own")
      const tables = yield* sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema} ORDER BY table_name`
      expect(tables.map((t) => t.table_name)).toEqual([
        "cron_slots",
        "done_partitions",
        "flow_rules",
        "flow_starts",
        "jobs",
        "jobs_all",
        "jobs_done",
        "jobs_done_cancelled",
        "jobs_done_cancelled_default",
        "jobs_done_completed",
        "jobs_done_completed_default",
        "jobs_done_discarded",
        "jobs_done_discarded_default",
        "leaders",
        "migrations",
        "paused_queues"
      ])
      for (const bad of ["Nightshift", "x; DROP TABLE y", "1abc", "", "a".repeat(49)]) {
        const exit = yield* Effect.exit(
          PgStore.migrate({ schema: bad }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        )
        expect(exit._tag).toBe("Failure")
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/Invalid PostgreSQL schema name/)
      }
    }).pipe(Effect.scoped)
  )
})

describe("PgStore connections", () => {
  /** The backends of three of a pool's connections: each asked while the other two are busy. */
  const threeBackends = (sql: SqlClient.SqlClient) =>
    Effect.all(
      Array.from({ length: 3 }, () =>
        sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.2)`.pipe(Effect.map(([r]) => r!.pid))
      ),
      { concurrency: "unbounded" }
    )

  it.live(
    "the pools Nightshift opens (layerUrl, Store.layer's) keep idle connections past the pg pool's 10 seconds",
    () =>
      Effect.gen(function* () {
        const schema = freshSchema("idle")
        const own = Context.get(
          yield* Layer.build(PgStore.layerUrl(databaseUrl(), { schema, listen: false })),
          SqlClient.SqlClient
        )
        yield* Effect.addFinalizer(() =>
          dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, own))
        )
        const target = Either.getOrThrow(Target.parse(databaseUrl()))
        if (target._tag !== "Postgres") throw new Error(`not a PostgreSQL URL: ${databaseUrl()}`)
        const opened = Context.get(
          yield* Layer.build(Layer.unwrapEffect(Open.pgClient(target, {}))),
          SqlClient.SqlClient
        )
        const pids = [...(yield* threeBackends(own)), ...(yield* threeBackends(opened))]
        expect(new Set(pids).size).toBe(6)
        // The pg pool's idle timer runs on the real clock: waiting past it is the point.
        yield* Effect.sleep("11 seconds")
        const reader = Context.get(
          yield* Layer.build(clientLayer({ maxConnections: 1 })),
          SqlClient.SqlClient
        )
        const alive = yield* reader<{ pid: number }>`
          SELECT pid FROM pg_stat_activity WHERE pid = ANY(${pids}::int[])`
        expect(alive.map((r) => r.pid).sort()).toEqual([...pids].sort())
      }).pipe(Effect.scoped),
    20_000
  )
})

describe("PgStore background connections", () => {
  it.live(
    "a runner's background statements run on a connection of their own: the pool of claims never opens one for them",
    () =>
      Effect.gen(function* () {
        const schema = freshSchema("bg")
        const { store, client, sql } = yield* node(schema, { listen: false })
        yield* Effect.addFinalizer(() =>
          dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        )
        const pool = Direct.poolsOf(client)?.pool as
          | (Direct.Pool & { readonly totalCount: number })
          | undefined
        if (pool === undefined) throw new Error("the library's client registered no pools")
        yield* store.enqueue([input()])
        const open = pool.totalCount
        expect(open).toBeGreaterThan(0)
        // Every connection the pool has open is held while the background statements run:
        // one of them on this pool would make it open another.
        const [depth, slot, last] = yield* Effect.scoped(
          Effect.zipRight(
            Effect.all(Array.from({ length: open }, () => sql.reserve)),
            Effect.all([
              store.rescue(100),
              store.prune({ completedMs: 0, discardedMs: 0, cancelledMs: 0, limit: 100 }),
              store.tableStats ?? Effect.void,
              store.flowState({ due: true }),
              store.depth,
              store.enqueueCronSlot({ name: "report", slot: 60_000, job: input() }),
              store.lastCronSlot("report")
            ]).pipe(Effect.map(([, , , , depth, slot, last]) => [depth, slot, last] as const))
          )
        )
        expect(pool.totalCount).toBe(open)
        // They did their work, on the same schema.
        expect(depth).toContainEqual({ queue: "q", state: "available", count: 1 })
        expect(slot).toBeDefined()
        expect(last).toBe(60_000)
      }).pipe(Effect.scoped),
    20_000
  )
})

describe("PgStore prepared statements", () => {
  /** A store on a pool of one connection, and that pool's client: its queries share the store's session. */
  const oneConnectionStore = (label: string, options: PgStore.Options) =>
    Effect.gen(function* () {
      const schema = freshSchema(label)
      const client = Context.get(yield* Layer.build(clientLayer({ maxConnections: 1 })), PgClient.PgClient)
      const sql = client.withoutTransforms()
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      const store = yield* PgStore.make({ schema, listen: false, ...options }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      return { store, sql, schema }
    })

  it.live(
    "enqueue, claim and settle are prepared once per connection and keep working from the prepared statement",
    () =>
      Effect.gen(function* () {
        const { store, sql, schema } = yield* oneConnectionStore("prep", {})
        const cycle = (n: number) =>
          Effect.gen(function* () {
            const [enqueued] = yield* store.enqueue([input({ payload: { n } })])
            const [job] = yield* store.claim({
              queues: ["q"],
              kinds: ["k"],
              limit: 1,
              leaseMs: 30_000,
              owner: "o"
            })
            expect(job?.id).toBe(enqueued!.id)
            expect(job?.payload).toEqual({ n })
            const [settled] = yield* store.settle([
              { id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }
            ])
            expect(settled).toMatchObject({ id: job!.id, applied: true, state: "completed" })
          })
        yield* cycle(1)
        // One connection: the statements the store sent are prepared on the one this query runs on.
        const prepared = (yield* sql<{ name: string; statement: string }>`
          SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'nightshift_%'`).map(
          (row) => row.statement.match(/"?(enqueue|claim_flow|settle)"?\(/)?.[1]
        )
        expect(prepared.sort()).toEqual(["claim_flow", "enqueue", "settle"])
        yield* cycle(2)
        yield* cycle(3)
        const [counts] = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM ${sql(schema)}.jobs_all WHERE state = 'completed'`
        expect(counts!.n).toBe(3)
      }).pipe(Effect.scoped),
    20_000
  )

  // Behind a pooler in transaction mode a call may land on a server connection that never
  // prepared the statement: `DEALLOCATE ALL` between calls is that, on the one connection.
  const acrossLostSessions = (options: { readonly preparedStatements?: boolean }) =>
    Effect.gen(function* () {
      const { store, sql } = yield* oneConnectionStore("noprep", options)
      const request = { queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 30_000, owner: "o" }
      const results: Array<string> = []
      let prepared = 0
      for (let n = 1; n <= 3; n++) {
        const outcome = yield* Effect.either(
          Effect.gen(function* () {
            const [enqueued] = yield* store.enqueue([input({ payload: { n } })])
            const [job] = yield* store.claim(request)
            expect(job?.id).toBe(enqueued!.id)
            const [settled] = yield* store.settle([
              { id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }
            ])
            return settled!.state
          })
        )
        results.push(outcome._tag === "Right" ? String(outcome.right) : outcome.left.message)
        const [named] = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'nightshift_%'`
        prepared = Math.max(prepared, named!.n)
        yield* sql.unsafe("DEALLOCATE ALL")
      }
      return { results, prepared }
    }).pipe(Effect.scoped)

  it.live(
    "with preparedStatements: false nothing is prepared, and calls work when the server session changes between them",
    () =>
      Effect.gen(function* () {
        const unnamed = yield* acrossLostSessions({ preparedStatements: false })
        expect(unnamed).toEqual({ results: ["completed", "completed", "completed"], prepared: 0 })
        // The default prepares them, and a session that lost them fails the next call.
        const byDefault = yield* acrossLostSessions({})
        expect(byDefault.prepared).toBe(3)
        expect(byDefault.results[0]).toBe("completed")
        expect(byDefault.results[1]).toMatch(/prepared statement "nightshift_\w+" does not exist/)
      }),
    30_000
  )

  type Query = (this: unknown, ...args: Array<unknown>) => unknown
  it.live("Store.layerJobStore passes preparedStatements on to the PostgreSQL store", () =>
    Effect.gen(function* () {
      // The statement names the driver is asked to run under, read at pg's own entry point.
      const names: Array<string | undefined> = []
      const Client = yield* Effect.promise(async () => {
        const pg: { readonly default: { readonly Client: { prototype: { query: Query } } } } =
          // @ts-expect-error pg ships no types, and @types/pg is not a dependency.
          await import("pg")
        return pg.default.Client
      })
      const original = Client.prototype.query
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          Client.prototype.query = function (this: unknown, config: unknown, ...rest: Array<unknown>) {
            if (typeof config === "object" && config !== null && "text" in config)
              names.push((config as { name?: string }).name)
            return original.call(this, config, ...rest)
          }
        }),
        () =>
          Effect.sync(() => {
            Client.prototype.query = original
          })
      )
      const schema = freshSchema("storeprep")
      const target = Either.getOrThrow(
        Target.parse(`${databaseUrl()}${databaseUrl().includes("?") ? "&" : "?"}schema=${schema}`)
      )
      const named = (preparedStatements: boolean | undefined) =>
        Effect.gen(function* () {
          names.length = 0
          const store = Context.get(
            yield* Layer.build(Store.layerJobStore(target, { listen: false, preparedStatements })),
            JobStore.JobStore
          )
          yield* store.enqueue([input()])
          return names.filter((name) => name?.startsWith("nightshift_")).length
        }).pipe(Effect.scoped)
      const own = Context.get(yield* Layer.build(clientLayer({ maxConnections: 1 })), SqlClient.SqlClient)
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, own))
      )
      expect(yield* named(false)).toBe(0)
      expect(yield* named(undefined)).toBe(1)
    }).pipe(Effect.scoped)
  )
})

describe("PgStore time", () => {
  it.effect("by default, now, run-at and leases follow the database clock, not the application clock", () =>
    Effect.gen(function* () {
      // The TestClock says 1970; the database says today.
      expect(yield* Clock.currentTimeMillis).toBe(0)
      const { store, sql } = yield* setup("dbclock")
      const before = yield* dbNow(sql)
      const now = yield* store.now
      const [enqueued] = yield* store.enqueue([input({ delayMs: 60_000 }), input()])
      const [claimed] = yield* store.claim({
        queues: ["q"],
        kinds: ["k"],
        limit: 1,
        leaseMs: 30_000,
        owner: "a"
      })
      const after = yield* dbNow(sql)
      expect(now).toBeGreaterThanOrEqual(before)
      expect(now).toBeLessThanOrEqual(after)
      const scheduled = (yield* store.get(enqueued!.id))!
      expect(scheduled.state).toBe("scheduled")
      expect(scheduled.runAt).toBeGreaterThanOrEqual(before + 60_000)
      expect(scheduled.runAt).toBeLessThanOrEqual(after + 60_000)
      expect(claimed!.leaseExpiresAt).toBeGreaterThanOrEqual(before + 30_000)
      expect(claimed!.leaseExpiresAt).toBeLessThanOrEqual(after + 30_000)
    }).pipe(Effect.scoped)
  )

  it.live("nodes whose clocks disagree by an hour neither steal nor lose a leased job", () =>
    Effect.gen(function* () {
      const { schema, store: a } = yield* setup("skew")
      const b = yield* node(schema)
      const ahead = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withClock(effect, skewed(3_600_000))
      yield* a.enqueue([input()])
      const [job] = yield* a.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 30_000, owner: "a" })
      expect(yield* ahead(b.store.rescue(100))).toEqual([])
      expect(
        yield* ahead(b.store.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 30_000, owner: "b" }))
      ).toEqual([])
      const [held] = yield* ahead(b.store.heartbeat("a", [job!], 30_000))
      expect(held?.held).toBe(true)
      expect(yield* a.settle([{ id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }])).toEqual([
        { id: job!.id, applied: true, state: "completed" }
      ])
    }).pipe(Effect.scoped)
  )

  it.live(
    "with the application clock, the same skew would steal the lease (why the database clock is the default)",
    () =>
      Effect.gen(function* () {
        const { schema, store: a } = yield* setup("appskew", { clock: "application" })
        const b = yield* node(schema, { clock: "application" })
        yield* a.enqueue([input()])
        const [job] = yield* a.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 30_000, owner: "a" })
        const rescued = yield* Effect.withClock(b.store.rescue(100), skewed(3_600_000))
        expect(rescued.map((r) => r.id)).toEqual([job!.id])
      }).pipe(Effect.scoped)
  )
})

describe("PgStore claim path", () => {
  /**
   * Claim `limit` jobs in a transaction and count the entries of the claim
   * index read meanwhile (`pg_stat_get_xact_tuples_returned` is exact within
   * a transaction). An in-order scan that stops after `limit` rows reads
   * about `limit`; a bitmap scan and sort reads every due row.
   */
  const claimReading = (
    store: JobStore.Service,
    sql: SqlClient.SqlClient,
    schema: string,
    request: Omit<JobStore.ClaimRequest, "leaseMs" | "owner">
  ) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const index = `${schema}.jobs_queue_claim_idx`
        const table = `${schema}.jobs`
        const read = sql<{ n: number; scans: number }>`
          SELECT pg_stat_get_xact_tuples_returned(${index}::regclass)::int AS n,
                 pg_stat_get_xact_numscans(${table}::regclass)::int AS scans`
        const [before] = yield* read
        const claimed = yield* store.claim({ ...request, leaseMs: 30_000, owner: "x" })
        const [after] = yield* read
        return { claimed, indexEntriesRead: after!.n - before!.n, tableScans: after!.scans - before!.scans }
      })
    )

  for (const [label, before] of [
    ["never analysed", ""],
    ["analysed while empty", "ANALYZE"]
  ] as const) {
    it.live(
      `after a bulk enqueue into a table ${label}, a claim reads the claim index in order and stops at its limit`,
      () =>
        Effect.gen(function* () {
          const { schema, store, sql } = yield* setup("plan", { listen: false })
          // Keep autovacuum from analysing the table behind the test's back.
          yield* sql.unsafe(`ALTER TABLE ${schema}.jobs SET (autovacuum_enabled = false)`)
          if (before !== "") yield* sql.unsafe(`${before} ${schema}.jobs`)
          const jobs = Array.from({ length: 20_000 }, (_, i) =>
            input({
              priority: i % 4,
              queue: i % 2 === 0 ? "q" : "other",
              delayMs: i % 3 === 0 ? 3_600_000 : 0
            })
          )
          const ids = (yield* store.enqueue(jobs)).map((r) => r.id)
          // The first ten due jobs of queue "q" in claim order: priority 0 ones, by id.
          const expected = ids.filter((_, i) => i % 4 === 0 && i % 3 !== 0).slice(0, 10)

          const fresh = yield* claimReading(store, sql, schema, { queues: ["q"], kinds: ["k"], limit: 10 })
          expect(fresh.claimed.map((j) => j.id)).toEqual(expected)
          expect(fresh.indexEntriesRead).toBeLessThan(100)
          // Nor does it read the table for a due job with a partition key (there is none).
          expect(fresh.tableScans).toBe(0)

          yield* sql.unsafe(`ANALYZE ${schema}.jobs`)
          const analysed = yield* claimReading(store, sql, schema, { queues: ["q"], kinds: ["k"], limit: 10 })
          expect(analysed.claimed).toHaveLength(10)
          expect(analysed.indexEntriesRead).toBeLessThan(100)
          expect(analysed.tableScans).toBe(0)
        }).pipe(Effect.scoped)
    )
  }

  it.live(
    "a settle of 500 jobs with 500 running in a 200,000-job table, on statistics from before they ran, joins each job once",
    () =>
      Effect.gen(function* () {
        const { schema, store, sql } = yield* setup("settleplan", { listen: false })
        yield* sql.unsafe(`ALTER TABLE ${schema}.jobs SET (autovacuum_enabled = false)`)
        const [template] = yield* store.enqueue([input()])
        yield* sql.unsafe(
          `INSERT INTO ${schema}.jobs (kind, queue, payload, state, priority, max_attempts, run_at, created_at)
           SELECT kind, queue, payload, state, priority, max_attempts, run_at, created_at
           FROM ${schema}.jobs, generate_series(1, 199999) WHERE id = ${template!.id}`
        )
        // Statistics from a backlog of 200,000 with nothing running, as after a bulk enqueue.
        yield* sql.unsafe(`ANALYZE ${schema}.jobs`)
        const claimed = yield* store.claim({
          queues: ["q"],
          kinds: ["k"],
          limit: 500,
          leaseMs: 30_000,
          owner: "x"
        })
        expect(claimed).toHaveLength(500)
        // The function's statement, prepared under its settings, so that EXPLAIN shows the plan the
        // function runs: generic, made on these statistics. Run, then rolled back.
        const params = ["p_ids", "p_fences", "p_states", "p_delay_ms", "p_uncount", "p_final", "p_err_kind"]
          .concat(["p_err_message", "p_now", "v_running"])
          .map((name, i) => [new RegExp(`\\b${name}\\b`, "g"), `$${i + 1}`] as const)
        const text = params.reduce((q, [name, n]) => q.replace(name, n), Functions.settleQueryV10(schema))
        const array = (values: ReadonlyArray<string | number | boolean | null>) =>
          `'{${values.map((v) => (v === null ? "NULL" : String(v))).join(",")}}'`
        let explainedRows: ReadonlyArray<object> = []
        yield* sql
          .withTransaction(
            Effect.gen(function* () {
              for (const setting of Functions.settleSettingsV10) yield* sql.unsafe(`SET LOCAL ${setting}`)
              yield* sql.unsafe(`PREPARE settle_plan_probe (bigint[], integer[], text[], float8[], integer[],
                boolean[], text[], text[], timestamptz, text) AS ${text}`)
              explainedRows = yield* sql.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE settle_plan_probe(
                ${array(claimed.map((j) => j.id))}, ${array(claimed.map((j) => j.fence))},
                ${array(claimed.map(() => "completed"))}, ${array(claimed.map(() => null))},
                ${array(claimed.map(() => 0))}, ${array(claimed.map(() => true))},
                ${array(claimed.map(() => null))}, ${array(claimed.map(() => null))}, now(), 'running')`)
              yield* sql.unsafe("DEALLOCATE settle_plan_probe")
              return yield* Effect.fail("rollback" as const)
            })
          )
          .pipe(
            Effect.catchIf(
              (e) => e === "rollback",
              () => Effect.void
            )
          )
        const removedByJoinFilters = (node: Record<string, unknown>): number =>
          Number(node["Rows Removed by Join Filter"] ?? 0) +
          ((node.Plans as Array<Record<string, unknown>> | undefined) ?? []).reduce(
            (sum, child) => sum + removedByJoinFilters(child),
            0
          )
        const explained = (explainedRows[0] as Record<string, unknown>)["QUERY PLAN"]
        const root = (typeof explained === "string" ? JSON.parse(explained) : explained) as Array<{
          Plan: Record<string, unknown>
        }>
        // Driving the lock from the running jobs' index would drop about 500 × 500 rows.
        expect(removedByJoinFilters(root[0]!.Plan)).toBeLessThan(5_000)
        const settled = yield* store.settle(
          claimed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
        )
        expect(settled).toHaveLength(500)
        expect(settled.every((r) => r.applied && r.state === "completed")).toBe(true)
      }).pipe(Effect.scoped)
  )

  it.live("a backlog in other queues, paused or not served here, is not read by a claim", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("queues", { listen: false })
      // 20,000 jobs ahead of everything in claim order (priority -1), in two other queues.
      yield* store.enqueue(
        Array.from({ length: 20_000 }, (_, i) =>
          input({ priority: -1, queue: i % 2 === 0 ? "big" : "paused" })
        )
      )
      yield* store.pause("paused")
      const ours = (yield* store.enqueue(Array.from({ length: 30 }, () => input({ queue: "q" })))).map(
        (r) => r.id
      )
      const one = yield* claimReading(store, sql, schema, { queues: ["q"], kinds: ["k"], limit: 10 })
      expect(one.claimed.map((j) => j.id)).toEqual(ours.slice(0, 10))
      expect(one.indexEntriesRead).toBeLessThan(100)
      // Several queues: the best jobs across them, still without reading the paused backlog.
      yield* store.enqueue([input({ queue: "urgent", priority: -5 })])
      const several = yield* claimReading(store, sql, schema, {
        queues: ["q", "paused", "urgent"],
        kinds: ["k"],
        limit: 5
      })
      expect(several.claimed.map((j) => j.queue)).toEqual(["urgent", "q", "q", "q", "q"])
      expect(several.claimed.slice(1).map((j) => j.id)).toEqual(ours.slice(10, 14))
      expect(several.indexEntriesRead).toBeLessThan(100)
    }).pipe(Effect.scoped)
  )

  it.live("the claim function carries its planner settings", () =>
    Effect.gen(function* () {
      const { schema, sql } = yield* setup("claimfn", { listen: false })
      const [row] = yield* sql<{ config: ReadonlyArray<string> }>`
        SELECT proconfig AS config FROM pg_proc
        WHERE pronamespace = ${schema}::regnamespace AND proname = 'claim'`
      expect(row!.config).toEqual(
        expect.arrayContaining([
          "enable_sort=off",
          "enable_bitmapscan=off",
          "plan_cache_mode=force_generic_plan",
          "search_path=pg_catalog, pg_temp"
        ])
      )
    }).pipe(Effect.scoped)
  )
})

describe("PgStore enqueue", () => {
  it.live("a bulk enqueue of 5,000 jobs inserts them in input order and notifies once", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("bulk")
      const watcher = yield* observe(schema)
      const inputs = Array.from({ length: 5000 }, (_, i) =>
        input({
          queue: ["a", "b", "c"][i % 3]!,
          payload: { i },
          dedupeKey: i % 10 === 0 ? `d${i}` : undefined
        })
      )
      const results = yield* store.enqueue(inputs)
      expect(results).toHaveLength(5000)
      expect(results.every((r) => !r.deduped)).toBe(true)
      const ids = results.map((r) => BigInt(r.id))
      expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true)
      const payloads = yield* watcher.settle
      expect(payloads).toHaveLength(1)
      expect(JSON.parse(payloads[0]!)).toEqual({ t: "e", q: ["a", "b", "c"] })
      const counts = yield* store.counts
      expect(counts.reduce((n, c) => n + c.count, 0)).toBe(5000)
    }).pipe(Effect.scoped)
  )

  it.live(
    "migration 14: a batch sent as shared values, payloads and partition keys is stored as the same rows as one row per job",
    () =>
      Effect.gen(function* () {
        const { schema, sql } = yield* setup("shared")
        const payloads = [{ n: 1 }, { n: 2, s: "two" }, [3], null]
        const shared = (
          delay: unknown,
          runAt: unknown,
          trace: unknown,
          keys?: ReadonlyArray<string | null>
        ) => ({
          s: ["k", "q", 3, 7, runAt, delay, trace, trace === null ? null : "b".repeat(16)],
          p: payloads,
          ...(keys === undefined ? {} : { k: keys })
        })
        const perJob = (
          delay: unknown,
          runAt: unknown,
          trace: unknown,
          keys?: ReadonlyArray<string | null>
        ) =>
          payloads.map((p, i) => [
            "k",
            "q",
            p,
            3,
            7,
            runAt,
            delay,
            null,
            trace,
            trace === null ? null : "b".repeat(16),
            keys?.[i] ?? null
          ])
        const enqueued = (doc: unknown) =>
          Effect.map(
            sql<{
              ids: string
            }>`SELECT ids FROM ${sql(schema)}.enqueue(${JSON.stringify(doc)}::jsonb, now(), false)`,
            ([row]) => row!.ids.split(",")
          )
        const stored = (ids: ReadonlyArray<string>) =>
          sql`
            SELECT kind, queue, payload, state, priority, max_attempts, attempt, fence, errors, trace_id, span_id,
              partition_key, dedupe_key,
              CASE WHEN run_at - created_at > interval '1 day' THEN extract(epoch from run_at)::float8
                ELSE extract(epoch from run_at - created_at)::float8 END AS run_at
            FROM ${sql(schema)}.jobs WHERE id = ANY(${`{${ids.join(",")}}`}::bigint[]) ORDER BY id`
        for (const [delay, runAt, trace, keys] of [
          [0, null, null, undefined],
          [60_000, null, "a".repeat(32), undefined],
          [null, 4_102_444_800_000, null, undefined],
          [0, null, null, ["tenant-1", null, "tenant-2", "tenant-1"]]
        ] as const) {
          const a = yield* enqueued(shared(delay, runAt, trace, keys))
          const b = yield* enqueued(perJob(delay, runAt, trace, keys))
          expect(a).toHaveLength(payloads.length)
          const rowsA = yield* stored(a)
          const rowsB = yield* stored(b)
          // Same rows, in batch order (ids ascend with it), scheduled rows included.
          expect(rowsA.map((r) => r.payload)).toEqual(payloads)
          expect(rowsA.map((r) => r.partition_key)).toEqual(keys ?? payloads.map(() => null))
          expect(rowsA).toEqual(rowsB)
        }
      }).pipe(Effect.scoped)
  )

  it.live(
    "a batch of one kind goes in the shared form, keyed or not; other batches go as one row per job",
    () =>
      Effect.gen(function* () {
        const { store } = yield* setup("sharedsent")
        // The document the store sends: a statement transformer sees the statement (and makes the
        // store send it through the SQL client, with the same parameters).
        const sent = (jobs: ReadonlyArray<JobStore.EnqueueInput>) => {
          const docs: Array<unknown> = []
          return store.enqueue(jobs).pipe(
            Statement.withTransformer((self) =>
              Effect.sync(() => {
                docs.push(JSON.parse(self.compile()[1][0] as string))
                return self
              })
            ),
            Effect.map(() => docs)
          )
        }
        expect(yield* sent([input({ payload: { a: 1 } }), input({ payload: { a: 2 } })])).toEqual([
          { s: ["k", "q", 0, 3, null, null, null, null], p: [{ a: 1 }, { a: 2 }] }
        ])
        expect(yield* sent([input({ partition: "t", delayMs: 5_000 }), input({ delayMs: 5_000 })])).toEqual([
          { s: ["k", "q", 0, 3, null, 5_000, null, null], p: [{ n: 1 }, { n: 1 }], k: ["t", null] }
        ])
        for (const rows of [
          [input({ dedupeKey: "d" }), input()],
          [input({ queue: "a" }), input({ queue: "b" })],
          [input(), input({ priority: 1 })]
        ]) {
          const [doc] = yield* sent(rows)
          expect(Array.isArray(doc) && doc.length === 2 && Array.isArray(doc[0])).toBe(true)
        }
      }).pipe(Effect.scoped)
  )

  it.live("a bulk enqueue of one kind keeps batch order and wakes its queue once", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("sharedbulk")
      const watcher = yield* observe(schema)
      const inputs = Array.from({ length: 3000 }, (_, i) => input({ payload: { i } }))
      const results = yield* store.enqueue(inputs)
      const ids = results.map((r) => BigInt(r.id))
      expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true)
      expect(JSON.parse((yield* watcher.settle)[0]!)).toEqual({ t: "e", q: ["q"] })
      const first = yield* store.get(results[0]!.id)
      const last = yield* store.get(results[2999]!.id)
      expect([first?.payload, last?.payload, last?.state]).toEqual([{ i: 0 }, { i: 2999 }, "available"])
    }).pipe(Effect.scoped)
  )

  it.live("jobs scheduled for later send no wake-up", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("later")
      const watcher = yield* observe(schema)
      yield* store.enqueue([input({ delayMs: 60_000 }), input({ delayMs: 1_000 })])
      expect(yield* watcher.settle).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("a batch mixing new keys, held keys and keyless jobs wakes only the queues of new due jobs", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("mixed")
      const [held] = yield* store.enqueue([input({ queue: "held", dedupeKey: "h" })])
      const watcher = yield* observe(schema)
      const results = yield* store.enqueue([
        input({ queue: "later", delayMs: 60_000 }),
        input({ queue: "held", dedupeKey: "h" }),
        input({ queue: "fresh", dedupeKey: "f" }),
        input({ queue: "plain" }),
        input({ queue: "fresh", dedupeKey: "f" })
      ])
      expect(results.map((r) => r.deduped)).toEqual([false, true, false, false, true])
      expect(results[1]!.id).toBe(held!.id)
      expect(results[4]!.id).toBe(results[2]!.id)
      const ids = [results[0]!, results[2]!, results[3]!].map((r) => BigInt(r.id))
      expect(ids[0]! < ids[1]! && ids[1]! < ids[2]!).toBe(true)
      expect((yield* watcher.settle).map((p) => JSON.parse(p))).toEqual([{ t: "e", q: ["fresh", "plain"] }])
      expect((yield* store.get(results[3]!.id))?.queue).toBe("plain")
    }).pipe(Effect.scoped)
  )

  it.live("wake-ups for many long queue names are split below PostgreSQL's payload limit", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("split")
      const watcher = yield* observe(schema)
      const queues = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(2, "0")}${"q".repeat(300)}`)
      yield* store.enqueue(queues.map((queue) => input({ queue })))
      const payloads = yield* watcher.settle
      expect(payloads.length).toBe(2)
      expect(payloads.every((p) => Buffer.byteLength(p) < 8000)).toBe(true)
      expect(payloads.flatMap((p) => JSON.parse(p).q)).toEqual(queues)
    }).pipe(Effect.scoped)
  )

  it.live("concurrent bulk enqueues from separate nodes keep one live job per dedupe key", () =>
    Effect.gen(function* () {
      const { schema, store } = yield* setup("dedupe")
      const others = [yield* node(schema, { listen: false }), yield* node(schema, { listen: false })]
      const stores = [store, ...others.map((o) => o.store)]
      const batch = Array.from({ length: 50 }, (_, i) => input({ dedupeKey: `key-${i}` }))
      const results = yield* Effect.all(
        stores.flatMap((s) => [s.enqueue(batch), s.enqueue([...batch].reverse())]),
        { concurrency: "unbounded" }
      )
      const inserted = results.flat().filter((r) => !r.deduped)
      expect(inserted).toHaveLength(50)
      expect((yield* store.counts).reduce((n, c) => n + c.count, 0)).toBe(50)
    }).pipe(Effect.scoped)
  )
})

describe("PgStore statements on the pool", () => {
  const claimOne: JobStore.ClaimRequest = {
    queues: ["q"],
    kinds: ["k"],
    limit: 1,
    leaseMs: 30_000,
    owner: "o"
  }
  /** The attributes of every span `effect` starts, through a tracer that records them. */
  const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const spans: Array<{ name: string; span: Tracer.Span }> = []
      const native = yield* Effect.tracer
      const recording = Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const span = native.span(name, parent, context, links, startTime, kind, options)
          spans.push({ name, span })
          return span
        },
        context: (f, fiber) => native.context(f, fiber)
      })
      const result = yield* Effect.withTracer(effect, recording)
      return { result, spans }
    })

  it.effect("the enqueue, claim and settle texts sent on the pool are what their statements compile to", () =>
    Effect.gen(function* () {
      const sql = (yield* PgClient.PgClient).withoutTransforms()
      const ctx = Ctx.make(sql, "compiled", "database")
      const now = yield* ctx.now
      const texts = Jobs.textsOf(ctx)
      const json = JSON.stringify([["k", "q", { n: 1 }, 0, 3]])
      expect(Jobs.enqueueStatement(ctx, json, now, true).compile()).toEqual([
        texts.enqueue.text,
        Jobs.enqueueParams(json, true)
      ])
      const request = { kinds: ["a", "b"], queues: ["q1", "q2"], limit: 7, owner: "o", leaseMs: 30_000 }
      const cursors = ["p3", null]
      expect(Jobs.claimStatement(ctx, request, now, request.queues, cursors).compile()).toEqual([
        texts.claim.text,
        Jobs.claimParams(request, request.queues, cursors)
      ])
      const valid = Core.applicable([
        { id: "5", fence: 2, outcome: { _tag: "completed" } },
        {
          id: "6",
          fence: 1,
          outcome: { _tag: "retry", delayMs: 1_000, error: { kind: "failure", message: 'a "b"' } }
        }
      ])
      expect(Jobs.settleSql(ctx, valid, now).compile()).toEqual([texts.settle.text, Jobs.settleParams(valid)])
    }).pipe(Effect.provide(clientLayer({ maxConnections: 1 })))
  )

  it.live("with a tracer installed, the hot statements are still sql.execute spans under the store's", () =>
    Effect.gen(function* () {
      const { store } = yield* setup("traced", { listen: false })
      const { spans } = yield* traced(
        Effect.gen(function* () {
          yield* store.enqueue([input()])
          const [job] = yield* store.claim(claimOne)
          yield* store.heartbeat("o", [job!], 30_000)
          yield* store.settle([{ id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }])
        })
      )
      const statements = spans
        .filter((s) => s.name === "sql.execute")
        .map((s) => String(s.span.attributes.get("db.query.text")).replaceAll('"', ""))
      for (const fn of ["enqueue(", "claim_flow(", "settle("])
        expect(statements.some((text) => text.includes(fn))).toBe(true)
      expect(statements.some((text) => text.includes("lease_expires_at ="))).toBe(true)
      for (const op of ["enqueue", "claim", "heartbeat", "settle"])
        expect(spans.some((s) => s.name === `PgStore.${op}`)).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live(
    "a claim interrupted while it waits for a lock is cancelled on the server, and the store claims again afterwards",
    () =>
      Effect.gen(function* () {
        const { schema, store } = yield* setup("cancel", { listen: false })
        const admin = Context.get(
          yield* Layer.build(clientLayer({ maxConnections: 2, plain: true })),
          SqlClient.SqlClient
        )
        yield* store.enqueue([input()])
        const claimsWaiting = admin<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE query LIKE ${`%${schema}%claim_flow%`} AND state = 'active' AND pid <> pg_backend_pid()`.pipe(
          Effect.map(([row]) => row!.n)
        )
        const locked = yield* Deferred.make<void>()
        const unlock = yield* Deferred.make<void>()
        // Another session holds the jobs table: a claim waits for it.
        const holder = yield* admin
          .withTransaction(
            Effect.zipRight(
              admin.unsafe(`LOCK TABLE ${schema}.jobs IN ACCESS EXCLUSIVE MODE`),
              Effect.zipRight(Deferred.succeed(locked, undefined), Deferred.await(unlock))
            )
          )
          .pipe(Effect.fork)
        yield* Deferred.await(locked)
        const claim = yield* store.claim(claimOne).pipe(Effect.fork)
        yield* eventually(
          "the claim waits for the lock",
          Effect.map(claimsWaiting, (n) => n === 1)
        )
        yield* Fiber.interrupt(claim)
        // Still locked: only a cancel ends the waiting statement.
        yield* eventually(
          "the claim is cancelled on the server",
          Effect.map(claimsWaiting, (n) => n === 0)
        )
        yield* Deferred.succeed(unlock, undefined)
        yield* Fiber.join(holder)
        const [job] = yield* store.claim(claimOne)
        expect(job?.attempt).toBe(1)
      }).pipe(Effect.scoped),
    20_000
  )
})

describe("PgStore row locks", () => {
  it.live("a heartbeat and a settle over the same jobs, from two connections, never deadlock", () =>
    Effect.gen(function* () {
      const { store } = yield* setup("locks", { listen: false })
      const failures: Array<string> = []
      for (let round = 0; round < 10; round++) {
        yield* store.enqueue(Array.from({ length: 200 }, () => input()))
        const claimed = yield* store.claim({
          queues: ["q"],
          kinds: ["k"],
          limit: 200,
          leaseMs: 30_000,
          owner: "o"
        })
        const results = yield* Effect.all(
          [
            Effect.either(store.heartbeat("o", claimed, 30_000)),
            Effect.either(
              store.settle(
                claimed
                  .map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" as const } }))
                  .reverse()
              )
            )
          ],
          { concurrency: "unbounded" }
        )
        for (const result of results) if (result._tag === "Left") failures.push(result.left.message)
      }
      expect(failures).toEqual([])
      expect(yield* store.counts).toEqual([{ queue: "q", state: "completed", count: 2000 }])
    }).pipe(Effect.scoped)
  )
})

describe("PgStore cron slots", () => {
  it.live("slots reached out of order are each enqueued once; prune keeps only the latest slot row", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("cron")
      const minute = 60_000
      const slot = (n: number) => store.enqueueCronSlot({ name: "report", slot: n * minute, job: input() })
      expect(yield* slot(3)).toBeDefined()
      expect(yield* slot(2)).toBeDefined()
      expect(yield* slot(2)).toBeUndefined()
      expect(yield* slot(3)).toBeUndefined()
      expect(yield* store.lastCronSlot("report")).toBe(3 * minute)
      yield* store.prune({ completedMs: 0, discardedMs: 0, cancelledMs: 0, limit: 100 })
      const rows = yield* sql<{
        slot: number
      }>`SELECT slot::float8 AS slot FROM ${sql(`${schema}.cron_slots`)}`
      expect(rows.map((r) => r.slot)).toEqual([3 * minute])
      expect(yield* slot(3)).toBeUndefined()
    }).pipe(Effect.scoped)
  )
})

const Order = Job.make("place_order", { payload: Schema.Struct({ n: Schema.Number }), queue: "orders" })

describe("PgStore transactional enqueue", () => {
  const withQueue =
    (store: JobStore.Service) =>
    <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(Effect.provide(JobQueue.layer), Effect.provideService(JobStore.JobStore, store))
  /** Run outside the current transaction, as another request would. */
  const outside = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.mapInputContext(
      effect,
      (c: Context.Context<R>) => Context.omit(SqlClient.TransactionConnection)(c) as Context.Context<R>
    )

  it.live("an enqueue inside the application's transaction rolls back with it and notifies nobody", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("txrb")
      const watcher = yield* observe(schema)
      yield* sql`CREATE TABLE ${sql(`${schema}.orders`)} (n integer)`
      const exit = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO ${sql(`${schema}.orders`)} VALUES (1)`
            yield* JobQueue.enqueue(Order, { n: 1 })
            return yield* Effect.fail("payment declined" as const)
          })
        )
        .pipe(withQueue(store), Effect.exit)
      expect(exit).toEqual(Exit.fail("payment declined"))
      expect(yield* sql`SELECT * FROM ${sql(`${schema}.orders`)}`).toEqual([])
      expect((yield* store.list({})).jobs).toEqual([])
      expect(yield* watcher.settle).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live(
    "an enqueue inside the application's transaction is invisible until commit, and its wake-up fires on commit",
    () =>
      Effect.gen(function* () {
        const { schema, store, sql } = yield* setup("txok")
        const other = yield* node(schema, { listen: false })
        const watcher = yield* observe(schema)
        yield* sql`CREATE TABLE ${sql(`${schema}.orders`)} (n integer)`
        const id = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO ${sql(`${schema}.orders`)} VALUES (2)`
              const { id } = yield* JobQueue.enqueue(Order, { n: 2 })
              expect(yield* outside(other.store.get(id))).toBeUndefined()
              expect(yield* outside(watcher.settle)).toEqual([])
              return id
            })
          )
          .pipe(withQueue(store))
        expect((yield* other.store.get(id))?.payload).toEqual({ n: 2 })
        expect(yield* sql`SELECT n FROM ${sql(`${schema}.orders`)}`).toEqual([{ n: 2 }])
        expect((yield* watcher.settle).map((p) => JSON.parse(p))).toEqual([{ t: "e", q: ["orders"] }])
      }).pipe(Effect.scoped)
  )

  it.live("a failed enqueue inside the application's transaction leaves that transaction usable", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("txerr", { listen: false })
      yield* sql`CREATE TABLE ${sql(`${schema}.orders`)} (n integer)`
      const failed = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(`${schema}.orders`)} VALUES (3)`
          // A payload PostgreSQL refuses (jsonb holds no NUL): the enqueue fails in the database.
          const exit = yield* Effect.exit(store.enqueue([input({ payload: { s: "a\u0000b" } })]))
          yield* sql`INSERT INTO ${sql(`${schema}.orders`)} VALUES (4)`
          yield* store.enqueue([input({ payload: { n: 4 } })])
          return exit
        })
      )
      expect(Exit.isFailure(failed)).toBe(true)
      expect(yield* sql`SELECT n FROM ${sql(`${schema}.orders`)} ORDER BY n`).toEqual([{ n: 3 }, { n: 4 }])
      expect((yield* store.list({})).jobs.map((j) => j.payload)).toEqual([{ n: 4 }])
    }).pipe(Effect.scoped)
  )
})

describe("PgStore settle: a row PostgreSQL refuses fails alone", () => {
  it.live("a settlement whose fence is out of range is not applied; the rest of its batch settles", () =>
    Effect.gen(function* () {
      const { store } = yield* setup("refused")
      yield* store.enqueue([input(), input(), input()])
      const [a, b, c] = yield* store.claim({
        queues: ["q"],
        kinds: ["k"],
        limit: 3,
        leaseMs: 30_000,
        owner: "o"
      })
      const results = yield* store.settle([
        { id: a!.id, fence: a!.fence, outcome: { _tag: "completed" } },
        { id: b!.id, fence: 2 ** 40, outcome: { _tag: "completed" } },
        {
          id: c!.id,
          fence: c!.fence,
          outcome: { _tag: "retry", delayMs: 0, error: { kind: "f", message: "m" } }
        }
      ])
      expect(results).toEqual([
        { id: a!.id, applied: true, state: "completed" },
        { id: b!.id, applied: false, state: null },
        { id: c!.id, applied: true, state: "retryable" }
      ])
      expect((yield* store.get(b!.id))!.state).toBe("running")
    }).pipe(Effect.scoped)
  )

  it.live(
    "an outcome PostgreSQL refuses discards its job with an error that says why; the rest settles",
    () =>
      Effect.gen(function* () {
        const { schema, store, sql } = yield* setup("unstorable")
        yield* store.enqueue([input(), input()])
        const [a, b] = yield* store.claim({
          queues: ["q"],
          kinds: ["k"],
          limit: 2,
          leaseMs: 30_000,
          owner: "o"
        })
        // Past the store's own cleaning, as a raw outcome would arrive: text with NUL.
        const raw = (settlement: JobStore.Settlement): Core.Applicable => ({
          num: Number(settlement.id),
          settlement,
          change: Core.change(settlement.outcome)
        })
        const rows = yield* Jobs.settleIsolated(Ctx.make(sql, schema, "database"), [
          raw({ id: a!.id, fence: a!.fence, outcome: { _tag: "completed" } }),
          raw({
            id: b!.id,
            fence: b!.fence,
            outcome: { _tag: "retry", delayMs: 0, error: { kind: "failure", message: "bad\u0000byte" } }
          })
        ])
        expect(new Map(rows.map((r) => [r.id, r.state]))).toEqual(
          new Map([
            [a!.id, "completed"],
            [b!.id, "discarded"]
          ])
        )
        const refused = (yield* store.get(b!.id))!
        expect(refused.errors.map((e) => e.kind)).toEqual(["unstorable"])
        expect(refused.errors[0]!.message).toContain(
          "PostgreSQL refused to store this attempt's retry outcome"
        )
      }).pipe(Effect.scoped)
  )
})

describe("PgStore wake-ups", () => {
  it.live("the listener reconnects after its connection is killed, and hints flow again", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("relisten")
      const listenerPids = sql<{ pid: number }>`
        SELECT pid FROM pg_stat_activity WHERE query LIKE ${`LISTEN "${schema}_wakeup%`}`.pipe(
        Effect.map((rows) => rows.map((r) => r.pid))
      )
      yield* Hints.keepFlowing(store)
      const [before] = yield* listenerPids
      expect(before).toBeDefined()
      yield* sql`SELECT pg_terminate_backend(${before})`
      yield* eventually(
        "a new listener connection is up",
        Effect.map(listenerPids, (pids) => pids.length === 1 && pids[0] !== before)
      )
      const hint = yield* awaitHint(
        store,
        (w) => w._tag === "enqueued" && w.queue === "after-kill",
        store.enqueue([input({ queue: "after-kill" })])
      )
      expect(hint).toEqual({ _tag: "enqueued", queue: "after-kill" })
    }).pipe(Effect.scoped)
  )

  it.live("each listener's heartbeats go to a channel of its own, not to every node on the store's", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("beats")
      const other = yield* node(schema)
      yield* Hints.keepFlowing(store)
      yield* Hints.keepFlowing(other.store)
      // The nodes' listeners: their last statement LISTENs on a heartbeat channel (the store's
      // channel and a suffix), unlike the raw listener below.
      const listeners = sql<{ pid: number; query: string }>`
        SELECT pid, query FROM pg_stat_activity WHERE query LIKE ${`LISTEN "${schema}\\_wakeup\\_%`} ORDER BY pid`
      const before = yield* listeners
      expect(before).toHaveLength(2)
      // Every notification on the store's channel, and the heartbeats on each node's own.
      const context = yield* Layer.build(clientLayer({ maxConnections: 2 }))
      const raw = Context.get(context, PgClient.PgClient)
      const collect = (channel: string) =>
        Effect.gen(function* () {
          const seen = yield* Ref.make<ReadonlyArray<string>>([])
          yield* raw.listen(channel).pipe(
            Stream.runForEach((payload) => Ref.update(seen, (all) => [...all, payload])),
            Effect.forkScoped
          )
          return seen
        })
      const shared = yield* collect(`${schema}_wakeup`)
      const own = yield* Effect.forEach(before, (row) => collect(row.query.slice('LISTEN "'.length, -1)))
      yield* eventually(
        "the raw listener hears an enqueue",
        Effect.gen(function* () {
          yield* store.enqueue([input({ queue: "probe" })])
          return (yield* Ref.get(shared)).some((payload) => payload.includes("probe"))
        })
      )
      yield* Ref.set(shared, [])
      const beats = (seen: Ref.Ref<ReadonlyArray<string>>) =>
        Effect.map(Ref.get(seen), (all) => all.filter((payload) => payload.includes('"t":"h"')).length)
      // Three heartbeats from each node, every one on its own channel and none on the store's.
      yield* eventually(
        "each node beats three times on its own channel",
        Effect.map(Effect.forEach(own, beats), (counts) => counts.every((n) => n >= 3))
      )
      expect(yield* beats(shared)).toBe(0)
      // Both listeners heard their own heartbeats: neither took itself for stale and reconnected
      // (the raw listener's connection now matches the pattern too).
      expect((yield* listeners).map((row) => row.pid)).toEqual(
        expect.arrayContaining(before.map((row) => row.pid))
      )
      const hint = yield* awaitHint(
        other.store,
        (w) => w._tag === "enqueued" && w.queue === "after-beats",
        store.enqueue([input({ queue: "after-beats" })])
      )
      expect(hint).toEqual({ _tag: "enqueued", queue: "after-beats" })
    }).pipe(Effect.scoped)
  )

  it.live(
    "a store listens only once something subscribes to its hints, and hears the next enqueue then",
    () =>
      Effect.gen(function* () {
        const { schema, store, sql } = yield* setup("lazylisten")
        const listeners = sql<{ n: number }>`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE ${`LISTEN "${schema}_wakeup%`}`.pipe(
          Effect.map(([row]) => row!.n)
        )
        // A process that only enqueues holds no listening connection.
        yield* store.enqueue([input({ queue: "before" })])
        expect(yield* listeners).toBe(0)
        // A runner (here its hook) starts it, and is listening when the call returns.
        const heard: Array<JobStore.Wakeup> = []
        yield* Hints.listenTo(store, (hint) => heard.push(hint))!
        expect(yield* listeners).toBe(1)
        const other = yield* node(schema, { listen: false })
        yield* other.store.enqueue([input({ queue: "after" })])
        yield* eventually(
          "the enqueue on another node is heard",
          Effect.sync(() => heard.some((h) => h._tag === "enqueued" && h.queue === "after"))
        )
        // A second subscriber shares the same connection.
        yield* Hints.keepFlowing(store)
        expect(yield* listeners).toBe(1)
      }).pipe(Effect.scoped)
  )

  it.live("a cancel on one node reaches the node that runs the job", () =>
    Effect.gen(function* () {
      const { schema, store: runner } = yield* setup("xcancel")
      const admin = yield* node(schema, { listen: false })
      yield* runner.enqueue([input()])
      const [job] = yield* runner.claim({
        queues: ["q"],
        kinds: ["k"],
        limit: 1,
        leaseMs: 30_000,
        owner: "node-a"
      })
      const answers = yield* Ref.make<ReadonlyArray<JobStore.CancelResult>>([])
      const hint = yield* awaitHint(
        runner,
        (w) => w._tag === "cancel",
        Effect.flatMap(admin.store.cancel(job!.id), (r) => Ref.update(answers, (all) => [...all, r]))
      )
      expect(hint).toEqual({ _tag: "cancel", id: job!.id })
      expect((yield* Ref.get(answers))[0]).toEqual({ _tag: "requested", owner: "node-a" })
      const [status] = yield* runner.heartbeat("node-a", [job!], 30_000)
      expect(status).toEqual({ id: job!.id, held: true, cancelRequested: true })
    }).pipe(Effect.scoped)
  )

  it.live(
    "while the database is unreachable the listener warns once, backs off, and says when it is back",
    () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(clientLayer({ maxConnections: 2 }))
        const client = Context.get(context, PgClient.PgClient)
        const ctx = Ctx.make(client.withoutTransforms(), freshSchema("outage"), "database")
        // The first six sessions cannot connect, as during an outage; then the server is back.
        const outage = 6
        let attempts = 0
        const flaky = {
          listen: (channel: string) =>
            Stream.suspend(() =>
              ++attempts <= outage
                ? Stream.fail(
                    new SqlError({
                      cause: new Error("connect ECONNREFUSED"),
                      message: "connect ECONNREFUSED"
                    })
                  )
                : client.listen(channel)
            )
        } as unknown as PgClient.PgClient
        const logs: Array<{ readonly level: string; readonly message: string }> = []
        const capture = Logger.make(({ logLevel, message }) => {
          logs.push({
            level: logLevel.label,
            message: (Array.isArray(message) ? message : [message]).join(" ")
          })
        })
        const hints = yield* Wakeups.start(flaky, ctx, {
          // A slow heartbeat: a loaded machine must not make the connected listener look stale.
          heartbeat: Duration.seconds(5),
          retryDelay: Duration.millis(5),
          maxRetryDelay: Duration.millis(40)
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
        // The first subscriber starts the listener (with the logger it was built with).
        yield* Effect.forkScoped(Stream.runDrain(hints.stream))
        yield* eventually(
          "the listener says it is back",
          Effect.sync(() => logs.some((l) => l.message.includes("reconnected")))
        )
        const listener = logs.filter((l) => l.message.includes("PostgreSQL listener"))
        expect(listener.filter((l) => l.level === "WARN")).toHaveLength(1)
        expect(listener.find((l) => l.level === "WARN")!.message).toContain("ECONNREFUSED")
        expect(listener.find((l) => l.level === "WARN")!.message).not.toContain("    at ")
        expect(listener.filter((l) => l.level === "INFO").map((l) => l.message)).toEqual([
          expect.stringContaining(`reconnected after ${outage} failed attempts`)
        ])
        expect(attempts).toBe(outage + 1)
        // And hints flow.
        const hint = yield* awaitHint(
          { wakeups: hints.stream } as unknown as JobStore.Service,
          (w) => w._tag === "enqueued" && w.queue === "back",
          Wakeups.notify(ctx, Wakeups.enqueuedPayloads(["back"]))
        )
        expect(hint).toEqual({ _tag: "enqueued", queue: "back" })
      }).pipe(Effect.scoped)
  )

  it("reconnection attempts back off: the delay doubles from the first and stops at the cap", () => {
    const options = { heartbeat: Duration.millis(500), retryDelay: Duration.millis(250) }
    expect([1, 2, 3, 4, 5, 50].map((n) => Duration.toMillis(Wakeups.retryDelayAfter(n, options)))).toEqual([
      250, 500, 1000, 2000, 2000, 2000
    ])
    const capped = { ...options, maxRetryDelay: Duration.millis(600) }
    expect([1, 2, 3].map((n) => Duration.toMillis(Wakeups.retryDelayAfter(n, capped)))).toEqual([
      250, 500, 600
    ])
  })
})

describe("PgStore rows a claim cannot take", () => {
  const max = 2_147_483_647
  const claimOf = (queues: ReadonlyArray<string>): JobStore.ClaimRequest => ({
    queues,
    kinds: ["k"],
    limit: 10,
    leaseMs: 30_000,
    owner: "r"
  })
  const set = (sql: SqlClient.SqlClient, schema: string, id: string, assignment: string) =>
    sql.unsafe(`UPDATE ${schema}.jobs SET ${assignment} WHERE id = $1`, [id])

  const expectFenceDiscard = (store: JobStore.Service, id: string) =>
    Effect.gen(function* () {
      const bad = (yield* store.get(id))!
      expect(bad).toMatchObject({
        state: "discarded",
        fence: max,
        attempt: 0,
        leaseOwner: null,
        leaseExpiresAt: null
      })
      expect(bad.finalizedAt).not.toBeNull()
      expect(bad.errors.map((e) => e.kind)).toEqual(["fence"])
      expect(bad.errors[0]!.message).toContain(`its fence counter is at ${max}`)
      expect(bad.errors[0]!.message).toContain("cannot be claimed again")
    })

  for (const [label, queues] of [
    ["one queue", ["q"]],
    ["several queues", ["q", "other"]]
  ] as const) {
    it.live(
      `${label}: a row at fence ${max} is discarded saying why, one at attempt ${max} is claimed, the others too`,
      () =>
        Effect.gen(function* () {
          const { schema, store, sql } = yield* setup("maxrow", { listen: false })
          // Jobs that differ go as one row each, the document a schema before migration 14 reads.
          const ids = (yield* store.enqueue(
            Array.from({ length: 6 }, (_, i) => input({ spanId: `s${i}` }))
          )).map((r) => r.id)
          const [fenced, attempted] = [ids[1]!, ids[3]!]
          yield* set(sql, schema, fenced, `fence = ${max}`)
          yield* set(sql, schema, attempted, `attempt = ${max}, max_attempts = ${max}`)

          const claimed = yield* store.claim(claimOf(queues))
          expect(claimed.map((j) => j.id)).toEqual(ids.filter((id) => id !== fenced))
          const top = claimed.find((j) => j.id === attempted)!
          expect([top.attempt, top.fence, top.state]).toEqual([max, 1, "running"])
          yield* expectFenceDiscard(store, fenced)
          // The rows it took are leased as usual and settle as usual.
          expect(yield* store.heartbeat("r", [top], 30_000)).toEqual([
            { id: attempted, held: true, cancelRequested: false }
          ])
          expect(yield* store.settle([{ id: attempted, fence: 1, outcome: { _tag: "completed" } }])).toEqual([
            { id: attempted, applied: true, state: "completed" }
          ])
          expect(yield* store.claim(claimOf(queues))).toEqual([])
        }).pipe(Effect.scoped)
    )
  }

  it.live("odd values a due row can hold are claimed and read, each on its own row", () =>
    Effect.gen(function* () {
      const { schema, store, sql } = yield* setup("oddrow", { listen: false })
      const ids = (yield* store.enqueue(Array.from({ length: 7 }, () => input()))).map((r) => r.id)
      const odd = [
        "run_at = '-infinity'",
        `errors = '{"not": "a list"}'::jsonb`,
        `errors = '"boom"'::jsonb, attempted_at = 'infinity', created_at = '-infinity'`,
        `fence = ${-max - 1}, attempt = ${-max - 1}, priority = ${max}`,
        "payload = NULL, finalized_at = 'infinity', lease_owner = 'ghost', lease_expires_at = '-infinity'"
      ]
      yield* Effect.forEach(odd, (assignment, i) => set(sql, schema, ids[i + 1]!, assignment), {
        discard: true
      })
      const claimed = yield* store.claim(claimOf(["q"]))
      expect(claimed.map((j) => j.id).sort()).toEqual([...ids].sort())
      for (const job of claimed) {
        expect(job.state).toBe("running")
        expect(Array.isArray(job.errors)).toBe(true)
      }
      const byId = new Map(claimed.map((j) => [j.id, j]))
      expect(byId.get(ids[1]!)!.runAt).toBe(Number.NEGATIVE_INFINITY)
      expect(byId.get(ids[2]!)!.errors.map((e) => e.kind)).toEqual(["unreadable"])
      expect(byId.get(ids[3]!)!.createdAt).toBe(Number.NEGATIVE_INFINITY)
      expect([byId.get(ids[4]!)!.fence, byId.get(ids[4]!)!.attempt]).toEqual([-max, -max])
    }).pipe(Effect.scoped)
  )

  /**
   * The claim statement of the releases before migration 5, which call the
   * `claim` function: nodes still running one of them keep using it.
   */
  const previousClaim = (sql: SqlClient.SqlClient, schema: string, request: JobStore.ClaimRequest) =>
    sql
      .unsafe<{ id: string }>(
        // The columns those releases read: the partition key came with migration 6.
        `SELECT ${columns.replace(", j.partition_key", "")} FROM ${schema}.claim($1::text[], $2::text[], $3::int, $4::text, $5::float8, now()) AS j`,
        [request.kinds, request.queues, request.limit, request.owner, request.leaseMs]
      )
      .pipe(Effect.map((rows) => rows.map((r) => r.id)))

  it.live("migration 4 applies to a schema at migration 3, and a claim its row broke works again", () =>
    Effect.gen(function* () {
      const schema = freshSchema("mig3")
      const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
      const client = Context.get(context, PgClient.PgClient)
      const sql = client.withoutTransforms()
      yield* Effect.addFinalizer(() =>
        dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      expect((yield* migrateUpTo(sql, schema, 3)).map(([id]) => id)).toEqual([1, 2, 3])
      const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
      // Jobs that differ go as one row each, the document a schema before migration 14 reads.
      const ids = (yield* store.enqueue(Array.from({ length: 3 }, (_, i) => input({ spanId: `s${i}` })))).map(
        (r) => r.id
      )
      yield* set(sql, schema, ids[0]!, `fence = ${max}`)
      // The bug: at migration 3 this row fails every claim of its queue.
      const broken = yield* Effect.flip(previousClaim(sql, schema, claimOf(["q"])))
      expect(messageOf(broken)).toContain("integer out of range")

      expect(yield* migrateFurther(sql, schema, 4)).toEqual([[4, "claim_skips_exhausted_rows"]])
      expect(yield* previousClaim(sql, schema, claimOf(["q"]))).toEqual(ids.slice(1))
      expect(
        yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      ).toEqual([
        [5, "fewer_steps_per_statement"],
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
      // This release reads the partition key, which came with migration 6.
      yield* expectFenceDiscard(store, ids[0]!)
    }).pipe(Effect.scoped)
  )

  it.live(
    "migration 5 applies to a schema at migration 4: claim_rows claims as claim did, and claim still works for older nodes",
    () =>
      Effect.gen(function* () {
        const schema = freshSchema("mig4")
        const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
        const client = Context.get(context, PgClient.PgClient)
        const sql = client.withoutTransforms()
        yield* Effect.addFinalizer(() =>
          dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        )
        expect((yield* migrateUpTo(sql, schema, 4)).map(([id]) => id)).toEqual([1, 2, 3, 4])
        const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
          Effect.provideService(PgClient.PgClient, client)
        )
        // Jobs that differ go as one row each, the document a schema before migration 14 reads.
        const ids = (yield* store.enqueue(
          Array.from({ length: 6 }, (_, i) => input({ spanId: `s${i}` }))
        )).map((r) => r.id)
        yield* set(sql, schema, ids[0]!, `fence = ${max}`)
        // This release's claim needs migration 6.
        const before = yield* Effect.flip(store.claim(claimOf(["q"])))
        expect(before.message).toContain("claim_flow")

        expect(
          yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        ).toEqual([
          [5, "fewer_steps_per_statement"],
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
        // An older node claims with `claim`, this one with `claim_flow`: the same rules, each
        // row once, and each discards a row whose fence is at the maximum instead of failing.
        expect(yield* previousClaim(sql, schema, { ...claimOf(["q"]), limit: 2 })).toEqual([ids[1]])
        yield* expectFenceDiscard(store, ids[0]!)
        yield* set(sql, schema, ids[2]!, `fence = ${max}`)
        const claimed = yield* store.claim({ ...claimOf(["q", "other"]), limit: 2 })
        expect(claimed.map((j) => j.id)).toEqual([ids[3]])
        yield* expectFenceDiscard(store, ids[2]!)
        // The row shape is the store's: every field as `get` reads it.
        const rest = yield* store.claim(claimOf(["q"]))
        expect(rest.map((j) => j.id)).toEqual(ids.slice(4))
        for (const job of [...claimed, ...rest]) {
          expect(job).toEqual(yield* store.get(job.id))
          expect(job).toMatchObject({ state: "running", attempt: 1, fence: 1, leaseOwner: "r" })
        }
        expect(yield* store.claim(claimOf(["q"]))).toEqual([])
      }).pipe(Effect.scoped)
  )
})
