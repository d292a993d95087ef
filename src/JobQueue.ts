/**
 * The producer service: enqueue typed jobs, inspect and control them.
 *
 * A payload is encoded with its kind's `Schema` before anything is written;
 * a bad payload is a typed `InvalidPayload` error and nothing is stored. On
 * the SQL engines an enqueue inside the application's own
 * `sql.withTransaction` commits or rolls back with it.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import * as Events from "./Events.js"
import * as FlowControl from "./FlowControl.js"
import { formatParseError, isStorableText, isValidName as validName } from "./internal/input.js"
import * as Flow from "./internal/store/flow.js"
import { nativeTracer, withSpanIfTraced } from "./internal/tracing.js"
import type * as Job from "./Job.js"
import * as JobStore from "./JobStore.js"
import * as Metrics from "./Metrics.js"

/**
 * Per-enqueue options; each overrides the kind's default.
 *
 * @since 0.1.0
 */
export interface EnqueueOptions {
  /**
   * Run at this time (a `Date` or epoch ms), from `minRunAt` to `maxRunAt`;
   * a past time means now. Wins over `delay`.
   */
  readonly runAt?: Date | number | undefined
  /** Run after this long: the run time it gives must be at most `maxRunAt`. */
  readonly delay?: Duration.DurationInput | undefined
  /** Lower runs first. */
  readonly priority?: number | undefined
  readonly queue?: string | undefined
  readonly maxAttempts?: number | undefined
  /**
   * While a job of the same kind with this key is scheduled, available,
   * running or retryable, a new enqueue is folded into it.
   */
  readonly dedupeKey?: string | undefined
  /**
   * Partition key (a tenant or account id, 1 to 1,000 characters): claims
   * serve keys in turn, and per-partition limits count per key. Default:
   * what the kind's `partition` derives from the payload, else none.
   */
  readonly partition?: string | undefined
}

/**
 * The result of an enqueue: the job's id, and whether it was folded into an
 * existing job with the same dedupe key.
 *
 * @since 0.1.0
 */
export interface Enqueued {
  readonly id: string
  readonly deduped: boolean
}

/**
 * The payload did not match the kind's schema. Nothing was written.
 *
 * @since 0.1.0
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  kind: Schema.String,
  message: Schema.String
}) {}

/**
 * An enqueue option (queue name, priority, attempts, run-at…) is out of
 * range. Nothing was written.
 *
 * @since 0.1.0
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  kind: Schema.String,
  message: Schema.String
}) {}

/**
 * One item of `enqueueMany`: a kind and a payload of that kind.
 *
 * @since 0.1.0
 */
export interface Item<K extends Job.Any = Job.Any> {
  readonly kind: K
  readonly payload: Job.Payload<K>
  readonly options?: EnqueueOptions | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace Item {
  /** The services the payload schemas of some items need (the union over their kinds). */
  export type Context<I> = I extends { readonly kind: Job.Kind<any, any, any, infer R> } ? R : never
  /** Each of some items typed against its own kind, so that a payload must match its kind. */
  export type Checked<I> = I extends { readonly kind: infer K extends Job.Any } ? Item<K> : never
}

/** Builds a typed `enqueueMany` item. @since 0.1.0 */
export const item = <Name extends string, A, I, R>(
  kind: Job.Kind<Name, A, I, R>,
  payload: NoInfer<A>,
  options?: EnqueueOptions
): Item<Job.Kind<Name, A, I, R>> => ({ kind, payload, options })

/**
 * The producer service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly enqueue: <Name extends string, A, I, R>(
    kind: Job.Kind<Name, A, I, R>,
    payload: A,
    options?: EnqueueOptions
  ) => Effect.Effect<Enqueued, InvalidPayload | InvalidOptions | JobStore.JobStoreError, R>
  /**
   * Enqueue many jobs atomically (all or nothing); results in input order.
   * Items may be of different kinds; each payload must match its own kind.
   */
  readonly enqueueMany: <I extends Item>(
    items: Iterable<I> & Iterable<Item.Checked<I>>
  ) => Effect.Effect<
    ReadonlyArray<Enqueued>,
    InvalidPayload | InvalidOptions | JobStore.JobStoreError,
    Item.Context<I>
  >
  readonly get: (id: string) => Effect.Effect<Option.Option<JobStore.JobRecord>, JobStore.JobStoreError>
  /**
   * Jobs newest first. Kind and queue names, or a cursor, that no job could
   * have (text a database cannot store: a NUL character, a lone surrogate)
   * match nothing and never reach the store.
   */
  readonly list: (filter?: JobStore.ListFilter) => Effect.Effect<JobStore.ListPage, JobStore.JobStoreError>
  readonly counts: Effect.Effect<ReadonlyArray<JobStore.QueueCount>, JobStore.JobStoreError>
  /** Cancel a queued job, or interrupt a running one wherever it runs. */
  readonly cancel: (id: string) => Effect.Effect<JobStore.CancelResult, JobStore.JobStoreError>
  /** Make a discarded, cancelled or completed job available again. */
  readonly retry: (id: string) => Effect.Effect<JobStore.RetryResult, JobStore.JobStoreError>
  /** `retry` for many jobs (see `JobStore.BulkResult`). @since 0.3.0 */
  readonly retryMany: (
    ids: ReadonlyArray<string>
  ) => Effect.Effect<JobStore.BulkResult, JobStore.JobStoreError>
  /** `cancel` for many jobs; each job cancelled while queued is announced as `cancel` announces it. @since 0.3.0 */
  readonly cancelMany: (
    ids: ReadonlyArray<string>
  ) => Effect.Effect<JobStore.BulkResult, JobStore.JobStoreError>
  /** Delete jobs that are not running. @since 0.3.0 */
  readonly deleteMany: (
    ids: ReadonlyArray<string>
  ) => Effect.Effect<JobStore.BulkResult, JobStore.JobStoreError>
  /** Make a scheduled or retryable job due now. @since 0.3.0 */
  readonly runNow: (id: string) => Effect.Effect<JobStore.RunNowResult, JobStore.JobStoreError>
  readonly pause: (queue: string) => Effect.Effect<void, JobStore.JobStoreError | InvalidOptions>
  readonly resume: (queue: string) => Effect.Effect<void, JobStore.JobStoreError | InvalidOptions>
  readonly paused: Effect.Effect<ReadonlyArray<string>, JobStore.JobStoreError>
}

/**
 * The `JobQueue` service tag.
 *
 * @since 0.1.0
 */
export class JobQueue extends Context.Tag("nightshift/JobQueue")<JobQueue, Service>() {}

/**
 * Is this a valid queue or kind name: 1–128 characters of letters, digits,
 * `_`, `.`, `:` and `-`, not starting with punctuation other than `_`.
 *
 * @since 0.1.0
 */
export const isValidName: (name: string) => boolean = validName

const invalid = (kind: string, message: string) => Effect.fail(new InvalidOptions({ kind, message }))

const intProblem = (what: string, n: number, min: number, max: number) =>
  Number.isSafeInteger(n) && n >= min && n <= max
    ? undefined
    : `${what} must be an integer from ${min} to ${max}, got ${n}`

/**
 * The earliest run time an enqueue accepts: 1970-01-01T00:00:00.000Z (epoch
 * ms 0). Any past time means "now".
 *
 * @since 0.1.0
 */
export const minRunAt = 0

/**
 * The latest run time an enqueue accepts, whether given as `runAt` or
 * reached by `delay`: 9999-12-31T23:59:59.999Z. Every engine (memory,
 * SQLite, PostgreSQL) and every client (ISO 8601, JavaScript `Date`) holds
 * every time in `minRunAt`..`maxRunAt`; anything outside is `InvalidOptions`
 * before the store is asked.
 *
 * @since 0.1.0
 */
export const maxRunAt = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

const iso = (ms: number) => new Date(ms).toISOString()

/** Why a run time (epoch ms) is outside the accepted range, if it is. */
const runAtProblem = (what: string, ms: number): string | undefined =>
  !Number.isFinite(ms)
    ? `${what} is not a valid time`
    : ms < minRunAt || ms > maxRunAt
      ? `${what} must be from ${iso(minRunAt)} to ${iso(maxRunAt)}, got ${Number.isFinite(new Date(ms).getTime()) ? iso(ms) : `${ms} ms since 1970`}`
      : undefined

interface Resolved {
  readonly queue: string
  readonly priority: number
  readonly maxAttempts: number
  readonly runAt: number | undefined
  readonly delayMs: number | undefined
}

const noOptions: EnqueueOptions = {}

/** The options with the kind's defaults filled in, or what is wrong with them. */
const resolveOptions = (
  kind: Job.Kind<string, any, any, any>,
  given: EnqueueOptions | undefined,
  now: number
): Resolved | string => {
  const options = given ?? noOptions
  const queue = options.queue ?? kind.queue
  const priority = options.priority ?? kind.priority
  const maxAttempts = options.maxAttempts ?? kind.retry.maxAttempts
  if (!isValidName(kind.name))
    return `invalid kind name ${JSON.stringify(kind.name)}: use 1-128 of [A-Za-z0-9_.:-]`
  if (!isValidName(queue)) return `invalid queue name ${JSON.stringify(queue)}: use 1-128 of [A-Za-z0-9_.:-]`
  const bad =
    intProblem("priority", priority, -32768, 32767) ?? intProblem("maxAttempts", maxAttempts, 1, 1_000_000)
  if (bad !== undefined) return bad
  const runAt = options.runAt instanceof Date ? options.runAt.getTime() : options.runAt
  if (runAt !== undefined) {
    if (typeof runAt !== "number") return "runAt must be a Date or epoch milliseconds"
    const bad = runAtProblem("runAt", runAt)
    if (bad !== undefined) return bad
  }
  const rawDelay = options.delay
  let delayMs: number | undefined
  try {
    delayMs = rawDelay === undefined ? undefined : Duration.toMillis(Duration.decode(rawDelay))
  } catch {
    return `delay ${JSON.stringify(String(rawDelay))} is not a duration: use milliseconds or e.g. "30 seconds"`
  }
  if (
    (typeof rawDelay === "number" && !(rawDelay >= 0)) ||
    (delayMs !== undefined && !(Number.isFinite(delayMs) && delayMs >= 0))
  )
    return "delay must be a finite, non-negative duration"
  if (runAt === undefined && delayMs !== undefined && now + delayMs > maxRunAt)
    return `delay must not reach past ${iso(maxRunAt)} (at most ${Math.floor((maxRunAt - now) / 86_400_000)} days from now)`
  const key = options.dedupeKey
  if (key !== undefined && (key.length === 0 || key.length > 1000))
    return "dedupeKey must be 1 to 1000 characters"
  if (key !== undefined && !isStorableText(key))
    return "dedupeKey must be well-formed text without NUL characters"
  return { queue, priority, maxAttempts, runAt, delayMs }
}

/**
 * A filter without the names no job can have (text a database cannot
 * store), or `undefined` when nothing can match it.
 */
const storableFilter = (filter: JobStore.ListFilter): JobStore.ListFilter | undefined => {
  const keep = (names: ReadonlyArray<string> | undefined) =>
    names === undefined ? undefined : names.filter((n) => typeof n === "string" && isStorableText(n))
  const kinds = keep(filter.kinds)
  const queues = keep(filter.queues)
  // Every name given was one no job can have: nothing matches.
  if (
    (kinds?.length === 0 && filter.kinds!.length > 0) ||
    (queues?.length === 0 && filter.queues!.length > 0)
  )
    return undefined
  if (filter.cursor != null && (typeof filter.cursor !== "string" || !isStorableText(filter.cursor)))
    return undefined
  return { ...filter, kinds, queues }
}

const tooDeep = (kind: Job.Any) =>
  new InvalidPayload({
    kind: kind.name,
    message: `payload for ${kind.name} is nested too deeply to encode`
  })

const mismatch = (kind: Job.Any, e: ParseResult.ParseError) =>
  new InvalidPayload({
    kind: kind.name,
    message: `payload for ${kind.name} does not match its schema:\n${formatParseError(e)}`
  })

type SyncEncoder = (a: unknown) => Either.Either<unknown, ParseResult.ParseIssue>

/** Each payload schema's synchronous encoder, built once (building one costs as much as running it). */
const encoders = new WeakMap<Schema.Schema.All, SyncEncoder>()

const encoderOf = (schema: Schema.Schema.All): SyncEncoder => {
  let encode = encoders.get(schema)
  if (encode === undefined) {
    // The issue on the left is not read: a failure is encoded again below, with its full error.
    encode = ParseResult.encodeUnknownEither(schema as Schema.Schema<unknown, unknown, never>)
    encoders.set(schema, encode)
  }
  return encode
}

/** What a plain encoder returns when the payload is not the plain case: the schema's own encoder decides. */
const notPlain: unique symbol = Symbol("notPlain")

type PlainEncoder = (payload: unknown) => Record<string, unknown> | typeof notPlain

/** The `typeof` a field of a plain struct must have, or the literals it must be one of. */
type PlainField = "string" | "number" | "boolean" | { readonly literals: ReadonlyArray<AST.LiteralValue> }

const hasParseOptions = (ast: AST.AST) => ast.annotations[AST.ParseOptionsAnnotationId] !== undefined

/** A literal stored as it is: not a bigint, storable text, a finite number. */
const plainLiteral = (ast: AST.AST): ast is AST.Literal =>
  ast._tag === "Literal" &&
  !hasParseOptions(ast) &&
  typeof ast.literal !== "bigint" &&
  (typeof ast.literal !== "string" || isStorableText(ast.literal)) &&
  (typeof ast.literal !== "number" || Number.isFinite(ast.literal))

const plainField = (ast: AST.AST): PlainField | undefined => {
  if (hasParseOptions(ast)) return undefined
  switch (ast._tag) {
    case "StringKeyword":
      return "string"
    case "NumberKeyword":
      return "number"
    case "BooleanKeyword":
      return "boolean"
    case "Literal":
      return plainLiteral(ast) ? { literals: [ast.literal] } : undefined
    case "Union":
      // `Schema.Literal("a", "b")`: a union of literals, each encoded as itself.
      return ast.types.every(plainLiteral)
        ? { literals: ast.types.map((t) => (t as AST.Literal).literal) }
        : undefined
    default:
      return undefined
  }
}

/**
 * The encoder of a plain struct schema: a `Schema.Struct` of required
 * string, number, boolean or literal (or union of literals) fields, with no transformation,
 * refinement or parse options anywhere. Its encoding copies those fields in
 * order into a new object, dropping any other key, which is what this does
 * in plain JS, checking on the way what `jsonSafe` checks (storable text,
 * finite numbers). Any payload it does not pass (`notPlain`) goes through
 * the schema's encoder, which then gives the answer and the error.
 * `undefined` when the schema is not plain.
 */
const makePlainEncoder = (ast: AST.AST): PlainEncoder | undefined => {
  if (ast._tag !== "TypeLiteral" || ast.indexSignatures.length > 0 || hasParseOptions(ast)) return undefined
  const names: Array<string> = []
  const fields: Array<PlainField> = []
  for (const ps of ast.propertySignatures) {
    if (typeof ps.name !== "string" || ps.isOptional || !isStorableText(ps.name)) return undefined
    const field = plainField(ps.type)
    if (field === undefined) return undefined
    names.push(ps.name)
    fields.push(field)
  }
  return (payload) => {
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return notPlain
    const out: Record<string, unknown> = {}
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const v = (payload as Record<string, unknown>)[name]
      const field = fields[i]!
      if (field === "string") {
        if (typeof v !== "string" || !isStorableText(v)) return notPlain
      } else if (field === "number") {
        if (typeof v !== "number" || !Number.isFinite(v)) return notPlain
      } else if (field === "boolean") {
        if (typeof v !== "boolean") return notPlain
      } else if (!field.literals.includes(v as AST.LiteralValue)) return notPlain
      out[name] = v
    }
    return out
  }
}

/** Each payload schema's plain encoder, or `null` for a schema that is not plain. */
const plainEncoders = new WeakMap<Schema.Schema.All, PlainEncoder | null>()

const plainEncoderOf = (schema: Schema.Schema.All): PlainEncoder | null => {
  let encode = plainEncoders.get(schema)
  if (encode === undefined) {
    encode = makePlainEncoder(schema.ast) ?? null
    plainEncoders.set(schema, encode)
  }
  return encode
}

/**
 * Encode a payload with its kind's schema: synchronously when that succeeds
 * (the common case, and much cheaper), otherwise through the effectful
 * encoder, which gives the authoritative answer and also serves schemas with
 * asynchronous or service-dependent transformations. The result is the
 * encoded value, the error, or (a schema that needs effects) the effect that
 * encodes it.
 */
const encodePayload = <A, I, R>(
  kind: Job.Kind<string, A, I, R>,
  payload: A
): I | InvalidPayload | Effect.Effect<I, InvalidPayload, R> => {
  let sync: Either.Either<unknown, ParseResult.ParseIssue>
  try {
    sync = encoderOf(kind.payload)(payload)
  } catch (e) {
    if (e instanceof RangeError) return tooDeep(kind)
    throw e
  }
  if (sync._tag === "Right") return sync.right as I
  // Left: either a mismatch or a schema that needs effects (encodeEither cannot run those).
  return Schema.encode(kind.payload)(payload).pipe(
    Effect.catchSomeDefect((d) =>
      d instanceof RangeError ? Option.some(Effect.fail(tooDeep(kind))) : Option.none()
    ),
    Effect.mapError((e) => (e._tag === "InvalidPayload" ? e : mismatch(kind, e)))
  )
}

/** The trace context an enqueue stores on its jobs. */
interface Trace {
  readonly traceId: string | undefined
  readonly spanId: string | undefined
}

const noTrace: Trace = { traceId: undefined, spanId: undefined }

/** The store's input for an encoded payload, or why it cannot be stored. */
const inputOf = (
  kind: Job.Any,
  encoded: unknown,
  resolved: Resolved,
  dedupeKey: string | undefined,
  partition: string | undefined,
  trace: Trace
): JobStore.EnqueueInput | InvalidPayload => {
  if (!jsonSafe(encoded, 0)) {
    return new InvalidPayload({
      kind: kind.name,
      message: `payload for ${kind.name} cannot be stored as JSON: ${jsonProblem(encoded, "payload", 0)}`
    })
  }
  return inputFrom(kind, encoded, resolved, dedupeKey, partition, trace)
}

/** The store's input for a payload already encoded and checked; one object shape for every input. */
const inputFrom = (
  kind: Job.Any,
  encoded: unknown,
  resolved: Resolved,
  dedupeKey: string | undefined,
  partition: string | undefined,
  trace: Trace
): JobStore.EnqueueInput => {
  return {
    kind: kind.name,
    queue: resolved.queue,
    priority: resolved.priority,
    maxAttempts: resolved.maxAttempts,
    runAt: resolved.runAt,
    delayMs: resolved.delayMs,
    payload: encoded,
    dedupeKey,
    partition,
    traceId: trace.traceId,
    spanId: trace.spanId
  }
}

/** The job's partition key: the option, else the kind's derivation, checked; or why it cannot be one. */
const partitionOf = <A, I, R>(
  kind: Job.Kind<string, A, I, R>,
  payload: A,
  given: string | undefined
): string | undefined | InvalidOptions => {
  let partition: unknown = given
  let source: string | undefined
  if (partition === undefined) {
    if (kind.partition === undefined) return undefined
    source = `the partition that kind ${kind.name} derives from the payload`
    try {
      partition = kind.partition(payload)
    } catch (e) {
      return new InvalidOptions({
        kind: kind.name,
        message: `kind ${kind.name} could not derive a partition from the payload: ${e instanceof Error ? e.message : String(e)}`
      })
    }
  }
  if (partition === undefined) return undefined
  const problem = FlowControl.partitionProblem(partition)
  return problem === undefined
    ? (partition as string)
    : new InvalidOptions({
        kind: kind.name,
        message: source === undefined ? problem : `${source}: ${problem}`
      })
}

/**
 * The store's input for one job at `now`, synchronously when the payload
 * schema allows (no effect per job in a bulk enqueue): the input, the
 * error, or the effect that makes it. `resolved` is the job's options with
 * the kind's defaults, or what is wrong with them (`resolveOptions`).
 */
const inputAt = <A, I, R>(
  kind: Job.Kind<string, A, I, R>,
  payload: A,
  options: EnqueueOptions | undefined,
  resolved: Resolved | string,
  trace: Trace
):
  | JobStore.EnqueueInput
  | InvalidPayload
  | InvalidOptions
  | Effect.Effect<JobStore.EnqueueInput, InvalidPayload, R> => {
  if (typeof resolved === "string") return new InvalidOptions({ kind: kind.name, message: resolved })
  const partition = partitionOf(kind, payload, options?.partition)
  if (partition instanceof InvalidOptions) return partition
  const dedupeKey = options?.dedupeKey
  const plain = plainEncoderOf(kind.payload)
  if (plain !== null) {
    const out = plain(payload)
    // Already checked for JSON: build the input directly.
    if (out !== notPlain) return inputFrom(kind, out, resolved, dedupeKey, partition, trace)
  }
  const encoded = encodePayload(kind, payload)
  if (encoded instanceof InvalidPayload) return encoded
  if (Effect.isEffect(encoded)) {
    return Effect.flatMap(encoded, (value) => {
      const input = inputOf(kind, value, resolved, dedupeKey, partition, trace)
      return input instanceof InvalidPayload ? Effect.fail(input) : Effect.succeed(input)
    })
  }
  return inputOf(kind, encoded, resolved, dedupeKey, partition, trace)
}

/**
 * The store inputs of a bulk enqueue's items, read in a plain loop: a batch
 * is usually one kind without options, so its defaults are resolved once
 * per run of a kind. `next` reads on until an item is invalid (the error)
 * or needs its schema's effects (the effect that makes its input, which the
 * caller runs and pushes before reading on), or the items end (`undefined`).
 */
class InputBatch {
  readonly inputs: Array<JobStore.EnqueueInput> = []
  private kind: Job.Any | undefined = undefined
  private defaults: Resolved | string = ""
  private plain: PlainEncoder | null = null
  constructor(
    private readonly items: Iterator<Item>,
    private readonly now: number,
    private readonly trace: Trace
  ) {}

  next():
    | InvalidPayload
    | InvalidOptions
    | Effect.Effect<JobStore.EnqueueInput, InvalidPayload, any>
    | undefined {
    const { inputs, items, now, trace } = this
    for (let r = items.next(); r.done !== true; r = items.next()) {
      const it = r.value
      if (it.kind !== this.kind) {
        this.kind = it.kind
        this.defaults = resolveOptions(it.kind, undefined, now)
        this.plain = plainEncoderOf(it.kind.payload)
      }
      const options = it.options
      const resolved = options === undefined ? this.defaults : resolveOptions(it.kind, options, now)
      // The common case, a plain payload with valid options, without inputAt's checks of what it returned.
      const plain = this.plain
      if (plain !== null && typeof resolved !== "string") {
        const partition = partitionOf(it.kind, it.payload, options?.partition)
        if (!(partition instanceof InvalidOptions)) {
          const out = plain(it.payload)
          if (out !== notPlain) {
            inputs.push(inputFrom(it.kind, out, resolved, options?.dedupeKey, partition, trace))
            continue
          }
        }
      }
      const input = inputAt(it.kind, it.payload, options, resolved, trace)
      if (input instanceof InvalidPayload || input instanceof InvalidOptions || Effect.isEffect(input))
        return input
      inputs.push(input)
    }
    return undefined
  }
}

const traceOf = (trace: Option.Option<{ traceId: string; spanId: string }>): Trace =>
  trace._tag === "Some" ? { traceId: trace.value.traceId, spanId: trace.value.spanId } : noTrace

/**
 * Validate options and encode the payload into what the store inserts.
 *
 * @internal
 */
export const toInput = <A, I, R>(
  kind: Job.Kind<string, A, I, R>,
  payload: A,
  options: EnqueueOptions,
  trace: Option.Option<{ traceId: string; spanId: string }>
): Effect.Effect<JobStore.EnqueueInput, InvalidPayload | InvalidOptions, R> =>
  Effect.clockWith((clock) => {
    const input = inputAt(
      kind,
      payload,
      options,
      resolveOptions(kind, options, clock.unsafeCurrentTimeMillis()),
      traceOf(trace)
    )
    return input instanceof InvalidPayload || input instanceof InvalidOptions
      ? Effect.fail(input)
      : Effect.isEffect(input)
        ? input
        : Effect.succeed(input)
  })

/**
 * Whether an encoded payload survives JSON and the database unchanged: the
 * same walk as `jsonProblem` without building paths, which only a refusal
 * needs.
 */
const jsonSafe = (value: unknown, depth: number): boolean => {
  if (depth > 64) return false
  switch (typeof value) {
    case "string":
      return isStorableText(value)
    case "number":
      return Number.isFinite(value)
    case "boolean":
      return true
    case "object": {
      if (value === null || value instanceof Date) return true
      const isArray = Array.isArray(value)
      const keys = Object.keys(value)
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        const v = (value as Record<string, unknown>)[key]
        if (!isArray && v === undefined) continue
        if (!isStorableText(key) || !jsonSafe(v, depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/** Why an encoded payload would not survive JSON and the database unchanged, if it would not. */
const jsonProblem = (value: unknown, path: string, depth: number): string | undefined => {
  if (depth > 64) return `${path} is nested more than 64 levels deep`
  switch (typeof value) {
    case "string":
      return isStorableText(value) ? undefined : `${path} holds a NUL character or a lone surrogate`
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot hold`
    case "boolean":
      return undefined
    case "object": {
      if (value === null || value instanceof Date) return undefined
      const isArray = Array.isArray(value)
      for (const [key, v] of Object.entries(value)) {
        if (!isArray && v === undefined) continue
        if (!isStorableText(key)) return `${path} has a key with a NUL character or a lone surrogate`
        const problem = jsonProblem(v, `${path}.${key}`, depth + 1)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    default:
      return `${path} is a ${typeof value}, which JSON cannot hold`
  }
}

/**
 * The trace context of the current span, if any. Read from the fiber:
 * `Effect.currentSpan` fails without a span, and building that failure's
 * error (with its stack) cost a third of an enqueue.
 */
const currentTrace = Effect.withFiberRuntime<Option.Option<{ traceId: string; spanId: string }>>((fiber) => {
  const span = fiber.currentSpan
  return Effect.succeed(
    span?._tag === "Span" ? Option.some({ traceId: span.traceId, spanId: span.spanId }) : Option.none()
  )
})

/**
 * Build the producer service over a store. The `Events` bus in context when
 * it is built (if any) receives its `enqueued` and `cancelled` events,
 * wherever the service is used from later.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<Service, never, JobStore.JobStore> = Effect.gen(function* () {
  const store = yield* JobStore.JobStore
  const events = Option.getOrUndefined(yield* Effect.serviceOption(Events.Events))
  const clock = yield* Effect.clock

  /** One `enqueued` event per input, in input order. */
  const enqueuedEvents = (
    inputs: ReadonlyArray<JobStore.EnqueueInput>,
    results: ReadonlyArray<JobStore.EnqueueResult>
  ): Array<Events.JobEvent> => {
    const now = clock.unsafeCurrentTimeMillis()
    const published: Array<Events.JobEvent> = new Array(inputs.length)
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!
      const result = results[i]!
      published[i] = {
        _tag: "enqueued",
        id: result.id,
        kind: input.kind,
        queue: input.queue,
        at: now,
        deduped: result.deduped
      }
    }
    return published
  }

  // Under `enqueueing`, a runner woken by the commit cannot get a job's `started` out before its `enqueued`.
  const insert: (
    inputs: ReadonlyArray<JobStore.EnqueueInput>
  ) => Effect.Effect<ReadonlyArray<JobStore.EnqueueResult>, JobStore.JobStoreError> =
    events === undefined
      ? (inputs) =>
          Effect.map(store.enqueue(inputs), (results) => {
            Metrics.unsafeEnqueuedBatch(inputs, results)
            return results
          })
      : (inputs) =>
          events.enqueueing(
            Effect.flatMap(store.enqueue(inputs), (results) => {
              Metrics.unsafeEnqueuedBatch(inputs, results)
              return Effect.as(events.publishAll(enqueuedEvents(inputs, results)), results)
            })
          )

  const first = (results: ReadonlyArray<JobStore.EnqueueResult>) => results[0]!
  const insertOne = (input: JobStore.EnqueueInput) => Effect.map(insert([input]), first)

  /**
   * One enqueue from its fiber: the clock, the span and the tracer are read
   * from the fiber itself, so that without a tracer the call is this step,
   * the store's and the events'.
   */
  const enqueueFrom = <A, I, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    kind: Job.Kind<string, A, I, R>,
    payload: A,
    options: EnqueueOptions | undefined
  ): Effect.Effect<Enqueued, InvalidPayload | InvalidOptions | JobStore.JobStoreError, R> => {
    const span = fiber.currentSpan
    const trace = span?._tag === "Span" ? { traceId: span.traceId, spanId: span.spanId } : noTrace
    const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
    const input = inputAt(kind, payload, options, resolveOptions(kind, options, now), trace)
    return input instanceof InvalidPayload || input instanceof InvalidOptions
      ? Effect.fail(input)
      : Effect.isEffect(input)
        ? Effect.flatMap(input, insertOne)
        : insertOne(input)
  }

  const enqueue: Service["enqueue"] = (kind, payload, options) =>
    Effect.withFiberRuntime((fiber) =>
      fiber.currentTracer === nativeTracer
        ? enqueueFrom(fiber, kind, payload, options)
        : // The job carries the enqueue span's context, as a child of the caller's.
          Effect.withSpan(
            Effect.withFiberRuntime((inner) => enqueueFrom(inner, kind, payload, options)),
            "nightshift.enqueue",
            { attributes: { "job.kind": kind.name } }
          )
    )

  const cancel = (id: string) =>
    Effect.gen(function* () {
      // Kind and queue never change, so reading them first is safe; they name the event.
      const job = events === undefined ? undefined : yield* store.get(id)
      const result = yield* store.cancel(id)
      // A running job's `cancelled` comes from its runner when the attempt ends.
      if (result._tag === "cancelled" && job !== undefined && events !== undefined) {
        yield* events.publish({
          _tag: "cancelled",
          id: job.id,
          kind: job.kind,
          queue: job.queue,
          at: clock.unsafeCurrentTimeMillis(),
          attempt: job.attempt
        })
      }
      return result
    }).pipe(withSpanIfTraced("nightshift.cancel", { attributes: { "job.id": id } }))

  const cancelMany = (ids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const result = yield* store.cancelMany(ids)
      if (events === undefined || result.changed.length === 0) return result
      const at = clock.unsafeCurrentTimeMillis()
      // An engine that does not say what it cancelled: read the jobs back.
      const jobs: ReadonlyArray<JobStore.CancelledJob | undefined> =
        result.cancelled ?? (yield* Effect.forEach(result.changed, store.get, { concurrency: 8 }))
      yield* events.publishAll(
        jobs.flatMap(
          (job): Array<Events.JobEvent> =>
            job === undefined
              ? []
              : [
                  {
                    _tag: "cancelled",
                    id: job.id,
                    kind: job.kind,
                    queue: job.queue,
                    at,
                    attempt: job.attempt
                  }
                ]
        )
      )
      return result
    }).pipe(withSpanIfTraced("nightshift.cancelMany", { attributes: { "job.count": ids.length } }))

  const enqueueMany: Service["enqueueMany"] = (items) =>
    Effect.gen(function* () {
      const trace = traceOf(yield* currentTrace)
      const batch = new InputBatch(items[Symbol.iterator](), clock.unsafeCurrentTimeMillis(), trace)
      // The items are read in a plain loop (no generator step per item); one whose schema needs effects stops it.
      for (let step = batch.next(); step !== undefined; step = batch.next()) {
        if (step instanceof InvalidPayload || step instanceof InvalidOptions) return yield* Effect.fail(step)
        batch.inputs.push(yield* step)
      }
      if (batch.inputs.length === 0) return []
      return yield* insert(batch.inputs)
    }).pipe(withSpanIfTraced("nightshift.enqueueMany"))

  const checkQueue = (queue: string) =>
    isValidName(queue) ? Effect.void : invalid("", `invalid queue name ${JSON.stringify(queue)}`)

  return {
    enqueue,
    enqueueMany,
    get: (id) =>
      Effect.flatMap(store.get(id), (job) =>
        job === undefined
          ? Effect.succeedNone
          : Effect.map(Flow.withWaiting(store, [job]), ([withReason]) => Option.some(withReason!))
      ),
    list: (filter = {}) => {
      const storable = storableFilter(filter)
      return storable === undefined
        ? Effect.succeed({ jobs: [], nextCursor: null })
        : Effect.flatMap(store.list(storable), (page) =>
            Effect.map(Flow.withWaiting(store, page.jobs), (jobs) => ({ jobs, nextCursor: page.nextCursor }))
          )
    },
    counts: store.counts,
    cancel,
    retry: store.retry,
    retryMany: store.retryMany,
    cancelMany,
    deleteMany: store.deleteMany,
    runNow: store.runNow,
    pause: (queue) => Effect.zipRight(checkQueue(queue), store.pause(queue)),
    resume: (queue) => Effect.zipRight(checkQueue(queue), store.resume(queue)),
    paused: store.paused
  }
})

/**
 * The producer layer over whatever `JobStore` is provided.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<JobQueue, never, JobStore.JobStore> = Layer.effect(JobQueue, make)

/**
 * Enqueue one job.
 *
 * @example
 * ```ts
 * yield* JobQueue.enqueue(SendEmail, { to: "a@b.c" }, { dedupeKey: "welcome:a@b.c" })
 * ```
 *
 * @since 0.1.0
 */
export const enqueue = <Name extends string, A, I, R>(
  kind: Job.Kind<Name, A, I, R>,
  payload: A,
  options?: EnqueueOptions
): Effect.Effect<Enqueued, InvalidPayload | InvalidOptions | JobStore.JobStoreError, JobQueue | R> =>
  Effect.flatMap(JobQueue, (q) => q.enqueue(kind, payload, options))

/**
 * Enqueue many jobs atomically (all or nothing); results in input order.
 * Items may be of different kinds (built with `item`, or written as
 * `{ kind, payload, options }`); each payload must match its own kind, and
 * the effect needs what any of their payload schemas needs.
 *
 * @example
 * ```ts
 * yield* JobQueue.enqueueMany([
 *   JobQueue.item(SendEmail, { to: "a@b.c" }),
 *   { kind: Charge, payload: { amount: 3 }, options: { priority: 1 } }
 * ])
 * ```
 *
 * @since 0.1.0
 */
export const enqueueMany = <I extends Item>(
  items: Iterable<I> & Iterable<Item.Checked<I>>
): Effect.Effect<
  ReadonlyArray<Enqueued>,
  InvalidPayload | InvalidOptions | JobStore.JobStoreError,
  JobQueue | Item.Context<I>
> => Effect.flatMap(JobQueue, (q) => q.enqueueMany<I>(items as Iterable<I> & Iterable<Item.Checked<I>>))
