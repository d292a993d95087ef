/**
 * What every command shares: the error type, the `--database` and `--json`
 * options, store selection and JSON output.
 */
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as JobStore from "../../JobStore.js"
import * as Store from "../../Store.js"

/**
 * A command failed in a way the user can fix; `message` says how. Exit code
 * 2 for bad input (arguments, flags, environment), 1 otherwise.
 */
export class CliError extends Data.TaggedError("CliError")<{
  readonly message: string
  readonly exitCode: 1 | 2
}> {}

/** Bad input: exit code 2. */
export const usageError = (message: string) => new CliError({ message, exitCode: 2 })

/** A failure that is not the input's fault: exit code 1. */
export const failure = (message: string) => new CliError({ message, exitCode: 1 })

/** `--json`: machine-readable output. */
export const json = Options.boolean("json").pipe(
  Options.withDescription("Print JSON instead of a table (for scripts).")
)

/** `--database`: overrides `NIGHTSHIFT_DATABASE_URL`. */
export const database = Options.text("database").pipe(
  Options.withAlias("d"),
  Options.withDescription(
    `Where jobs are stored: postgres://user:pass@host:5432/db[?schema=name], a SQLite file path (or sqlite:<path>), or memory:. Overrides ${Store.envVar}; default ${Store.defaultUrl}.`
  ),
  Options.optional
)

/** The store named by `--database`, else `NIGHTSHIFT_DATABASE_URL`, else `./nightshift.db`. */
export const target = (flag: Option.Option<string>): Effect.Effect<Store.Target, CliError> =>
  Effect.gen(function* () {
    if (Option.isSome(flag)) {
      return yield* Either.mapLeft(Store.parse(flag.value), (e) => usageError(`--database: ${e.message}`))
    }
    const env = yield* Config.option(Config.string(Store.envVar)).pipe(
      Effect.mapError((e) => usageError(`${Store.envVar}: ${e}`))
    )
    return yield* Either.mapLeft(Store.parse(Option.getOrElse(env, () => Store.defaultUrl)), (e) =>
      usageError(`${Store.envVar}: ${e.message}`)
    )
  })

const storeError = (error: Store.StoreUnavailable | JobStore.JobStoreError) => failure(error.message)

/**
 * Run `effect` with the job store selected by `--database` (no lock, no
 * leader, no wake-up listener: a one-off tool, not a node).
 */
export const withStore = <A, R>(
  flag: Option.Option<string>,
  effect: Effect.Effect<A, CliError | JobStore.JobStoreError, R>
): Effect.Effect<A, CliError, Exclude<R, JobStore.JobStore>> =>
  Effect.flatMap(target(flag), (t) =>
    effect.pipe(
      Effect.provide(Store.layerJobStore(t, { listen: false }).pipe(Layer.mapError(storeError))),
      Effect.catchTag("JobStoreError", (e) => Effect.fail(storeError(e)))
    )
  ) as Effect.Effect<A, CliError, Exclude<R, JobStore.JobStore>>

/** Print a value as indented JSON on stdout. */
export const printJson = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

const units: Record<string, Duration.Unit> = {
  ms: "millis",
  s: "seconds",
  sec: "seconds",
  m: "minutes",
  min: "minutes",
  h: "hours",
  d: "days",
  w: "weeks"
}

/** A duration written `30s`, `5m`, `2h`, `1d`, `500ms` or `10 minutes`. */
export const parseDuration = (flag: string, input: string): Effect.Effect<Duration.Duration, CliError> => {
  const short = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(input.trim())
  const unit = short === null ? undefined : units[short[2]!.toLowerCase()]
  const decoded =
    short !== null && unit !== undefined
      ? Duration.decodeUnknown(`${short[1]} ${unit}`)
      : Duration.decodeUnknown(input.trim())
  return Option.match(decoded, {
    onNone: () =>
      Effect.fail(
        usageError(
          `${flag}: ${JSON.stringify(input)} is not a duration; write e.g. 30s, 5m, 2h, 1d or "10 minutes"`
        )
      ),
    onSome: Effect.succeed
  })
}
