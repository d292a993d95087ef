/**
 * Operator controls: cancel, retry, pause and resume.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import { activeStates, finalStates, parseId, waitingStates } from "./rows.js"

/** Cancel a waiting job, or flag a running one for its runner. */
export const cancel = (sql: SqlClient.SqlClient, id: string) =>
  Effect.gen(function* () {
    const n = parseId(id)
    if (n === undefined) return { _tag: "not-found" } as const
    const now = yield* Clock.currentTimeMillis
    const queued = yield* sql`UPDATE nightshift_jobs SET state = 'cancelled', finalized_at = ${now}
      WHERE id = ${n} AND state IN ${sql.literal(waitingStates)} RETURNING id`
    if (queued.length > 0) return { _tag: "cancelled" } as const
    const running = yield* sql<{
      lease_owner: string | null
    }>`UPDATE nightshift_jobs SET cancel_requested = 1
      WHERE id = ${n} AND state = 'running' RETURNING lease_owner`
    if (running.length > 0) return { _tag: "requested", owner: running[0]!.lease_owner } as const
    const [row] = yield* sql<{
      state: JobStore.JobState
    }>`SELECT state FROM nightshift_jobs WHERE id = ${n}`
    return row === undefined
      ? ({ _tag: "not-found" } as const)
      : ({ _tag: "final", state: row.state } as const)
  }) satisfies Effect.Effect<JobStore.CancelResult, SqlError>

/** A final job becomes available unless another active job holds its dedupe key. */
export const retry = (sql: SqlClient.SqlClient, id: string) =>
  Effect.gen(function* () {
    const n = parseId(id)
    if (n === undefined) return { result: { _tag: "not-found" } as JobStore.RetryResult, queue: undefined }
    const now = yield* Clock.currentTimeMillis
    const [retried] = yield* sql<{ queue: string }>`UPDATE nightshift_jobs AS j
      SET state = 'available', run_at = ${now}, finalized_at = NULL, cancel_requested = 0,
        max_attempts = max(max_attempts, attempt + 1)
      WHERE id = ${n} AND state IN ${sql.literal(finalStates)}
        AND (dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM nightshift_jobs AS o
          WHERE o.kind = j.kind AND o.dedupe_key = j.dedupe_key AND o.state IN ${sql.literal(activeStates)}))
      RETURNING queue`
    if (retried !== undefined)
      return { result: { _tag: "retried" } as JobStore.RetryResult, queue: retried.queue }
    const [row] = yield* sql<{
      state: JobStore.JobState
    }>`SELECT state FROM nightshift_jobs WHERE id = ${n}`
    const result: JobStore.RetryResult =
      row === undefined ? { _tag: "not-found" } : { _tag: "not-retryable", state: row.state }
    return { result, queue: undefined }
  })

/** Pause a queue (idempotent): claims skip it. */
export const pause = (sql: SqlClient.SqlClient, queue: string) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.asVoid(sql`INSERT INTO nightshift_paused_queues (queue, paused_at) VALUES (${queue}, ${now})
      ON CONFLICT DO NOTHING`)
  )

/** Resume a queue; true when it was paused. */
export const resume = (sql: SqlClient.SqlClient, queue: string) =>
  Effect.map(
    sql`DELETE FROM nightshift_paused_queues WHERE queue = ${queue} RETURNING queue`,
    (rows) => rows.length > 0
  )

/** Paused queues, in code-point order of their names. */
export const paused = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ queue: string }>`SELECT queue FROM nightshift_paused_queues ORDER BY queue`, (rows) =>
    rows.map((row) => row.queue)
  )
