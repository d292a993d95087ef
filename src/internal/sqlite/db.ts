/**
 * The engine's handle on its `SqlClient`: the client without name
 * transforms, and `run`, which keeps an operation on the engine's own
 * connection and turns `SqlError` into an actionable `JobStoreError`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"

/** The engine's connection handle. */
export interface Db {
  readonly sql: SqlClient.SqlClient
  readonly run: <A>(
    operation: string,
    effect: Effect.Effect<A, SqlError | JobStore.JobStoreError>
  ) => Effect.Effect<A, JobStore.JobStoreError>
}

const describe = (error: SqlError): string => {
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  const detail = typeof cause?.message === "string" ? `${error.message}: ${cause.message}` : error.message
  return cause?.code === "SQLITE_BUSY"
    ? `${detail} (another connection held the write lock longer than busy_timeout; raise busyTimeout or shorten that connection's transactions)`
    : detail
}

/**
 * Statements pick their connection from the fiber's `TransactionConnection`,
 * a tag shared by every `SqlClient`. Inside another client's transaction
 * (the app's PostgreSQL, or a second SQLite file) the engine's statements
 * would run on that connection, so the tag is hidden from them; inside a
 * transaction of the engine's own connection they join it.
 */
const isolateFrom =
  (own: unknown) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
      tx._tag === "Some" && tx.value[0] !== own
        ? Effect.mapInputContext(
            effect,
            (context: Context.Context<R>) =>
              Context.omit(SqlClient.TransactionConnection)(context) as Context.Context<R>
          )
        : effect
    )

/** Check the client speaks SQLite and build the handle. */
export const connect: Effect.Effect<Db, JobStore.JobStoreError, SqlClient.SqlClient> = Effect.gen(
  function* () {
    const client = yield* SqlClient.SqlClient
    if (!client.onDialectOrElse({ sqlite: () => true, orElse: () => false })) {
      return yield* new JobStore.JobStoreError({
        message: "SqliteStore needs a SQLite SqlClient (@effect/sql-sqlite-node); for PostgreSQL use PgStore"
      })
    }
    const sql = client.withoutTransforms()
    const own = yield* Effect.scoped(sql.reserve).pipe(Core.operation("SqliteStore", "connect", describe))
    const isolate = isolateFrom(own)
    return {
      sql,
      run: (operation, effect) => isolate(effect).pipe(Core.operation("SqliteStore", operation, describe))
    }
  }
)
