import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import * as Job from "../../Job.js"
import type * as JobStore from "../../JobStore.js"
import { nativeTracer } from "../tracing.js"
import { delayFor } from "./backoff.js"

/** Why a running attempt was interrupted, when the runner did it. */
export type InterruptReason = "cancel" | "shutdown" | "lost"

/** What the runner does with an attempt's end. `undefined` means: settle nothing (the lease is lost). */
export type Settle = JobStore.Outcome | undefined

const maxMessage = 16_000

const clip = (s: string) => (s.length > maxMessage ? `${s.slice(0, maxMessage)}\n… (truncated)` : s)

/**
 * Text for an error that may not be printable: a formatter that throws (a
 * stack overflow on a deeply nested value, a throwing `toString`) gives a
 * short note instead, so the attempt still ends and counts.
 */
const printable = (what: string, print: () => string): string => {
  try {
    return clip(print())
  } catch (error) {
    const reason = error instanceof Error ? error.message : "unknown error"
    return `${what} (its details could not be printed: ${reason})`
  }
}

const causeMessage = (cause: Cause.Cause<unknown>) =>
  printable("the handler failed", () => Cause.pretty(cause, { renderErrorCause: true }))

/** The discard of a job whose failed attempt was its last. */
const noAttemptsLeft = (job: JobStore.JobRecord, error: JobStore.AttemptErrorInput): JobStore.Outcome => ({
  _tag: "discard",
  error: {
    ...error,
    message: `${error.message}\n(attempt ${job.attempt} of ${job.maxAttempts}: no attempts left)`
  }
})

/**
 * The outcome of an attempt whose fiber died outside the handler (in the
 * runner's own handling of its end): a failed attempt that counts, retried
 * after a second while attempts remain.
 */
export const defectOutcome = (job: JobStore.JobRecord, cause: Cause.Cause<unknown>): Settle => {
  const error = {
    kind: "defect",
    message: printable("the runner failed while ending the attempt", () => Cause.pretty(cause))
  }
  return job.attempt >= job.maxAttempts
    ? noAttemptsLeft(job, error)
    : { _tag: "retry", delayMs: 1_000, error }
}

/** The context a handler sees. */
export const jobContext = (job: JobStore.JobRecord): Job.Context => ({
  id: job.id,
  kind: job.kind,
  queue: job.queue,
  attempt: job.attempt,
  maxAttempts: job.maxAttempts,
  priority: job.priority,
  partition: job.partition,
  createdAt: job.createdAt,
  errors: job.errors
})

/** Retry after `error`, unless attempts or the backoff schedule are used up. */
const retryOrDiscard = (
  kind: Job.Any,
  job: JobStore.JobRecord,
  error: JobStore.AttemptErrorInput,
  explicitDelay?: Duration.DurationInput
): Effect.Effect<JobStore.Outcome> => {
  if (job.attempt >= job.maxAttempts) return Effect.succeed(noAttemptsLeft(job, error))
  if (explicitDelay !== undefined) {
    return Effect.succeed({
      _tag: "retry",
      delayMs: Duration.toMillis(Duration.decode(explicitDelay)),
      error
    })
  }
  return Effect.map(delayFor(kind.retry.backoff, job.attempt), (delay) =>
    Option.match(delay, {
      onNone: (): JobStore.Outcome => ({
        _tag: "discard",
        error: { ...error, message: `${error.message}\n(the backoff schedule ended: no more retries)` }
      }),
      onSome: (delayMs): JobStore.Outcome => ({ _tag: "retry", delayMs, error })
    })
  )
}

/** Map a handler's failure cause to what happens next. */
const fromCause = (
  kind: Job.Any,
  job: JobStore.JobRecord,
  cause: Cause.Cause<unknown>,
  reason: InterruptReason | undefined
): Effect.Effect<Settle> => {
  if (reason !== undefined && Cause.isInterrupted(cause)) {
    switch (reason) {
      case "cancel":
        return Effect.succeed({
          _tag: "cancelled",
          error: { kind: "cancelled", message: "cancelled while running" }
        })
      case "shutdown":
        return Effect.succeed({ _tag: "release" })
      case "lost":
        return Effect.succeed(undefined)
    }
  }
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (e instanceof Job.Discard) {
      return Effect.succeed({ _tag: "discard", error: { kind: "discard", message: clip(e.reason) } })
    }
    if (e instanceof Job.Snooze) {
      return Effect.succeed({ _tag: "snooze", delayMs: Duration.toMillis(Duration.decode(e.duration)) })
    }
    if (e instanceof Job.Retry) {
      return retryOrDiscard(kind, job, { kind: "failure", message: clip(e.reason) }, e.delay)
    }
    if (e instanceof Cause.TimeoutException) {
      const timeout = kind.timeout === undefined ? "" : ` after ${Duration.format(kind.timeout)}`
      return retryOrDiscard(kind, job, { kind: "timeout", message: `attempt timed out${timeout}` })
    }
    return retryOrDiscard(kind, job, { kind: "failure", message: causeMessage(cause) })
  }
  if (Cause.isInterruptedOnly(cause)) {
    return retryOrDiscard(kind, job, { kind: "interrupted", message: "the handler was interrupted" })
  }
  return retryOrDiscard(kind, job, { kind: "defect", message: causeMessage(cause) })
}

const decodeError = (e: ParseResult.ParseError): JobStore.Outcome => ({
  _tag: "discard",
  error: {
    kind: "decode",
    message: printable(
      "the stored payload no longer matches the schema",
      () =>
        `the stored payload no longer matches the schema:\n${ParseResult.TreeFormatter.formatErrorSync(e)}`
    )
  }
})

/** Wrap an attempt in its consumer span, when a real tracer is installed (a third of a no-op job's CPU otherwise). */
const traced = <A, E, R>(job: JobStore.JobRecord, self: Effect.Effect<A, E, R>) =>
  Effect.tracerWith((tracer) =>
    tracer === nativeTracer
      ? self
      : Effect.withSpan(self, `nightshift.job ${job.kind}`, {
          kind: "consumer",
          root: true,
          // The stack would always point here, at the runner; capturing it costs ~20% of a no-op job's CPU.
          captureStackTrace: false,
          links: spanLinks(job),
          attributes: {
            "job.id": job.id,
            "job.kind": job.kind,
            "job.queue": job.queue,
            "job.attempt": job.attempt
          }
        })
  )

const spanLinks = (job: JobStore.JobRecord): ReadonlyArray<Tracer.SpanLink> =>
  job.traceId !== null && job.spanId !== null
    ? [
        {
          _tag: "SpanLink",
          span: Tracer.externalSpan({ traceId: job.traceId, spanId: job.spanId }),
          attributes: { "nightshift.link": "enqueue" }
        }
      ]
    : []

/**
 * `annotations` with the job's id, kind and attempt: what a runner's lane
 * sets as its log annotations before each attempt (cheaper than
 * `Effect.annotateLogs`, which restores the annotations after).
 */
export const jobAnnotations = (annotations: Annotations, job: JobStore.JobRecord): Annotations =>
  HashMap.set(kindAndAttempt(annotations, job.kind, job.attempt), "job.id", job.id)

type Annotations = HashMap.HashMap<string, unknown>

/**
 * `annotations` with the kind and attempt, shared by the jobs of a batch
 * (the inherited annotations are the fetcher's, the same map every time):
 * one `HashMap.set` per job instead of three.
 */
const kindAndAttempt = (annotations: Annotations, kind: string, attempt: number): Annotations => {
  let byKind = annotationCache.get(annotations)
  if (byKind === undefined) {
    byKind = new Map()
    annotationCache.set(annotations, byKind)
  }
  let byAttempt = byKind.get(kind)
  if (byAttempt === undefined) {
    byAttempt = new Map()
    if (byKind.size < 1_000) byKind.set(kind, byAttempt)
  }
  let base = byAttempt.get(attempt)
  if (base === undefined) {
    base = HashMap.set(HashMap.set(annotations, "job.kind", kind), "job.attempt", attempt)
    if (byAttempt.size < 100) byAttempt.set(attempt, base)
  }
  return base
}
const annotationCache = new WeakMap<Annotations, Map<string, Map<number, Annotations>>>()

/** Annotate the logs of `self` with the job (restoring them after). */
export const withJobLogs = <A, E, R>(job: JobStore.JobRecord, self: Effect.Effect<A, E, R>) =>
  Effect.annotateLogs(self, { "job.id": job.id, "job.kind": job.kind, "job.attempt": job.attempt })

const completed: Effect.Effect<Settle> = Effect.succeed({ _tag: "completed" })

type Decoder = (u: unknown) => Effect.Effect<unknown, ParseResult.ParseError, any>

/** One decoder per kind, built on first use (building it per attempt costs a few allocations). */
const decoders = new WeakMap<Job.Any, Decoder>()
const decoderOf = (kind: Job.Any): Decoder => {
  let decode = decoders.get(kind)
  if (decode === undefined) {
    decode = Schema.decodeUnknown(kind.payload) as Decoder
    decoders.set(kind, decode)
  }
  return decode
}

/**
 * Run one attempt of `job` with `handler` and succeed with how it ended.
 * Log annotations are the caller's business (see `annotateJob`).
 * Only the handler itself is interruptible: when the runner interrupts it
 * (cancel, shutdown, lost lease, as `reason()` says), the outcome is still
 * computed.
 */
export const execute = <R>(
  handler: Job.Handler<R> | undefined,
  job: JobStore.JobRecord,
  reason: () => InterruptReason | undefined
): Effect.Effect<Settle, never, R> =>
  Effect.uninterruptible(
    Effect.suspend(() => {
      if (handler === undefined) {
        return Effect.succeed<Settle>({
          _tag: "discard",
          error: { kind: "unknown-kind", message: `no handler for job kind "${job.kind}"` }
        })
      }
      if (!(job.attempt <= job.maxAttempts)) {
        // A row past its limit (edited by hand, or a max_attempts of 0 or less) is not run again.
        return Effect.succeed<Settle>({
          _tag: "discard",
          error: {
            kind: "attempts",
            message: `claimed as attempt ${job.attempt} of ${job.maxAttempts}: past its attempt limit, so it was not run`
          }
        })
      }
      const kind = handler.kind
      const attempt = (payload: unknown): Effect.Effect<Settle, never, R> => {
        // suspended: a handler that throws before returning its effect is a defect, not a crash
        const run = Effect.suspend(() => handler.run(payload, jobContext(job)))
        return Effect.matchCauseEffect(
          Effect.interruptible(kind.timeout === undefined ? run : Effect.timeout(run, kind.timeout)),
          { onSuccess: () => completed, onFailure: (cause) => fromCause(kind, job, cause, reason()) }
        )
      }
      const decoded = decoderOf(kind)(job.payload)
      // A synchronous schema decodes to an Either: branch on it without another step.
      const outcome = Either.isEither(decoded)
        ? Either.isRight(decoded)
          ? attempt(decoded.right)
          : Effect.succeed(decodeError(decoded.left as ParseResult.ParseError))
        : Effect.matchEffect(decoded, {
            onFailure: (e) => Effect.succeed<Settle>(decodeError(e)),
            onSuccess: attempt
          })
      return traced(job, outcome)
    })
  )

/** The outcome for an attempt interrupted before its handler ran. */
export const interruptedOutcome = (reason: InterruptReason | undefined): Settle =>
  reason === "cancel"
    ? { _tag: "cancelled", error: { kind: "cancelled", message: "cancelled before it started" } }
    : reason === "lost"
      ? undefined
      : { _tag: "release" }
