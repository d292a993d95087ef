/**
 * What every PostgreSQL store query needs: the client, the schema, the
 * notification channel and the store's notion of "now".
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Core from "../store/core.js"
import type { FlowTables } from "../store/flowStatements.js"
import * as Direct from "./direct.js"
import { columns, type JobRow, jobColumns, toRecord } from "./rows.js"
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
  /** What the statements shared with SQLite need. */
  readonly tables: FlowTables
  /** The client's pool, when the hot statements may run on it directly (see `direct.ts`). */
  readonly pool: Direct.Pool | undefined
  /** Whether those statements go as named prepared statements (`PgStore.Options.preparedStatements`). */
  readonly prepared: boolean
}

/** Build the query context; `sql` must not transform names. */
export const make = (
  sql: SqlClient.SqlClient,
  schema: string,
  clock: ClockSource,
  pool: Direct.Pool | undefined = undefined,
  prepared = true
): Ctx => {
  const database: Now = {
    ts: sql.literal("now()"),
    ms: sql.literal("floor(extract(epoch from now()) * 1000)")
  }
  const table = (name: string) => sql(`${schema}.${name}`)
  const now: Effect.Effect<Now> =
    clock === "database"
      ? Effect.succeed(database)
      : Effect.map(Clock.currentTimeMillis, (ms) => ({
          ts: sql`to_timestamp(${ms}::float8 / 1000)`,
          ms: sql`${ms}::float8`
        }))
  return {
    sql,
    schema,
    clock,
    channel: `${schema}_wakeup`,
    table,
    now,
    pool,
    prepared,
    tables: {
      sql,
      jobs: sql`${table("jobs")}`,
      all: sql`${table("jobs_all")}`,
      finished: { table: sql`${table("jobs_done")}`, columns: jobColumns },
      pausedQueues: sql`${table("paused_queues")}`,
      cronSlots: sql`${table("cron_slots")}`,
      flowRules: sql`${table("flow_rules")}`,
      flowStarts: sql`${table("flow_starts")}`,
      now: Effect.map(now, (n) => n.ts),
      time: (ms) => sql`to_timestamp(${ms}::float8 / 1000)`,
      columns: sql.literal(columns),
      read: (statement) => Effect.map(statement, (rows) => (rows as ReadonlyArray<JobRow>).map(toRecord))
    }
  }
}

/** An interval of `ms` milliseconds, as SQL. */
export const millis = (ctx: Ctx, ms: number): Statement.Fragment =>
  ctx.sql`(${ms}::float8 * interval '1 millisecond')`

/** Turn a driver error into a store error that names the operation, and trace it. */
export const operation = (name: string) => Core.operation("PgStore", name, messageOf)

/** A hot statement: on the pool directly when it may be (see `direct.ts`), else through the client. */
export const run = <A extends object>(ctx: Ctx, statement: Statement.Statement<A>) =>
  Direct.run(ctx.pool, statement)
