/**
 * `nightshift run <module>` and `nightshift demo`: run an app with the
 * selected store and the admin server until SIGINT/SIGTERM, then drain.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Nightshift from "../../Nightshift.js"
import * as Store from "../../Store.js"
import * as Admin from "./admin.js"
import * as App from "./app.js"
import { database, failure, target, usageError } from "./common.js"

const nodeOptions = {
  database,
  ...Admin.serverOptions,
  otlpEndpoint: Options.text("otlp-endpoint").pipe(
    Options.withDescription(
      "Export traces and metrics to this OTLP/HTTP collector, e.g. http://localhost:4318 (env OTEL_EXPORTER_OTLP_ENDPOINT)."
    ),
    Options.optional
  )
}

type NodeInput = Command.Command.ParseConfig<typeof nodeOptions>

const say = (line: string) => Console.log(`nightshift: ${line}`)

const errorMessage = (error: unknown) =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

/** OpenTelemetry export when `--otlp-endpoint` or the OTEL_* variables ask for it; loaded only here. */
const telemetry = (input: NodeInput) =>
  Layer.unwrapEffect(
    Effect.map(
      Effect.promise(() => import("../../Telemetry.js")),
      (Telemetry) =>
        Telemetry.layerConfig(
          Option.match(input.otlpEndpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) })
        )
    )
  ).pipe(Layer.mapError((e) => usageError(e._tag === "TelemetryError" ? e.message : `telemetry: ${e}`)))

/** Build the app on the store and serve it until interrupted or its crew fails. */
const runLoaded = (loaded: App.Loaded, input: NodeInput, label: string | undefined) =>
  Effect.gen(function* () {
    const selected = yield* target(input.database)
    const admin = Admin.settings(input)
    // The whole configuration is checked before anything starts: a refused one never runs a job.
    yield* Admin.check(admin)
    const services = loaded.layer.pipe(Layer.provideMerge(Store.layer(selected)))
    const node = Nightshift.layer(loaded.app).pipe(Layer.provideMerge(services))
    const name = loaded.app.name ?? "nightshift"
    let started = false
    yield* Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(node).pipe(Effect.mapError((e) => failure(errorMessage(e))))
        const url = yield* Admin.serve(admin).pipe(Effect.provide(context))
        started = true
        yield* say(
          `running ${name}${label === undefined ? "" : ` from ${label}`} on ${Store.describe(selected)}`
        )
        if (url !== undefined) yield* say(`dashboard ${url}`)
        yield* say("press Ctrl-C to stop")
        yield* Context.get(context, Nightshift.Nightshift).crew.await.pipe(
          Effect.mapError((e) => failure(`the app stopped: ${e.message}`)),
          Effect.onInterrupt(() => say("stopping (running jobs get their shutdown timeout to finish)"))
        )
      })
    ).pipe(Effect.ensuring(Effect.suspend(() => (started ? say("stopped") : Effect.void))))
  }).pipe(Effect.provide(telemetry(input)))

/** `nightshift run <module>`. */
export const run = Command.make(
  "run",
  {
    module: Args.text({ name: "module" }).pipe(
      Args.withDescription(
        "App module (TypeScript allowed) whose default export is Nightshift.define({...})."
      )
    ),
    ...nodeOptions
  },
  (input) => Effect.flatMap(App.load(input.module), (loaded) => runLoaded(loaded, input, input.module))
).pipe(
  Command.withDescription(
    "Run an app: its workers, job runner and cron jobs, with the admin server. SIGINT/SIGTERM drain gracefully."
  )
)

/**
 * The demo app's module: compiled beside this module in the package
 * (`dist/demo/app.js`), or its source when Nightshift itself runs from source
 * (`examples/demo/app.ts`, in this repository's tests).
 */
export const demoModule: Effect.Effect<string, never, FileSystem.FileSystem | Path.Path> = Effect.gen(
  function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const compiled = yield* Effect.orDie(path.fromFileUrl(new URL("../../demo/app.js", import.meta.url)))
    if (yield* Effect.orElseSucceed(fs.exists(compiled), () => false)) return compiled
    return yield* Effect.orDie(path.fromFileUrl(new URL("../../../examples/demo/app.ts", import.meta.url)))
  }
)

/** `nightshift demo`. */
export const demo = Command.make("demo", nodeOptions, (input) =>
  Effect.gen(function* () {
    yield* runLoaded(yield* App.load(yield* demoModule), input, undefined)
  })
).pipe(
  Command.withDescription(
    "Run the demo app (simulated tenants, certificates, webhooks, scans) on ./nightshift.db and print the dashboard URL."
  )
)
