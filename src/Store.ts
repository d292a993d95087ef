/**
 * Store selection: one database URL picks the job store and the matching
 * `Lock` and `Leader`.
 *
 * | URL | store | lock, leader |
 * | --- | --- | --- |
 * | `postgres://…`, `postgresql://…` | `PgStore` | `PgLock`, `PgLeader` |
 * | `postgres://a…,postgres://b…,…` (comma-separated) | `ShardedStore` over a `PgStore` per URL, shard 0 first | `PgLock`, `PgLeader` on the first |
 * | a file path, `sqlite:<path>`, `file:<path>` | `SqliteStore` | in-process |
 * | `memory:` | `MemoryStore` (nothing survives a restart) | in-process |
 * | nothing | `SqliteStore` on `./nightshift.db` | in-process |
 *
 * The URL comes from `NIGHTSHIFT_DATABASE_URL` through Effect `Config`
 * (`config`, `layerConfig`), or is given directly (`parse`, `layer`). A
 * PostgreSQL URL may carry `?schema=<name>` to use a schema other than
 * `nightshift`.
 *
 * @since 0.1.0
 */

import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Open from "./internal/store/open.js"
import * as internal from "./internal/store/target.js"
import type * as JobStore from "./JobStore.js"
import * as Leader from "./Leader.js"
import * as Lock from "./Lock.js"
import * as MemoryStore from "./MemoryStore.js"

/**
 * The store a URL selects.
 *
 * @since 0.1.0
 */
export type Target = internal.Target

/** The environment variable read by `config`. @since 0.1.0 */
export const envVar: string = internal.envVar

/** The store used when no URL is given: an embedded SQLite file. @since 0.1.0 */
export const defaultUrl: string = internal.defaultUrl

/**
 * A database URL that selects no store: unknown scheme, malformed URL or an
 * empty path. Its message never contains the URL's password.
 *
 * @since 0.1.0
 */
export const InvalidDatabaseUrl = internal.InvalidDatabaseUrl

/** @since 0.1.0 */
export type InvalidDatabaseUrl = internal.InvalidDatabaseUrl

/**
 * The selected store could not be opened: the SQLite file is not usable or
 * the PostgreSQL server cannot be reached. The message says what to fix.
 *
 * @since 0.1.0
 */
export const StoreUnavailable = internal.StoreUnavailable

/** @since 0.1.0 */
export type StoreUnavailable = internal.StoreUnavailable

/**
 * Read a database URL. An empty or blank URL selects the default,
 * `./nightshift.db`.
 *
 * @example
 * ```ts
 * Store.parse("postgres://app:secret@db:5432/app?schema=jobs") // Right(Postgres …)
 * Store.parse("./data/jobs.db")                                 // Right(Sqlite ./data/jobs.db)
 * Store.parse("mysql://db/app")                                 // Left(InvalidDatabaseUrl)
 * ```
 *
 * @since 0.1.0
 */
export const parse: (input: string) => Either.Either<Target, InvalidDatabaseUrl> = internal.parse

/**
 * A short, password-free description of a target, for logs and errors:
 * `memory …`, `sqlite ./nightshift.db`, `postgres app@db:5432 (schema jobs)`.
 *
 * @since 0.1.0
 */
export const describe: (target: Target) => string = internal.describe

/**
 * The target named by `NIGHTSHIFT_DATABASE_URL`, or `./nightshift.db` when
 * it is not set. A value that selects no store is a `ConfigError` whose
 * message says what is accepted.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Target> = Config.string(internal.envVar).pipe(
  Config.withDefault(internal.defaultUrl),
  Config.mapOrFail((url) =>
    Either.mapLeft(internal.parse(url), (error) => ConfigError.InvalidData([internal.envVar], error.message))
  ),
  Config.withDescription("Where jobs are stored: a postgres:// URL, a SQLite file path, or memory:")
)

/**
 * Options of `layer` and `layerJobStore`.
 *
 * @since 0.1.0
 */
export interface Options {
  /** How long to wait for a PostgreSQL connection before giving up. Default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Most PostgreSQL connections for jobs and the application (a runner's background work uses one more). Default 10. */
  readonly maxConnections?: number | undefined
  /** Listen for PostgreSQL wake-up and cancel hints. Default true; one-off tools turn it off. */
  readonly listen?: boolean | undefined
  /**
   * Send PostgreSQL's enqueue, claim and settle statements as named prepared
   * statements. Default true; false for a producer behind a pooler in
   * transaction mode (see `PgStore.Options.preparedStatements`).
   */
  readonly preparedStatements?: boolean | undefined
}

/**
 * The store a target selects, alone: for producers and admin tools that do
 * not run workers or a job runner.
 *
 * @since 0.1.0
 */
export const layerJobStore = (
  target: Target,
  options: Options = {}
): Layer.Layer<JobStore.JobStore, StoreUnavailable> => {
  switch (target._tag) {
    case "Memory":
      return MemoryStore.layer
    case "Sqlite":
      return Open.sqliteStore(target)
    case "Postgres":
      return Open.pgLayer(target, options, ([PgStore]) =>
        PgStore.layer({
          schema: target.schema,
          listen: options.listen,
          preparedStatements: options.preparedStatements
        })
      )
    case "ShardedPostgres":
      return Open.shardedStore(target, options)
  }
}

/**
 * The store a target selects, with its `Lock` and `Leader`: PostgreSQL
 * advisory locks and leader election for `Postgres`, in-process ones
 * otherwise (processes sharing one SQLite file each act as leader). A SQLite
 * file is checked first (its directory exists, it can be written); an
 * unreachable PostgreSQL server fails after `connectTimeout` with the host
 * and port in the message.
 *
 * @since 0.1.0
 */
export const layer = (
  target: Target,
  options: Options = {}
): Layer.Layer<JobStore.JobStore | Lock.Lock | Leader.Leader, StoreUnavailable> =>
  target._tag === "Postgres"
    ? Open.pgLayer(target, options, ([PgStore, PgLock, PgLeader]) =>
        Layer.mergeAll(
          PgStore.layer({
            schema: target.schema,
            listen: options.listen,
            preparedStatements: options.preparedStatements
          }),
          PgLock.layer({ namespace: target.schema }),
          PgLeader.layer({ schema: target.schema })
        )
      )
    : target._tag === "ShardedPostgres"
      ? // Singleton locks and leadership live on shard 0's server (migrated by the store first).
        Layer.provideMerge(
          Open.pgLayer(target.shards[0]!, options, ([, PgLock, PgLeader]) =>
            Layer.merge(
              PgLock.layer({ namespace: target.shards[0]!.schema }),
              PgLeader.layer({ schema: target.shards[0]!.schema })
            )
          ),
          Open.shardedStore(target, options)
        )
      : Layer.mergeAll(layerJobStore(target, options), Lock.layerMemory, Leader.layerAlways)

/**
 * `layer` on the target named by `NIGHTSHIFT_DATABASE_URL` (default
 * `./nightshift.db`).
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Options = {}
): Layer.Layer<JobStore.JobStore | Lock.Lock | Leader.Leader, StoreUnavailable | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config, (target) => layer(target, options)))

/**
 * Create or upgrade the target's tables (nothing to do for `Memory`).
 * Idempotent; returns the migrations that ran now as `[id, name]`.
 *
 * @since 0.1.0
 */
export const migrate = (
  target: Target,
  options: Options = {}
): Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, StoreUnavailable> => {
  switch (target._tag) {
    case "Memory":
      return Effect.succeed([])
    case "Sqlite":
      return Open.migrateSqlite(target)
    case "Postgres":
      return Open.migratePostgres(target, options)
    case "ShardedPostgres":
      return Open.migrateSharded(target, options)
  }
}
