/**
 * The admin server of `run` and `demo`, and the admin-API options shared
 * with `workers`.
 */
import { createServer } from "node:net"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Admin from "../../Admin.js"
import { type CliError, usageError } from "./common.js"

/** The admin server's default port (as in `Admin.layer`). */
export const defaultPort = 7700

/** The admin server's default address: loopback only. */
export const defaultHost = "127.0.0.1"

/** Options of the admin server (`run`, `demo`); unset ones come from `Admin.config` (NIGHTSHIFT_ADMIN_*). */
export const serverOptions = {
  adminHost: Options.text("admin-host").pipe(
    Options.withDescription(
      `Address the admin server binds to (env NIGHTSHIFT_ADMIN_HOST, default ${defaultHost}).`
    ),
    Options.optional
  ),
  adminPort: Options.integer("admin-port").pipe(
    Options.withDescription(
      `Port of the admin API and dashboard; 0 picks a free one (env NIGHTSHIFT_ADMIN_PORT, default ${defaultPort}).`
    ),
    Options.optional
  ),
  adminToken: Options.redacted("admin-token").pipe(
    Options.withDescription(
      "Bearer token of the admin API (env NIGHTSHIFT_ADMIN_TOKEN). Required to serve beyond loopback."
    ),
    Options.optional
  ),
  noAdmin: Options.boolean("no-admin").pipe(Options.withDescription("Do not start the admin server."))
}

/** Options of admin-API clients (`workers`). */
export const clientOptions = {
  adminUrl: Options.text("admin-url").pipe(
    Options.withDescription("Base URL of a running node's admin API (env NIGHTSHIFT_ADMIN_URL)."),
    Options.withFallbackConfig(Config.string("NIGHTSHIFT_ADMIN_URL")),
    Options.withDefault(`http://${defaultHost}:${defaultPort}`)
  ),
  adminToken: Options.redacted("admin-token").pipe(
    Options.withDescription("Bearer token of the admin API (env NIGHTSHIFT_ADMIN_TOKEN)."),
    Options.withFallbackConfig(Config.redacted("NIGHTSHIFT_ADMIN_TOKEN")),
    Options.optional
  )
}

/** What `run` serves. */
export interface Settings {
  readonly enabled: boolean
  readonly overrides: Admin.Options
}

/** The admin settings of `run`'s options; `Admin` checks them when it starts. */
export const settings = (input: {
  readonly adminHost: Option.Option<string>
  readonly adminPort: Option.Option<number>
  readonly adminToken: Option.Option<Redacted.Redacted>
  readonly noAdmin: boolean
}): Settings => ({
  enabled: !input.noAdmin,
  overrides: {
    host: Option.getOrUndefined(input.adminHost),
    port: Option.getOrUndefined(input.adminPort),
    token: Option.getOrUndefined(input.adminToken)
  }
})

const errorText = (e: { readonly _tag: string; readonly message?: string }) =>
  e._tag === "AdminError" ? (e.message ?? "") : `admin server: ${e.message ?? String(e)}`

/** Whether something already listens on the address (a free port is released at once). */
const probe = (host: string, port: number) =>
  Effect.async<string | undefined>((resume) => {
    const server = createServer()
    server.once("error", (e: NodeJS.ErrnoException) => resume(Effect.succeed(e.code ?? e.message)))
    server.listen({ host, port, exclusive: true }, () =>
      server.close(() => resume(Effect.succeed(undefined)))
    )
  })

/**
 * Check the admin settings (from flags and the environment) as the server
 * will, and that its port is free, without starting anything: `run` calls
 * this before it builds the app, so a refused configuration never runs a
 * job. The admin module loads only when the server is on.
 */
export const check = (settings: Settings): Effect.Effect<void, CliError> =>
  settings.enabled
    ? Effect.gen(function* () {
        const AdminModule = yield* Effect.promise(() => import("../../Admin.js"))
        const { host, port } = yield* AdminModule.validateConfig(settings.overrides).pipe(
          Effect.mapError((e) => usageError(errorText(e)))
        )
        if (port === 0) return
        const problem = yield* probe(host, port)
        if (problem !== undefined) {
          return yield* Effect.fail(
            usageError(
              `the admin server cannot listen on ${host}:${port} (${problem}). Pick another port (--admin-port or NIGHTSHIFT_ADMIN_PORT), or --no-admin`
            )
          )
        }
      }).pipe(Effect.withSpan("nightshift.cli.checkAdmin"))
    : Effect.void

/**
 * Start the admin server in the current scope; returns its dashboard URL,
 * or `undefined` when it is turned off. The admin module loads only here.
 */
export const serve = (
  settings: Settings
): Effect.Effect<string | undefined, CliError, Scope.Scope | Admin.Requirements> =>
  settings.enabled
    ? Effect.gen(function* () {
        const AdminModule = yield* Effect.promise(() => import("../../Admin.js"))
        const context = yield* Layer.build(AdminModule.layerConfig(settings.overrides)).pipe(
          Effect.mapError((e) => usageError(e._tag === "AdminError" ? e.message : `admin server: ${e}`))
        )
        return Context.get(context, AdminModule.Server).url
      })
    : Effect.succeed(undefined)
