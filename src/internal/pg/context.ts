/**
 * What every PostgreSQL store query needs: the client, the schema, the
 * notification channel and the store's notion of "now".
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import { messageOf } from "./schema.js"

/** Where the store reads the time: the database server, or Effect's `Clock`. */
export type ClockSource = "database" | "application"

/** "Now" as SQL: a `timestamptz` and the same instant in epoch milliseconds. */
export interface Now {
  readonly ts: Statement.Fragment
  readonly ms: Statement.Fragment
}

/** @internal */
export interface Ctx {
  readonly sql: SqlClient.SqlClient
  readonly schema: string
  readonly clock: ClockSource
  /** The notification channel of this schema. */
  readonly channel: string
  /** A table of this schema, as an identifier. */
  readonly table: (name: string) => Statement.Identifier
  /** "Now" for one statement. */
  readonly now: Effect.Effect<Now>
}

/** Build the query context; `sql` must not transform names. */
export const make = (sql: SqlClient.SqlClient, schema: string, clock: ClockSource): Ctx => {
  const database: Now = {
    ts: sql.literal("now()"),
    ms: sql.literal("floor(extract(epoch from now()) * 1000)")
  }
  return {
    sql,
    schema,
    clock,
    channel: `${schema}_wakeup`,
    table: (name) => sql(`${schema}.${name}`),
    now:
      clock === "database"
        ? Effect.succeed(database)
        : Effect.map(Clock.currentTimeMillis, (ms) => ({
            ts: sql`to_timestamp(${ms}::float8 / 1000)`,
            ms: sql`${ms}::float8`
          }))
  }
}

/** An interval of `ms` milliseconds, as SQL. */
export const millis = (ctx: Ctx, ms: number): Statement.Fragment =>
  ctx.sql`(${ms}::float8 * interval '1 millisecond')`

/** Turn a driver error into a store error that names the operation, and trace it. */
export const operation =
  (name: string) =>
  <A, R>(
    effect: Effect.Effect<A, SqlError | JobStore.JobStoreError, R>
  ): Effect.Effect<A, JobStore.JobStoreError, R> =>
    effect.pipe(
      Effect.mapError((cause) =>
        cause._tag === "JobStoreError"
          ? cause
          : new JobStore.JobStoreError({
              message: `PostgreSQL job store: ${name} failed: ${messageOf(cause)}`,
              cause
            })
      ),
      Effect.withSpan(`PgStore.${name}`)
    )

/** Is `id` something a job id can be (a positive bigint)? */
export const isJobId = (id: string): boolean => /^[1-9][0-9]{0,17}$/.test(id)
