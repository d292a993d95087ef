/**
 * Loading a user's app module: `export default Nightshift.define({...})`,
 * and optionally `export const layer`, a `Layer` providing what the app's
 * workers and handlers need.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Job from "../../Job.js"
import type * as Nightshift from "../../Nightshift.js"
import { type CliError, failure, usageError } from "./common.js"

/** A loaded app module. */
export interface Loaded {
  /** The module path as given. */
  readonly module: string
  readonly app: Nightshift.App<any>
  /** The module's `layer` export, or an empty layer. */
  readonly layer: Layer.Layer<any, unknown>
}

const appKeys = new Set(["name", "workers", "handlers", "kinds", "cron", "runner"])

const appProblem = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null) return "its default export is not an object"
  const record = value as Record<string, unknown>
  const unknown = Object.keys(record).filter((k) => !appKeys.has(k))
  if (unknown.length > 0) return `its default export has unknown field(s) ${unknown.join(", ")}`
  if (record.workers !== undefined && !Array.isArray(record.workers)) return "`workers` is not an array"
  const handlers = record.handlers as { _tag?: unknown } | undefined
  if (handlers !== undefined && handlers?._tag !== "JobHandlers") {
    return "`handlers` is not built with Job.handlers(...)"
  }
  return undefined
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Import an app module (TypeScript allowed) relative to the working directory. */
export const load = (module: string): Effect.Effect<Loaded, CliError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const paths = yield* Path.Path
    const path = paths.resolve(module)
    if (!(yield* Effect.orElseSucceed(fs.exists(path), () => false))) {
      return yield* Effect.fail(usageError(`app module ${module} not found (looked at ${path})`))
    }
    const url = yield* Effect.orDie(paths.toFileUrl(path))
    const exports = yield* Effect.tryPromise({
      try: () => import(url.href) as Promise<Record<string, unknown>>,
      catch: (error) => failure(`could not load app module ${module}: ${errorText(error)}`)
    })
    const problem = appProblem(exports.default)
    if (problem !== undefined) {
      return yield* Effect.fail(
        usageError(
          `${module} is not a Nightshift app: ${problem}. Its default export must be Nightshift.define({ workers, handlers, ... }).`
        )
      )
    }
    if (exports.layer !== undefined && !Layer.isLayer(exports.layer)) {
      return yield* Effect.fail(usageError(`${module}: its \`layer\` export is not a Layer`))
    }
    return {
      module,
      app: exports.default as Nightshift.App<any>,
      layer: (exports.layer ?? Layer.empty) as Layer.Layer<any, unknown>
    }
  })

/** The job kinds an app knows by name: handled kinds, `kinds` and cron kinds. */
export const kinds = (app: Nightshift.App<any>): ReadonlyMap<string, Job.Kind<string, any, any, any>> => {
  const byName = new Map<string, Job.Kind<string, any, any, any>>()
  for (const handler of app.handlers?.byKind.values() ?? []) byName.set(handler.kind.name, handler.kind)
  for (const kind of app.kinds ?? []) byName.set(kind.name, kind)
  for (const cron of app.cron ?? []) byName.set(cron.kind.name, cron.kind)
  return byName
}
