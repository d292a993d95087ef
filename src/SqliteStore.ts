/**
 * The SQLite `JobStore` engine: durable jobs in one file, for a single
 * process (or a few processes on one machine sharing the file).
 *
 * Built on `@effect/sql-sqlite-node` (better-sqlite3) with WAL and
 * `synchronous = NORMAL`. Tables are created by `@effect/sql`'s `Migrator`
 * under its own bookkeeping table, `nightshift_migrations`, when the layer is
 * built. Time comes from Effect's `Clock` and is stored as epoch ms, so
 * `TestClock` drives run-at times, backoff, leases and retention.
 *
 * Several processes may share one file: SQLite serialises writers, a claim
 * is one `UPDATE … RETURNING` statement (or, when flow control has a say,
 * one write transaction that counts running jobs and rate starts and
 * claims under the write lock it took first), and dedupe is a unique index.
 * Another process's commits wake this one's runner within milliseconds (the
 * file's directory is watched; polling stays the backstop).
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Schema from "./internal/sqlite/schema.js"
import * as Store from "./internal/sqlite/store.js"
import * as JobStore from "./JobStore.js"

/**
 * Options of `layer`.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Path of the database file (created when missing), or `:memory:`. */
  readonly filename: string
  /**
   * How long a write waits for another connection's write lock before it
   * fails. Default 5 seconds. A transaction waits without blocking the
   * process (docs/sqlite.md).
   */
  readonly busyTimeout?: Duration.DurationInput | undefined
  /**
   * `PRAGMA synchronous`. Default `NORMAL`: under WAL a power loss can lose
   * the last commits but never corrupts the file; `FULL` fsyncs every commit
   * (about 2–3× slower on batched workloads).
   */
  readonly synchronous?: "OFF" | "NORMAL" | "FULL" | "EXTRA" | undefined
  /** Prepared statements kept per connection. Default 200. */
  readonly prepareCacheSize?: number | undefined
  /** Attributes added to every SQL span. */
  readonly spanAttributes?: Record<string, unknown> | undefined
}

const synchronousModes = ["OFF", "NORMAL", "FULL", "EXTRA"]

const migrationFailed = (cause: Cause.Cause<unknown>) =>
  Cause.isInterruptedOnly(cause)
    ? Effect.failCause(cause as Cause.Cause<never>)
    : Effect.fail(
        new JobStore.JobStoreError({
          message: `SqliteStore could not migrate its tables (nightshift_migrations records what ran): ${Cause.pretty(cause)}`,
          cause: Cause.squash(cause)
        })
      )

/**
 * Create or upgrade the engine's tables on the `SqlClient` in context.
 * Idempotent; returns the migrations it ran (`[id, name]`).
 *
 * @since 0.1.0
 */
export const migrate: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  JobStore.JobStoreError,
  SqlClient.SqlClient
> = Schema.migrate.pipe(Effect.catchAllCause(migrationFailed), Effect.withSpan("SqliteStore.migrate"))

/**
 * Run the migrations, then build the store on the `SqlClient` in context.
 * The client must be a SQLite client; the store leaves its pragmas alone
 * (WAL and a busy timeout are recommended).
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<
  JobStore.Service,
  JobStore.JobStoreError,
  SqlClient.SqlClient | Scope.Scope
> = Effect.zipRight(migrate, Store.make)

/**
 * A `JobStore` on an existing SQLite `SqlClient`: the host app's own
 * database. An enqueue inside the app's `sql.withTransaction` joins that
 * transaction and commits or rolls back with it.
 *
 * @since 0.1.0
 */
export const layerClient: Layer.Layer<JobStore.JobStore, JobStore.JobStoreError, SqlClient.SqlClient> =
  Layer.scoped(JobStore.JobStore, make)

const pragmas = (sql: SqlClient.SqlClient, options: Options) =>
  Effect.gen(function* () {
    const busyMs = Duration.toMillis(Duration.decode(options.busyTimeout ?? "5 seconds"))
    const synchronous = options.synchronous ?? "NORMAL"
    if (!Number.isFinite(busyMs) || !synchronousModes.includes(synchronous)) {
      return yield* new JobStore.JobStoreError({
        message: `SqliteStore: busyTimeout must be a finite duration and synchronous one of ${synchronousModes.join(", ")}`
      })
    }
    yield* sql.unsafe(`PRAGMA busy_timeout = ${Math.ceil(busyMs)}`).raw
    yield* sql.unsafe(`PRAGMA synchronous = ${synchronous}`).raw
  }).pipe(
    Effect.catchTag("SqlError", (error) =>
      Effect.fail(
        new JobStore.JobStoreError({
          message: `SqliteStore could not set pragmas: ${error.message}`,
          cause: error
        })
      )
    )
  )

const openClient = (options: Options) =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const client = yield* SqliteClient.make({
        filename: options.filename,
        prepareCacheSize: options.prepareCacheSize,
        spanAttributes: options.spanAttributes
      }).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.fail(
            new JobStore.JobStoreError({
              message: `SqliteStore could not open "${options.filename}" (does its directory exist and is it writable?): ${defect}`,
              cause: defect
            })
          )
        )
      )
      yield* pragmas(client, options)
      return Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * A `JobStore` on its own SQLite file (WAL, `synchronous = NORMAL`, a busy
 * timeout). The layer also provides its `SqliteClient`/`SqlClient`, so an app
 * can enqueue inside `sql.withTransaction` on the same file.
 *
 * @example
 * ```ts
 * Nightshift.layer({ handlers }).pipe(Layer.provide(SqliteStore.layer({ filename: "jobs.db" })))
 * ```
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<JobStore.JobStore | SqliteClient.SqliteClient | SqlClient.SqlClient, JobStore.JobStoreError> =>
  Layer.provideMerge(layerClient, openClient(options))

/**
 * `layer` with its options read from `Config`.
 *
 * @example
 * ```ts
 * SqliteStore.layerConfig({ filename: Config.string("NIGHTSHIFT_SQLITE_FILE") })
 * ```
 *
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<
  JobStore.JobStore | SqliteClient.SqliteClient | SqlClient.SqlClient,
  JobStore.JobStoreError | ConfigError.ConfigError
> => Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
