/**
 * Reading job rows: the select list and the row → `JobRecord` mapping.
 *
 * @internal
 */
import type * as JobStore from "../../JobStore.js"

/**
 * Every column of `jobs`, in table order (`jobs_done` has the same), as of
 * migration 8. Migrations 8 and 10 write functions that list them, so a
 * migration that adds a column must leave those two a copy of this list.
 */
export const jobColumns = [
  "id",
  "kind",
  "queue",
  "payload",
  "state",
  "priority",
  "attempt",
  "max_attempts",
  "run_at",
  "created_at",
  "attempted_at",
  "finalized_at",
  "lease_owner",
  "lease_expires_at",
  "fence",
  "dedupe_key",
  "cancel_requested",
  "errors",
  "trace_id",
  "span_id",
  "partition_key",
  "flow_shard"
] as const

const ms = (column: string) => `floor(extract(epoch from j.${column}) * 1000)::float8 AS ${column}`

/** Every column of `jobs` aliased `j`, with times as epoch milliseconds. */
export const columns = [
  "j.id::text AS id",
  "j.kind",
  "j.queue",
  "j.payload",
  "j.state",
  "j.priority",
  "j.attempt",
  "j.max_attempts",
  ms("run_at"),
  ms("created_at"),
  ms("attempted_at"),
  ms("finalized_at"),
  "j.lease_owner",
  ms("lease_expires_at"),
  "j.fence",
  "j.dedupe_key",
  "j.cancel_requested",
  "j.errors",
  "j.trace_id",
  "j.span_id",
  "j.partition_key"
].join(", ")

/** A row as selected with `columns`. */
export interface JobRow {
  readonly id: string
  readonly kind: string
  readonly queue: string
  readonly payload: unknown
  readonly state: JobStore.JobState
  readonly priority: number
  readonly attempt: number
  readonly max_attempts: number
  readonly run_at: number
  readonly created_at: number
  readonly attempted_at: number | null
  readonly finalized_at: number | null
  readonly lease_owner: string | null
  readonly lease_expires_at: number | null
  readonly fence: number
  readonly dedupe_key: string | null
  readonly cancel_requested: boolean
  readonly errors: ReadonlyArray<JobStore.AttemptError>
  readonly trace_id: string | null
  readonly span_id: string | null
  readonly partition_key: string | null
}

/** @internal */
export const toRecord = (row: JobRow): JobStore.JobRecord => ({
  id: row.id,
  kind: row.kind,
  queue: row.queue,
  payload: row.payload,
  state: row.state,
  priority: row.priority,
  attempt: row.attempt,
  maxAttempts: row.max_attempts,
  runAt: row.run_at,
  createdAt: row.created_at,
  attemptedAt: row.attempted_at,
  finalizedAt: row.finalized_at,
  leaseOwner: row.lease_owner,
  leaseExpiresAt: row.lease_expires_at,
  fence: row.fence,
  dedupeKey: row.dedupe_key,
  cancelRequested: row.cancel_requested,
  errors: row.errors,
  traceId: row.trace_id,
  spanId: row.span_id,
  partition: row.partition_key
})
