/**
 * The status table of a crew: one plain, JSON-ready record per worker.
 *
 * Times are epoch milliseconds from Effect's `Clock` (so `TestClock` drives
 * them), `null` when the event has not happened; the last error is a
 * pretty-printed `Cause`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as core from "./internal/worker/core.js"

/**
 * What a worker is doing now.
 *
 * - `starting`: launched, its program has not begun yet;
 * - `running`: its program runs (for a periodic worker: a tick is running);
 * - `idle`: a periodic worker between ticks, or a consumer waiting for items;
 * - `backing off`: waiting out the backoff before a restart;
 * - `stopped`: finished and not restarted, or shut down;
 * - `failed`: gave up (restart intensity exceeded, a temporary worker failed,
 *   or it did not stop within its shutdown timeout).
 *
 * @since 0.1.0
 */
export const State = Schema.Literal("starting", "running", "idle", "backing off", "stopped", "failed")

/** @since 0.1.0 */
export type State = typeof State.Type

/**
 * The kind of a worker.
 *
 * @since 0.1.0
 */
export const Kind = Schema.Literal("long-running", "periodic", "consumer", "batch", "crew")

/** @since 0.1.0 */
export type Kind = typeof Kind.Type

const Millis = Schema.NullOr(Schema.Number)

/**
 * One row of the status table.
 *
 * Counts are per tick for periodic workers, per item for consumers, per batch
 * for batch consumers and per run for long-running workers and crews.
 *
 * @since 0.1.0
 */
export const WorkerStatus = Schema.Struct({
  /** Full name: nested workers are `"parent/child"`. */
  name: Schema.String,
  kind: Kind,
  state: State,
  /** `"permanent"`, `"transient"` or `"temporary"`. */
  restart: Schema.Literal("permanent", "transient", "temporary"),
  /** Description of the schedule of a periodic worker. */
  schedule: Schema.NullOr(Schema.String),
  /** When the next scheduled tick is due. */
  nextTickAt: Millis,
  /** When a worker that is backing off restarts. */
  nextRestartAt: Millis,
  lastStartAt: Millis,
  lastFinishAt: Millis,
  lastSuccessAt: Millis,
  lastFailureAt: Millis,
  /** The last failure, as a pretty-printed cause. */
  lastError: Schema.NullOr(Schema.String),
  runs: Schema.Number,
  successes: Schema.Number,
  failures: Schema.Number,
  /** Ticks skipped by the `shouldRun` gate or because another replica held the lock. */
  skips: Schema.Number,
  consecutiveFailures: Schema.Number,
  restarts: Schema.Number
})

/** @since 0.1.0 */
export type WorkerStatus = typeof WorkerStatus.Type

/**
 * One recorded tick of a periodic worker: when it started (epoch ms), how
 * long it took (ms), whether it was forced (`Handle.tick`, the admin API),
 * and its outcome (a failure carries its pretty-printed cause).
 *
 * @since 0.1.0
 */
export const TickRecord = Schema.Struct({
  startedAt: Schema.Number,
  durationMs: Schema.Number,
  forced: Schema.Boolean,
  outcome: core.TickOutcome
})

/** @since 0.1.0 */
export type TickRecord = typeof TickRecord.Type

/**
 * Why a worker was restarted: its run `failed`, it `exited` (a permanent
 * worker whose program ended), a restart was `requested` (`Handle.restart`,
 * the admin API), or it `gave up` instead (restart intensity exceeded or its
 * backoff schedule ended).
 *
 * @since 0.1.0
 */
export const RestartReason = Schema.Literal("failed", "exited", "requested", "gave up")

/** @since 0.1.0 */
export type RestartReason = typeof RestartReason.Type

/**
 * One restart of a worker (or its giving up). `at` is when its run ended or
 * the restart was asked for; `attempt` the restart attempt of the run that
 * ended (0: the first run); `error` the run's failure, pretty-printed (or,
 * for `gave up`, why); `backoffMs` and `restartAt` the backoff waited before
 * the new run (`null` when it restarted at once, or not at all).
 *
 * @since 0.1.0
 */
export const RestartRecord = Schema.Struct({
  at: Schema.Number,
  reason: RestartReason,
  attempt: Schema.Number,
  error: Schema.NullOr(Schema.String),
  backoffMs: Schema.NullOr(Schema.Number),
  restartAt: Schema.NullOr(Schema.Number)
})

/** @since 0.1.0 */
export type RestartRecord = typeof RestartRecord.Type

/**
 * A worker's recent history, newest first: its last ticks (periodic workers
 * only; up to `ticksKept`, of `ticksRecorded` since the worker was added)
 * and its last restarts (up to `restartsKept`).
 *
 * @since 0.1.0
 */
export const WorkerHistory = Schema.Struct({
  name: Schema.String,
  kind: Kind,
  ticks: Schema.Array(TickRecord),
  ticksRecorded: Schema.Number,
  ticksKept: Schema.Number,
  restarts: Schema.Array(RestartRecord),
  restartsKept: Schema.Number
})

/** @since 0.1.0 */
export type WorkerHistory = typeof WorkerHistory.Type

/**
 * A node of the supervision tree: a worker, how it is supervised, and the
 * workers it supervises (a crew's workers, or the children a worker added
 * with `Children`), in start order.
 *
 * @since 0.1.0
 */
export interface TreeNode {
  /** Full name (`"app/inner/flaky"`). */
  readonly name: string
  readonly kind: Kind
  readonly state: State
  readonly restart: WorkerStatus["restart"]
  readonly maxRestarts: number
  readonly restartWindowMs: number
  readonly onMaxRestarts: "escalate" | "stop"
  readonly children: ReadonlyArray<TreeNode>
}

/**
 * The schema of a supervision tree node.
 *
 * @since 0.1.0
 */
export const TreeNode: Schema.Schema<TreeNode> = Schema.Struct({
  name: Schema.String,
  kind: Kind,
  state: State,
  restart: Schema.Literal("permanent", "transient", "temporary"),
  maxRestarts: Schema.Number,
  restartWindowMs: Schema.Number,
  onMaxRestarts: Schema.Literal("escalate", "stop"),
  children: Schema.Array(Schema.suspend((): Schema.Schema<TreeNode> => TreeNode))
}).annotations({ identifier: "WorkerTreeNode" })
