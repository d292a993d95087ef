/**
 * Pure preparation of batched writes: the JSON rows that one SQL statement
 * reads through `json_each`.
 */
import type * as JobStore from "../../JobStore.js"
import { storableOutcome } from "../store/outcome.js"

/** `now + ms` as an integer epoch ms (backoff delays may be fractional). */
export const after = (now: number, ms: number): number => Math.ceil(now + Math.max(0, ms))

/**
 * Jobs of one enqueue call with in-call duplicates folded: `unique` holds the
 * first job of each (kind, dedupe key); `slot[i]` is the index in `unique`
 * that input `i` maps to, and `folded[i]` says whether it was a duplicate.
 */
export interface Folded {
  readonly unique: ReadonlyArray<JobStore.EnqueueInput>
  readonly slot: ReadonlyArray<number>
  readonly folded: ReadonlyArray<boolean>
}

/** Fold jobs that repeat the kind and dedupe key of an earlier job in the call. */
export const fold = (jobs: ReadonlyArray<JobStore.EnqueueInput>): Folded => {
  const unique: Array<JobStore.EnqueueInput> = []
  const slot: Array<number> = []
  const folded: Array<boolean> = []
  const seen = new Map<string, number>()
  for (const job of jobs) {
    const key = job.dedupeKey === undefined ? undefined : JSON.stringify([job.kind, job.dedupeKey])
    const first = key === undefined ? undefined : seen.get(key)
    if (first !== undefined) {
      slot.push(first)
      folded.push(true)
      continue
    }
    if (key !== undefined) seen.set(key, unique.length)
    slot.push(unique.length)
    folded.push(false)
    unique.push(job)
  }
  return { unique, slot, folded }
}

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
  id: number,
  now: number,
  settlement: JobStore.Settlement
): ReadonlyArray<unknown> => {
  const { fence } = settlement
  const outcome = storableOutcome(settlement.outcome)
  switch (outcome._tag) {
    case "completed":
      return [id, fence, "completed", null, 0, 1, null, null]
    case "retry":
      return [
        id,
        fence,
        "retryable",
        after(now, outcome.delayMs),
        0,
        0,
        outcome.error.kind,
        outcome.error.message
      ]
    case "discard":
      return [id, fence, "discarded", null, 0, 1, outcome.error.kind, outcome.error.message]
    case "snooze":
      return [
        id,
        fence,
        outcome.delayMs > 0 ? "scheduled" : "available",
        after(now, outcome.delayMs),
        1,
        0,
        null,
        null
      ]
    case "cancelled":
      return [id, fence, "cancelled", null, 0, 1, outcome.error?.kind ?? null, outcome.error?.message ?? null]
    case "release":
      return [id, fence, "available", null, 1, 0, null, null]
  }
}
