/**
 * The `PgClient` the library builds (`PgStore.layerPgClient`, `layerUrl`,
 * `Store.layer`, the `nightshift` command): `PgClient.layer`'s client on a
 * pool built here, so that a store on it may send its hot statements on the
 * pool directly (see `direct.ts`).
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Direct from "./direct.js"

const millis = (duration: Duration.DurationInput | undefined) =>
  duration === undefined ? undefined : Duration.toMillis(duration)

/** The pool `PgClient.make` would build for `config`, with the same settings. */
const openPool = (Pool: new (config: object) => Direct.Pool, config: PgClient.PgClientConfig) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pool({
        connectionString: config.url === undefined ? undefined : Redacted.value(config.url),
        user: config.username,
        host: config.host,
        database: config.database,
        password: config.password === undefined ? undefined : Redacted.value(config.password),
        ssl: config.ssl,
        port: config.port,
        ...(config.stream === undefined ? {} : { stream: config.stream }),
        connectionTimeoutMillis: millis(config.connectTimeout),
        idleTimeoutMillis: millis(config.idleTimeout),
        max: config.maxConnections,
        min: config.minConnections,
        maxLifetimeSeconds:
          config.connectionTTL === undefined ? undefined : Duration.toSeconds(config.connectionTTL),
        application_name: config.applicationName ?? "@effect/sql-pg",
        types: config.types
      })
      // A pooled connection that fails while idle is dropped by the pool; nothing waits on it.
      pool.on("error", () => {})
      return pool
    }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
  )

/** Fail, as `PgClient.make` does, when the server cannot be reached. */
const checkReachable = (pool: Direct.Pool, config: PgClient.PgClientConfig) =>
  Effect.async<void, SqlError>((resume) => {
    pool.query("SELECT 1", (error?: unknown) =>
      resume(
        error === undefined || error === null
          ? Effect.void
          : Effect.fail(new SqlError({ cause: error, message: "PgClient: Failed to connect" }))
      )
    )
  }).pipe(
    Effect.timeoutFail({
      duration: config.connectTimeout ?? Duration.seconds(5),
      onTimeout: () =>
        new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
    })
  )

/**
 * `PgClient.layer(config)`, on a pool a store may use directly; where this
 * package cannot load `pg` itself, `PgClient.layer(config)` as it is.
 */
export const layer = (
  config: PgClient.PgClientConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  Layer.unwrapEffect(
    Effect.map(Direct.loadPool, (Pool) =>
      Pool === undefined ? PgClient.layer(config) : onPool(Pool, config)
    )
  )

/**
 * How many connections the background pool opens: one. The rescuer, the
 * pruner, the samplers and the cron loop each send one statement at a time
 * and none is urgent, so they take turns; a process that runs jobs holds
 * one connection more than its claims need, not two (a second one, opened
 * beside the first at a runner's start, cost a 5,000-job drain from a
 * fresh worker a few percent).
 */
const backgroundConnections = 1

/** A `PgClient` on `pool`, with `config`'s settings. */
const clientOn = (pool: Direct.Pool, config: PgClient.PgClientConfig) =>
  PgClient.fromPool({
    // `pg` ships no types, so `@effect/sql-pg` names its pool as `any`.
    acquire: Effect.succeed(pool as never),
    applicationName: config.applicationName,
    spanAttributes: config.spanAttributes,
    transformResultNames: config.transformResultNames,
    transformQueryNames: config.transformQueryNames,
    transformJson: config.transformJson,
    types: config.types
  })

/**
 * The client on a pool of its own, and beside it a second, small pool for
 * the statements a runner sends in the background (rescue, prune, depth and
 * flow samples, cron slots). On one pool, such a statement that comes while
 * a claim and a settle hold every open connection makes the pool open
 * another, and the pool hands the connection it last got back to the next
 * claim: a fresh backend, whose first call of the claim function costs tens
 * of milliseconds of compiling and planning that the claimed jobs wait for.
 * Both pools open connections only when a statement needs one: a process
 * that only enqueues never opens a background connection.
 */
const onPool = (
  Pool: new (config: object) => Direct.Pool,
  config: PgClient.PgClientConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const pool = yield* openPool(Pool, config)
      yield* checkReachable(pool, config)
      const client = yield* clientOn(pool, config)
      const backgroundPool = yield* openPool(Pool, {
        ...config,
        maxConnections: backgroundConnections,
        minConnections: undefined
      })
      const background = yield* clientOn(backgroundPool, config)
      Direct.register(client, { pool, background: { pool: backgroundPool, client: background } })
      return Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))
    })
  ).pipe(Layer.provide(Reactivity.layer))
