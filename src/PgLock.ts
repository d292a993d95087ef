/**
 * `Lock` across replicas with PostgreSQL session advisory locks.
 *
 * Each `tryWith` reserves one pool connection, takes
 * `pg_try_advisory_lock` on it, runs the effect, then unlocks on that same
 * connection before handing it back to the pool (a session lock would
 * otherwise leak into the pool). While the effect runs, the connection is
 * checked periodically; if it dies, PostgreSQL has released the lock, so the
 * effect is interrupted and `tryWith` fails with `LockError` rather than run
 * unguarded beside another replica.
 *
 * Each held lock occupies one pool connection: size the pool for it.
 *
 * @since 0.1.0
 */

import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { messageOf } from "./internal/pg/schema.js"
import * as Lock from "./Lock.js"

/**
 * Lock options.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Prefix of every key, so that applications sharing a database do not collide. Default `nightshift`. */
  readonly namespace?: string | undefined
  /** How often the lock's connection is checked while the effect runs. Default 5 seconds. */
  readonly checkInterval?: Duration.DurationInput | undefined
}

const lockError = (key: string, what: string) => (cause: unknown) =>
  new Lock.LockError({ message: `PostgreSQL lock "${key}": ${what}: ${messageOf(cause)}`, cause })

interface Held {
  readonly scope: Scope.CloseableScope
  readonly conn: Connection
  readonly locked: boolean
}

/** Reserve a connection and try the lock on it; the unlock is registered in `scope`. */
const acquire = (sql: SqlClient.SqlClient, key: string, fullKey: string) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const attempt = Effect.gen(function* () {
      const conn = yield* sql.reserve
      const rows = yield* conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked",
        [fullKey],
        undefined
      )
      const locked = (rows[0] as { locked?: boolean } | undefined)?.locked === true
      if (locked) {
        yield* Effect.addFinalizer(() =>
          conn
            .execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [fullKey], undefined)
            .pipe(Effect.ignore)
        )
      }
      return { scope, conn, locked } satisfies Held
    })
    return yield* attempt.pipe(
      Scope.extend(scope),
      Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)),
      Effect.mapError(lockError(key, "could not take the lock"))
    )
  })

/** Fails once the lock's connection stops answering. */
const watch = (conn: Connection, key: string, every: Duration.Duration) =>
  conn
    .execute("SELECT 1", [], undefined)
    .pipe(
      Effect.delay(every),
      Effect.forever,
      Effect.mapError(lockError(key, "lost the connection holding the lock"))
    )

/**
 * Build the lock service on the `SqlClient` in context (a PostgreSQL client).
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Lock.Service, never, SqlClient.SqlClient> =>
  Effect.map(SqlClient.SqlClient, (sql) => {
    const namespace = options.namespace ?? "nightshift"
    const every = Duration.decode(options.checkInterval ?? "5 seconds")
    return {
      tryWith: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(
          acquire(sql, key, `${namespace}:${key}`),
          (held): Effect.Effect<Option.Option<A>, E | Lock.LockError, R> =>
            held.locked
              ? Effect.raceFirst(Effect.map(effect, Option.some), watch(held.conn, key, every))
              : Effect.succeedNone,
          (held, exit) => Scope.close(held.scope, exit)
        ).pipe(Effect.withSpan("PgLock.tryWith", { attributes: { key } }))
    }
  })

/**
 * The PostgreSQL `Lock` layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Lock.Lock, never, SqlClient.SqlClient> =>
  Layer.effect(Lock.Lock, make(options))
