/**
 * The runner's hot path after the claim (`claim.ts`): heartbeat, settle,
 * and the rescue of expired leases. Each is one statement whatever the
 * batch size.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import { latestLeaseEnd, storableLease } from "../store/leases.js"
import type { Exec } from "./db.js"
import * as Plans from "./plans.js"

/**
 * The errors column as a JSON list: text that is not JSON, or JSON that is
 * not a list (written by hand), becomes one entry that quotes it, so that an
 * error appended to it is kept. (Nested CASEs: SQLite does not promise to
 * short-circuit AND, and json_type fails on text that is not JSON.)
 */
export const errorList = `CASE WHEN json_valid(errors) THEN CASE WHEN json_type(errors) = 'array' THEN errors
    ELSE json_array(json_object('attempt', attempt, 'at', 0, 'kind', 'unreadable',
      'message', 'the errors column held JSON that is not a list: ' || substr(errors, 1, 2000))) END
  ELSE json_array(json_object('attempt', attempt, 'at', 0, 'kind', 'unreadable',
    'message', 'the errors column held text that is not JSON: ' || substr(errors, 1, 2000))) END`

/** Extend held leases (to now + `leaseMs`, clamped to `JobStore.maxLeaseMs`); report lost ones with their cancel flag. */
export const heartbeat = (
  sql: SqlClient.SqlClient,
  owner: string,
  leases: ReadonlyArray<JobStore.Lease>,
  leaseMs: number
) =>
  Effect.gen(function* () {
    if (leases.length === 0) return []
    const now = yield* Clock.currentTimeMillis
    const batch = JSON.stringify(leases.map((lease) => [Core.parseId(lease.id) ?? 0, lease.fence]))
    const held = yield* sql<{ id: number; cancel_requested: number }>`UPDATE nightshift_jobs AS j
      SET lease_expires_at = ${Plans.after(now, storableLease(leaseMs))}
      FROM (SELECT value ->> 0 AS id, value ->> 1 AS fence FROM json_each(${batch})) AS s
      WHERE j.id = s.id AND j.fence = s.fence AND +j.state = 'running' AND j.lease_owner = ${owner}
      RETURNING id, cancel_requested`
    const cancel = new Map(held.map((row) => [String(row.id), row.cancel_requested !== 0]))
    const lost =
      held.length < leases.length ? yield* lostLeases(sql, leases, cancel) : new Map<string, boolean>()
    return leases.map(
      (lease): JobStore.LeaseStatus =>
        cancel.has(lease.id)
          ? { id: lease.id, held: true, cancelRequested: cancel.get(lease.id)! }
          : { id: lease.id, held: false, cancelRequested: lost.get(lease.id) ?? false }
    )
  })

/** Cancel flags of leases not held any more but still under the same fence. */
const lostLeases = (
  sql: SqlClient.SqlClient,
  leases: ReadonlyArray<JobStore.Lease>,
  held: ReadonlyMap<string, boolean>
) =>
  Effect.gen(function* () {
    const lost = leases.filter((lease) => !held.has(lease.id))
    const batch = JSON.stringify(lost.map((lease) => [Core.parseId(lease.id) ?? 0, lease.fence]))
    const rows = yield* sql<{ id: number; cancel_requested: number }>`SELECT j.id, j.cancel_requested
      FROM json_each(${batch}) AS s JOIN nightshift_jobs AS j ON j.id = s.value ->> 0 AND j.fence = s.value ->> 1`
    return new Map(rows.map((row) => [String(row.id), row.cancel_requested !== 0]))
  })

/*
 * The batch statements below (and the heartbeat above) test `+j.state`: the
 * unary plus keeps SQLite from reading the running jobs through their
 * partial index and probing the batch for each. With statistics from an
 * `ANALYZE` (or `PRAGMA optimize`) taken while few jobs ran, it chose that
 * plan, and a drain ran 3 times slower (bench:churn); the batch's rows must
 * be the outer loop, each job found by its id.
 */

/**
 * Completions, the common outcome, in a leaner statement than `settleText`:
 * two values per job instead of eight, and no expression per column
 * (`settleText` makes the same change for them). A completed job keeps
 * its lease owner: the runner that ran its last attempt. Parameters: now, the
 * `[[id, fence], …]` list.
 */
export const completeText = `UPDATE nightshift_jobs AS j
  SET state = 'completed', finalized_at = ?, lease_expires_at = NULL
  FROM (SELECT value ->> 0 AS id, value ->> 1 AS fence FROM json_each(?)) AS s
  WHERE j.id = s.id AND j.fence = s.fence AND +j.state = 'running'
  RETURNING id`

/**
 * Any outcome. A pending cancel wins over an outcome that would run the job
 * again. Parameters: now, now, the rows of `Plans.settleRow`.
 */
export const settleText = `UPDATE nightshift_jobs AS j
  SET state = CASE WHEN j.cancel_requested <> 0 AND s.final = 0 THEN 'cancelled' ELSE s.state END,
    attempt = j.attempt - s.uncount,
    run_at = CASE WHEN j.cancel_requested <> 0 AND s.final = 0 THEN j.run_at ELSE coalesce(s.run_at, j.run_at) END,
    finalized_at = CASE WHEN s.final <> 0 OR j.cancel_requested <> 0 THEN ? ELSE NULL END,
    lease_owner = CASE WHEN s.state = 'completed' THEN j.lease_owner END, lease_expires_at = NULL,
    errors = CASE WHEN s.error_kind IS NULL THEN j.errors ELSE json_insert(CASE WHEN json_valid(j.errors) THEN j.errors
      ELSE json_array(json_object('attempt', j.attempt, 'at', 0, 'kind', 'unreadable',
        'message', 'the errors column held text that is not JSON: ' || j.errors)) END, '$[#]',
      json_object('attempt', j.attempt, 'at', ?, 'kind', s.error_kind, 'message', s.error_message,
        'startedAt', j.attempted_at, 'node', j.lease_owner)) END
  FROM (SELECT value ->> 0 AS id, value ->> 1 AS fence, value ->> 2 AS state, value ->> 3 AS run_at,
      value ->> 4 AS uncount, value ->> 5 AS final, value ->> 6 AS error_kind, value ->> 7 AS error_message
    FROM json_each(?)) AS s
  WHERE j.id = s.id AND j.fence = s.fence AND +j.state = 'running'
  RETURNING id, state, queue, run_at`

/**
 * Apply outcomes, each fenced by state and fence: completions in one
 * statement, other outcomes in another, both in one transaction when a
 * batch holds both. A later settlement of an id already in the batch is not
 * applied.
 */
export const settle = (exec: Exec, settlements: ReadonlyArray<JobStore.Settlement>) =>
  Effect.gen(function* () {
    if (settlements.length === 0) return { results: [], queues: [] }
    const now = yield* Clock.currentTimeMillis
    const completed: Array<readonly [number, number]> = []
    const others: Array<ReadonlyArray<unknown>> = []
    for (const one of Core.applicable(settlements)) {
      const { change } = one
      if (
        change.state === "completed" &&
        change.error === null &&
        change.delayMs === null &&
        change.uncount === 0
      )
        completed.push([one.num, one.settlement.fence])
      else others.push(Plans.settleRow(now, one))
    }
    const states = new Map<string, JobStore.JobState>()
    const queues: Array<string> = []
    const complete = Effect.gen(function* () {
      if (completed.length === 0) return
      const done = yield* exec.values(completeText, [now, JSON.stringify(completed)])
      for (const [id] of done) states.set(String(id), "completed")
    })
    const rest = Effect.gen(function* () {
      if (others.length === 0) return
      const applied = yield* exec.values(settleText, [now, now, JSON.stringify(others)])
      for (const [id, state, queue, runAt] of applied) {
        states.set(String(id), state as JobStore.JobState)
        // Jobs due again at once (released, snoozed or retried without delay) wake runners.
        if (Core.isWaiting(state as JobStore.JobState) && (runAt as number) <= now)
          queues.push(queue as string)
      }
    })
    yield* completed.length > 0 && others.length > 0
      ? exec.transaction(Effect.zipRight(complete, rest))
      : Effect.zipRight(complete, rest)
    return { results: Core.settleResults(settlements, states), queues }
  })

const rescued = Core.rescueMessageParts
const far = Core.farLeaseMessageParts

/**
 * End expired leases: retryable now, discarded when out of attempts,
 * cancelled when asked. A running job without a lease, or whose lease ends
 * later than now + `JobStore.maxLeaseMs` (no runner sets that), counts as
 * expired. The query walks the lease index, which holds only running rows,
 * in expiry order (as before the far-future condition was added).
 */
export const rescue = (sql: SqlClient.SqlClient, limit: number) =>
  Effect.gen(function* () {
    if (limit <= 0) return []
    const now = yield* Clock.currentTimeMillis
    const latest = latestLeaseEnd(now)
    const rows = yield* sql<{ id: number; kind: string; queue: string; state: JobStore.JobState }>`
      UPDATE nightshift_jobs SET
        state = CASE WHEN cancel_requested <> 0 THEN 'cancelled'
          WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
        run_at = CASE WHEN cancel_requested <> 0 OR attempt >= max_attempts THEN run_at ELSE ${now} END,
        finalized_at = CASE WHEN cancel_requested <> 0 OR attempt >= max_attempts THEN ${now} ELSE NULL END,
        errors = json_insert(${sql.literal(errorList)},
          '$[#]', json_object('attempt', attempt, 'at', ${now}, 'kind', ${Core.rescuedKind},
          'startedAt', attempted_at, 'node', lease_owner,
          'message', CASE WHEN lease_expires_at > ${latest}
            THEN ${far.before} || coalesce(lease_owner, ${far.unknownOwner}) || ${far.after}
            ELSE ${rescued.before} || coalesce(lease_owner, ${rescued.unknownOwner}) || ${rescued.after} END)),
        lease_owner = NULL, lease_expires_at = NULL
      WHERE id IN (SELECT id FROM nightshift_jobs
        WHERE state = 'running'
          AND (lease_expires_at <= ${now} OR lease_expires_at IS NULL OR lease_expires_at > ${latest})
        ORDER BY lease_expires_at, id LIMIT ${Math.floor(limit)})
      RETURNING id, kind, queue, state`
    return rows.map((row): JobStore.Rescued => ({ ...row, id: String(row.id) }))
  })
