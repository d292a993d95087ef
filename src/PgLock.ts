/**
 * `Lock` across replicas with PostgreSQL session advisory locks.
 *
 * Each `tryWith` reserves one pool connection, takes
 * `pg_try_advisory_lock` on it, runs the effect, then unlocks on that same
 * connection before handing it back to the pool (a session lock would
 * otherwise leak into the pool).
 *
 * While the effect runs, the holder watches the connection. PostgreSQL drops
 * a session's locks when the session ends, so a lost connection is a lost
 * lock: the effect is interrupted and `tryWith` fails with `LockError`
 * rather than run unguarded beside another replica. A connection that is
 * terminated or closed (`pg_terminate_backend`, a server restart, a reset
 * socket) is noticed at once, from the driver's own error; one that goes
 * silent (a network partition) is noticed by a `SELECT 1` every
 * `checkInterval` that must answer within `checkInterval`.
 *
 * Each held lock occupies one pool connection: size the pool for it.
 *
 * @since 0.1.0
 */

import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
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
  /**
   * How often a held lock's connection is checked with `SELECT 1`, and how
   * long that check (or the unlock) may go unanswered before the connection
   * is taken for lost and closed. It bounds how long a holder cut off by a
   * silent network partition keeps running (at most twice this); a
   * terminated or closed connection is noticed at once. Default 5 seconds.
   */
  readonly checkInterval?: Duration.DurationInput | undefined
}

const lockError = (key: string, what: string) => (cause: unknown) =>
  new Lock.LockError({ message: `PostgreSQL lock "${key}": ${what}: ${messageOf(cause)}`, cause })

const lostError = (key: string, cause: unknown) =>
  new Lock.LockError({
    message: `PostgreSQL lock "${key}" was lost, so the guarded effect was interrupted: the connection holding the lock failed (${messageOf(cause)})`,
    cause
  })

/**
 * The node-postgres client under a connection reserved from `@effect/sql-pg`
 * (its `pg` field), when there is one. Its `error` and `end` events tell at
 * once that the session, and so the lock, is gone.
 */
interface Driver {
  readonly on: (event: "error" | "end", listener: (cause?: unknown) => void) => unknown
  readonly off: (event: "error" | "end", listener: (cause?: unknown) => void) => unknown
  /** Closes the session; the pool then drops the client instead of reusing it. */
  readonly end: () => Promise<void>
}

const driverOf = (conn: Connection): Driver | undefined => {
  const pg = (conn as { readonly pg?: Partial<Driver> }).pg
  return typeof pg === "object" &&
    pg !== null &&
    typeof pg.on === "function" &&
    typeof pg.off === "function" &&
    typeof pg.end === "function"
    ? (pg as Driver)
    : undefined
}

interface Held {
  readonly scope: Scope.CloseableScope
  readonly conn: Connection
  readonly driver: Driver | undefined
  /** Fails once the connection is known to be lost. */
  readonly lost: Deferred.Deferred<never, Lock.LockError>
  /** Set when the connection was closed because a statement went unanswered this long. */
  silence: Duration.Duration | undefined
  locked: boolean
}

const silenceError = (key: string, silence: Duration.Duration, closed: boolean) =>
  lostError(
    key,
    new Error(
      `the connection did not answer within ${Duration.format(silence)}${closed ? ", so it was closed" : ""}`
    )
  )

/**
 * Run `statement` on the held connection; when it does not answer within
 * `within`, close the connection (which fails the statement, and reports the
 * loss, at once) and fail with `LockError`. Closing rather than interrupting:
 * interrupting a statement on `@effect/sql-pg` sends `pg_cancel_backend`
 * through another pool connection and waits for it (up to 5 s), which a
 * partition would stall.
 */
const answered = <A, E>(
  held: Held,
  key: string,
  within: Duration.Duration,
  statement: Effect.Effect<A, E>
): Effect.Effect<A, Lock.LockError> => {
  const driver = held.driver
  if (driver === undefined) {
    return statement.pipe(
      Effect.timeoutFail({ duration: within, onTimeout: () => silenceError(key, within, false) }),
      Effect.mapError((cause) => (cause instanceof Lock.LockError ? cause : lostError(key, cause)))
    )
  }
  return Effect.gen(function* () {
    const watchdog = yield* Effect.sleep(within).pipe(
      Effect.zipRight(
        Effect.sync(() => {
          held.silence = within
          close(driver)
        })
      ),
      // The unlock runs in a finalizer: the watchdog must stay interruptible there.
      Effect.interruptible,
      Effect.fork
    )
    return yield* statement.pipe(
      Effect.ensuring(Fiber.interrupt(watchdog)),
      Effect.mapError((cause) =>
        held.silence !== undefined ? silenceError(key, held.silence, true) : lostError(key, cause)
      )
    )
  })
}

/** Close the session under `driver`, ignoring how that goes. */
const close = (driver: Driver): void => {
  driver.end().catch(() => undefined)
}

/** Reserve a connection and try the lock on it; the unlock is registered in `scope`. */
const acquire = (sql: SqlClient.SqlClient, key: string, fullKey: string, every: Duration.Duration) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const attempt = Effect.gen(function* () {
      const conn = yield* sql.reserve
      const driver = driverOf(conn)
      const lost = yield* Deferred.make<never, Lock.LockError>()
      const held: Held = { scope, conn, driver, lost, silence: undefined, locked: false }
      if (driver !== undefined) {
        // Listen before the lock is taken, so that no failure goes unheard.
        const onError = (cause?: unknown) =>
          Deferred.unsafeDone(
            lost,
            Exit.fail(
              held.silence !== undefined ? silenceError(key, held.silence, true) : lostError(key, cause)
            )
          )
        const onEnd = () => onError(new Error("the connection was closed"))
        driver.on("error", onError)
        driver.on("end", onEnd)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            driver.off("error", onError)
            driver.off("end", onEnd)
          })
        )
      }
      const rows = yield* conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked",
        [fullKey],
        undefined
      )
      held.locked = (rows[0] as { locked?: boolean } | undefined)?.locked === true
      if (held.locked) {
        // Unlock on the same connection before it returns to the pool. When
        // the connection is lost, or the unlock fails or goes unanswered, the
        // connection is closed instead, so that it never returns to the pool
        // holding the lock (closing the session releases it).
        yield* Effect.addFinalizer(() =>
          Effect.flatMap(Deferred.isDone(lost), (gone) =>
            gone
              ? Effect.void
              : answered(
                  held,
                  key,
                  every,
                  conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [fullKey], undefined)
                ).pipe(
                  Effect.catchAll((error) =>
                    driver === undefined
                      ? Effect.logWarning(`PostgreSQL lock "${key}": unlock failed`, error)
                      : Effect.zipRight(
                          Effect.sync(() => close(driver)),
                          Effect.logWarning(
                            `PostgreSQL lock "${key}": unlock failed, so its connection was closed`,
                            error
                          )
                        )
                  )
                )
          )
        )
      }
      return held
    })
    return yield* attempt.pipe(
      Scope.extend(scope),
      Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)),
      Effect.mapError(lockError(key, "could not take the lock"))
    )
  })

/**
 * Fails with `LockError` once the lock's connection is lost: at once when the
 * driver reports it, or when a periodic `SELECT 1` fails or goes unanswered.
 */
const watch = (held: Held, key: string, every: Duration.Duration): Effect.Effect<never, Lock.LockError> =>
  Effect.raceFirst(
    Deferred.await(held.lost),
    answered(held, key, every, held.conn.execute("SELECT 1", [], undefined)).pipe(
      Effect.delay(every),
      Effect.forever
    )
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
          acquire(sql, key, `${namespace}:${key}`, every),
          (held): Effect.Effect<Option.Option<A>, E | Lock.LockError, R> =>
            held.locked
              ? Effect.raceFirst(Effect.map(effect, Option.some), watch(held, key, every))
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
