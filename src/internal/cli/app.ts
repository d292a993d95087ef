/**
 * Loading a user's app module: `export default Nightshift.define({...})`,
 * and optionally `export const layer`, a `Layer` providing what the app's
 * workers and handlers need.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { pathToFileURL } from "node:url"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Job from "../../Job.js"
import type * as Nightshift from "../../Nightshift.js"
import { CliError, failure, usageError } from "./common.js"

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

const typeScriptFile = /\.[cm]?tsx?$/i

/** Whether this Node runs TypeScript on its own (type stripping: 22.18+, 23.6+, 24). */
const nodeStripsTypes = (): boolean =>
  Boolean((process.features as { readonly typescript?: string | false }).typescript)

/**
 * tsx's ESM `register`, when the user has installed tsx where the app module
 * or the working directory can see it (found the way `import` would from
 * there, through tsx's own `exports`).
 */
const findTsx = async (path: string): Promise<(() => unknown) | undefined> => {
  for (const from of [path, NodePath.join(process.cwd(), "package.json")]) {
    let manifest: string
    try {
      manifest = createRequire(from).resolve("tsx/package.json")
    } catch {
      continue
    }
    const exports = JSON.parse(readFileSync(manifest, "utf8")).exports?.["./esm/api"]
    const entry = exports?.import?.default ?? exports?.import
    if (typeof entry !== "string") continue
    const api = await import(pathToFileURL(NodePath.join(NodePath.dirname(manifest), entry)).href)
    return api.register
  }
  return undefined
}

const tsxInstall = "tsx where the app can see it (`npm install --save-dev tsx`)"

/**
 * Import the app module. JavaScript loads with plain Node. TypeScript loads
 * with Node's own type stripping when this Node has it, else (or when the
 * module needs more than stripping: non-erasable syntax, `./x.js` imports of
 * `.ts` files) with tsx when the user has it installed; otherwise the error
 * says what to install.
 */
const importApp = (module: string, path: string, url: URL) =>
  Effect.tryPromise({
    try: async (): Promise<Record<string, unknown>> => {
      if (!typeScriptFile.test(path)) return import(url.href)
      let nativeError: unknown
      if (nodeStripsTypes()) {
        try {
          return await import(url.href)
        } catch (error) {
          nativeError = error
        }
      }
      const register = await findTsx(path)
      if (register === undefined) {
        throw nativeError === undefined
          ? usageError(
              `cannot load the TypeScript app module ${module}: Node ${process.version} does not run TypeScript on its own (Node 22.18+ and 24 do). Install ${tsxInstall}, use a newer Node, or compile the app to JavaScript and run the .js file.`
            )
          : failure(
              `could not load app module ${module}: ${errorText(nativeError)}. Node's type stripping takes only erasable TypeScript and imports of other TypeScript files by their .ts name; install ${tsxInstall} to load the module as it is, or compile it to JavaScript.`
            )
      }
      register()
      // A fresh URL: a module Node failed to load stays failed under its own URL.
      return import(nativeError === undefined ? url.href : `${url.href}?tsx`)
    },
    catch: (error) =>
      error instanceof CliError ? error : failure(`could not load app module ${module}: ${errorText(error)}`)
  })

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
    const exports = yield* importApp(module, path, url)
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
