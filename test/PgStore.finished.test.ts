/**
 * Finished jobs on PostgreSQL leave the live table (`jobs`) for `jobs_done`,
 * partitioned by state and finish time: how every path to a final state
 * files the row, how the pruner drops whole partitions, what reads see, and
 * the migration from the previous schema with rows in every state while a
 * runner works.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import type * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import { clientLayer, dropSchema, eventually, freshSchema, migrateFurther, migrateUpTo } from "./setup/pg.js"
import { input } from "./store/helpers.js"

const minute = 60_000
const hour = 60 * minute

const claim = (store: JobStore.Service, limit = 1, leaseMs = 30_000) =>
  store.claim({ queues: ["q"], kinds: ["k"], limit, leaseMs, owner: "r" })

const settle = (store: JobStore.Service, job: JobStore.JobRecord, outcome: JobStore.Outcome) =>
  store.settle([{ id: job.id, fence: job.fence, outcome }])

/** A client of its own, a fresh schema (dropped afterwards) and, unless `bare`, a migrated store on it. */
const setup = (label: string, options: PgStore.Options = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 8 }))
    const client = Context.get(context, PgClient.PgClient)
    const sql = client.withoutTransforms()
    const schema = freshSchema(label)
    yield* Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
    const open = (more: PgStore.Options = {}) =>
      PgStore.make({ schema, listen: false, ...options, ...more }).pipe(
        Effect.provideService(PgClient.PgClient, client)
      )
    return { schema, sql, open }
  })

/** Which table holds each id: "jobs", a `jobs_done_…` partition, or absent. */
const whereIs = (sql: SqlClient.SqlClient, schema: string, ids: ReadonlyArray<string>) =>
  Effect.map(
    sql<{ id: string; place: string }>`
      SELECT j.id::text AS id, 'jobs' AS place FROM ${sql(`${schema}.jobs`)} j WHERE j.id = ANY(${ids}::bigint[])
      UNION ALL
      SELECT d.id::text, d.tableoid::regclass::text FROM ${sql(`${schema}.jobs_done`)} d WHERE d.id = ANY(${ids}::bigint[])`,
    (rows) => ids.map((id) => rows.filter((r) => r.id === id).map((r) => r.place.replace(`${schema}.`, "")))
  )

describe("PgStore finished jobs", () => {
  it.scoped(
    "every way to a final state moves the row out of the live table; reads see it where it went",
    () =>
      Effect.gen(function* () {
        const { schema, sql, open } = yield* setup("fin", { clock: "application" })
        const store = yield* open()
        const ids = (yield* store.enqueue(Array.from({ length: 6 }, () => input()))).map((r) => r.id)
        const [completed] = yield* claim(store)
        yield* settle(store, completed!, { _tag: "completed" })
        const [discarded] = yield* claim(store)
        yield* settle(store, discarded!, { _tag: "discard", error: { kind: "failure", message: "no" } })
        const [retried] = yield* claim(store)
        yield* settle(store, retried!, {
          _tag: "retry",
          delayMs: hour,
          error: { kind: "failure", message: "again" }
        })
        yield* store.cancel(ids[5]!) // waiting: cancelled at once
        const [rescued] = yield* claim(store, 1, 1_000)
        yield* sql`UPDATE ${sql(`${schema}.jobs`)} SET max_attempts = 1 WHERE id = ${rescued!.id}::bigint`
        yield* TestClock.adjust(2_000)
        expect(yield* store.rescue(10)).toEqual([
          { id: rescued!.id, kind: "k", queue: "q", state: "discarded" }
        ])
        // What a node on the previous version, or a hand edit, does: an UPDATE of the live row.
        yield* sql`UPDATE ${sql(`${schema}.jobs`)} SET state = 'cancelled', finalized_at = NULL WHERE id = ${ids[4]!}::bigint`

        expect(yield* whereIs(sql, schema, ids)).toEqual([
          ["jobs_done_completed_default"],
          ["jobs_done_discarded_default"],
          ["jobs"],
          ["jobs_done_discarded_default"],
          ["jobs_done_cancelled_default"],
          ["jobs_done_cancelled_default"]
        ])
        const states = yield* Effect.forEach(ids, (id) => Effect.map(store.get(id), (job) => job?.state))
        expect(states).toEqual(["completed", "discarded", "retryable", "discarded", "cancelled", "cancelled"])
        // A row filed without a finish time gets the time it was filed.
        expect((yield* store.get(ids[4]!))?.finalizedAt).not.toBeNull()
        expect((yield* store.get(ids[0]!))?.leaseOwner).toBe("r")
        expect((yield* store.get(ids[1]!))?.errors.map((e) => e.message)).toEqual(["no"])
        const page = yield* store.list({ limit: 4 })
        expect(page.jobs.map((j) => j.id)).toEqual([...ids].reverse().slice(0, 4))
        const next = yield* store.list({ limit: 4, cursor: page.nextCursor! })
        expect(next.jobs.map((j) => j.id)).toEqual([ids[1], ids[0]])
        expect((yield* store.list({ states: ["discarded"] })).jobs.map((j) => j.id)).toEqual([ids[3], ids[1]])
        const counts = Object.fromEntries((yield* store.counts).map((c) => [c.state, c.count]))
        expect(counts).toEqual({ completed: 1, discarded: 2, retryable: 1, cancelled: 2 })
        const [live] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.jobs`)}`
        expect(live?.n).toBe(1)
      })
  )

  it.scoped("a retry moves a finished job back to the live table; a delete finds it in either", () =>
    Effect.gen(function* () {
      const { schema, sql, open } = yield* setup("finretry")
      const store = yield* open()
      const [a, b, c] = (yield* store.enqueue([input({ dedupeKey: "x" }), input(), input()])).map((r) => r.id)
      for (let i = 0; i < 3; i++) {
        const [job] = yield* claim(store)
        yield* settle(store, job!, { _tag: "discard", error: { kind: "failure", message: `e${i}` } })
      }
      expect(yield* store.retry(a!)).toEqual({ _tag: "retried" })
      const back = (yield* store.get(a!))!
      expect(back).toMatchObject({
        state: "available",
        attempt: 1,
        maxAttempts: 3,
        finalizedAt: null,
        dedupeKey: "x"
      })
      expect(back.errors.map((e) => e.message)).toEqual(["e0"])
      expect(yield* whereIs(sql, schema, [a!])).toEqual([["jobs"]])
      // Its dedupe key is live again: a new job with it folds into the retried one.
      expect(yield* store.enqueue([input({ dedupeKey: "x" })])).toEqual([{ id: a, deduped: true }])
      expect((yield* store.retryMany([b!, c!])).changed).toEqual([b, c])
      const [job] = yield* claim(store)
      yield* settle(store, job!, { _tag: "completed" })
      const deleted = yield* store.deleteMany([a!, b!, c!])
      expect([...deleted.changed].sort()).toEqual([a, b, c].sort())
      expect(yield* whereIs(sql, schema, [a!, b!, c!])).toEqual([[], [], []])
    })
  )

  it.scoped(
    "the pruner makes time partitions ahead and drops one whole once all of it is past retention",
    () =>
      Effect.gen(function* () {
        const { schema, sql, open } = yield* setup("finpart", { clock: "application" })
        const store = yield* open()
        const retention = { completedMs: hour, discardedMs: 2 * hour, cancelledMs: 2 * hour, limit: 1000 }
        const partitions = Effect.map(
          sql<{ name: string }>`SELECT name FROM ${sql(`${schema}.done_partitions`)} ORDER BY state, lo`,
          (rows) => rows.map((r) => r.name)
        )
        // At 00:00 (the test clock's start): completed partitions an eighth of an hour wide, the
        // others a quarter, for the current and the next period.
        expect(yield* store.prune(retention)).toBe(0)
        expect(yield* partitions).toEqual([
          "jobs_done_cancelled_19700101t000000",
          "jobs_done_cancelled_19700101t001500",
          "jobs_done_completed_19700101t000000",
          "jobs_done_completed_19700101t000730",
          "jobs_done_discarded_19700101t000000",
          "jobs_done_discarded_19700101t001500"
        ])
        yield* TestClock.adjust(minute)
        const ids = (yield* store.enqueue(Array.from({ length: 3 }, () => input()))).map((r) => r.id)
        for (const job of yield* claim(store, 3)) yield* settle(store, job, { _tag: "completed" })
        expect(yield* whereIs(sql, schema, ids)).toEqual(
          ids.map(() => ["jobs_done_completed_19700101t000000"])
        )

        // 01:02: finished an hour and a minute ago, but their partition runs to 00:07:30.
        yield* TestClock.adjust(hour + minute)
        expect(yield* store.prune(retention)).toBe(0)
        expect((yield* store.get(ids[0]!))?.state).toBe("completed")
        // 01:08: the whole partition is past retention; it goes in one step.
        yield* TestClock.adjust(6 * minute)
        expect(yield* store.prune(retention)).toBe(3)
        expect(yield* whereIs(sql, schema, ids)).toEqual([[], [], []])
        const names = yield* partitions
        expect(names).not.toContain("jobs_done_completed_19700101t000000")
        const [dropped] = yield* sql<{ gone: boolean }>`
        SELECT to_regclass(${`${schema}.jobs_done_completed_19700101t000000`}) IS NULL AS gone`
        expect(dropped?.gone).toBe(true)
        // The current period (01:08 falls in 01:07:30–01:15) has its partition now.
        expect(names).toContain("jobs_done_completed_19700101t010730")
      })
  )

  it.live("table stats: the live table's rows, dead rows and sizes, and the finished jobs' size", () =>
    Effect.gen(function* () {
      const { sql, schema, open } = yield* setup("finstats")
      const store = yield* open()
      yield* store.enqueue(Array.from({ length: 200 }, () => input()))
      for (const job of yield* claim(store, 200)) yield* settle(store, job, { _tag: "completed" })
      yield* sql.unsafe(`ANALYZE ${schema}.jobs`)
      // The server's statistics arrive a moment after the transactions that made them.
      yield* eventually(
        "the moved rows' dead versions are counted",
        Effect.map(store.tableStats!, (s) => s.deadRows > 0)
      )
      const stats = yield* store.tableStats!
      expect(stats.tableBytes).toBeGreaterThan(0)
      expect(stats.indexBytes).toBeGreaterThan(0)
      expect(stats.finishedBytes).toBeGreaterThan(0)
      expect(stats.liveRows).toBe(0)
    }).pipe(Effect.scoped)
  )
})

describe("PgStore migration 8: finished jobs move out of the live table", () => {
  it.live(
    "rows in every state move or stay as they should, unchanged, while a runner claims and settles",
    () =>
      Effect.gen(function* () {
        const { schema, sql, open } = yield* setup("finmig")
        yield* migrateUpTo(sql, schema, 7)
        const jobs = sql(`${schema}.jobs`)
        // The previous schema with a job in every state, as its release wrote them, and a
        // backlog of finished ones for the batched move.
        yield* sql`INSERT INTO ${jobs} (kind, queue, payload, state, priority, attempt, max_attempts, run_at,
          created_at, attempted_at, finalized_at, lease_owner, lease_expires_at, fence, dedupe_key, errors, partition_key)
        VALUES
          ('k', 'q', '{"s":"scheduled"}', 'scheduled', 0, 0, 3, now() + interval '1 hour', now(), NULL, NULL, NULL, NULL, 0, 'ks', '[]', NULL),
          ('k', 'q', '{"s":"available"}', 'available', 0, 0, 3, now(), now(), NULL, NULL, NULL, NULL, 0, NULL, '[]', 'p1'),
          ('k', 'other', '{"s":"running"}', 'running', 0, 1, 3, now(), now(), now(), NULL, 'old', now() + interval '1 hour', 1, 'kr', '[]', NULL),
          ('k', 'other', '{"s":"retryable"}', 'retryable', 0, 1, 3, now() + interval '1 hour', now(), now(), NULL, NULL, NULL, 1, NULL,
            '[{"attempt":1,"at":1,"kind":"failure","message":"x"}]', NULL),
          ('k', 'q', '{"s":"completed"}', 'completed', 0, 1, 3, now(), now(), now(), now(), 'old', NULL, 1, 'kc', '[]', NULL),
          ('k', 'q', '{"s":"discarded"}', 'discarded', 0, 3, 3, now(), now(), now(), now(), NULL, NULL, 3, NULL,
            '[{"attempt":3,"at":1,"kind":"failure","message":"y"}]', 'p2'),
          ('k', 'q', '{"s":"cancelled"}', 'cancelled', 0, 0, 3, now(), now(), NULL, now(), NULL, NULL, 0, NULL, '[]', NULL),
          ('k', 'q', '{"s":"no finish time"}', 'completed', 0, 1, 3, now(), now(), now() - interval '1 minute', NULL, NULL, NULL, 1, NULL, '[]', NULL)`
        yield* sql`INSERT INTO ${jobs} (kind, queue, payload, state, max_attempts, run_at, created_at, attempted_at, finalized_at)
        SELECT 'k', 'q', jsonb_build_object('n', g), 'completed', 3, now(), now(), now(), now() - g * interval '1 second'
        FROM generate_series(1, 12000) g`
        const before = yield* sql<{ id: string; row: Record<string, unknown> }>`
        SELECT id::text AS id, to_jsonb(j) - 'id' AS row FROM ${jobs} j ORDER BY j.id`
        // Live work for a runner, enqueued as the previous release did.
        yield* sql`SELECT * FROM ${sql(`${schema}.enqueue`)}(
        (SELECT jsonb_agg(jsonb_build_array('w', 'work', jsonb_build_object('i', g), 0, 3, NULL, 0, NULL, NULL, NULL, NULL))
         FROM generate_series(1, 300) g), now(), false)`

        // The new release starts: it migrates, and moves the finished rows in the background
        // while this runner drains its queue.
        yield* migrateFurther(sql, schema, 8)
        const store = yield* open()
        const worker = yield* Effect.gen(function* () {
          let done = 0
          while (done < 300) {
            const batch = yield* store.claim({
              queues: ["work"],
              kinds: ["w"],
              limit: 20,
              leaseMs: 30_000,
              owner: "n"
            })
            yield* store.settle(
              batch.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
            )
            done += batch.length
          }
          return done
        }).pipe(Effect.fork)
        expect(yield* Fiber.join(worker)).toBe(300)
        const left = sql<{
          n: number
        }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state IN ('completed', 'discarded', 'cancelled')`
        for (let i = 0; i < 400 && (yield* left)[0]!.n > 0; i++) yield* Effect.sleep("50 millis")
        expect((yield* left)[0]!.n).toBe(0)

        // Every row is where its state says, once, and reads back unchanged; the one without a
        // finish time is given its latest attempt's.
        const after = yield* sql<{ id: string; row: Record<string, unknown>; live: boolean }>`
        SELECT id::text AS id, to_jsonb(j) - 'id' AS row, EXISTS (SELECT 1 FROM ${jobs} l WHERE l.id = j.id) AS live
        FROM ${sql(`${schema}.jobs_all`)} j WHERE j.kind = 'k' ORDER BY j.id`
        expect(after.map((r) => r.id)).toEqual(before.map((r) => r.id))
        const noFinish = before[7]!
        for (let i = 0; i < before.length; i++) {
          const { row } = before[i]!
          const moved = after[i]!
          expect(moved.live).toBe(
            ["scheduled", "available", "running", "retryable"].includes(row.state as string)
          )
          if (moved.id === noFinish.id) {
            expect(moved.row).toEqual({ ...row, finalized_at: row.attempted_at })
          } else {
            expect(moved.row).toEqual(row)
          }
        }
        expect(
          yield* sql`SELECT 1 FROM ${sql(`${schema}.jobs_done`)} GROUP BY id HAVING count(*) > 1`
        ).toEqual([])

        // The store reads them all, counts them, and can retry a moved one.
        const counts = Object.fromEntries(
          (yield* store.counts).filter((c) => c.queue === "q").map((c) => [c.state, c.count])
        )
        expect(counts).toEqual({ scheduled: 1, available: 1, completed: 12_002, discarded: 1, cancelled: 1 })
        const discarded = before[5]!.id
        expect((yield* store.get(discarded))?.errors.map((e) => e.message)).toEqual(["y"])
        expect(yield* store.retry(discarded)).toEqual({ _tag: "retried" })
        expect((yield* store.get(discarded))?.state).toBe("available")
        // The completed job's dedupe key is free, the running one's still held.
        const [free, held] = yield* store.enqueue([input({ dedupeKey: "kc" }), input({ dedupeKey: "kr" })])
        expect(free!.deduped).toBe(false)
        expect(held).toEqual({ id: before[2]!.id, deduped: true })
      }).pipe(Effect.scoped)
  )
})
