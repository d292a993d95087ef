/**
 * Job kinds and their handlers.
 *
 * A kind is declared once and shared by producers (`JobQueue.enqueue`) and
 * consumers (`JobRunner`): its name, payload `Schema`, retry policy, timeout,
 * default queue and priority.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as FlowControl from "./FlowControl.js"
import { isValidName } from "./internal/input.js"

/**
 * Retry policy of a kind: at most `maxAttempts` attempts in all, with the
 * delay before attempt n+1 taken from the n-th step of `backoff`. When the
 * backoff schedule ends, the job is discarded even if attempts remain.
 *
 * @since 0.1.0
 */
export interface RetryPolicy {
  readonly maxAttempts: number
  readonly backoff: Schedule.Schedule<unknown, unknown>
}

/**
 * The default retry policy: 20 attempts, exponential backoff from 1 second
 * (factor 2), jittered, capped at 1 hour.
 *
 * @since 0.1.0
 */
export const defaultRetry: RetryPolicy = {
  maxAttempts: 20,
  backoff: Schedule.exponential("1 second").pipe(
    Schedule.jittered,
    Schedule.modifyDelay((d) => Duration.min(d, Duration.hours(1)))
  )
}

/**
 * A job kind.
 *
 * @since 0.1.0
 */
export interface Kind<out Name extends string, in out A, in out I = A, out R = never> {
  readonly _tag: "JobKind"
  readonly name: Name
  readonly payload: Schema.Schema<A, I, R>
  readonly retry: RetryPolicy
  /** Per-attempt timeout; none when undefined. */
  readonly timeout: Duration.Duration | undefined
  readonly queue: string
  readonly priority: number
  /** Derives a job's partition key from its payload when the enqueue gives none. @since 0.2.0 */
  readonly partition: ((payload: A) => string) | undefined
  /** Flow control limits of this kind, across every node. @since 0.2.0 */
  readonly limits: FlowControl.Limits | undefined
}

/** Any job kind. @since 0.1.0 */
export type Any = Kind<string, any, any, any>

/** The decoded payload type of a kind. @since 0.1.0 */
export type Payload<K> = K extends Kind<any, infer A, any, any> ? A : never

/** @since 0.1.0 */
export interface KindOptions<A, I, R> {
  readonly payload: Schema.Schema<A, I, R>
  /** Partial retry policy; missing fields come from `defaultRetry`. */
  readonly retry?: Partial<RetryPolicy> | undefined
  readonly timeout?: Duration.DurationInput | undefined
  /** Default queue. Default `"default"`. */
  readonly queue?: string | undefined
  /** Default priority (lower runs first). Default 0. */
  readonly priority?: number | undefined
  /**
   * The partition key of a job (a tenant or account id), derived from its
   * payload when the enqueue gives none: claims serve keys in turn, and
   * `concurrency.perPartition` and `rateLimit` with `by: "partition"` count
   * per key. Must return 1 to 1,000 characters of text.
   */
  readonly partition?: ((payload: A) => string) | undefined
  /** Jobs of this kind running at once across every node: in all (`global`) and per partition key. */
  readonly concurrency?: FlowControl.Concurrency | undefined
  /** Starts of this kind per window, across every node: in all or per partition key. */
  readonly rateLimit?: FlowControl.RateLimit | undefined
}

/**
 * Declare a job kind. A name, queue, priority, attempt limit or timeout no
 * job can have throws `InvalidJobKind` here, at definition time.
 *
 * @example
 * ```ts
 * const SendEmail = Job.make("send_email", {
 *   payload: Schema.Struct({ to: Schema.String }),
 *   retry: { maxAttempts: 5, backoff: Schedule.exponential("2 seconds") }
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = <const Name extends string, A, I, R = never>(
  name: Name,
  options: KindOptions<A, I, R>
): Kind<Name, A, I, R> => {
  const kind: Kind<Name, A, I, R> = {
    _tag: "JobKind",
    name,
    payload: options.payload,
    retry: { ...defaultRetry, ...options.retry },
    timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout),
    queue: options.queue ?? "default",
    priority: options.priority ?? 0,
    partition: options.partition,
    limits:
      options.concurrency === undefined && options.rateLimit === undefined
        ? undefined
        : { concurrency: options.concurrency, rateLimit: options.rateLimit }
  }
  const problem = kindProblem(kind)
  if (problem !== undefined) throw new InvalidJobKind({ kind: name, message: `Job.make: ${problem}` })
  if (kind.limits !== undefined) {
    const bad = FlowControl.limitsProblem(kind.limits)
    if (bad !== undefined)
      throw new FlowControl.InvalidLimits({ scope: `kind ${name}`, message: `Job.make("${name}"): ${bad}` })
  }
  return kind
}

const wholeNumber = (n: number, min: number, max: number) => Number.isSafeInteger(n) && n >= min && n <= max

/** What is wrong with a kind's definition, if anything. */
const kindProblem = (kind: Kind<string, any, any, any>): string | undefined => {
  const name = "use 1-128 of [A-Za-z0-9_.:-], starting with a letter, a digit or _"
  if (!isValidName(kind.name)) return `invalid kind name ${JSON.stringify(kind.name)}: ${name}`
  if (!isValidName(kind.queue)) return `invalid queue name ${JSON.stringify(kind.queue)}: ${name}`
  if (!wholeNumber(kind.priority, -32768, 32767))
    return `priority must be an integer from -32768 to 32767, got ${kind.priority}`
  if (!wholeNumber(kind.retry.maxAttempts, 1, 1_000_000))
    return `retry.maxAttempts must be an integer from 1 to 1000000, got ${kind.retry.maxAttempts}`
  if (kind.timeout !== undefined && !(Duration.toMillis(kind.timeout) > 0))
    return `timeout must be a positive duration, got ${Duration.format(kind.timeout)}`
  if (kind.partition !== undefined && typeof kind.partition !== "function")
    return "partition must be a function from the payload to a key"
  return undefined
}

/**
 * A job kind defined with a name, queue, priority, attempt limit or timeout
 * no job can have; thrown by `make` (a mistake in code, wrong on every run).
 *
 * @since 0.1.0
 */
export class InvalidJobKind extends Schema.TaggedError<InvalidJobKind>()("InvalidJobKind", {
  kind: Schema.String,
  message: Schema.String
}) {}

/**
 * Two handlers for one kind in one `handlers` call; thrown by `handlers` (a
 * mistake in code, wrong on every run).
 *
 * @since 0.1.0
 */
export class DuplicateHandler extends Schema.TaggedError<DuplicateHandler>()("DuplicateHandler", {
  kind: Schema.String,
  message: Schema.String
}) {}

/**
 * Fail a handler with this to discard the job now: no retry can help.
 *
 * @since 0.1.0
 */
export class Discard extends Data.TaggedError("JobDiscard")<{ readonly reason: string }> {
  override get message(): string {
    return `job discarded: ${this.reason}`
  }
}

/**
 * Fail a handler with this to run the job again after `duration` without
 * counting the attempt.
 *
 * @since 0.1.0
 */
export class Snooze extends Data.TaggedError("JobSnooze")<{ readonly duration: Duration.DurationInput }> {}

/**
 * Fail a handler with this to retry, optionally after an explicit delay
 * instead of the kind's backoff. Any other typed failure retries with the
 * backoff too.
 *
 * @since 0.1.0
 */
export class Retry extends Data.TaggedError("JobRetry")<{
  readonly reason: string
  readonly delay?: Duration.DurationInput | undefined
}> {}

/**
 * What a handler sees besides its payload.
 *
 * @since 0.1.0
 */
export interface Context {
  readonly id: string
  readonly kind: string
  readonly queue: string
  /** 1 for the first attempt. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly priority: number
  /** The job's partition key, if it has one. */
  readonly partition: string | null
  readonly createdAt: number
  readonly errors: ReadonlyArray<{
    readonly attempt: number
    readonly kind: string
    readonly message: string
  }>
}

/**
 * A handler for one kind.
 *
 * @since 0.1.0
 */
export interface Handler<out R = never> {
  readonly _tag: "JobHandler"
  readonly kind: Any
  readonly run: (payload: any, context: Context) => Effect.Effect<unknown, unknown, R>
}

/**
 * @since 0.1.0
 */
export declare namespace Handler {
  /** The services a handler (or a union of handlers) needs. */
  export type Context<H> = H extends Handler<infer R> ? R : never
}

/**
 * Attach a handler to a kind. The handler gets the decoded payload and the
 * job context. Its typed failure decides what happens next: `Discard`,
 * `Snooze`, `Retry`, or any other error (retried with the kind's backoff).
 *
 * @since 0.1.0
 */
export const handle = <Name extends string, A, I, RS, E, R>(
  kind: Kind<Name, A, I, RS>,
  run: (payload: A, context: Context) => Effect.Effect<unknown, E, R>
): Handler<R | RS> => ({ _tag: "JobHandler", kind, run })

/**
 * A set of handlers, keyed by kind name.
 *
 * @since 0.1.0
 */
export interface Handlers<out R = never> {
  readonly _tag: "JobHandlers"
  readonly byKind: ReadonlyMap<string, Handler<R>>
}

/**
 * @since 0.1.0
 */
export declare namespace Handlers {
  /** The services a set of handlers needs. */
  export type Context<H> = H extends Handlers<infer R> ? R : never
}

/**
 * Collect handlers. The set needs what any of its handlers needs (the union
 * of their services; `handlers<R>(...)` states it instead). A kind handled
 * twice is a programming error and throws at definition time.
 *
 * @since 0.1.0
 */
export const handlers: {
  <Hs extends ReadonlyArray<Handler<any>>>(...hs: Hs): Handlers<Handler.Context<Hs[number]>>
  <R>(...hs: ReadonlyArray<Handler<R>>): Handlers<R>
} = (...hs: ReadonlyArray<Handler<unknown>>): Handlers<unknown> => {
  const byKind = new Map<string, Handler<unknown>>()
  for (const h of hs) {
    if (byKind.has(h.kind.name)) {
      throw new DuplicateHandler({
        kind: h.kind.name,
        message: `Job.handlers: kind "${h.kind.name}" is handled twice; give each kind one handler`
      })
    }
    byKind.set(h.kind.name, h)
  }
  return { _tag: "JobHandlers", byKind }
}
