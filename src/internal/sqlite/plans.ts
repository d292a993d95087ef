/**
 * Pure preparation of batched writes: times, and the JSON rows that the
 * settle statement reads through `json_each`.
 */
import type * as Core from "../store/core.js"

/** `now + ms` as an integer epoch ms (backoff delays may be fractional). */
export const after = (now: number, ms: number): number => Math.ceil(now + Math.max(0, ms))

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
