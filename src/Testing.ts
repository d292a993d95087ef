/**
 * Helpers for testing code that enqueues and handles jobs, in the spirit of
 * Oban's `drain_queue` / `assert_enqueued` / `perform_job`.
 *
 * - `layer`: an in-memory store and producer with no runner loops (manual
 *   mode): nothing runs until the test says so.
 * - `drain`: run every due job until none is left, optionally advancing
 *   `TestClock` to scheduled and retried jobs.
 * - `assertEnqueued` / `assertNotEnqueued`: check what was enqueued.
 * - `perform`: run one job inline through the runner's own attempt path.
 *
 * @since 0.1.0
 */
import { isDeepStrictEqual } from "node:util"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import type * as TestServices from "effect/TestServices"
import * as Events from "./Events.js"
import { execute, withJobLogs } from "./internal/runner/execute.js"
import { listAll } from "./internal/store/list.js"
import type * as Job from "./Job.js"
import * as JobQueue from "./JobQueue.js"
import * as JobStore from "./JobStore.js"
import * as MemoryStore from "./MemoryStore.js"

/**
 * An in-memory store, producer and event bus, with no runner: jobs wait
 * until `drain` or `perform` runs them.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<JobQueue.JobQueue | JobStore.JobStore | Events.Events> = JobQueue.layer.pipe(
  Layer.provideMerge(MemoryStore.layer),
  Layer.provideMerge(Events.layer)
)

/**
 * What `drain` did.
 *
 * @since 0.1.0
 */
export interface DrainResult {
  readonly completed: number
  readonly retried: number
  readonly discarded: number
  readonly snoozed: number
  readonly cancelled: number
}

/** @since 0.1.0 */
export interface DrainOptions {
  /** Queues to drain. Default: every queue that has jobs. */
  readonly queues?: ReadonlyArray<string> | undefined
  /**
   * When no job is due, move `TestClock` to the next scheduled or retried
   * job and keep going, until none is left. Default false.
   */
  readonly advanceTime?: boolean | undefined
  /** Stop after this many attempts (guards against jobs that snooze forever). Default 10,000. */
  readonly maxAttempts?: number | undefined
}

const pendingStates: ReadonlyArray<JobStore.JobState> = ["scheduled", "retryable", "available"]

const nextRunAt = (store: JobStore.Service, queues: ReadonlyArray<string> | undefined) =>
  Effect.map(listAll(store, { states: pendingStates, queues }), (jobs) =>
    jobs.reduce<number | undefined>(
      (min, j) => (min === undefined || j.runAt < min ? j.runAt : min),
      undefined
    )
  )

/**
 * Run every due job with `handlers` until none is left; with `advanceTime`,
 * also run jobs scheduled or retried in the future by moving `TestClock`.
 * Jobs of kinds without a handler stay where they are.
 *
 * @since 0.1.0
 */
export const drain = <R>(
  handlers: Job.Handlers<R>,
  options: DrainOptions = {}
): Effect.Effect<DrainResult, JobStore.JobStoreError, R | JobStore.JobStore | TestServices.TestServices> =>
  Effect.gen(function* () {
    const store = yield* JobStore.JobStore
    const kinds = Array.from(handlers.byKind.keys())
    const result = { completed: 0, retried: 0, discarded: 0, snoozed: 0, cancelled: 0 }
    let attempts = 0
    const limit = options.maxAttempts ?? 10_000
    while (attempts < limit) {
      const queues = options.queues ?? Array.from(new Set((yield* store.counts).map((c) => c.queue)))
      const jobs =
        queues.length === 0
          ? []
          : yield* store.claim({ queues, kinds, limit: 100, leaseMs: 3_600_000, owner: "nightshift-testing" })
      if (jobs.length === 0) {
        if (!options.advanceTime) break
        const next = yield* nextRunAt(store, options.queues)
        const now = yield* store.now
        if (next === undefined || next <= now) break
        yield* TestClock.adjust(next - now)
        continue
      }
      for (const job of jobs) {
        attempts++
        const outcome = yield* withJobLogs(
          job,
          execute(handlers.byKind.get(job.kind), job, () => undefined)
        )
        if (outcome === undefined) continue
        const [r] = yield* Effect.orDie(store.settle([{ id: job.id, fence: job.fence, outcome }]))
        if (r?.state === "completed") result.completed++
        else if (r?.state === "retryable") result.retried++
        else if (r?.state === "discarded") result.discarded++
        else if (r?.state === "cancelled") result.cancelled++
        else if (r?.applied) result.snoozed++
      }
    }
    return result
  })

/**
 * Jobs of `kind` (optionally only those whose payload equals `payload`, or
 * satisfies a predicate) in any state.
 *
 * @since 0.1.0
 */
export const enqueued = <Name extends string, A, I, R>(
  kind: Job.Kind<Name, A, I, R>,
  payload?: A | ((payload: A) => boolean)
): Effect.Effect<ReadonlyArray<JobStore.JobRecord>, JobStore.JobStoreError, JobStore.JobStore | R> =>
  Effect.gen(function* () {
    const store = yield* JobStore.JobStore
    const jobs = yield* listAll(store, { kinds: [kind.name] })
    if (payload === undefined) return jobs
    const matches: Array<JobStore.JobRecord> = []
    const expected =
      typeof payload === "function"
        ? undefined
        : yield* Effect.orDie(Schema.encode(kind.payload)(payload as A))
    for (const job of jobs) {
      if (typeof payload !== "function") {
        if (isDeepStrictEqual(job.payload, expected)) matches.push(job)
        continue
      }
      const decoded = yield* Effect.option(Schema.decodeUnknown(kind.payload)(job.payload))
      if (Option.isSome(decoded) && (payload as (a: A) => boolean)(decoded.value)) matches.push(job)
    }
    return matches
  })

/**
 * A test expectation about enqueued jobs was not met.
 *
 * @since 0.1.0
 */
export class AssertionFailed extends Schema.TaggedError<AssertionFailed>()("AssertionFailed", {
  message: Schema.String
}) {}

/**
 * Fail unless a job of `kind` (with a matching payload, when given) was
 * enqueued.
 *
 * @since 0.1.0
 */
export const assertEnqueued = <Name extends string, A, I, R>(
  kind: Job.Kind<Name, A, I, R>,
  payload?: A | ((payload: A) => boolean)
): Effect.Effect<JobStore.JobRecord, AssertionFailed | JobStore.JobStoreError, JobStore.JobStore | R> =>
  Effect.flatMap(enqueued(kind, payload), (jobs) =>
    jobs.length > 0
      ? Effect.succeed(jobs[0]!)
      : Effect.fail(
          new AssertionFailed({
            message: `expected a ${kind.name} job${payload === undefined || typeof payload === "function" ? "" : ` with payload ${JSON.stringify(payload)}`} to be enqueued, found none`
          })
        )
  )

/**
 * Fail if a job of `kind` (with a matching payload, when given) was
 * enqueued.
 *
 * @since 0.1.0
 */
export const assertNotEnqueued = <Name extends string, A, I, R>(
  kind: Job.Kind<Name, A, I, R>,
  payload?: A | ((payload: A) => boolean)
): Effect.Effect<void, AssertionFailed | JobStore.JobStoreError, JobStore.JobStore | R> =>
  Effect.flatMap(enqueued(kind, payload), (jobs) =>
    jobs.length === 0
      ? Effect.void
      : Effect.fail(
          new AssertionFailed({
            message: `expected no ${kind.name} job to be enqueued, found ${jobs.length}`
          })
        )
  )

/**
 * Run one attempt of a job inline, without a store: the payload is encoded
 * and decoded with the kind's schema and the handler runs through the
 * runner's attempt path. Returns what the runner would record.
 *
 * @since 0.1.0
 */
export const perform = <A, R>(
  handler: Job.Handler<R>,
  payload: A,
  options: { readonly attempt?: number; readonly maxAttempts?: number } = {}
): Effect.Effect<JobStore.Outcome | undefined, JobQueue.InvalidPayload | JobQueue.InvalidOptions, R> =>
  Effect.gen(function* () {
    const input = yield* JobQueue.toInput(handler.kind, payload, {}, Option.none())
    const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
    const job: JobStore.JobRecord = {
      id: "inline",
      kind: input.kind,
      queue: input.queue,
      payload: input.payload,
      state: "running",
      priority: input.priority,
      attempt: options.attempt ?? 1,
      maxAttempts: options.maxAttempts ?? input.maxAttempts,
      runAt: now,
      createdAt: now,
      attemptedAt: now,
      finalizedAt: null,
      leaseOwner: null,
      leaseExpiresAt: null,
      fence: 1,
      dedupeKey: null,
      partition: input.partition ?? null,
      cancelRequested: false,
      errors: [],
      traceId: null,
      spanId: null
    }
    return yield* withJobLogs(
      job,
      execute(handler, job, () => undefined)
    )
  })
