/**
 * Opt-in OpenTelemetry export of Nightshift's traces and metrics over OTLP/HTTP.
 *
 * Nightshift always emits Effect spans and metrics: `nightshift.enqueue` when
 * a job is enqueued (its trace ids are stored on the job), a root
 * `nightshift.job <kind>` span per attempt linked to that enqueue span,
 * `nightshift.worker.tick` per periodic tick, and the `nightshift_*`
 * metrics. Without an exporter they cost little and go nowhere. This module
 * sends them to an OpenTelemetry collector with `@effect/opentelemetry`'s
 * OTLP exporter, which needs no OpenTelemetry SDK packages: install
 * `@effect/opentelemetry` (an optional peer dependency, loaded only when
 * export is turned on).
 *
 * `layerConfig` follows the standard variables: it does nothing unless
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not
 * `true`). For other exporters (an in-memory one in tests, the SDK's own
 * exporters) use `@effect/opentelemetry`'s `NodeSdk.layer` directly.
 *
 * @since 0.1.0
 */

import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Peer from "./internal/peer.js"

/**
 * Where and how to export.
 *
 * @since 0.1.0
 */
export interface Options {
  /** OTLP/HTTP base URL of the collector, e.g. `http://localhost:4318` (signals go to `/v1/traces`, `/v1/metrics`). */
  readonly endpoint: string
  /** `http/protobuf` (the OTLP default) or `http/json`. */
  readonly protocol?: "http/protobuf" | "http/json" | undefined
  /** Default `"nightshift"`. */
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
  /** Extra resource attributes. */
  readonly attributes?: Record<string, string> | undefined
  /** Headers sent with every export (e.g. an API key). */
  readonly headers?: Record<string, string> | undefined
  /** How often spans and metrics are sent. Default 5 seconds (spans) and 10 seconds (metrics). */
  readonly exportInterval?: Duration.DurationInput | undefined
}

/**
 * The telemetry configuration cannot be used.
 *
 * @since 0.1.0
 */
export class TelemetryError extends Schema.TaggedError<TelemetryError>()("TelemetryError", {
  message: Schema.String
}) {}

/**
 * Export traces and metrics to an OTLP/HTTP collector for the life of the
 * layer; pending spans are flushed when it is released. Fails with a
 * `TelemetryError` naming the command to run when `@effect/opentelemetry` is
 * not installed.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<never, TelemetryError> =>
  Layer.unwrapEffect(
    Effect.map(
      Peer.load("@effect/opentelemetry", () => import("@effect/opentelemetry/Otlp")).pipe(
        Effect.mapError((error) => new TelemetryError({ message: error.message }))
      ),
      (otlp) => exporter(otlp, options)
    )
  )

const exporter = (
  Otlp: typeof import("@effect/opentelemetry/Otlp"),
  options: Options
): Layer.Layer<never> => {
  const interval = options.exportInterval === undefined ? undefined : Duration.decode(options.exportInterval)
  const settings = {
    baseUrl: options.endpoint.replace(/\/+$/, ""),
    resource: {
      serviceName: options.serviceName ?? "nightshift",
      serviceVersion: options.serviceVersion,
      attributes: options.attributes ?? {}
    },
    headers: options.headers,
    tracerExportInterval: interval,
    metricsExportInterval: interval
  }
  const otlp = options.protocol === "http/json" ? Otlp.layerJson(settings) : Otlp.layerProtobuf(settings)
  return Layer.provide(otlp, FetchHttpClient.layer)
}

/** Parse `key=value,key2=value2` (values percent-encoded), as the OTEL_* list variables are written. */
export const parseList = (input: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const item of input.split(",")) {
    const eq = item.indexOf("=")
    if (eq <= 0) continue
    const key = item.slice(0, eq).trim()
    const raw = item.slice(eq + 1).trim()
    let value = raw
    try {
      value = decodeURIComponent(raw)
    } catch {}
    if (key !== "") out[key] = value
  }
  return out
}

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const Protocol = Config.string("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(
  Config.validate({
    message:
      'OTEL_EXPORTER_OTLP_PROTOCOL must be "http/protobuf" or "http/json" (gRPC is not supported: point OTEL_EXPORTER_OTLP_ENDPOINT at the collector\'s HTTP port, usually 4318)',
    validation: (s): s is "http/protobuf" | "http/json" => s === "http/protobuf" || s === "http/json"
  })
)

/**
 * Options from the standard environment variables, or `None` when telemetry
 * is off: `OTEL_EXPORTER_OTLP_ENDPOINT` (turns it on),
 * `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`, and
 * `NIGHTSHIFT_OTEL_EXPORT_INTERVAL` (a duration).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Option.Option<Options>> = Config.all({
  disabled: Config.withDefault(Config.boolean("OTEL_SDK_DISABLED"), false),
  endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  protocol: optional(Protocol),
  serviceName: optional(Config.string("OTEL_SERVICE_NAME")),
  headers: optional(Config.map(Config.string("OTEL_EXPORTER_OTLP_HEADERS"), parseList)),
  attributes: optional(Config.map(Config.string("OTEL_RESOURCE_ATTRIBUTES"), parseList)),
  exportInterval: optional(Config.duration("NIGHTSHIFT_OTEL_EXPORT_INTERVAL"))
}).pipe(
  Config.map(({ disabled, endpoint, ...rest }) =>
    disabled ? Option.none() : Option.map(endpoint, (endpoint): Options => ({ ...rest, endpoint }))
  )
)

const checkEndpoint = (options: Options) =>
  Effect.try({
    try: () => new URL(options.endpoint),
    catch: () =>
      new TelemetryError({
        message: `OTLP endpoint ${JSON.stringify(options.endpoint)} is not a URL; use e.g. http://localhost:4318`
      })
  }).pipe(
    Effect.filterOrFail(
      (url) => url.protocol === "http:" || url.protocol === "https:",
      () =>
        new TelemetryError({
          message: `OTLP endpoint ${options.endpoint} must be http:// or https:// (OTLP over HTTP)`
        })
    ),
    Effect.as(options)
  )

/**
 * Export when the environment asks for it (see `config`), otherwise do
 * nothing. `overrides` (e.g. command-line flags) win over the environment;
 * an `endpoint` override turns export on by itself.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  overrides: Partial<Options> = {}
): Layer.Layer<never, TelemetryError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const fromEnv = yield* config
      const set = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined))
      const endpoint = overrides.endpoint ?? Option.getOrUndefined(Option.map(fromEnv, (o) => o.endpoint))
      if (endpoint === undefined) return Layer.empty
      const options = yield* checkEndpoint({ ...Option.getOrUndefined(fromEnv), ...set, endpoint })
      yield* Effect.logDebug(`nightshift: exporting traces and metrics to ${options.endpoint}`)
      return layer(options)
    })
  )
