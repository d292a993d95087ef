/**
 * The engine's handle on its `SqlClient`: the client without name
 * transforms; `run`, which keeps an operation on the engine's own
 * connection and turns `SqlError` into an actionable `JobStoreError`; and
 * `exec`, the hot paths' statements and transactions.
 */

import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import { nativeTracer } from "../tracing.js"

/** Statements by text and bound values, and a transaction around an effect. */
export interface Exec {
  /** The rows as arrays of column values (`sql.unsafe(text, params).values`). */
  readonly values: (
    text: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /** The driver's own result (`sql.unsafe(text, params).raw`): better-sqlite3's `{ changes }` for a write. */
  readonly raw: (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<unknown, SqlError>
  /** `sql.withTransaction`. */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
}

const realClock = Clock.make()

/** The waits between tries for the write lock (ms): SQLite's own steps (sqlite3_busy_timeout's). */
const lockWaits = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]

/** Did a statement fail because another connection holds the lock? */
const isBusy = (error: SqlError): boolean =>
  (error.cause as { readonly code?: unknown } | undefined)?.code === "SQLITE_BUSY"

/** `Exec` through the client's statements: a span, a compile and a connection acquired per statement. */
export const viaClient = (sql: SqlClient.SqlClient): Exec => ({
  values: (text, params) => sql.unsafe(text, params).values,
  raw: (text, params) => sql.unsafe(text, params).raw,
  transaction: sql.withTransaction
})

/**
 * `Exec` on the connection itself when nothing would see the difference:
 * with Effect's default tracer (whose spans go nowhere) and no statement
 * transformer installed, a statement runs on the transaction's connection,
 * or on the client's connection under its lock (`reserve`, which waits for
 * another fiber's transaction as the client's own statements do); a
 * transaction outside any other is `BEGIN`, the effect with that
 * connection as the fiber's `TransactionConnection` (so `sql` statements
 * inside join it, as in `sql.withTransaction`), then `COMMIT`, or
 * `ROLLBACK` when the effect failed or was interrupted. Otherwise, and for
 * a transaction inside another (a savepoint), the client's own path.
 *
 * The client's path costs about 50 µs of CPU per statement on this machine
 * (a `sql.execute` span with its attributes, a compile, a scoped acquire),
 * against about 7 µs here; a transaction's `BEGIN` and `COMMIT` are
 * prepared again each time there (`executeUnprepared`) and cached here.
 */
export const direct = (sql: SqlClient.SqlClient): Exec => {
  const slow = viaClient(sql)
  const plain = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
    fiber.currentTracer === nativeTracer && fiber.getFiberRef(Statement.currentTransformer)._tag === "None"
  const onConnection =
    <A>(
      viaStatement: (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<A, SqlError>,
      run: (
        conn: SqlConnection.Connection,
        text: string,
        params: ReadonlyArray<unknown>
      ) => Effect.Effect<A, SqlError>
    ) =>
    (text: string, params: ReadonlyArray<unknown>): Effect.Effect<A, SqlError> =>
      Effect.withFiberRuntime((fiber) => {
        if (!plain(fiber)) return viaStatement(text, params)
        const tx = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
        return tx._tag === "Some"
          ? run(tx.value[0], text, params)
          : Effect.scoped(Effect.flatMap(sql.reserve, (conn) => run(conn, text, params)))
      })
  const end = (conn: SqlConnection.Connection, exit: Exit.Exit<unknown, unknown>) =>
    Effect.orDie(conn.executeRaw(Exit.isSuccess(exit) ? "COMMIT" : "ROLLBACK", []))
  /** The connection's `busy_timeout` (ms), read once. */
  let busyMs: number | undefined
  /**
   * `BEGIN IMMEDIATE`, waiting for the write lock without blocking the
   * process. SQLite's own wait (`busy_timeout`) sleeps the whole thread, so
   * a process that finds another holding the lock stops everything, its
   * running jobs and its timers included, until it gets it. Here the lock is
   * tried with no wait, and again after the same steps SQLite would sleep
   * (`lockWaits`) while other fibers run, for up to `busy_timeout`; then once
   * more with SQLite's wait, which fails as before when the lock stays held.
   * (Trying every millisecond instead cost a drain of two processes 19% of
   * its rate in CPU.)
   */
  const begin = (conn: SqlConnection.Connection): Effect.Effect<void, SqlError> =>
    Effect.gen(function* () {
      if (busyMs === undefined) {
        const [row] = yield* conn.executeValues("PRAGMA busy_timeout", [])
        busyMs = Number(row?.[0] ?? 0)
      }
      if (busyMs <= 0) return yield* conn.executeRaw("BEGIN IMMEDIATE", [])
      const started = realClock.unsafeCurrentTimeMillis()
      let tries = 0
      while (true) {
        yield* conn.executeRaw("PRAGMA busy_timeout = 0", [])
        const tried = yield* Effect.exit(conn.executeRaw("BEGIN IMMEDIATE", []))
        yield* conn.executeRaw(`PRAGMA busy_timeout = ${busyMs}`, [])
        if (Exit.isSuccess(tried)) return
        const busy = Exit.isFailure(tried) && Option.exists(Cause.failureOption(tried.cause), isBusy)
        if (!busy || realClock.unsafeCurrentTimeMillis() - started >= busyMs) break
        // The lock is another process's, on the real clock, whatever clock the store runs on.
        yield* Effect.withClock(Effect.sleep(lockWaits[Math.min(tries++, lockWaits.length - 1)]!), realClock)
      }
      yield* conn.executeRaw("BEGIN IMMEDIATE", [])
    })
  return {
    values: onConnection(slow.values, (conn, text, params) => conn.executeValues(text, params)),
    raw: onConnection(slow.raw, (conn, text, params) => conn.executeRaw(text, params)),
    transaction: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
      Effect.withFiberRuntime((fiber) => {
        if (
          !plain(fiber) ||
          Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)._tag === "Some"
        )
          return sql.withTransaction(effect)
        return Effect.uninterruptibleMask((restore) =>
          Effect.scoped(
            Effect.flatMap(sql.reserve, (conn) =>
              Effect.zipRight(
                begin(conn),
                Effect.flatMap(
                  Effect.exit(
                    restore(Effect.provideService(effect, SqlClient.TransactionConnection, [conn, 0]))
                  ),
                  (exit) => Effect.zipRight(end(conn, exit), exit)
                )
              )
            )
          )
        )
      })
  }
}

/** The engine's connection handle. */
export interface Db {
  readonly sql: SqlClient.SqlClient
  readonly run: <A>(
    operation: string,
    effect: Effect.Effect<A, SqlError | JobStore.JobStoreError>
  ) => Effect.Effect<A, JobStore.JobStoreError>
  /** The hot paths' statements and transactions (`direct`). */
  readonly exec: Exec
}

const describe = (error: SqlError): string => {
  const cause = error.cause as { readonly message?: unknown } | undefined
  const detail = typeof cause?.message === "string" ? `${error.message}: ${cause.message}` : error.message
  return isBusy(error)
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
      run: (operation, effect) => isolate(effect).pipe(Core.operation("SqliteStore", operation, describe)),
      exec: direct(sql)
    }
  }
)
