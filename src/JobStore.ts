/**
 * The storage engine contract for durable jobs.
 *
 * Every engine (`MemoryStore`, `SqliteStore`, `PgStore`) implements this one
 * service and passes the one conformance suite in `test/store/conformance.ts`.
 * The runner and the producer never know which engine they talk to.
 *
 * Time: every duration given to the store is relative (`delayMs`, `leaseMs`,
 * retention ages) and the store reads "now" from its own clock. The memory and
 * SQLite engines read Effect's `Clock` (so `TestClock` drives them); the
 * PostgreSQL engine reads the database clock, so nodes whose clocks disagree
 * still agree on leases and run-at times.
 *
 * @since 0.1.0
 */

import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type * as FlowControl from "./FlowControl.js"

/**
 * The states a job moves through.
 *
 * `scheduled` (run-at in the future) → `available` → `running` → one of
 * `completed`, `retryable` (available again at its next run-at), `discarded`
 * (permanent failure or attempts exhausted), `cancelled`.
 *
 * @since 0.1.0
 */
export const JobState = Schema.Literal(
  "scheduled",
  "available",
  "running",
  "retryable",
  "completed",
  "discarded",
  "cancelled"
)
/** @since 0.1.0 */
export type JobState = typeof JobState.Type

/** States in which a job still holds its dedupe key. @since 0.1.0 */
export const activeStates: ReadonlyArray<JobState> = ["scheduled", "available", "running", "retryable"]

/** States a job never leaves on its own (it may be retried by hand). @since 0.1.0 */
export const finalStates: ReadonlyArray<JobState> = ["completed", "discarded", "cancelled"]

/**
 * One failed (or lost) attempt, kept on the job.
 *
 * @since 0.1.0
 */
export interface AttemptError {
  readonly attempt: number
  /** Epoch milliseconds, store clock. */
  readonly at: number
  /** `failure` (typed error), `defect`, `timeout`, `rescued` (lease expired, or longer than any runner sets), `cancelled`, `decode` (payload no longer decodes), `unknown-kind`, `attempts` (claimed past its attempt limit), `fence` (its fence is at `maxCounter`: it cannot be claimed again). */
  readonly kind: string
  /** A pretty-printed `Cause` or message. */
  readonly message: string
  /**
   * When the attempt started (epoch ms, store clock). Absent on errors stored
   * by versions before 0.3 and on errors no attempt made (`fence`).
   */
  readonly startedAt?: number | null | undefined
  /** The runner that held the attempt's lease; absent or null where `startedAt` is. */
  readonly node?: string | null | undefined
}

/**
 * A job as stored. `payload` is the *encoded* form (JSON-compatible), as
 * produced by the kind's payload `Schema`.
 *
 * @since 0.1.0
 */
export interface JobRecord {
  readonly id: string
  readonly kind: string
  readonly queue: string
  readonly payload: unknown
  readonly state: JobState
  /** Lower runs first. Default 0. */
  readonly priority: number
  /** Attempts started and counted (a snoozed or released attempt is not counted). */
  readonly attempt: number
  readonly maxAttempts: number
  /** Epoch ms. */
  readonly runAt: number
  readonly createdAt: number
  /** When the latest attempt started. */
  readonly attemptedAt: number | null
  /** When the job reached a final state. */
  readonly finalizedAt: number | null
  /**
   * Runner that holds the current lease (state `running`); on a `completed`
   * job, the runner that ran its last attempt. `null` otherwise.
   */
  readonly leaseOwner: string | null
  readonly leaseExpiresAt: number | null
  /**
   * Fencing token: incremented on every claim. A settle or heartbeat carries
   * the fence it was claimed with and is ignored when it no longer matches.
   */
  readonly fence: number
  readonly dedupeKey: string | null
  /** Partition key (a tenant, an account): claims are fair across keys and `perPartition` limits count per key. */
  readonly partition: string | null
  /**
   * Why a job that has not started is held back (see `FlowControl.Waiting`);
   * `null` when it is only waiting its turn, or not waiting. Set by
   * `JobQueue.get`/`list` and the admin API; the store's own reads leave it
   * out.
   */
  readonly waiting?: FlowControl.Waiting | null | undefined
  /** Set by `cancel` on a running job; the runner interrupts it. */
  readonly cancelRequested: boolean
  readonly errors: ReadonlyArray<AttemptError>
  /** Trace context of the enqueuing span. */
  readonly traceId: string | null
  readonly spanId: string | null
}

/**
 * What a producer asks the store to insert.
 *
 * @since 0.1.0
 */
export interface EnqueueInput {
  readonly kind: string
  readonly queue: string
  /** Already encoded by the kind's Schema. */
  readonly payload: unknown
  readonly priority: number
  readonly maxAttempts: number
  /** Absolute run-at (epoch ms). Wins over `delayMs`. */
  readonly runAt?: number | undefined
  /** Run after this many ms from the store's now. Default 0. */
  readonly delayMs?: number | undefined
  readonly dedupeKey?: string | undefined
  /** Partition key, already checked with `FlowControl.partitionProblem`. */
  readonly partition?: string | undefined
  readonly traceId?: string | undefined
  readonly spanId?: string | undefined
}

/**
 * The result of one enqueue: a new job, or the id of the live job with the
 * same kind and dedupe key that the new one was folded into.
 *
 * @since 0.1.0
 */
export interface EnqueueResult {
  readonly id: string
  readonly deduped: boolean
}

/**
 * A request to claim due jobs.
 *
 * @since 0.1.0
 */
export interface ClaimRequest {
  /** Only these queues. */
  readonly queues: ReadonlyArray<string>
  /** Only these kinds: a runner claims only kinds it has handlers for. */
  readonly kinds: ReadonlyArray<string>
  /** At most this many jobs. */
  readonly limit: number
  /** Lease length from the store's now. */
  readonly leaseMs: number
  /** Identity of the claiming runner (used by heartbeats and diagnostics). */
  readonly owner: string
}

/**
 * How an attempt ended, as the runner reports it.
 *
 * - `completed`: done.
 * - `retry`: failed; becomes `retryable` at now + `delayMs`.
 * - `discard`: failed for good (permanent error or attempts exhausted).
 * - `snooze`: run again at now + `delayMs` without counting the attempt.
 * - `cancelled`: interrupted by a cancel request.
 * - `release`: handed back (graceful shutdown) without counting the attempt.
 *
 * @since 0.1.0
 */
export type Outcome =
  | { readonly _tag: "completed" }
  | { readonly _tag: "retry"; readonly delayMs: number; readonly error: AttemptErrorInput }
  | { readonly _tag: "discard"; readonly error: AttemptErrorInput }
  | { readonly _tag: "snooze"; readonly delayMs: number }
  | { readonly _tag: "cancelled"; readonly error?: AttemptErrorInput | undefined }
  | { readonly _tag: "release" }

/** An attempt error before the store stamps it with attempt and time. @since 0.1.0 */
export interface AttemptErrorInput {
  readonly kind: string
  readonly message: string
}

/**
 * One settle: the job, the fence it was claimed with, and its outcome.
 *
 * @since 0.1.0
 */
export interface Settlement {
  readonly id: string
  readonly fence: number
  readonly outcome: Outcome
}

/**
 * What `settleAndClaim` did: `settle`'s results, and the jobs the claim
 * after it took.
 *
 * @since 0.1.0
 */
export interface SettledAndClaimed {
  readonly settled: ReadonlyArray<SettleResult>
  readonly claimed: ReadonlyArray<JobRecord>
}

/**
 * What happened to a settle: `applied` is false when the fence no longer
 * matched (the job was rescued, re-claimed or cancelled meanwhile) and
 * nothing changed.
 *
 * @since 0.1.0
 */
export interface SettleResult {
  readonly id: string
  readonly applied: boolean
  /** The state the job is in after this settle (when applied). */
  readonly state: JobState | null
  /**
   * The store could not reach where this job lives (a sharded store's shard
   * is unreachable) and changed nothing: offer the settlement again later.
   * The job's lease cannot be lost meanwhile, as nobody can reach it either.
   */
  readonly deferred?: boolean | undefined
}

/**
 * A lease held by a runner, to extend.
 *
 * @since 0.1.0
 */
export interface Lease {
  readonly id: string
  readonly fence: number
}

/**
 * The answer to a heartbeat for one lease: `held` false means the lease is
 * lost (rescued, cancelled and finalised, or re-claimed) and the attempt
 * should stop; `cancelRequested` asks the runner to interrupt the attempt.
 *
 * @since 0.1.0
 */
export interface LeaseStatus {
  readonly id: string
  readonly held: boolean
  readonly cancelRequested: boolean
}

/**
 * What `rescue` did to one job whose lease expired.
 *
 * @since 0.1.0
 */
export interface Rescued {
  readonly id: string
  readonly kind: string
  readonly queue: string
  /** `retryable`, `discarded` (attempts exhausted) or `cancelled` (a cancel was pending). */
  readonly state: JobState
}

/** A JSON value a payload search compares with. @since 0.3.0 */
export type JsonScalar = string | number | boolean | null

/**
 * A payload search: the value at `path` in the job's encoded payload equals
 * `value` (same JSON type and value: `"42"` does not match `42`). `path`
 * names object keys from the top (`["tenantId"]`, `["order", "id"]`); each
 * key is 1 to 64 of `[A-Za-z0-9_$-]`, at most `maxPayloadPathDepth` keys
 * (see `isPayloadPath`).
 *
 * @since 0.3.0
 */
export interface PayloadMatch {
  readonly path: ReadonlyArray<string>
  readonly value: JsonScalar
}

/** The most keys a `PayloadMatch` path holds. @since 0.3.0 */
export const maxPayloadPathDepth = 8

/** Can `path` be searched on every engine? @since 0.3.0 */
export const isPayloadPath = (path: ReadonlyArray<string>): boolean =>
  path.length >= 1 &&
  path.length <= maxPayloadPathDepth &&
  path.every((key) => /^[A-Za-z0-9_$-]{1,64}$/.test(key))

/**
 * Filters and keyset pagination for `list`. Results are ordered by id,
 * newest first; pass the previous page's `nextCursor` as `cursor`, as it is.
 *
 * A filter on `dedupeKey`, creation time or `payload` is bounded: one page
 * reads the jobs of at most `listScanWindow` consecutive ids (below the
 * cursor, within the id range), so a page may hold fewer than `limit` jobs,
 * even none, and still have a `nextCursor`; follow it to search on. Other
 * filters read until the page is full.
 *
 * @since 0.1.0
 */
export interface ListFilter {
  readonly states?: ReadonlyArray<JobState> | undefined
  readonly kinds?: ReadonlyArray<string> | undefined
  readonly queues?: ReadonlyArray<string> | undefined
  /** Only jobs with this dedupe key. @since 0.3.0 */
  readonly dedupeKey?: string | undefined
  /** Only jobs whose id is at least this one. @since 0.3.0 */
  readonly idFrom?: string | undefined
  /** Only jobs whose id is at most this one. @since 0.3.0 */
  readonly idTo?: string | undefined
  /** Only jobs created at or after this time (epoch ms). @since 0.3.0 */
  readonly createdFrom?: number | undefined
  /** Only jobs created before this time (epoch ms). @since 0.3.0 */
  readonly createdTo?: number | undefined
  /** Only jobs whose payload holds this value at this path. @since 0.3.0 */
  readonly payload?: PayloadMatch | undefined
  readonly limit?: number | undefined
  /** List jobs older than this page boundary; `null` or absent starts from the newest job. */
  readonly cursor?: string | null | undefined
}

/**
 * How many consecutive ids one page of a bounded `list` reads (see
 * `ListFilter`). @since 0.3.0
 */
export const listScanWindow = 10_000

/** Is `filter` bounded by `listScanWindow`? @since 0.3.0 */
export const isWindowed = (filter: ListFilter): boolean =>
  filter.dedupeKey !== undefined ||
  filter.createdFrom !== undefined ||
  filter.createdTo !== undefined ||
  filter.payload !== undefined

/**
 * The most jobs one `list` page holds, on every engine. A larger `limit` is
 * clamped to it; the page's `nextCursor` then leads on to the rest, so a
 * clamp never hides a job. `limit` defaults to `defaultListLimit`.
 *
 * @since 0.1.0
 */
export const maxListLimit = 1000

/**
 * The longest delay a settle stores (a retry's or a snooze's `delayMs`):
 * 100 years. A longer one is clamped to it; a negative or NaN one is 0.
 *
 * @since 0.1.0
 */
export const maxDelayMs = 100 * 365.25 * 86_400_000

/**
 * The longest lease a store sets: 24 hours. `claim` and `heartbeat` clamp
 * `leaseMs` to 0..`maxLeaseMs` (NaN is 0), and the runner refuses a longer
 * `leaseDuration`. A `running` job whose lease ends later than now +
 * `maxLeaseMs` holds a lease no runner could have set (written by hand, or
 * the store's clock went back by more than a day), so `rescue` takes it back
 * as if it had expired.
 *
 * @since 0.1.0
 */
export const maxLeaseMs = 24 * 3_600_000

/**
 * The largest `fence` and `attempt` a job can hold on every engine (the
 * range of PostgreSQL's `integer` columns). A due job whose fence is there
 * cannot be claimed again: `claim` ends it `discarded`, with an error of kind
 * `fence`, without returning it. An `attempt` there stays there when claimed
 * (and the runner discards the job if that is past its `maxAttempts`).
 *
 * @since 0.1.0
 */
export const maxCounter = 2_147_483_647

/**
 * The most characters of an attempt error's message a store keeps; the rest
 * is cut and marked. @since 0.1.0
 */
export const maxErrorMessageLength = 64 * 1024

/** The page size of `list` when no `limit` is given. @since 0.1.0 */
export const defaultListLimit = 100

/** @since 0.1.0 */
export interface ListPage {
  readonly jobs: ReadonlyArray<JobRecord>
  /** The `cursor` of the next page; `null` on the last page. */
  readonly nextCursor: string | null
}

/** Number of jobs per queue and state. @since 0.1.0 */
export interface QueueCount {
  readonly queue: string
  readonly state: JobState
  readonly count: number
}

/**
 * The result of `cancel`.
 *
 * - `cancelled`: it was queued and is now `cancelled`.
 * - `requested`: it is running; `cancelRequested` is set and the runner that
 *   holds it will interrupt it (if that runner is gone, the rescuer ends it
 *   `cancelled` when the lease expires).
 * - `final`: it had already finished (`state` says how).
 * - `not-found`.
 *
 * @since 0.1.0
 */
export type CancelResult =
  | { readonly _tag: "cancelled" }
  | { readonly _tag: "requested"; readonly owner: string | null }
  | { readonly _tag: "final"; readonly state: JobState }
  | { readonly _tag: "not-found" }

/**
 * The result of `retry`: a discarded, cancelled or completed job becomes
 * `available` now (with room for one more attempt if it had used them all).
 *
 * @since 0.1.0
 */
export type RetryResult =
  | { readonly _tag: "retried" }
  | { readonly _tag: "not-retryable"; readonly state: JobState }
  | { readonly _tag: "not-found" }

/**
 * Why a bulk operation left a job as it was: `not-found`; `state` (its state,
 * given, is not one the operation applies to: retry needs a final job,
 * cancel an unfinished one, delete one that is not running); `dedupe` (retry:
 * another live job holds its kind and dedupe key).
 *
 * @since 0.3.0
 */
export interface BulkSkip {
  readonly id: string
  readonly reason: "not-found" | "state" | "dedupe"
  readonly state: JobState | null
}

/**
 * What a bulk `retryMany`, `cancelMany` or `deleteMany` did to each id, by
 * the rules of the single-job operations: `changed` holds the jobs retried,
 * cancelled or deleted; `requested` (cancel only) the running jobs whose
 * runner was asked to stop; `skipped` the rest, with why. An id given twice
 * counts once.
 *
 * @since 0.3.0
 */
export interface BulkResult {
  readonly changed: ReadonlyArray<string>
  readonly requested: ReadonlyArray<string>
  readonly skipped: ReadonlyArray<BulkSkip>
  /**
   * `cancelMany` only: the jobs it cancelled while queued (those of
   * `changed`), with what their `cancelled` events carry.
   */
  readonly cancelled?: ReadonlyArray<CancelledJob> | undefined
}

/** A job `cancelMany` cancelled while queued. @since 0.3.0 */
export interface CancelledJob {
  readonly id: string
  readonly kind: string
  readonly queue: string
  readonly attempt: number
}

/** The most ids one bulk call takes; the store splits a longer list into calls of this size. @since 0.3.0 */
export const maxBulkIds = 1000

/**
 * The result of `runNow`: a `scheduled` or `retryable` job becomes
 * `available` with its run-at now (`moved`); an `available` job is left as it
 * is (`due`); a job in any other state is not changed (`not-waiting`).
 *
 * @since 0.3.0
 */
export type RunNowResult =
  | { readonly _tag: "moved" }
  | { readonly _tag: "due" }
  | { readonly _tag: "not-waiting"; readonly state: JobState }
  | { readonly _tag: "not-found" }

/**
 * Retention per final state, in ms. A job is pruned when it has been final
 * for longer than its state's age (counted from `finalizedAt`, or when that
 * is missing from `attemptedAt`, or else `createdAt`). `limit` bounds one call.
 *
 * @since 0.1.0
 */
export interface PruneRequest {
  readonly completedMs: number
  readonly discardedMs: number
  readonly cancelledMs: number
  readonly limit: number
}

/**
 * A cron slot to enqueue exactly once: the store records `(name, slot)` and
 * inserts the job in one atomic step; a slot already recorded inserts
 * nothing.
 *
 * @since 0.1.0
 */
export interface CronSlotInput {
  readonly name: string
  /** Slot start, epoch ms. */
  readonly slot: number
  readonly job: EnqueueInput
}

/**
 * A hint from the store: new work on a queue, a cancel request for a job, or
 * `changed`: another process committed to the store, so any queue may have
 * new work (SQLite, which cannot tell which). Hints may be lost; the runner's
 * polling is the backstop.
 *
 * @since 0.1.0
 */
export type Wakeup =
  | { readonly _tag: "enqueued"; readonly queue: string }
  | { readonly _tag: "cancel"; readonly id: string }
  | { readonly _tag: "changed" }

/**
 * Running jobs of one queue, kind and partition key.
 *
 * @since 0.2.0
 */
export interface RunningGroup {
  readonly queue: string
  readonly kind: string
  readonly partition: string | null
  readonly running: number
}

/**
 * Due jobs (`available`, or `scheduled`/`retryable` whose run-at has passed)
 * of one queue, kind and partition key.
 *
 * @since 0.2.0
 */
export interface DueGroup {
  readonly queue: string
  readonly kind: string
  readonly partition: string | null
  readonly due: number
}

/**
 * Starts counted against a rate limit in its current window: per rule, and
 * per partition key for a rule whose rate is counted `by: "partition"`
 * (`partition` is `null` otherwise); `recent` are those within the rule's
 * pace span (`burst` starts' worth of its window; see `FlowControl.RateLimit`).
 *
 * @since 0.2.0
 */
export interface RateUsage {
  readonly scope: "kind" | "queue"
  readonly name: string
  readonly partition: string | null
  readonly starts: number
  /** @since 0.4.0 */
  readonly recent: number
}

/**
 * What flow control looks at, read in one consistent step: the rules, the
 * paused queues, the running jobs grouped by queue, kind and partition key,
 * the rate limits' usage and, when asked, the due jobs grouped the same way.
 *
 * @since 0.2.0
 */
export interface FlowState {
  /** Store clock, epoch ms. */
  readonly now: number
  readonly rules: ReadonlyArray<FlowControl.Rule>
  readonly paused: ReadonlyArray<string>
  readonly running: ReadonlyArray<RunningGroup>
  readonly rate: ReadonlyArray<RateUsage>
  /** Empty unless `flowState({ due: true })`. */
  readonly due: ReadonlyArray<DueGroup>
}

/**
 * What happened to jobs since an instant, on every node: what the admin
 * overview samples. Read from the rows' own times, through indexes that
 * hold only running, retryable or recently finished jobs, so its cost
 * follows the activity since `since`, not the size of the table.
 *
 * @since 0.3.0
 */
export interface Activity {
  /**
   * Store clock, epoch ms: the end of the span counted, `[since, now)`. A
   * job stamped at `now` itself counts in the span that starts there.
   */
  readonly now: number
  /** Jobs that ended `completed` in the span. */
  readonly completed: number
  /** Jobs that ended `discarded` in the span. */
  readonly discarded: number
  /** Jobs that ended `cancelled` in the span. */
  readonly cancelled: number
  /**
   * Jobs whose latest failed attempt ended in the span and that were
   * retried: now retryable, running again, or completed since. A job that
   * failed twice in the span counts once.
   */
  readonly retried: number
  /**
   * Start latency (ms from run-at, i.e. enqueue or the scheduled time, to
   * the start of the attempt) of jobs whose latest attempt started in the
   * span and that are running or have finished since; at most
   * `activityLatencyLimit` of them, in no particular order.
   */
  readonly latencies: ReadonlyArray<number>
  /**
   * Jobs per queue in the states that make a queue's depth (`scheduled`,
   * `available`, `running`, `retryable`) at `now`; zeros left out. Read
   * through the indexes of waiting and running jobs, unlike `counts`, which
   * also counts every finished job still stored.
   */
  readonly depth: ReadonlyArray<QueueCount>
}

/**
 * The size of a store's table of live jobs (on PostgreSQL, `jobs`: the
 * scheduled, available, running and retryable ones) and of its finished
 * jobs: what tells whether vacuum keeps up with the churn.
 *
 * @since 0.4.0
 */
export interface TableStats {
  /** Live row versions in the live jobs' table (the database's estimate). */
  readonly liveRows: number
  /** Dead row versions vacuum has not yet reclaimed there (the database's estimate). */
  readonly deadRows: number
  /** Bytes of that table, without its indexes. */
  readonly tableBytes: number
  /** Bytes of its indexes. */
  readonly indexBytes: number
  /** Bytes of the finished jobs' table, with its indexes. */
  readonly finishedBytes: number
}

/** The most start latencies `activity` returns. @since 0.3.0 */
export const activityLatencyLimit = 1000

/**
 * A store operation failed (database unreachable, constraint error, …).
 *
 * @since 0.1.0
 */
export class JobStoreError extends Schema.TaggedError<JobStoreError>()("JobStoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * The store service.
 *
 * @since 0.1.0
 */
export interface Service {
  /** Engine name for diagnostics: `memory`, `sqlite`, `postgres`. */
  readonly engine: string
  /**
   * Insert jobs atomically (all or nothing). A job whose kind and dedupe key
   * match a job in an active state — stored, or earlier in the same call —
   * is folded into it. Results are in input order.
   */
  readonly enqueue: (
    jobs: ReadonlyArray<EnqueueInput>
  ) => Effect.Effect<ReadonlyArray<EnqueueResult>, JobStoreError>
  /**
   * Claim up to `limit` due jobs (`available`, or `scheduled`/`retryable`
   * whose run-at has passed) of the given queues and kinds, skipping paused
   * queues, in order of priority, run-at, id.
   *
   * Flow control: the rules stored by `declareLimits` for the jobs' queues
   * and kinds hold for every claim on every node. A claim never leaves more
   * than `global` jobs of a rule's scope running, more than `perPartition`
   * of one partition key, or more than `rateLimit` starts of the scope (or
   * partition key) within any `rateWindowMs`; a job held back stays as it
   * was (not claimed, no attempt counted). In a queue whose due jobs carry
   * partition keys, a claim serves the keys with due work in turn (jobs
   * without a key count as one more key), starting after the key this
   * store instance served last in that queue, so a key with a large backlog
   * does not delay the others; within a key, priority, run-at and id order
   * hold. Each claimed job becomes
   * `running` with a lease of `leaseMs` (clamped to `maxLeaseMs`), its
   * `attempt` and `fence` incremented (an attempt at `maxCounter` stays
   * there). A due job whose fence is at `maxCounter` is ended `discarded`
   * instead, with an error of kind `fence`, and not returned. No job is
   * ever returned to two concurrent claimers.
   */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<JobRecord>, JobStoreError>
  /** Extend leases held by `owner` to now + `leaseMs` (clamped to `maxLeaseMs`), and report lost leases and cancel requests. */
  readonly heartbeat: (
    owner: string,
    leases: ReadonlyArray<Lease>,
    leaseMs: number
  ) => Effect.Effect<ReadonlyArray<LeaseStatus>, JobStoreError>
  /**
   * Apply outcomes. Each is fenced: it applies only while the job is still
   * `running` under the same fence, and otherwise changes nothing.
   */
  readonly settle: (
    settlements: ReadonlyArray<Settlement>
  ) => Effect.Effect<ReadonlyArray<SettleResult>, JobStoreError>
  /**
   * Optional: `settle`, then `claim` after it in the same transaction and
   * one round trip, so that the claim can take the places (of a flow
   * control limit) that the settled jobs held. The claim sees every
   * settlement applied; either both happen or neither does. A runner uses
   * it under flow control, when a claim came back short and the settled
   * jobs' places may let the next one take more; without it, it settles,
   * then claims.
   */
  readonly settleAndClaim?: (
    settlements: ReadonlyArray<Settlement>,
    request: ClaimRequest
  ) => Effect.Effect<SettledAndClaimed, JobStoreError>
  /**
   * End the leases that have expired: such jobs count the lost attempt and
   * become `retryable` (available now), `discarded` when no attempts remain,
   * or `cancelled` when a cancel was pending. A running job without a lease,
   * or whose lease ends later than now + `maxLeaseMs`, counts as expired.
   */
  readonly rescue: (limit: number) => Effect.Effect<ReadonlyArray<Rescued>, JobStoreError>
  /**
   * Delete final jobs older than their retention; returns how many. A final
   * job without a finish time (written by hand) is aged from its latest
   * attempt, or else from its creation.
   */
  readonly prune: (request: PruneRequest) => Effect.Effect<number, JobStoreError>
  readonly get: (id: string) => Effect.Effect<JobRecord | undefined, JobStoreError>
  readonly list: (filter: ListFilter) => Effect.Effect<ListPage, JobStoreError>
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, JobStoreError>
  /**
   * Jobs per queue in the states that make a queue's depth (`scheduled`,
   * `available`, `running`, `retryable`); zeros left out. Unlike `counts`,
   * it does not count the finished jobs still stored, so its cost does not
   * grow with retention: what the runner samples. @since 0.4.0
   */
  readonly depth: Effect.Effect<ReadonlyArray<QueueCount>, JobStoreError>
  /** What happened since `since` (epoch ms, store clock), on every node (see `Activity`). */
  readonly activity: (since: number) => Effect.Effect<Activity, JobStoreError>
  readonly cancel: (id: string) => Effect.Effect<CancelResult, JobStoreError>
  readonly retry: (id: string) => Effect.Effect<RetryResult, JobStoreError>
  /** `retry` for many jobs at once, in one transaction per `maxBulkIds` ids. @since 0.3.0 */
  readonly retryMany: (ids: ReadonlyArray<string>) => Effect.Effect<BulkResult, JobStoreError>
  /** `cancel` for many jobs at once, in one transaction per `maxBulkIds` ids. @since 0.3.0 */
  readonly cancelMany: (ids: ReadonlyArray<string>) => Effect.Effect<BulkResult, JobStoreError>
  /**
   * Delete jobs that are not running (a running job is skipped: cancel it
   * first), in one transaction per `maxBulkIds` ids. A deleted job frees its
   * dedupe key. @since 0.3.0
   */
  readonly deleteMany: (ids: ReadonlyArray<string>) => Effect.Effect<BulkResult, JobStoreError>
  /** Make a scheduled or retryable job due now (see `RunNowResult`). @since 0.3.0 */
  readonly runNow: (id: string) => Effect.Effect<RunNowResult, JobStoreError>
  readonly pause: (queue: string) => Effect.Effect<void, JobStoreError>
  readonly resume: (queue: string) => Effect.Effect<void, JobStoreError>
  readonly paused: Effect.Effect<ReadonlyArray<string>, JobStoreError>
  /** Enqueue the job of a cron slot unless that slot was already taken. */
  readonly enqueueCronSlot: (input: CronSlotInput) => Effect.Effect<EnqueueResult | undefined, JobStoreError>
  /** The latest slot recorded for a cron name (epoch ms). */
  readonly lastCronSlot: (name: string) => Effect.Effect<number | undefined, JobStoreError>
  /**
   * Store the limits of kinds and queues, one rule per scope and name: each
   * replaces what was stored for its scope and name, and a rule with no
   * limit (`FlowControl.isEmpty`) removes it. Takes effect at the next
   * claim on every node.
   */
  readonly declareLimits: (rules: ReadonlyArray<FlowControl.Rule>) => Effect.Effect<void, JobStoreError>
  /** What flow control looks at now (see `FlowState`); due groups only when `due` is true. */
  readonly flowState: (options: { readonly due: boolean }) => Effect.Effect<FlowState, JobStoreError>
  /** Current time on the store's clock (epoch ms). */
  readonly now: Effect.Effect<number, JobStoreError>
  /** Succeeds when the store is reachable. */
  readonly ping: Effect.Effect<void, JobStoreError>
  /**
   * The live jobs' table's size and dead rows (see `TableStats`), for
   * engines that have such a table (PostgreSQL). @since 0.4.0
   */
  readonly tableStats?: Effect.Effect<TableStats, JobStoreError> | undefined
  /**
   * The longest a call waits for one part of the store before it answers
   * without it (a sharded store's `answerWithin`), in milliseconds; absent
   * when a call waits for the database as long as the connection does. A
   * runner's heartbeat can take this long, so a runner refuses a lease that
   * does not leave room for it. @since 0.4.0
   */
  readonly answerWithinMs?: number | undefined
  /** Hints of new work and cancel requests; may be empty for polling-only engines. */
  readonly wakeups: Stream.Stream<Wakeup, JobStoreError>
}

/**
 * The `JobStore` service tag.
 *
 * @since 0.1.0
 */
export class JobStore extends Context.Tag("nightshift/JobStore")<JobStore, Service>() {}
