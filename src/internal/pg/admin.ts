/**
 * The rest of the PostgreSQL store: inspection, cancel and retry, pausing
 * queues, cron slots and the clock.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import * as Bulk from "../store/bulk.js"
import * as Statements from "../store/statements.js"
import type { Ctx } from "./context.js"
import * as Jobs from "./jobs.js"
import { cancelPayload, enqueuedPayloads, notify } from "./wakeups.js"

/** `JobStore.get`. */
export const get = (ctx: Ctx, id: string) => Statements.get(ctx.tables, id)

/** `JobStore.list`. */
export const list = (ctx: Ctx, filter: JobStore.ListFilter) => Statements.list(ctx.tables, filter)

/** `JobStore.counts`. */
export const counts = (ctx: Ctx) => Statements.counts(ctx.tables)

/** `JobStore.depth`. */
export const depth = (ctx: Ctx) => Statements.depth(ctx.tables)

/** `JobStore.activity`: up to the store's "now", read first. */
export const activity = (ctx: Ctx, since: number) =>
  Effect.flatMap(now(ctx), (until) => Statements.activity(ctx.tables, since, until))

/** `JobStore.cancel`: a running job's node also gets a hint, delivered on commit. */
export const cancel = (ctx: Ctx, id: string): Effect.Effect<JobStore.CancelResult, SqlError> =>
  Statements.cancel(ctx.tables, id).pipe(
    Effect.tap((result) => (result._tag === "requested" ? notify(ctx, [cancelPayload(id)]) : Effect.void)),
    ctx.sql.withTransaction
  )

/** `JobStore.retry`: the job's queue is woken on commit. */
export const retry = (ctx: Ctx, id: string): Effect.Effect<JobStore.RetryResult, SqlError> =>
  Statements.retry(ctx.tables, id).pipe(
    Effect.tap(({ queue }) => (queue === undefined ? Effect.void : notify(ctx, enqueuedPayloads([queue])))),
    Effect.map(({ result }) => result),
    ctx.sql.withTransaction
  )

/** `JobStore.retryMany`: each batch in a transaction; its queues are woken on commit. */
export const retryMany = (ctx: Ctx, ids: ReadonlyArray<string>) =>
  Bulk.run(ids, (batch) =>
    Statements.retryBatch(ctx.tables, batch).pipe(
      Effect.tap(({ queues }) => (queues.length === 0 ? Effect.void : notify(ctx, enqueuedPayloads(queues)))),
      Effect.map(({ result }) => result),
      ctx.sql.withTransaction
    )
  )

/** `JobStore.cancelMany`: each batch in a transaction; running jobs' nodes get hints on commit. */
export const cancelMany = (ctx: Ctx, ids: ReadonlyArray<string>) =>
  Bulk.run(ids, (batch) =>
    Statements.cancelBatch(ctx.tables, batch).pipe(
      Effect.tap((result) =>
        result.requested.length === 0 ? Effect.void : notify(ctx, result.requested.map(cancelPayload))
      ),
      ctx.sql.withTransaction
    )
  )

/** `JobStore.deleteMany`: each batch in a transaction. */
export const deleteMany = (ctx: Ctx, ids: ReadonlyArray<string>) =>
  Bulk.run(ids, (batch) => ctx.sql.withTransaction(Statements.deleteBatch(ctx.tables, batch)))

/** `JobStore.runNow`: the job's queue is woken on commit. */
export const runNow = (ctx: Ctx, id: string): Effect.Effect<JobStore.RunNowResult, SqlError> =>
  Statements.runNow(ctx.tables, id).pipe(
    Effect.tap(({ queue }) => (queue === undefined ? Effect.void : notify(ctx, enqueuedPayloads([queue])))),
    Effect.map(({ result }) => result),
    ctx.sql.withTransaction
  )

/** `JobStore.pause`. */
export const pause = (ctx: Ctx, queue: string) => Statements.pause(ctx.tables, queue)

/** `JobStore.resume`: also wakes the queue's runners. */
export const resume = (ctx: Ctx, queue: string) =>
  Statements.resume(ctx.tables, queue).pipe(
    Effect.tap((resumed) => (resumed ? notify(ctx, enqueuedPayloads([queue])) : Effect.void)),
    ctx.sql.withTransaction,
    Effect.asVoid
  )

/** `JobStore.paused`. */
export const paused = (ctx: Ctx) => Statements.paused(ctx.tables)

/**
 * `JobStore.enqueueCronSlot`: the slot's row and its job go in one
 * transaction; the primary key lets exactly one caller take each slot, in
 * whatever order nodes reach them.
 */
export const enqueueCronSlot = (ctx: Ctx, input: JobStore.CronSlotInput) => {
  return Effect.gen(function* () {
    if (!(yield* Statements.takeCronSlot(ctx.tables, input.name, input.slot))) return undefined
    const [result] = yield* Jobs.enqueue(ctx, [input.job])
    return result
  }).pipe(ctx.sql.withTransaction)
}

/** `JobStore.lastCronSlot`. */
export const lastCronSlot = (ctx: Ctx, name: string) => Statements.lastCronSlot(ctx.tables, name)

/** `JobStore.now`. */
export const now = (ctx: Ctx): Effect.Effect<number, SqlError> =>
  ctx.clock === "application"
    ? Clock.currentTimeMillis
    : ctx.sql<{ now: number }>`SELECT floor(extract(epoch from now()) * 1000)::float8 AS now`.pipe(
        Effect.map((rows) => rows[0]!.now)
      )

/** `JobStore.ping`. */
export const ping = (ctx: Ctx) => ctx.sql`SELECT 1`.pipe(Effect.asVoid)
