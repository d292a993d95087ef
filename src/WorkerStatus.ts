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
