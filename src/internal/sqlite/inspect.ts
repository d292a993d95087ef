/**
 * Pruning finished jobs (reading them is shared with PostgreSQL, in
 * `../store/statements.ts`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"

/** Delete final jobs past their state's retention, oldest first, at most `limit`. */
export const prune = (sql: SqlClient.SqlClient, request: JobStore.PruneRequest) =>
  Effect.gen(function* () {
    if (request.limit <= 0) return 0
    const now = yield* Clock.currentTimeMillis
    const cutoff = (ageMs: number) => (Number.isFinite(ageMs) ? now - ageMs : Number.MIN_SAFE_INTEGER)
    const arm = (state: string, ageMs: number) =>
      sql`SELECT id FROM nightshift_jobs WHERE state = ${state} AND finalized_at < ${cutoff(ageMs)}`
    // A final row without a finish time (written by hand) is aged from its
    // latest attempt, or else its creation; nightshift_jobs_unfinalized
    // (migration 2) holds only such rows, and this arm's WHERE names its terms.
    const unfinalized = sql`SELECT id FROM nightshift_jobs
      WHERE finalized_at IS NULL AND state IN ('completed', 'discarded', 'cancelled')
        AND coalesce(attempted_at, created_at) < CASE state WHEN 'completed' THEN ${cutoff(request.completedMs)}
          WHEN 'discarded' THEN ${cutoff(request.discardedMs)} ELSE ${cutoff(request.cancelledMs)} END`
    const rows = yield* sql<{ id: number }>`DELETE FROM nightshift_jobs WHERE id IN (
      SELECT id FROM (${arm("completed", request.completedMs)} UNION ALL ${arm("discarded", request.discardedMs)}
        UNION ALL ${arm("cancelled", request.cancelledMs)} UNION ALL ${unfinalized}) LIMIT ${Math.floor(request.limit)})
      RETURNING id`
    // Old cron slot records go too, except the latest of each name (as on PostgreSQL).
    yield* sql`DELETE FROM nightshift_cron_slots WHERE (name, slot) IN (
      SELECT o.name, o.slot FROM nightshift_cron_slots o
      WHERE o.created_at < ${cutoff(request.completedMs)}
        AND o.slot < (SELECT max(m.slot) FROM nightshift_cron_slots m WHERE m.name = o.name)
      LIMIT ${Math.floor(request.limit)})`
    return rows.length
  })
