/**
 * The store's hot statements (enqueue, claim, settle, heartbeat) straight on
 * the `pg` pool, when the library opened that pool itself
 * (`PgStore.layerPgClient`, and so `layerUrl`, `Store.layer`, the
 * `nightshift` command) and nothing would see the
 * difference: Effect's default tracer (whose spans go nowhere), no statement
 * transformer, and no transaction of the caller's to join. Otherwise, and
 * on a `PgClient` the application built, the statement runs through the SQL
 * client as any other.
 *
 * The SQL client's path (a `sql.execute` span with its attributes, a
 * compile, a scope, an acquire, a cancel hook per statement) is cheap in a
 * loop but not where a job's latency is decided: in a process that sat idle
 * for 10 ms, a one-row `SELECT` took 1.47–1.50 ms through it against
 * 1.17–1.30 ms here (0.70–0.75 ms through bare `pg`, without a fiber).
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { nativeTracer } from "../tracing.js"

/** What the store uses of a `pg` pool's client (`pg` ships no types; `@types/pg` is not a dependency). */
interface PoolClient {
  readonly processID?: number | undefined
  query(
    query: { readonly text: string; readonly name?: string | undefined; readonly values: Array<unknown> },
    callback: (error: Error | undefined, result: Result | ReadonlyArray<Result>) => void
  ): void
  once(event: "error", listener: (error: Error) => void): void
  off(event: "error", listener: (error: Error) => void): void
}

/** What the listener uses of a `pg` client of its own. */
interface ListenClient {
  connect(callback: (error?: Error | null) => void): void
  query(text: string, callback: (error?: Error | null) => void): void
  end(callback: () => void): void
  on(event: "notification", listener: (message: { channel: string; payload?: string }) => void): void
  on(event: "error" | "end", listener: (error?: Error) => void): void
  removeAllListeners(event: "notification" | "end"): void
}

/** What the store uses of a `pg` pool. */
export interface Pool {
  /** The client class the pool opens its connections with, and their settings. */
  readonly Client: new (
    config: object
  ) => ListenClient
  readonly options: object
  readonly ending?: boolean | undefined
  connect(
    callback: (
      error: Error | undefined | null,
      client: PoolClient | undefined,
      release: (error?: unknown) => void
    ) => void
  ): void
  query(text: string, callback: (error?: unknown) => void): void
  end(): Promise<void>
  on(event: "error", listener: (error: Error) => void): void
}

/**
 * What the library opened under a client it built: the client's pool, and
 * a small pool of its own, with a client on it, for the runner's background
 * statements (see `client.ts`).
 */
export interface Pools {
  readonly pool: Pool
  readonly background: { readonly pool: Pool; readonly client: PgClient.PgClient }
}

/** The pools of the clients the library built (`client`): a store on one of them may use them directly. */
const pools = new WeakMap<object, Pools>()

/** The pools under `client`, when the library built that client. */
export const poolsOf = (client: object): Pools | undefined => pools.get(client)

/** Remember what `client` runs on. */
export const register = (client: object, opened: Pools): void => {
  pools.set(client, opened)
}

/** A `pg` module, as far as the store uses it. */
interface PgModule {
  readonly Pool: new (config: object) => Pool
}

/**
 * `pg`'s `Pool` class, or undefined when this package cannot load `pg`.
 * First as this package sees it: a bundler bundles it here, as it bundles
 * `@effect/sql-pg`'s own import; then as `@effect/sql-pg` sees it (a
 * layout where `pg` is that package's dependency only, as pnpm makes).
 */
export const loadPool: Effect.Effect<(new (config: object) => Pool) | undefined> = Effect.promise(
  async () => {
    try {
      // @ts-expect-error pg ships no types, and @types/pg is not a dependency.
      const pg: { readonly default?: PgModule } & Partial<PgModule> = await import("pg")
      const Pool = pg.default?.Pool ?? pg.Pool
      if (Pool !== undefined) return Pool
    } catch {
      // Not resolvable from here: try from @effect/sql-pg below.
    }
    try {
      const sqlPg = createRequire(import.meta.url).resolve("@effect/sql-pg/PgClient")
      return (createRequire(sqlPg)("pg") as PgModule).Pool
    } catch {
      return undefined
    }
  }
)

/** The driver's result: rows, or one result per statement of a multi-statement text. */
interface Result {
  readonly rows?: ReadonlyArray<unknown>
}

const rowsOf = (result: Result | ReadonlyArray<Result>): ReadonlyArray<unknown> =>
  Array.isArray(result) ? result.map((r: Result) => r.rows ?? []) : ((result as Result).rows ?? [])

/** Ask the server to cancel the statement running on `processId` (best effort, as `@effect/sql-pg` does). */
const cancel = (pool: Pool, processId: number | undefined) =>
  processId === undefined
    ? Effect.void
    : Effect.async<void>((resume) => {
        if (pool.ending) return resume(Effect.void)
        pool.query(`SELECT pg_cancel_backend(${processId})`, () => resume(Effect.void))
      }).pipe(Effect.interruptible, Effect.timeoutOption(5000), Effect.asVoid)

/**
 * Run `text` with `params` on a connection of `pool`; the rows as
 * `@effect/sql-pg` returns them. Interrupted while the statement runs, it
 * asks the server to cancel it, and the connection goes back to the pool
 * only once that request was answered, so that the cancel cannot reach a
 * statement the connection runs next.
 */
const query = (pool: Pool, text: string, params: ReadonlyArray<unknown>, name?: string) =>
  Effect.async<ReadonlyArray<unknown>, SqlError>((resume) => {
    let state: "connecting" | "running" | "done" | "interrupted" = "connecting"
    let client: PoolClient | undefined
    let release: ((error?: unknown) => void) | undefined
    let failure: Error | undefined
    let cancelling = false
    let answered = false
    const releaseOnce = () => {
      const r = release
      release = undefined
      r?.(failure)
    }
    pool.connect((cause, connected, done) => {
      if (state === "interrupted") {
        if (connected !== undefined) done()
        return
      }
      if ((cause !== undefined && cause !== null) || connected === undefined) {
        state = "done"
        resume(
          Effect.fail(
            new SqlError({
              cause: cause ?? new Error("No client returned"),
              message: "Failed to acquire connection"
            })
          )
        )
        return
      }
      client = connected
      release = done
      state = "running"
      // A client with no listener would throw its connection's error out of the process; the
      // pool drops a client released with an error (it drops a broken one anyway).
      const onError = (error: Error) => {
        failure = error
      }
      connected.once("error", onError)
      connected.query({ text, name, values: params as Array<unknown> }, (error, result) => {
        connected.off("error", onError)
        answered = true
        const interrupted = state === "interrupted"
        state = "done"
        if (!cancelling) releaseOnce()
        if (interrupted) return
        resume(
          error
            ? Effect.fail(new SqlError({ cause: error, message: "Failed to execute statement" }))
            : Effect.succeed(rowsOf(result))
        )
      })
    })
    return Effect.suspend(() => {
      const running = state === "running"
      if (state === "connecting" || running) state = "interrupted"
      if (!running || answered) return Effect.void
      cancelling = true
      return Effect.ensuring(
        cancel(pool, client?.processID),
        Effect.sync(() => {
          cancelling = false
          if (answered) releaseOnce()
        })
      )
    })
  })

/** Nothing would see a statement skip the SQL client: the default tracer, no transformer, no transaction. */
const unobserved = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  fiber.currentTracer === nativeTracer &&
  fiber.getFiberRef(Statement.currentTransformer)._tag === "None" &&
  Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)._tag === "None"

/**
 * Run `statement` on `pool` directly when nothing would see the difference
 * (see the module's doc), else through the SQL client.
 */
export const run = <A extends object>(
  pool: Pool | undefined,
  statement: Statement.Statement<A>
): Effect.Effect<ReadonlyArray<A>, SqlError> =>
  pool === undefined
    ? statement
    : Effect.withFiberRuntime((fiber) => {
        if (!unobserved(fiber)) return statement
        const [text, params] = statement.compile()
        return query(pool, text, params) as Effect.Effect<ReadonlyArray<A>, SqlError>
      })

/**
 * A statement whose text never changes, and the name it is prepared under
 * on each connection of the pool that runs it (derived from the text, so
 * two texts never share a name). After a connection's first call, a call
 * sends no text: the server neither parses nor analyses it again (about
 * 0.1 ms of a one-job claim's round trip). Without a name (`named` false)
 * every call sends the text, as an unnamed statement.
 */
export interface Prepared {
  readonly text: string
  readonly name: string | undefined
}

export const prepared = (text: string, named: boolean): Prepared => ({
  text,
  name: named ? `nightshift_${createHash("sha1").update(text).digest("hex").slice(0, 20)}` : undefined
})

/**
 * `run` for a prepared statement: on the pool, its text (prepared once per
 * connection) with `params` as they are, without building and compiling
 * the statement (about 85 µs of a cold call); through the SQL client,
 * `statement()`, which must compile to that text and those parameters.
 */
export const runPrepared = <A extends object>(
  pool: Pool | undefined,
  prepared: Prepared,
  params: ReadonlyArray<unknown>,
  statement: () => Statement.Statement<A>
): Effect.Effect<ReadonlyArray<A>, SqlError> =>
  pool === undefined
    ? Effect.suspend(statement)
    : Effect.withFiberRuntime((fiber) =>
        unobserved(fiber)
          ? (query(pool, prepared.text, params, prepared.name) as Effect.Effect<ReadonlyArray<A>, SqlError>)
          : statement()
      )

/** A session's end: the listening connection failed or closed. */
const listenerFailed = (cause: unknown, message: string) => new SqlError({ cause, message })

/**
 * LISTEN on `channels` (in that order) on a connection of its own (outside the pool, as
 * `PgClient.listen` opens it), calling `deliver` with each payload from the
 * client's own event: no stream and no fiber between the notification and
 * the store's hints. Fails when the connection fails or closes (where
 * `PgClient.listen` stays silent and only the listener's heartbeat notices);
 * the connection is closed when the effect ends.
 */
export const listen = (
  pool: Pool,
  channels: ReadonlyArray<string>,
  deliver: (payload: string) => void
): Effect.Effect<never, SqlError> =>
  Effect.acquireUseRelease(
    Effect.async<ListenClient, SqlError>((resume) => {
      const client = new pool.Client(pool.options)
      // Until the session below listens, an error only fails the connect.
      client.on("error", () => {})
      client.connect((error) =>
        resume(
          error
            ? Effect.fail(listenerFailed(error, "Failed to acquire connection for listen"))
            : Effect.succeed(client)
        )
      )
    }),
    (client) =>
      Effect.async<never, SqlError>((resume) => {
        let ended = false
        const end = (error: unknown, message: string) => {
          if (ended) return
          ended = true
          resume(Effect.fail(listenerFailed(error, message)))
        }
        client.on("error", (error) => end(error, "The listening connection failed"))
        client.on("end", () => end(new Error("connection closed"), "The listening connection closed"))
        client.on("notification", (message) => {
          if (message.payload !== undefined && channels.includes(message.channel)) deliver(message.payload)
        })
        // One statement per channel, in order: a notification on a later channel means the
        // LISTENs before it are in place.
        for (const channel of channels)
          client.query(`LISTEN "${channel.replaceAll('"', '""')}"`, (error) => {
            if (error) end(error, "Failed to listen")
          })
      }),
    (client) =>
      Effect.async<void>((resume) => {
        client.removeAllListeners("notification")
        client.removeAllListeners("end")
        client.end(() => resume(Effect.void))
      }).pipe(Effect.timeoutOption(1000))
  )
