/**
 * Inserting jobs: bulk insert with dedupe folded inside the call and into
 * stored active jobs, and cron slots taken once.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import * as Statements from "../store/statements.js"
import * as Plans from "./plans.js"

const json = (value: unknown) =>
  Effect.try({
    try: () => JSON.stringify(value),
    catch: (cause) =>
      new JobStore.JobStoreError({
        message: `a job payload is not JSON-serialisable (encode it with its kind's Schema first): ${cause}`,
        cause
      })
  })

/** Insert jobs inside the caller's transaction; results in input order. */
export const insert = (sql: SqlClient.SqlClient, now: number, jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
  Effect.gen(function* () {
    const folded = Core.foldDuplicates(jobs)
    const { unique } = folded
    // The first statement writes, so the transaction takes the write lock at once.
    const [counter] = yield* sql<{ value: number }>`UPDATE nightshift_counters
      SET value = value + ${unique.length} WHERE name = 'job_id' RETURNING value`
    const first = counter!.value - unique.length + 1
    const plan = unique.map((job, i) => Plans.insertRow(first + i, now, job))
    const rows = yield* json(plan)
    const inserted = yield* sql`INSERT INTO nightshift_jobs
      (id, kind, queue, payload, state, priority, max_attempts, run_at, dedupe_key, trace_id, span_id, created_at)
      SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6,
        value ->> 7, value ->> 8, value ->> 9, value ->> 10, ${now}
      FROM json_each(${rows}) WHERE true ORDER BY key
      ON CONFLICT DO NOTHING RETURNING id`.values
    const ids = unique.map((_, i) => first + i)
    const isNew = unique.map(() => true)
    if (inserted.length < unique.length) {
      const holders = yield* existingHolders(
        sql,
        unique,
        new Set(inserted.map((row) => row[0] as number)),
        first
      )
      for (const [i, id] of holders) {
        ids[i] = id
        isNew[i] = false
      }
    }
    return {
      results: Core.unfold(
        folded,
        ids.map((id, s): JobStore.EnqueueResult => ({ id: String(id), deduped: !isNew[s] }))
      ),
      queues: plan.flatMap((row, i) => (isNew[i] && row[4] === "available" ? [row[2] as string] : []))
    }
  })

/** The active jobs that the jobs not inserted were folded into: `[index in unique, id]`. */
const existingHolders = (
  sql: SqlClient.SqlClient,
  unique: ReadonlyArray<JobStore.EnqueueInput>,
  inserted: Set<number>,
  first: number
) =>
  Effect.gen(function* () {
    const missing = unique.flatMap((_, i) => (inserted.has(first + i) ? [] : [i]))
    const keys = JSON.stringify(missing.map((i) => [unique[i]!.kind, unique[i]!.dedupeKey]))
    const rows = yield* sql<{
      id: number
      kind: string
      dedupe_key: string
    }>`SELECT j.id, j.kind, j.dedupe_key
      FROM json_each(${keys}) AS s JOIN nightshift_jobs AS j
        ON j.kind = s.value ->> 0 AND j.dedupe_key = s.value ->> 1
      WHERE j.dedupe_key IS NOT NULL AND j.state IN ${sql.literal(Core.activeList)}`
    const byKey = new Map(rows.map((row) => [JSON.stringify([row.kind, row.dedupe_key]), row.id]))
    return yield* Effect.forEach(missing, (i) => {
      const id = byKey.get(JSON.stringify([unique[i]!.kind, unique[i]!.dedupeKey]))
      return id === undefined
        ? Effect.fail(
            new JobStore.JobStoreError({
              message: `job ${i} of the batch (kind "${unique[i]!.kind}") was neither inserted nor folded into an active job`
            })
          )
        : Effect.succeed([i, id] as const)
    })
  })

/** Record the slot unless it is taken (in any order), then insert its job. */
export const cronSlot = (tables: Statements.Tables, input: JobStore.CronSlotInput) =>
  Effect.gen(function* () {
    const { sql } = tables
    if (!(yield* Statements.takeCronSlot(tables, input.name, input.slot)))
      return { result: undefined, queues: [] }
    const now = yield* Clock.currentTimeMillis
    const { queues, results } = yield* insert(sql, now, [input.job])
    const result = results[0]!
    yield* sql`UPDATE nightshift_cron_slots SET job_id = ${Number(result.id)}
      WHERE name = ${input.name} AND slot = ${input.slot}`
    return { result, queues }
  })
