/**
 * The PostgreSQL job store: many runner processes on many hosts sharing one
 * database.
 *
 * - Its own schema (default `nightshift`), created and upgraded by migrations
 *   that are safe to run from several processes at once.
 * - Batch claims with `FOR UPDATE SKIP LOCKED` in priority, run-at, id order
 *   on a partial index; batched, fenced settles and heartbeats; bulk enqueue
 *   in one statement; dedupe enforced by a unique partial index.
 * - Wake-ups over LISTEN/NOTIFY: an enqueue notifies on commit (one
 *   notification per batch), and one resilient listener per store turns them
 *   into `wakeups`, along with cross-node cancel requests.
 * - Transactional enqueue: called inside the application's own
 *   `sql.withTransaction` on the same `PgClient`, an enqueue commits or rolls
 *   back with the application's writes, and its notification fires on commit.
 *
 * Time comes from the database clock by default, so nodes whose clocks
 * disagree still agree on leases and run-at times (see `Options.clock`).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlError from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as FlowControl from "./FlowControl.js"
import * as Admin from "./internal/pg/admin.js"
import * as Client from "./internal/pg/client.js"
import * as Ctx from "./internal/pg/context.js"
import * as Direct from "./internal/pg/direct.js"
import * as Finished from "./internal/pg/finished.js"
import * as Jobs from "./internal/pg/jobs.js"
import * as Pool from "./internal/pg/pool.js"
import * as Schema from "./internal/pg/schema.js"
import * as Wakeups from "./internal/pg/wakeups.js"
import * as Flow from "./internal/store/flowStatements.js"
import * as JobStore from "./JobStore.js"
import * as ShardedStore from "./ShardedStore.js"

/**
 * Where the store reads "now": `database` (the default) uses the server's
 * `now()`, so every node agrees; `application` uses Effect's `Clock`, so
 * `TestClock` drives it (tests and single-node setups only).
 *
 * @since 0.1.0
 */
export type ClockSource = Ctx.ClockSource

/**
 * Store options.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Schema holding the store's tables. Default `nightshift`. */
  readonly schema?: string | undefined
  /** Default `database`. */
  readonly clock?: ClockSource | undefined
  /** Run migrations when the layer is built. Default true. */
  readonly migrate?: boolean | undefined
  /**
   * Listen for wake-up and cancel hints. Default true; without it `wakeups`
   * is empty. The listener starts on its first subscriber (a runner, or a
   * reader of `wakeups`): a process that only enqueues does not listen.
   */
  readonly listen?: boolean | undefined
  /**
   * Send the enqueue, claim and settle statements as named prepared
   * statements, which each connection parses and plans once. Default true.
   * Set it to false when the store's connections go through a pooler in
   * transaction mode that does not carry prepared statements from one
   * server connection to another (PgBouncer before 1.21, or with
   * `max_prepared_statements = 0`): each call then sends its text, as every
   * other statement of the store does.
   */
  readonly preparedStatements?: boolean | undefined
  /**
   * How often the listener checks its own connection; it reconnects after two
   * silent heartbeats. Default 500 ms (a dead listener is replaced within
   * about 1.5 s); each heartbeat is one `pg_notify` on the pool.
   */
  readonly listenerHeartbeat?: Duration.DurationInput | undefined
}

/** The default schema name. @since 0.1.0 */
export const defaultSchema = "nightshift"

/**
 * Create or upgrade the store's schema. Safe to run from several processes at
 * once; the layer runs it unless `migrate: false`.
 *
 * @since 0.1.0
 */
export const migrate = (
  options: { readonly schema?: string | undefined } = {}
): Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  JobStore.JobStoreError,
  SqlClient.SqlClient
> => Effect.flatMap(Schema.validateSchema(options.schema ?? defaultSchema), Schema.migrate)

/**
 * Rules in key order, so that runners declaring overlapping rules at once
 * lock the same rows in the same order instead of deadlocking.
 */
const byKey = (rules: ReadonlyArray<FlowControl.Rule>) =>
  [...rules].sort((a, b) =>
    a.scope === b.scope ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.scope < b.scope ? -1 : 1
  )

/**
 * The store on `ctx`; the statements a runner sends in the background
 * (rescue, prune, the samplers' reads, `flowState`, cron slots) on `background`, which
 * is `ctx` unless the library opened the client (see `Client.layer`).
 */
const service = (
  ctx: Ctx.Ctx,
  background: Ctx.Ctx,
  wakeups: Stream.Stream<JobStore.Wakeup>
): JobStore.Service => {
  // Where this instance's next fair claim starts in each queue (see `Jobs.Cursors`).
  const cursors: Jobs.Cursors = new Map()
  return {
    engine: "postgres",
    enqueue: (jobs) => Jobs.enqueue(ctx, jobs).pipe(Ctx.operation("enqueue")),
    claim: (request) => Jobs.claim(ctx, request, cursors).pipe(Ctx.operation("claim")),
    heartbeat: (owner, leases, leaseMs) =>
      Jobs.heartbeat(ctx, owner, leases, leaseMs).pipe(Ctx.operation("heartbeat")),
    settle: (settlements) => Jobs.settle(ctx, settlements).pipe(Ctx.operation("settle")),
    settleAndClaim: (settlements, request) =>
      Jobs.settleAndClaim(ctx, settlements, request, cursors).pipe(Ctx.operation("settleAndClaim")),
    rescue: (limit) => Jobs.rescue(background, limit).pipe(Ctx.operation("rescue")),
    prune: (request) =>
      Finished.prune(background, request).pipe(
        Effect.zipLeft(Flow.pruneStarts(background.tables)),
        Ctx.operation("prune")
      ),
    get: (id) => Admin.get(ctx, id).pipe(Ctx.operation("get")),
    list: (filter) => Admin.list(ctx, filter).pipe(Ctx.operation("list")),
    counts: Admin.counts(ctx).pipe(Ctx.operation("counts")),
    depth: Admin.depth(background).pipe(Ctx.operation("depth")),
    activity: (since) => Admin.activity(ctx, since).pipe(Ctx.operation("activity")),
    cancel: (id) => Admin.cancel(ctx, id).pipe(Ctx.operation("cancel")),
    retry: (id) => Admin.retry(ctx, id).pipe(Ctx.operation("retry")),
    retryMany: (ids) => Admin.retryMany(ctx, ids).pipe(Ctx.operation("retryMany")),
    cancelMany: (ids) => Admin.cancelMany(ctx, ids).pipe(Ctx.operation("cancelMany")),
    deleteMany: (ids) => Admin.deleteMany(ctx, ids).pipe(Ctx.operation("deleteMany")),
    runNow: (id) => Admin.runNow(ctx, id).pipe(Ctx.operation("runNow")),
    pause: (queue) => Admin.pause(ctx, queue).pipe(Ctx.operation("pause")),
    resume: (queue) => Admin.resume(ctx, queue).pipe(Ctx.operation("resume")),
    paused: Admin.paused(ctx).pipe(Ctx.operation("paused")),
    enqueueCronSlot: (input) =>
      Admin.enqueueCronSlot(background, input).pipe(Ctx.operation("enqueueCronSlot")),
    lastCronSlot: (name) => Admin.lastCronSlot(background, name).pipe(Ctx.operation("lastCronSlot")),
    declareLimits: (rules) => {
      const declared = byKey(rules)
      const statements = Flow.declareLimits(ctx.tables, declared)
      return (Flow.declaresInOneStatement(declared) ? statements : ctx.sql.withTransaction(statements)).pipe(
        Ctx.operation("declareLimits")
      )
    },
    flowState: (options) =>
      // Read before the transaction below opens: is the caller already in one?
      Effect.serviceOption(SqlClient.TransactionConnection).pipe(
        Effect.flatMap((outer) =>
          // One snapshot for every statement, so the counts agree with each other; inside
          // the caller's transaction (a savepoint here) its isolation level stands.
          (outer._tag === "Some"
            ? Effect.void
            : background.sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
          ).pipe(
            Effect.zipRight(
              Flow.flowState(background.tables, options, Admin.paused(background), Admin.now(background))
            ),
            // The shared statement's error channel is untyped; what fails in it is a SqlError.
            Effect.mapError((cause) =>
              cause instanceof SqlError.SqlError
                ? cause
                : new JobStore.JobStoreError({
                    message: `PgStore.flowState failed: ${Schema.messageOf(cause)}`,
                    cause
                  })
            ),
            background.sql.withTransaction
          )
        ),
        Ctx.operation("flowState")
      ),
    now: Admin.now(ctx).pipe(Ctx.operation("now")),
    ping: Admin.ping(ctx).pipe(Ctx.operation("ping")),
    tableStats: Finished.tableStats(background).pipe(Ctx.operation("tableStats")),
    wakeups
  }
}

/**
 * Build the store on the `PgClient` in context: migrate (unless disabled),
 * then start the listener in the current scope.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<JobStore.Service, JobStore.JobStoreError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function* () {
    const schema = yield* Schema.validateSchema(options.schema ?? defaultSchema)
    const client = yield* PgClient.PgClient
    const sql = client.withoutTransforms()
    if (options.migrate !== false) {
      yield* Schema.migrate(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    }
    const clock = options.clock ?? "database"
    const pools = Direct.poolsOf(client)
    const prepared = options.preparedStatements !== false
    const ctx = Ctx.make(sql, schema, clock, pools?.pool, prepared)
    const background =
      pools === undefined
        ? ctx
        : Ctx.make(
            pools.background.client.withoutTransforms(),
            schema,
            clock,
            pools.background.pool,
            prepared
          )
    // Jobs finished before the finished jobs got a table of their own move there in the
    // background, a batch per transaction, while this node works (see `Finished`).
    yield* Finished.moveLegacy(background).pipe(
      Effect.tap((moved) =>
        moved > 0
          ? Effect.logInfo(`nightshift: moved ${moved} finished job(s) to ${schema}.jobs_done`)
          : Effect.void
      ),
      Effect.catchAllCause((cause) =>
        Effect.logWarning(
          "nightshift: moving finished jobs to their own table failed; the pruner goes on with it",
          cause
        )
      ),
      Effect.forkScoped
    )
    if (options.listen === false) return service(ctx, background, Stream.empty)
    // Runners in this process register a listener on the hints and are woken as a
    // notification arrives, without a hop through the `wakeups` stream.
    const hints = yield* Wakeups.start(client, ctx, {
      heartbeat: Duration.decode(options.listenerHeartbeat ?? "500 millis"),
      retryDelay: Duration.millis(250)
    })
    return hints.attach(service(ctx, background, hints.stream))
  })

/**
 * A `PgClient` for the application and the store to share: what
 * `PgClient.layer(config)` provides, on a pool that Nightshift opens, so
 * that a store on this client sends its enqueues, claims, settles and
 * heartbeats on the pool directly instead of through the SQL client's
 * statement machinery (a span, a compile, a scope and a connection hook
 * per statement). It does so only where nothing could tell the difference:
 * with Effect's default tracer, no statement transformer, and outside the
 * application's transactions (an enqueue inside one joins it, as on any
 * client). Beside that pool it opens a second one, of one connection,
 * on which the store sends what a runner does in the background (rescue,
 * prune, the depth and flow-control samples, cron slots, `flowState`), so
 * that those statements never make the first pool open a connection that
 * a claim then meets cold. `layerUrl` builds its client this way.
 *
 * @example
 * ```ts
 * const Database = PgStore.layerPgClient({ url: Redacted.make(process.env.DATABASE_URL!), idleTimeout: "30 minutes" })
 * const Store = PgStore.layer().pipe(Layer.provide(Database))
 * ```
 *
 * @since 0.2.0
 */
export const layerPgClient: (
  config: PgClient.PgClientConfig
) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError.SqlError> = Client.layer

/**
 * The store as a layer, on the application's `PgClient` (share it, so that
 * enqueues can join the application's transactions).
 *
 * @example
 * ```ts
 * const Database = PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) })
 * const Store = PgStore.layer().pipe(Layer.provide(Database))
 * ```
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<JobStore.JobStore, JobStore.JobStoreError, PgClient.PgClient> =>
  Layer.scoped(JobStore.JobStore, make(options))

/**
 * The store with its own `PgClient` for `url`; the client is provided too, for
 * the application to share. The pool opens up to `maxConnections` (default
 * 10) and keeps an idle connection for 30 minutes; a runner's background
 * statements (rescue, prune, samples, cron slots) use one more, in a pool
 * of its own (see `layerPgClient`).
 *
 * @since 0.1.0
 */
export const layerUrl = (
  url: string | Redacted.Redacted,
  options: Options & { readonly maxConnections?: number | undefined } = {}
): Layer.Layer<JobStore.JobStore | PgClient.PgClient | SqlClient.SqlClient, JobStore.JobStoreError> =>
  layer(options).pipe(
    Layer.provideMerge(
      Client.layer({
        url: typeof url === "string" ? Redacted.make(url) : url,
        maxConnections: options.maxConnections,
        idleTimeout: Pool.idleTimeout
      })
    ),
    Layer.mapError((cause) =>
      cause._tag === "JobStoreError"
        ? cause
        : new JobStore.JobStoreError({
            message: `Could not connect to PostgreSQL: ${Schema.messageOf(cause)}. Check the URL and that the server is up.`,
            cause
          })
    )
  )

/**
 * One shard of `layerSharded`: its database URL and its shard number (its
 * identity: ids carry it and placement hashes it, so it must never change).
 *
 * @since 0.2.0
 */
export interface ShardUrl {
  readonly shard: number
  readonly url: string | Redacted.Redacted
  /** A name for messages and health; default host, port and database from the URL. */
  readonly name?: string | undefined
}

/** `host:port/database` of a URL, without user or password. */
const shardName = (url: string | Redacted.Redacted, shard: number): string => {
  try {
    const parsed = new URL(typeof url === "string" ? url : Redacted.value(url))
    return `shard ${shard} (${parsed.host}${parsed.pathname})`
  } catch {
    return `shard ${shard}`
  }
}

/**
 * A store sharded over several PostgreSQL databases or servers (see
 * `ShardedStore`): a `PgStore` per shard, each with its own client, schema,
 * notifications, leases and fencing. A plain list of URLs numbers the
 * shards 0, 1, 2, … in order; to add a shard later, append its URL (or give
 * numbers explicitly). A shard that cannot be reached when the layer is
 * built is connected (and migrated) as soon as it can be, tried every 2
 * seconds, and holds back only its own jobs meanwhile, as a shard that goes
 * down later does; the layer fails only when no shard can be reached.
 *
 * @example
 * ```ts
 * const Store = PgStore.layerSharded([
 *   "postgres://jobs-a.internal/app",
 *   "postgres://jobs-b.internal/app",
 *   "postgres://jobs-c.internal/app"
 * ])
 * ```
 *
 * @since 0.2.0
 */
export const layerSharded = (
  shards: ReadonlyArray<string | Redacted.Redacted | ShardUrl>,
  options: Options & {
    readonly maxConnections?: number | undefined
    /** See `ShardedStore.Options.answerWithin`. Default 5 seconds. */
    readonly answerWithin?: Duration.DurationInput | undefined
  } = {}
): Layer.Layer<JobStore.JobStore, JobStore.JobStoreError> =>
  Layer.scoped(
    JobStore.JobStore,
    Effect.gen(function* () {
      const { answerWithin, ...perShard } = options
      const numbered = shards.map((s, i) =>
        typeof s === "string" || Redacted.isRedacted(s) ? { shard: i, url: s, name: undefined } : s
      )
      return yield* ShardedStore.connectAll(
        numbered.map((s) => ({
          shard: s.shard,
          name: s.name ?? shardName(s.url, s.shard),
          engine: "postgres",
          build: (scope) =>
            Layer.buildWithScope(layerUrl(s.url, perShard), scope).pipe(
              Effect.map((context) => Context.get(context, JobStore.JobStore))
            )
        })),
        { answerWithin }
      )
    })
  )
