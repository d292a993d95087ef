/**
 * The rest of the PostgreSQL store: inspection, cancel and retry, pausing
 * queues, cron slots and the clock.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import { listLimit } from "../store/list.js"
import { type Ctx, isJobId } from "./context.js"
import * as Jobs from "./jobs.js"
import { columns, type JobRow, toRecord } from "./rows.js"
import { cancelPayload, enqueuedPayloads, notify } from "./wakeups.js"

const active = "('scheduled', 'available', 'running', 'retryable')"

/** `JobStore.get`. */
export const get = (ctx: Ctx, id: string) =>
  isJobId(id)
    ? ctx.sql<JobRow>`SELECT ${ctx.sql.literal(columns)} FROM ${ctx.table("jobs")} j WHERE j.id = ${id}::bigint`.pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toRecord(rows[0])))
      )
    : Effect.succeed(undefined)

/** `JobStore.list`: newest first, keyset-paginated on id. */
export const list = (ctx: Ctx, filter: JobStore.ListFilter) => {
  const { sql } = ctx
  const limit = listLimit(filter.limit)
  const where = [sql`true`]
  if (filter.states !== undefined) where.push(sql`j.state = ANY(${filter.states}::text[])`)
  if (filter.kinds !== undefined) where.push(sql`j.kind = ANY(${filter.kinds}::text[])`)
  if (filter.queues !== undefined) where.push(sql`j.queue = ANY(${filter.queues}::text[])`)
  if (filter.cursor != null) {
    if (!isJobId(filter.cursor)) return Effect.succeed<JobStore.ListPage>({ jobs: [], nextCursor: null })
    where.push(sql`j.id < ${filter.cursor}::bigint`)
  }
  return sql<JobRow>`
    SELECT ${sql.literal(columns)} FROM ${ctx.table("jobs")} j
    WHERE ${sql.and(where)} ORDER BY j.id DESC LIMIT ${limit + 1}`.pipe(
    Effect.map((rows): JobStore.ListPage => {
      const jobs = rows.slice(0, limit).map(toRecord)
      return { jobs, nextCursor: rows.length > limit ? jobs[jobs.length - 1]!.id : null }
    })
  )
}

/** `JobStore.counts`. */
export const counts = (ctx: Ctx) =>
  ctx.sql<JobStore.QueueCount>`
    SELECT queue, state, count(*)::int AS count FROM ${ctx.table("jobs")}
    GROUP BY queue, state ORDER BY queue, state`

/** `JobStore.cancel`: a queued job ends now; a running one gets a request and its node a hint. */
export const cancel = (ctx: Ctx, id: string): Effect.Effect<JobStore.CancelResult, SqlError> => {
  if (!isJobId(id)) return Effect.succeed({ _tag: "not-found" })
  const { sql } = ctx
  return Effect.gen(function* () {
    const now = yield* ctx.now
    const [row] = yield* sql<{ state: JobStore.JobState; lease_owner: string | null }>`
      SELECT state, lease_owner FROM ${ctx.table("jobs")} WHERE id = ${id}::bigint FOR UPDATE`
    if (row === undefined) return { _tag: "not-found" } as const
    if (row.state === "running") {
      yield* sql`UPDATE ${ctx.table("jobs")} SET cancel_requested = true WHERE id = ${id}::bigint`
      yield* notify(ctx, [cancelPayload(id)])
      return { _tag: "requested", owner: row.lease_owner } as const
    }
    if (JobStore.finalStates.includes(row.state)) return { _tag: "final", state: row.state } as const
    yield* sql`UPDATE ${ctx.table("jobs")} SET state = 'cancelled', finalized_at = ${now.ts}
      WHERE id = ${id}::bigint`
    return { _tag: "cancelled" } as const
  }).pipe(sql.withTransaction)
}

/**
 * `JobStore.retry`: a final job becomes available now, with room for one more
 * attempt. A job whose dedupe key is held by another live job stays as it is.
 */
export const retry = (ctx: Ctx, id: string): Effect.Effect<JobStore.RetryResult, SqlError> => {
  if (!isJobId(id)) return Effect.succeed({ _tag: "not-found" })
  const { sql } = ctx
  return Effect.gen(function* () {
    const now = yield* ctx.now
    const [row] = yield* sql<{ state: JobStore.JobState; queue: string; key_taken: boolean }>`
      SELECT j.state, j.queue, EXISTS (
        SELECT 1 FROM ${ctx.table("jobs")} o
        WHERE o.kind = j.kind AND o.dedupe_key = j.dedupe_key AND o.id <> j.id AND o.state IN ${sql.literal(active)}
      ) AS key_taken
      FROM ${ctx.table("jobs")} j WHERE j.id = ${id}::bigint FOR UPDATE`
    if (row === undefined) return { _tag: "not-found" } as const
    if (!JobStore.finalStates.includes(row.state) || row.key_taken) {
      return { _tag: "not-retryable", state: row.state } as const
    }
    yield* sql`UPDATE ${ctx.table("jobs")} SET state = 'available', run_at = ${now.ts}, finalized_at = NULL,
      cancel_requested = false, max_attempts = greatest(max_attempts, attempt + 1)
      WHERE id = ${id}::bigint`
    yield* notify(ctx, enqueuedPayloads([row.queue]))
    return { _tag: "retried" } as const
  }).pipe(sql.withTransaction)
}

/** `JobStore.pause`. */
export const pause = (ctx: Ctx, queue: string) =>
  ctx.sql`INSERT INTO ${ctx.table("paused_queues")} (queue) VALUES (${queue}) ON CONFLICT DO NOTHING`.pipe(
    Effect.asVoid
  )

/** `JobStore.resume`: also wakes the queue's runners. */
export const resume = (ctx: Ctx, queue: string) =>
  ctx.sql`DELETE FROM ${ctx.table("paused_queues")} WHERE queue = ${queue}`.pipe(
    Effect.zipRight(notify(ctx, enqueuedPayloads([queue]))),
    ctx.sql.withTransaction,
    Effect.asVoid
  )

/** `JobStore.paused`. */
export const paused = (ctx: Ctx) =>
  ctx.sql<{ queue: string }>`SELECT queue FROM ${ctx.table("paused_queues")} ORDER BY queue COLLATE "C"`.pipe(
    Effect.map((rows) => rows.map((r) => r.queue))
  )

/**
 * `JobStore.enqueueCronSlot`: the slot's row and its job go in one
 * transaction; the primary key lets exactly one caller take each slot, in
 * whatever order nodes reach them.
 */
export const enqueueCronSlot = (ctx: Ctx, input: JobStore.CronSlotInput) => {
  const { sql } = ctx
  return Effect.gen(function* () {
    const now = yield* ctx.now
    const taken = yield* sql`
      INSERT INTO ${ctx.table("cron_slots")} (name, slot, enqueued_at)
      VALUES (${input.name}, ${input.slot}::bigint, ${now.ts})
      ON CONFLICT DO NOTHING
      RETURNING name`
    if (taken.length === 0) return undefined
    const [result] = yield* Jobs.enqueue(ctx, [input.job])
    return result
  }).pipe(sql.withTransaction)
}

/** `JobStore.lastCronSlot`. */
export const lastCronSlot = (ctx: Ctx, name: string) =>
  ctx.sql<{ slot: number | null }>`
    SELECT max(slot)::float8 AS slot FROM ${ctx.table("cron_slots")} WHERE name = ${name}`.pipe(
    Effect.map((rows) => rows[0]?.slot ?? undefined)
  )

/** `JobStore.now`. */
export const now = (ctx: Ctx): Effect.Effect<number, SqlError> =>
  ctx.clock === "application"
    ? Clock.currentTimeMillis
    : ctx.sql<{ now: number }>`SELECT floor(extract(epoch from now()) * 1000)::float8 AS now`.pipe(
        Effect.map((rows) => rows[0]!.now)
      )

/** `JobStore.ping`. */
export const ping = (ctx: Ctx) => ctx.sql`SELECT 1`.pipe(Effect.asVoid)
