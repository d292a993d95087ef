/**
 * `nightshift enqueue <kind> <json>`.
 *
 * With `--app <module>` the kind must be one the app declares: the payload
 * is decoded with the kind's schema and the kind's queue, priority and
 * attempts apply. Without it, the JSON is stored as given for that kind
 * name, on queue `default` unless `--queue` says otherwise; the handler's
 * schema checks it when the job is claimed.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Job from "../../Job.js"
import * as JobQueue from "../../JobQueue.js"
import { formatParseError, jsonTooDeep, maxDepth } from "../input.js"
import * as App from "./app.js"
import { type CliError, database, json, parseDuration, usageError, withStore } from "./common.js"

const options = {
  kind: Args.text({ name: "kind" }).pipe(Args.withDescription("The job kind's name.")),
  payload: Args.text({ name: "json" }).pipe(
    Args.withDescription('The payload as JSON, e.g. \'{"to":"a@b.c"}\'.')
  ),
  delay: Options.text("delay").pipe(
    Options.withDescription("Run after this long: 30s, 5m, 2h, 1d or '10 minutes'."),
    Options.optional
  ),
  runAt: Options.date("run-at").pipe(
    Options.withDescription("Run at this time (ISO 8601, e.g. 2030-01-01T09:00:00Z). Wins over --delay."),
    Options.optional
  ),
  priority: Options.integer("priority").pipe(
    Options.withDescription("Lower runs first (default: the kind's, else 0)."),
    Options.optional
  ),
  queue: Options.text("queue").pipe(
    Options.withDescription("Queue name (default: the kind's, else 'default')."),
    Options.optional
  ),
  maxAttempts: Options.integer("max-attempts").pipe(
    Options.withDescription("Attempts before the job is discarded (default: the kind's, else 20)."),
    Options.optional
  ),
  dedupeKey: Options.text("dedupe-key").pipe(
    Options.withDescription("Fold into a live job of the same kind with this key instead of adding one."),
    Options.optional
  ),
  partition: Options.text("partition").pipe(
    Options.withDescription(
      "Partition key (a tenant, an account): flow control serves keys in turn and per-partition limits count per key (default: what the kind derives from the payload, with --app)."
    ),
    Options.optional
  ),
  app: Options.text("app").pipe(
    Options.withDescription("App module whose declared kinds validate the payload (TypeScript allowed)."),
    Options.withFallbackConfig(Config.string("NIGHTSHIFT_APP")),
    Options.optional
  ),
  database,
  json
}

type Input = Command.Command.ParseConfig<typeof options>

const parseJson = (text: string): Effect.Effect<unknown, CliError> =>
  jsonTooDeep(text)
    ? Effect.fail(usageError(`the payload nests arrays or objects more than ${maxDepth} levels deep`))
    : Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (error) =>
          usageError(
            `the payload is not valid JSON (${error instanceof Error ? error.message : error}); quote it for your shell, e.g. '{"id":42}'`
          )
      })

/** A kind for a name the CLI knows nothing about: any JSON payload. */
const rawKind = (name: string) => Job.make(name, { payload: Schema.Unknown })

const resolveKind = (input: Input, payload: unknown) =>
  Effect.gen(function* () {
    if (Option.isNone(input.app)) {
      if (!JobQueue.isValidName(input.kind)) {
        return yield* Effect.fail(
          usageError(`invalid kind name ${JSON.stringify(input.kind)}: use 1-128 of [A-Za-z0-9_.:-]`)
        )
      }
      return { kind: rawKind(input.kind) as Job.Any, payload }
    }
    const loaded = yield* App.load(input.app.value)
    const known = App.kinds(loaded.app)
    const kind = known.get(input.kind)
    if (kind === undefined) {
      const names = Array.from(known.keys()).sort().join(", ") || "none"
      return yield* Effect.fail(
        usageError(`${input.app.value} declares no job kind "${input.kind}" (it declares: ${names})`)
      )
    }
    const decoded = yield* Schema.decodeUnknown(kind.payload as Schema.Schema<unknown, unknown>)(
      payload
    ).pipe(
      Effect.mapError((error) =>
        usageError(`the payload does not match kind "${kind.name}":\n${formatParseError(error)}`)
      )
    )
    return { kind, payload: decoded }
  })

const enqueueOptions = (input: Input) =>
  Effect.gen(function* () {
    const delay = Option.isSome(input.delay) ? yield* parseDuration("--delay", input.delay.value) : undefined
    const options: JobQueue.EnqueueOptions = {
      delay,
      runAt: Option.getOrUndefined(input.runAt),
      priority: Option.getOrUndefined(input.priority),
      queue: Option.getOrUndefined(input.queue),
      maxAttempts: Option.getOrUndefined(input.maxAttempts),
      dedupeKey: Option.getOrUndefined(input.dedupeKey),
      partition: Option.getOrUndefined(input.partition)
    }
    return options
  })

const handler = (input: Input) =>
  Effect.gen(function* () {
    const payload = yield* parseJson(input.payload)
    const options = yield* enqueueOptions(input)
    const resolved = yield* resolveKind(input, payload)
    const result = yield* withStore(
      input.database,
      Effect.flatMap(JobQueue.make, (queue) =>
        queue.enqueue(resolved.kind as Job.Kind<string, unknown, unknown>, resolved.payload, options)
      ).pipe(
        Effect.catchTags({
          InvalidOptions: (e) => Effect.fail(usageError(e.message)),
          InvalidPayload: (e) => Effect.fail(usageError(e.message))
        })
      )
    )
    if (input.json) return yield* Console.log(JSON.stringify(result))
    const queue = options.queue ?? resolved.kind.queue
    yield* Console.log(
      result.deduped
        ? `job ${result.id} with dedupe key ${JSON.stringify(input.dedupeKey.pipe(Option.getOrElse(() => "")))} is still live; nothing new enqueued`
        : `enqueued job ${result.id} (${resolved.kind.name} on queue ${queue})`
    )
  })

/** `nightshift enqueue`. */
export const command = Command.make("enqueue", options, handler).pipe(
  Command.withDescription(
    "Enqueue a job. With --app, the kind must be declared by the app and its schema checks the payload; without it, the JSON is stored as given."
  )
)
