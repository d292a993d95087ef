/**
 * The mutable job row the memory engine keeps, and its immutable snapshot.
 *
 * @internal
 */
import type * as JobStore from "../../JobStore.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A stored job. `seq` changes on every move, so older index entries go stale. @internal */
export interface Row extends Mutable<JobStore.JobRecord> {
  readonly num: number
  seq: number
  deleted: boolean
}

const noErrors: ReadonlyArray<JobStore.AttemptError> = []

/** A new row for an enqueue at `now`. @internal */
export const makeRow = (num: number, input: JobStore.EnqueueInput, now: number): Row => {
  const runAt = input.runAt ?? now + (input.delayMs ?? 0)
  return {
    num,
    seq: 0,
    deleted: false,
    id: String(num),
    kind: input.kind,
    queue: input.queue,
    payload: input.payload,
    state: runAt > now ? "scheduled" : "available",
    priority: input.priority,
    attempt: 0,
    maxAttempts: input.maxAttempts,
    runAt,
    createdAt: now,
    attemptedAt: null,
    finalizedAt: null,
    leaseOwner: null,
    leaseExpiresAt: null,
    fence: 0,
    dedupeKey: input.dedupeKey ?? null,
    partition: input.partition ?? null,
    cancelRequested: false,
    errors: noErrors,
    traceId: input.traceId ?? null,
    spanId: input.spanId ?? null
  }
}

/** An immutable copy handed to callers. @internal */
export const snapshot = (row: Row): JobStore.JobRecord => ({
  id: row.id,
  kind: row.kind,
  queue: row.queue,
  payload: row.payload,
  state: row.state,
  priority: row.priority,
  attempt: row.attempt,
  maxAttempts: row.maxAttempts,
  runAt: row.runAt,
  createdAt: row.createdAt,
  attemptedAt: row.attemptedAt,
  finalizedAt: row.finalizedAt,
  leaseOwner: row.leaseOwner,
  leaseExpiresAt: row.leaseExpiresAt,
  fence: row.fence,
  dedupeKey: row.dedupeKey,
  partition: row.partition,
  cancelRequested: row.cancelRequested,
  errors: row.errors,
  traceId: row.traceId,
  spanId: row.spanId
})
