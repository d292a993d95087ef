/**
 * The job row as SQLite returns it, and its mapping to `JobRecord`.
 */
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"

/** The columns of `nightshift_jobs`, in the order `JobValues` lists them. */
export const jobColumns =
  "id, kind, queue, payload, state, priority, attempt, max_attempts, run_at, created_at, attempted_at, " +
  "finalized_at, lease_owner, lease_expires_at, fence, dedupe_key, cancel_requested, errors, trace_id, span_id, " +
  "partition_key"

/**
 * One row of `nightshift_jobs` as an array in `jobColumns` order: rows are
 * read with `.values`, which spares better-sqlite3 building an object per row.
 */
export type JobValues = readonly [
  id: number,
  kind: string,
  queue: string,
  payload: string | null,
  state: JobStore.JobState,
  priority: number,
  attempt: number,
  maxAttempts: number,
  runAt: number,
  createdAt: number,
  attemptedAt: number | null,
  finalizedAt: number | null,
  leaseOwner: string | null,
  leaseExpiresAt: number | null,
  fence: number,
  dedupeKey: string | null,
  cancelRequested: number,
  errors: string,
  traceId: string | null,
  spanId: string | null,
  partition: string | null
]

const noErrors: ReadonlyArray<JobStore.AttemptError> = []

/**
 * The payload column as a value. Text that is not JSON (not written by this
 * engine) is returned as is: the kind's payload schema then fails to decode
 * it and that one job is discarded with a decode error, instead of the
 * whole batch failing.
 */
const parsePayload = (text: string | null): unknown => {
  if (text === null) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The errors column as a list; text that is not a JSON list becomes one entry that quotes it. */
const parseErrors = (text: string, attempt: number): ReadonlyArray<JobStore.AttemptError> => {
  if (text === "[]") return noErrors
  try {
    const errors: unknown = JSON.parse(text)
    if (Array.isArray(errors)) return errors
  } catch {
    // fall through
  }
  return [
    {
      attempt,
      at: 0,
      kind: "unreadable",
      message: `the errors column holds text that is not a JSON list: ${text}`
    }
  ]
}

/** Map a row to a record. Each row's JSON is parsed on its own: a corrupt row never fails the others. */
export const toRecord = (row: ReadonlyArray<unknown>): JobStore.JobRecord => {
  const v = row as JobValues
  return {
    id: String(v[0]),
    kind: v[1],
    queue: v[2],
    payload: parsePayload(v[3]),
    state: v[4],
    priority: v[5],
    attempt: v[6],
    maxAttempts: v[7],
    runAt: v[8],
    createdAt: v[9],
    attemptedAt: v[10],
    finalizedAt: v[11],
    leaseOwner: v[12],
    leaseExpiresAt: v[13],
    fence: v[14],
    dedupeKey: v[15],
    cancelRequested: v[16] !== 0,
    errors: parseErrors(v[17], v[6]),
    traceId: v[18],
    spanId: v[19],
    partition: v[20]
  }
}

/** Map rows read with `.values` to records. */
export const decode = (rows: ReadonlyArray<ReadonlyArray<unknown>>) =>
  Effect.try({
    try: () => rows.map(toRecord),
    catch: (cause) =>
      new JobStore.JobStoreError({
        message: "a row of nightshift_jobs holds JSON this engine did not write (payload or errors column)",
        cause
      })
  })
