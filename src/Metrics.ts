/**
 * The job metrics Nightshift records, as Effect `Metric`s. They are exported
 * by whatever metrics backend the host provides (`@effect/opentelemetry`), and
 * served as Prometheus text by the admin API.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

/** Jobs enqueued, by `kind` and `deduped`. @since 0.1.0 */
export const jobsEnqueued = Metric.counter("nightshift_jobs_enqueued_total", {
  description: "Jobs enqueued (deduped=true when folded into an existing job)",
  incremental: true
})

/** Finished attempts, by `kind` and `outcome` (completed, retry, discard, snooze, cancelled, release). @since 0.1.0 */
export const jobAttempts = Metric.counter("nightshift_job_attempts_total", {
  description: "Finished job attempts by kind and outcome",
  incremental: true
})

/** Attempt duration in seconds, by `kind`. @since 0.1.0 */
export const jobDuration = Metric.histogram(
  "nightshift_job_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
  "Job attempt duration"
)

/** Jobs per `queue` and `state`, sampled by the runner. @since 0.1.0 */
export const queueDepth = Metric.gauge("nightshift_queue_depth", { description: "Jobs per queue and state" })

/** Jobs rescued after their lease expired. @since 0.1.0 */
export const jobsRescued = Metric.counter("nightshift_jobs_rescued_total", {
  description: "Jobs whose lease expired and were rescued",
  incremental: true
})

/** Jobs currently running in this process. @since 0.1.0 */
export const jobsRunning = Metric.gauge("nightshift_jobs_running", {
  description: "Jobs running in this process"
})

const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const tags = (a: string, av: string, b?: string, bv?: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  const key = `${a}\u0000${av}\u0000${b}\u0000${bv}`
  let l = labels.get(key)
  if (l === undefined) {
    l = b === undefined ? [MetricLabel.make(a, av)] : [MetricLabel.make(a, av), MetricLabel.make(b, bv ?? "")]
    if (labels.size < 10_000) labels.set(key, l)
  }
  return l
}

/** Record an enqueue. @internal */
export const enqueued = (kind: string, deduped: boolean): Effect.Effect<void> =>
  Effect.sync(() => jobsEnqueued.unsafeUpdate(1, tags("kind", kind, "deduped", String(deduped))))

/** Record a finished attempt, synchronously (for the runner's hot path). @internal */
export const unsafeAttempt = (kind: string, outcome: string, durationMs: number): void => {
  jobAttempts.unsafeUpdate(1, tags("kind", kind, "outcome", outcome))
  jobDuration.unsafeUpdate(durationMs / 1000, tags("kind", kind))
}

/** Record a finished attempt. @internal */
export const attempt = (kind: string, outcome: string, durationMs: number): Effect.Effect<void> =>
  Effect.sync(() => unsafeAttempt(kind, outcome, durationMs))

/** Record a queue depth sample. @internal */
export const depth = (queue: string, state: string, count: number): Effect.Effect<void> =>
  Effect.sync(() => queueDepth.unsafeUpdate(count, tags("queue", queue, "state", state)))

/** Record rescued jobs. @internal */
export const rescued = (kind: string, n: number): Effect.Effect<void> =>
  Effect.sync(() => jobsRescued.unsafeUpdate(n, tags("kind", kind)))

/** Record the number of running jobs, synchronously (for the runner's hot path). @internal */
export const unsafeRunning = (owner: string, n: number): void =>
  jobsRunning.unsafeUpdate(n, tags("runner", owner))

/** Record the number of running jobs. @internal */
export const running = (owner: string, n: number): Effect.Effect<void> =>
  Effect.sync(() => unsafeRunning(owner, n))
