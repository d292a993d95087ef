/**
 * Lease and counter bounds every engine applies the same way in claim,
 * heartbeat and rescue (see `JobStore.maxLeaseMs` and `JobStore.maxCounter`).
 *
 * @internal
 */
import * as JobStore from "../../JobStore.js"

/** A lease length as a store sets it: clamped to 0..`JobStore.maxLeaseMs` (NaN is 0). */
export const storableLease = (leaseMs: number): number =>
  Number.isNaN(leaseMs) ? 0 : Math.min(JobStore.maxLeaseMs, Math.max(0, leaseMs))

/**
 * The latest lease end a runner could have set by `now`: a running job
 * whose lease ends later is rescued as if it had expired.
 */
export const latestLeaseEnd = (now: number): number => now + JobStore.maxLeaseMs

/** Can a claim take a job with this fence (can it still be incremented)? */
export const claimableFence = (fence: number): boolean => fence < JobStore.maxCounter

/** The attempt a claim records: one more, but never past `JobStore.maxCounter`. */
export const nextAttempt = (attempt: number): number =>
  attempt < JobStore.maxCounter ? attempt + 1 : attempt

/** The error a job gets when its fence is at `JobStore.maxCounter` and a claim discards it. */
export const fenceExhausted = {
  kind: "fence",
  message: `its fence counter is at ${JobStore.maxCounter}, the most a job can hold, so it cannot be claimed again: it was discarded without running (enqueue it anew to run it)`
} as const

/** Is `fence` a value a lease can carry (an integer within every engine's range)? */
export const validFence = (fence: number): boolean =>
  Number.isInteger(fence) && fence >= -JobStore.maxCounter - 1 && fence <= JobStore.maxCounter

/**
 * A claimed job's errors as a list: a column holding JSON that is not a list
 * (written by hand) becomes one `unreadable` entry that quotes it, so the
 * handler gets the list it is typed with. (Reads for the admin API keep the
 * column as it is, so that they can name the problem.)
 */
export const claimedErrors = (errors: unknown, attempt: number): ReadonlyArray<JobStore.AttemptError> =>
  Array.isArray(errors)
    ? errors
    : [
        {
          attempt,
          at: 0,
          kind: "unreadable",
          message: `the errors column holds JSON that is not a list: ${String(JSON.stringify(errors)).slice(0, 2_000)}`
        }
      ]
