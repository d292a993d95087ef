/**
 * Opening the store a target names: checks with fix-it messages, and each
 * engine's modules (and its driver, an optional peer dependency) loaded only
 * when a URL selects it.
 */
import * as NodePath from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as JobStore from "../../JobStore.js"
import type { Options } from "../../Store.js"
import * as Peer from "../peer.js"
import * as Pool from "../pg/pool.js"
import { describe, envVar, StoreUnavailable, type Target } from "./target.js"

type Sqlite = Target & { readonly _tag: "Sqlite" }
type Postgres = Target & { readonly _tag: "Postgres" }
type ShardedPostgres = Target & { readonly _tag: "ShardedPostgres" }

/** A `StoreUnavailable` for this target. */
export const unavailable = (target: Target, message: string, cause?: unknown) =>
  new StoreUnavailable({ target: describe(target), message, cause })

/** Fail early, with a fix-it message, when a SQLite file cannot be created or opened. */
const checkSqliteFile = (target: Sqlite) =>
  Effect.gen(function* () {
    if (target.filename === ":memory:") return
    const fs = yield* FileSystem.FileSystem
    const path = NodePath.resolve(target.filename)
    const fail = (problem: string) =>
      Effect.fail(
        unavailable(
          target,
          `cannot use the SQLite database ${path}: ${problem}. Fix that, or choose another file with --database or ${envVar}.`
        )
      )
    const info = yield* Effect.option(fs.stat(path))
    if (info._tag === "Some") {
      if (info.value.type !== "File") return yield* fail("it is not a file")
      const usable = yield* Effect.isSuccess(fs.access(path, { readable: true, writable: true }))
      if (!usable) return yield* fail("it is not readable and writable by this user")
      return
    }
    const dir = NodePath.dirname(path)
    const dirInfo = yield* Effect.option(fs.stat(dir))
    if (dirInfo._tag === "None" || dirInfo.value.type !== "Directory") {
      return yield* fail(`the directory ${dir} does not exist`)
    }
    const writable = yield* Effect.isSuccess(fs.access(dir, { writable: true }))
    if (!writable) return yield* fail(`the directory ${dir} is not writable by this user`)
  }).pipe(Effect.provide(NodeFileSystem.layer))

/** The SQLite store's modules, loaded on first use. */
const sqliteModules = (target: Target) =>
  Peer.load("@effect/sql-sqlite-node", () =>
    Promise.all([import("../../SqliteStore.js"), import("@effect/sql-sqlite-node/SqliteClient")] as const)
  ).pipe(Effect.mapError((error) => unavailable(target, error.message, error)))

/** The PostgreSQL client module, loaded on first use. */
const pgModule = (target: Target) =>
  Peer.load("@effect/sql-pg", () => import("../pg/client.js")).pipe(
    Effect.mapError((error) => unavailable(target, error.message, error))
  )

/** The SQLite store on the target's file, after `checkSqliteFile`. */
export const sqliteStore = (target: Sqlite) =>
  Layer.unwrapEffect(
    Effect.zipRight(
      checkSqliteFile(target),
      Effect.map(sqliteModules(target), ([SqliteStore]) => SqliteStore.layer({ filename: target.filename }))
    )
  ).pipe(
    Layer.catchAll((error) =>
      Layer.fail(error._tag === "StoreUnavailable" ? error : unavailable(target, error.message, error))
    )
  )

const pgUnreachable = (target: Postgres, cause: unknown) =>
  unavailable(
    target,
    `cannot reach PostgreSQL at ${target.host}:${target.port} (database "${target.database}"): ${messageOf(cause)}. Check that the server is running and accepts connections there, and the user, password and database in --database or ${envVar}.`,
    cause
  )

/** The message of an error-like value, with its cause's message when that adds something. */
export const messageOf = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null && "message" in cause) {
    const inner = (cause as { cause?: unknown }).cause
    const message = String((cause as { message: unknown }).message)
    return inner instanceof Error && !message.includes(inner.message)
      ? `${message} (${inner.message})`
      : message
  }
  return String(cause)
}

/** A PostgreSQL client for the target; connection failures say which host and port. */
export const pgClient = (target: Postgres, options: Options) =>
  Effect.map(pgModule(target), (Pg) =>
    Pg.layer({
      url: target.url,
      connectTimeout: options.connectTimeout ?? "5 seconds",
      maxConnections: options.maxConnections ?? 10,
      idleTimeout: Pool.idleTimeout,
      applicationName: "nightshift"
    }).pipe(Layer.mapError((cause) => pgUnreachable(target, cause)))
  )

type PgModules = readonly [
  typeof import("../../PgStore.js"),
  typeof import("../../PgLock.js"),
  typeof import("../../PgLeader.js")
]

/** Services built from the PostgreSQL modules on a client for the target. */
export const pgLayer = <A>(
  target: Postgres,
  options: Options,
  services: (
    modules: PgModules
  ) => Layer.Layer<A, JobStore.JobStoreError, SqlClient.SqlClient | PgClient.PgClient>
): Layer.Layer<A, StoreUnavailable> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const client = yield* pgClient(target, options)
      const modules = yield* Peer.load("@effect/sql-pg", () =>
        Promise.all([
          import("../../PgStore.js"),
          import("../../PgLock.js"),
          import("../../PgLeader.js")
        ] as const)
      ).pipe(Effect.mapError((error) => unavailable(target, error.message, error)))
      return Layer.provide(
        services(modules).pipe(Layer.mapError((error) => unavailable(target, error.message, error))),
        client
      )
    })
  )

/** Run the SQLite migrations on the target's file. */
export const migrateSqlite = (target: Sqlite) =>
  Effect.gen(function* () {
    yield* checkSqliteFile(target)
    const [SqliteStore, SqliteClient] = yield* sqliteModules(target)
    return yield* SqliteStore.migrate.pipe(
      Effect.provide(SqliteClient.layer({ filename: target.filename })),
      Effect.catchAllDefect((defect) => Effect.fail(defect)),
      Effect.mapError((error) => unavailable(target, messageOf(error), error))
    )
  })

/** Run the PostgreSQL migrations in the target's schema. */
export const migratePostgres = (target: Postgres, options: Options) =>
  Effect.gen(function* () {
    const client = yield* pgClient(target, { ...options, maxConnections: 2 })
    const PgStore = yield* Peer.load("@effect/sql-pg", () => import("../../PgStore.js")).pipe(
      Effect.mapError((error) => unavailable(target, error.message, error))
    )
    return yield* PgStore.migrate({ schema: target.schema }).pipe(
      Effect.mapError((error) => unavailable(target, error.message, error)),
      Effect.provide(client)
    )
  })

/**
 * A store sharded over the target's servers (see `ShardedStore`): a
 * `PgStore` on a client of its own per shard, shard 0 first.
 */
export const shardedStore = (
  target: ShardedPostgres,
  options: Options
): Layer.Layer<JobStore.JobStore, StoreUnavailable> =>
  Layer.scoped(
    JobStore.JobStore,
    Effect.gen(function* () {
      const ShardedStore = yield* Effect.promise(() => import("../../ShardedStore.js"))
      return yield* ShardedStore.connectAll(
        target.shards.map((shard, i) => ({
          shard: i,
          name: `shard ${i} (${shard.database}@${shard.host}:${shard.port})`,
          engine: "postgres",
          build: (scope) =>
            Layer.buildWithScope(
              pgLayer(shard, options, ([PgStore]) =>
                PgStore.layer({
                  schema: shard.schema,
                  listen: options.listen,
                  preparedStatements: options.preparedStatements
                })
              ),
              scope
            ).pipe(
              Effect.map((context) => Context.get(context, JobStore.JobStore)),
              Effect.mapError((error) => new JobStore.JobStoreError({ message: error.message, cause: error }))
            )
        }))
      ).pipe(Effect.mapError((error) => unavailable(target, error.message, error)))
    })
  )

/** Run the PostgreSQL migrations on every shard; the migrations that ran on any of them. */
export const migrateSharded = (target: ShardedPostgres, options: Options) =>
  Effect.map(
    Effect.forEach(target.shards, (shard) => migratePostgres(shard, options), { concurrency: "unbounded" }),
    (ran) => {
      const seen = new Map<number, readonly [id: number, name: string]>()
      for (const list of ran) for (const m of list) seen.set(m[0], m)
      return [...seen.values()].sort((a, b) => a[0] - b[0])
    }
  )
