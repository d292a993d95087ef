import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

/**
 * Ticks by outcome (`success`, `failure`, `timeout`, `skipped`, `interrupted`).
 * Per-worker counts live in the status table; labelling by worker would make
 * 10,000 workers cost 50,000 series.
 */
export const ticks = Metric.counter("nightshift_worker_ticks_total", {
  description: "Periodic worker ticks by outcome",
  incremental: true
})

/** Tick duration in seconds, all workers together (one series keeps 10,000 workers cheap). */
export const tickDuration = Metric.histogram(
  "nightshift_worker_tick_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
  "Duration of periodic worker ticks"
)

/** Restarts by worker (built lazily, on the first restart of a worker). */
export const restarts = Metric.counter("nightshift_worker_restarts_total", {
  description: "Worker restarts by worker",
  incremental: true
})

/** Workers whose program is running now (not backing off, stopped or failed). */
export const running = Metric.gauge("nightshift_workers_running", {
  description: "Workers whose program is running"
})

const outcome = (value: string): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("outcome", value)
]

/**
 * The label set of each outcome, one array each: `ticks.unsafeUpdate(1,
 * tickLabels.success)` finds its series by the array's identity, where a
 * `Metric.tagged(ticks, ...)` counter builds a fresh label array on every
 * update and looks the series up by hashing its key (about 1 µs a tick).
 */
export const tickLabels = {
  success: outcome("success"),
  failure: outcome("failure"),
  timeout: outcome("timeout"),
  skipped: outcome("skipped"),
  interrupted: outcome("interrupted")
}
