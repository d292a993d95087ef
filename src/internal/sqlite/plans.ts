/**
 * Pure preparation of batched writes: the JSON rows that one SQL statement
 * reads through `json_each`.
 */
import type * as JobStore from "../../JobStore.js"
import type * as Core from "../store/core.js"

/** `now + ms` as an integer epoch ms (backoff delays may be fractional). */
export const after = (now: number, ms: number): number => Math.ceil(now + Math.max(0, ms))

/**
 * One row for the bulk insert:
 * `[id, kind, queue, payload, state, priority, max_attempts, run_at, dedupe_key, trace_id, span_id]`.
 */
export const insertRow = (id: number, now: number, job: JobStore.EnqueueInput): ReadonlyArray<unknown> => {
  const runAt = job.runAt !== undefined ? Math.ceil(job.runAt) : after(now, job.delayMs ?? 0)
  return [
    id,
    job.kind,
    job.queue,
    job.payload === undefined ? null : JSON.stringify(job.payload),
    runAt > now ? "scheduled" : "available",
    job.priority,
    job.maxAttempts,
    runAt,
    job.dedupeKey ?? null,
    job.traceId ?? null,
    job.spanId ?? null
  ]
}

/**
 * One row for the batched settle:
 * `[id, fence, state, run_at | null, uncount, final, error_kind | null, error_message | null]`.
 * `run_at` null keeps the job's run-at; `uncount` 1 takes back the attempt
 * the claim counted (snooze, release).
 */
export const settleRow = (
  now: number,
  { change, num, settlement }: Core.Applicable
): ReadonlyArray<unknown> => [
  num,
  settlement.fence,
  change.state,
  change.delayMs === null ? null : after(now, change.delayMs),
  change.uncount,
  change.final ? 1 : 0,
  change.error?.kind ?? null,
  change.error?.message ?? null
]
