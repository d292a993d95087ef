/**
 * The admin HTTP API and dashboard of a running Nightshift app.
 *
 * An `@effect/platform` `HttpApi` (`Admin.Api`) with health, workers, jobs,
 * queues, a Server-Sent Events stream, Prometheus metrics and its own OpenAPI
 * document, plus a small live dashboard at `/`. Serve it on its own port with
 * `Admin.layer` / `Admin.layerConfig`, or mount it into a host application's
 * router with `Admin.routes` (`HttpLayerRouter`) or `Admin.handlers`
 * (`HttpApiBuilder`).
 *
 * Security defaults: it binds to 127.0.0.1; every route but `/health/live`
 * (and the data-free dashboard page) needs `Authorization: Bearer <token>`
 * when a token is set, and without a token it refuses to bind beyond
 * loopback. Cross-site requests and foreign `Host` names are refused. Job
 * payloads are never logged.
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import type * as Etag from "@effect/platform/Etag"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpPlatform from "@effect/platform/HttpPlatform"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as Path from "@effect/platform/Path"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Events from "./Events.js"
import * as api from "./internal/admin/api.js"
import * as Auth from "./internal/admin/auth.js"
import * as Handlers from "./internal/admin/handlers.js"
import type * as JobQueue from "./JobQueue.js"
import type * as JobStore from "./JobStore.js"
import type * as Nightshift from "./Nightshift.js"

/**
 * The admin API definition. Use it with `HttpApiClient.make(Admin.Api)` for
 * a typed client, or `OpenApi.fromApi(Admin.Api)` for its document.
 *
 * @since 0.1.0
 */
export const Api = api.Api

/**
 * The bearer-token middleware of every route but liveness.
 *
 * @since 0.1.0
 */
export const Authorization = api.Authorization

/** @since 0.1.0 */
export type Authorization = api.Authorization

/**
 * The errors the API answers with: `Unauthorized` (401), `Forbidden` (403),
 * `JobNotFound` and `WorkerNotFound` (404), `NotPeriodic` and
 * `JobStateConflict` (409), `InvalidRequest` (400), `StoreFailed` and
 * `NotReady` (503). Each has a `message` saying what to do.
 *
 * @since 0.1.0
 */
export {
  Forbidden,
  InvalidRequest,
  JobNotFound,
  JobStateConflict,
  NotPeriodic,
  NotReady,
  StoreFailed,
  Unauthorized,
  WorkerNotFound
} from "./internal/admin/schema.js"

/**
 * Admin server options.
 *
 * @since 0.1.0
 */
export interface Options {
  /** TCP port; `0` picks a free one. Default 7700. */
  readonly port?: number | undefined
  /** Address to bind. Default `127.0.0.1`; anything beyond loopback needs a token. */
  readonly host?: string | undefined
  /** Bearer token every route but liveness requires. */
  readonly token?: Redacted.Redacted | undefined
  /** Readiness fails when a periodic worker's tick is overdue by more than this. Default 5 minutes. */
  readonly lateAfter?: Duration.DurationInput | undefined
  /** Readiness fails when the store does not answer a ping within this. Default 2 seconds. */
  readonly storeTimeout?: Duration.DurationInput | undefined
  /** Interval of keep-alive comments on the event stream. Default 15 seconds. */
  readonly keepAlive?: Duration.DurationInput | undefined
  /**
   * Time between the dashboard overview's samples of the store (one activity
   * read and one count of jobs per queue and state; see docs/admin.md for
   * their cost). The node keeps the last 720 samples (an hour at the
   * default) and 24 hours of per-minute rows. At least 100 millis. Default
   * 5 seconds; a slow sample puts the next one 20 times its duration later.
   */
  readonly sampleInterval?: Duration.DurationInput | undefined
  /** Log one line per request (method, path, status; never bodies). Default false. */
  readonly logRequests?: boolean | undefined
  /**
   * Serve every route under this path, e.g. `/ops/nightshift`: the dashboard
   * at `/ops/nightshift`, the API at `/ops/nightshift/jobs` and so on. For
   * mounting beside a host application's own routes, or behind a proxy that
   * forwards a path without stripping it. Default: the root.
   */
  readonly prefix?: string | undefined
  /**
   * The largest request body accepted, in bytes; a larger one is refused with
   * 413 before it is read into memory. Default 1 MiB (1,048,576).
   */
  readonly maxBodyBytes?: number | undefined
}

/**
 * Where the admin server listens.
 *
 * @since 0.1.0
 */
export interface ServerInfo {
  /** The dashboard URL, e.g. `http://127.0.0.1:7700/` (with the prefix, if any). */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Whether a bearer token is required. */
  readonly authenticated: boolean
}

/**
 * The running admin server, provided by `layer` and `layerConfig`.
 *
 * @since 0.1.0
 */
export class Server extends Context.Tag("nightshift/Admin/Server")<Server, ServerInfo>() {}

/**
 * The admin server was asked to do something unsafe or impossible: bind
 * beyond loopback without a token, use an empty token, or listen on a port
 * it cannot have.
 *
 * @since 0.1.0
 */
export class AdminError extends Schema.TaggedError<AdminError>()("AdminError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * What the admin routes need: the running app, its producer, event bus and
 * store (all provided by `Nightshift.layer` plus a store layer).
 *
 * @since 0.1.0
 */
export type Requirements = Nightshift.Nightshift | JobQueue.JobQueue | Events.Events | JobStore.JobStore

/** The group services `handlers` provides. @since 0.1.0 */
export type Groups = HttpApiGroup.ApiGroup<
  "nightshift-admin",
  "health" | "workers" | "jobs" | "queues" | "observe" | "dashboard"
>

const settings = (options: Options): Handlers.Settings => ({
  lateAfter: Duration.decode(options.lateAfter ?? "5 minutes"),
  storeTimeout: Duration.decode(options.storeTimeout ?? "2 seconds"),
  keepAlive: Duration.decode(options.keepAlive ?? "15 seconds"),
  sampleInterval: Duration.decode(options.sampleInterval ?? "5 seconds"),
  maxBodyBytes: options.maxBodyBytes ?? defaultMaxBodyBytes
})

/** The default `maxBodyBytes`: 1 MiB. @since 0.1.0 */
export const defaultMaxBodyBytes = 1024 * 1024

/**
 * The handlers of every group and the authorization middleware, for
 * `HttpApiBuilder.api(Admin.Api)`. The event streams they open end when this
 * layer is released.
 *
 * @since 0.1.0
 */
export const handlers = (options: Options = {}): Layer.Layer<Groups | Authorization, never, Requirements> =>
  Handlers.layer(settings(options)).pipe(Layer.provideMerge(Auth.layer(options.token)))

/** The body limit, refused unless a whole number of bytes of at least 1 KiB. */
const checkBodyLimit = (limit: number | undefined): Effect.Effect<void, AdminError> => {
  const bytes = limit ?? defaultMaxBodyBytes
  return Number.isSafeInteger(bytes) && bytes >= 1024
    ? Effect.void
    : Effect.fail(
        new AdminError({
          message: `the admin body limit (maxBodyBytes, NIGHTSHIFT_ADMIN_MAX_BODY_BYTES) must be a whole number of bytes of at least 1024, got ${bytes}`
        })
      )
}

/** The overview's sample interval, refused under 100 ms (a sample is a few store reads). */
const checkSampleInterval = (
  interval: Duration.DurationInput | undefined
): Effect.Effect<void, AdminError> =>
  interval === undefined || Duration.toMillis(Duration.decode(interval)) >= 100
    ? Effect.void
    : Effect.fail(
        new AdminError({
          message: `the admin sampleInterval must be at least 100 millis (each sample reads the store), got ${Duration.format(Duration.decode(interval))}`
        })
      )

/** Path segments of letters, digits and `-._~`: nothing a router would read as a parameter or wildcard. */
const prefixPattern = /^(\/[A-Za-z0-9._~-]+)+$/

/** The normalised prefix (no trailing slash; `undefined` for the root), or why it is refused. */
const checkPrefix = (prefix: string | undefined): Effect.Effect<string | undefined, AdminError> => {
  const trimmed = prefix?.replace(/\/+$/, "")
  if (trimmed === undefined || trimmed === "") return Effect.succeed(undefined)
  return prefixPattern.test(trimmed)
    ? Effect.succeed(trimmed)
    : Effect.fail(
        new AdminError({
          message: `admin prefix ${JSON.stringify(prefix)} is not a plain path: use segments of letters, digits, "-", ".", "_" or "~", e.g. "/ops/nightshift"`
        })
      )
}

/**
 * The admin routes (API, OpenAPI document at `/openapi.json`, dashboard at
 * `/`) added to a host application's `HttpLayerRouter`, under
 * `options.prefix` when given. Security is the host's server's: the token
 * still applies, but binding is up to the host. Fails with `AdminError` for
 * a prefix that is not a plain path or a body limit under 1 KiB.
 *
 * @since 0.1.0
 */
export const routes = (
  options: Options = {}
): Layer.Layer<
  never,
  AdminError,
  | HttpLayerRouter.HttpRouter
  | Etag.Generator
  | FileSystem.FileSystem
  | HttpPlatform.HttpPlatform
  | Path.Path
  | Requirements
> =>
  Layer.unwrapEffect(
    Effect.map(
      Effect.zipRight(
        Effect.zipRight(checkBodyLimit(options.maxBodyBytes), checkSampleInterval(options.sampleInterval)),
        checkPrefix(options.prefix)
      ),
      (prefix) => {
        const api = HttpLayerRouter.addHttpApi(Api).pipe(Layer.provide(handlers(options)))
        return prefix === undefined
          ? api
          : api.pipe(
              Layer.provide(
                Layer.effect(
                  HttpLayerRouter.HttpRouter,
                  Effect.map(HttpLayerRouter.HttpRouter, (r) => r.prefixed(prefix))
                )
              )
            )
      }
    )
  )

const formatUrl = (host: string, port: number) =>
  `http://${host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host}:${port}/`

const check = (options: Options) =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 7700
    if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
      return yield* new AdminError({ message: `admin port must be an integer from 0 to 65535, got ${port}` })
    }
    if (options.token !== undefined && Redacted.value(options.token).trim() === "") {
      return yield* new AdminError({
        message: "the admin token is empty: set NIGHTSHIFT_ADMIN_TOKEN to a long random string, or unset it"
      })
    }
    if (options.token === undefined && !Auth.isLoopback(host)) {
      return yield* new AdminError({
        message: `refusing to serve the admin API on ${host} without a token: anyone who can reach it could cancel and enqueue jobs. Set a token (NIGHTSHIFT_ADMIN_TOKEN, e.g. \`openssl rand -hex 32\`) or bind to 127.0.0.1`
      })
    }
    yield* checkBodyLimit(options.maxBodyBytes)
    yield* checkSampleInterval(options.sampleInterval)
    const prefix = yield* checkPrefix(options.prefix)
    return { host, port, prefix }
  })

const serverInfo = (authenticated: boolean, prefix: string | undefined) =>
  Layer.effect(
    Server,
    HttpServer.addressWith((address) => {
      const host = address._tag === "TcpAddress" ? address.hostname : address.path
      const port = address._tag === "TcpAddress" ? address.port : 0
      const info: ServerInfo = {
        url: `${formatUrl(host, port)}${prefix?.slice(1) ?? ""}`,
        host,
        port,
        authenticated
      }
      return Effect.as(
        Effect.logInfo(
          `nightshift admin: dashboard and API at ${info.url} (${authenticated ? "bearer token required" : "no token: loopback only"})`
        ),
        info
      )
    })
  )

/**
 * Serve the admin API and dashboard on their own HTTP server for the life of
 * the layer. Fails with `AdminError` when the bind would be unsafe (beyond
 * loopback without a token) or the port cannot be had.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Server, AdminError, Requirements> =>
  Layer.unwrapEffect(
    Effect.map(check(options), ({ host, port, prefix }) =>
      Layer.merge(
        HttpLayerRouter.serve(routes(options), {
          disableLogger: options.logRequests !== true,
          disableListenLog: true
        }),
        serverInfo(options.token !== undefined, prefix)
      ).pipe(
        Layer.provide(NodeHttpServer.layer(() => createServer(), { port, host })),
        Layer.mapError(
          (cause) =>
            new AdminError({
              message: `the admin server could not listen on ${host}:${port}: ${(cause.cause as Error | undefined)?.message ?? String(cause)}. Pick another port (NIGHTSHIFT_ADMIN_PORT)`,
              cause
            })
        )
      )
    )
  )

/**
 * Admin options from the environment: `NIGHTSHIFT_ADMIN_PORT` (default
 * 7700), `NIGHTSHIFT_ADMIN_HOST` (default 127.0.0.1), `NIGHTSHIFT_ADMIN_TOKEN`,
 * `NIGHTSHIFT_ADMIN_LATE_AFTER` (a duration such as `10 minutes`),
 * `NIGHTSHIFT_ADMIN_PREFIX` (a path such as `/ops/nightshift`) and
 * `NIGHTSHIFT_ADMIN_MAX_BODY_BYTES` (default 1048576).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  port: Config.withDefault(Config.port("NIGHTSHIFT_ADMIN_PORT"), 7700),
  host: Config.withDefault(Config.string("NIGHTSHIFT_ADMIN_HOST"), "127.0.0.1"),
  token: Config.map(Config.option(Config.redacted("NIGHTSHIFT_ADMIN_TOKEN")), Option.getOrUndefined),
  lateAfter: Config.map(Config.option(Config.duration("NIGHTSHIFT_ADMIN_LATE_AFTER")), Option.getOrUndefined),
  prefix: Config.map(Config.option(Config.string("NIGHTSHIFT_ADMIN_PREFIX")), Option.getOrUndefined),
  maxBodyBytes: Config.map(
    Config.option(Config.integer("NIGHTSHIFT_ADMIN_MAX_BODY_BYTES")),
    Option.getOrUndefined
  )
})

const defined = (options: Options): Options =>
  Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))

/**
 * Check admin options as `layer` does (host and token, port, body limit,
 * prefix) without serving anything, so that a process can refuse a bad
 * configuration before it starts any work. Succeeds with the address the
 * server would bind.
 *
 * @since 0.1.0
 */
export const validate = (
  options: Options = {}
): Effect.Effect<{ readonly host: string; readonly port: number }, AdminError> =>
  Effect.map(check(options), ({ host, port }) => ({ host, port }))

/**
 * `validate` on the options `layerConfig(overrides)` would use: the
 * environment, with `overrides` winning.
 *
 * @since 0.1.0
 */
export const validateConfig = (
  overrides: Options = {}
): Effect.Effect<{ readonly host: string; readonly port: number }, AdminError | ConfigError.ConfigError> =>
  Effect.flatMap(config, (fromEnv) => validate({ ...fromEnv, ...defined(overrides) }))

/**
 * `layer` configured from the environment (see `config`); fields set in
 * `overrides` (e.g. command-line flags) win over the environment.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  overrides: Options = {}
): Layer.Layer<Server, AdminError | ConfigError.ConfigError, Requirements> =>
  Layer.unwrapEffect(Effect.map(config, (fromEnv) => layer({ ...fromEnv, ...defined(overrides) })))
