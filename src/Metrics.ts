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
import type * as JobStore from "./JobStore.js"

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

/**
 * Jobs per `queue` and `state`, for the states that make a queue's depth
 * (scheduled, available, running, retryable), sampled by the runner.
 *
 * @since 0.1.0
 */
export const queueDepth = Metric.gauge("nightshift_queue_depth", {
  description: "Jobs per queue and state (scheduled, available, running, retryable)"
})

/**
 * The store's table of live jobs (PostgreSQL's `jobs`), sampled by the
 * runner: `nightshift_store_rows{kind="live"|"dead"}` row versions (the
 * database's estimates; dead ones are what vacuum has yet to reclaim) and
 * `nightshift_store_bytes{table="live"|"live_indexes"|"finished"}`.
 *
 * @since 0.4.0
 */
export const storeRows = Metric.gauge("nightshift_store_rows", {
  description: "Row versions in the live jobs' table, live and dead (not yet vacuumed)"
})

/** See `storeRows`. @since 0.4.0 */
export const storeBytes = Metric.gauge("nightshift_store_bytes", {
  description: "Bytes of the live jobs' table, of its indexes, and of the finished jobs' table"
})

/**
 * Due jobs that flow control holds back now, by `queue`, `kind` and `reason`
 * (`partition at limit`, `global limit`, `rate limited`, `queue paused`):
 * the due jobs beyond the room their limits leave. Sampled by the runner
 * from the store, so every node reports the same cluster-wide figures.
 *
 * @since 0.2.0
 */
export const jobsThrottled = Metric.gauge("nightshift_jobs_throttled", {
  description: "Due jobs held back by flow control (or a paused queue), by queue, kind and reason"
})

/** Jobs rescued after their lease expired. @since 0.1.0 */
export const jobsRescued = Metric.counter("nightshift_jobs_rescued_total", {
  description: "Jobs whose lease expired and were rescued",
  incremental: true
})

/** Jobs currently running in this process. @since 0.1.0 */
export const jobsRunning = Metric.gauge("nightshift_jobs_running", {
  description: "Jobs running in this process"
})

/**
 * Label arrays, one per combination of values, so that each metric finds
 * its hook by array identity (Effect caches hooks per labels array): a
 * record costs one or two map lookups. At most `maxCached` arrays are kept
 * per label set; past that (a runaway number of kinds or queues) they are
 * built per record.
 */
type Labels = ReadonlyArray<MetricLabel.MetricLabel>
const maxCached = 10_000
const labels1 = (a: string) => {
  const cache = new Map<string, Labels>()
  return (av: string): Labels => {
    let l = cache.get(av)
    if (l === undefined) {
      l = [MetricLabel.make(a, av)]
      if (cache.size < maxCached) cache.set(av, l)
    }
    return l
  }
}
const labels2 = (a: string, b: string) => {
  const cache = new Map<string, Map<string, Labels>>()
  let size = 0
  return (av: string, bv: string): Labels => {
    let byB = cache.get(av)
    if (byB === undefined) {
      byB = new Map()
      if (size < maxCached) cache.set(av, byB)
    }
    let l = byB.get(bv)
    if (l === undefined) {
      l = [MetricLabel.make(a, av), MetricLabel.make(b, bv)]
      if (size < maxCached) {
        byB.set(bv, l)
        size++
      }
    }
    return l
  }
}
const kindDeduped = labels2("kind", "deduped")
const kindOutcome = labels2("kind", "outcome")
const queueState = labels2("queue", "state")
const byKind = labels1("kind")
const throttledLabels = (() => {
  const cache = new Map<string, Labels>()
  return (queue: string, kind: string, reason: string): Labels => {
    const key = JSON.stringify([queue, kind, reason])
    let l = cache.get(key)
    if (l === undefined) {
      l = [
        MetricLabel.make("queue", queue),
        MetricLabel.make("kind", kind),
        MetricLabel.make("reason", reason)
      ]
      if (cache.size < maxCached) cache.set(key, l)
    }
    return l
  }
})()
const byRunner = labels1("runner")

/** Record the enqueues of one call: one update per kind and `deduped` value. @internal */
export const unsafeEnqueuedBatch = (
  inputs: ReadonlyArray<{ readonly kind: string }>,
  results: ReadonlyArray<{ readonly deduped: boolean }>
): void => {
  // One update per run of equal (kind, deduped): a bulk enqueue is usually one run.
  let start = 0
  for (let i = 1; i <= inputs.length; i++) {
    if (
      i < inputs.length &&
      inputs[i]!.kind === inputs[start]!.kind &&
      results[i]!.deduped === results[start]!.deduped
    )
      continue
    jobsEnqueued.unsafeUpdate(i - start, kindDeduped(inputs[start]!.kind, String(results[start]!.deduped)))
    start = i
  }
}

/** Record a finished attempt, synchronously (for the runner's hot path). @internal */
export const unsafeAttempt = (kind: string, outcome: string, durationMs: number): void => {
  jobAttempts.unsafeUpdate(1, kindOutcome(kind, outcome))
  jobDuration.unsafeUpdate(durationMs / 1000, byKind(kind))
}

/** Record a finished attempt. @internal */
export const attempt = (kind: string, outcome: string, durationMs: number): Effect.Effect<void> =>
  Effect.sync(() => unsafeAttempt(kind, outcome, durationMs))

/** Record a queue depth sample. @internal */
export const depth = (queue: string, state: string, count: number): Effect.Effect<void> =>
  Effect.sync(() => queueDepth.unsafeUpdate(count, queueState(queue, state)))

/** Record a sample of the store's tables. @internal */
export const tables = (stats: JobStore.TableStats): Effect.Effect<void> =>
  Effect.sync(() => {
    storeRows.unsafeUpdate(stats.liveRows, tableLabels.live)
    storeRows.unsafeUpdate(stats.deadRows, tableLabels.dead)
    storeBytes.unsafeUpdate(stats.tableBytes, tableLabels.table)
    storeBytes.unsafeUpdate(stats.indexBytes, tableLabels.indexes)
    storeBytes.unsafeUpdate(stats.finishedBytes, tableLabels.finished)
  })

const tableLabels = {
  live: [MetricLabel.make("kind", "live")],
  dead: [MetricLabel.make("kind", "dead")],
  table: [MetricLabel.make("table", "live")],
  indexes: [MetricLabel.make("table", "live_indexes")],
  finished: [MetricLabel.make("table", "finished")]
}

/** Record a throttled-jobs sample. @internal */
export const throttled = (queue: string, kind: string, reason: string, count: number): Effect.Effect<void> =>
  Effect.sync(() => jobsThrottled.unsafeUpdate(count, throttledLabels(queue, kind, reason)))

/** Record rescued jobs. @internal */
export const rescued = (kind: string, n: number): Effect.Effect<void> =>
  Effect.sync(() => jobsRescued.unsafeUpdate(n, byKind(kind)))

/** Record the number of running jobs, synchronously (for the runner's hot path). @internal */
export const unsafeRunning = (owner: string, n: number): void => jobsRunning.unsafeUpdate(n, byRunner(owner))

/** Record the number of running jobs. @internal */
export const running = (owner: string, n: number): Effect.Effect<void> =>
  Effect.sync(() => unsafeRunning(owner, n))
