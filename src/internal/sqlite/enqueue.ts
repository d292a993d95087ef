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

/** The columns one enqueued job binds, in the order of `insertText`. */
const insertColumns =
  "(id, kind, queue, payload, state, priority, max_attempts, run_at, dedupe_key, trace_id, span_id, created_at, partition_key)"
const perRow = 13

/** The most rows one statement inserts: 128 × 13 = 1,664 parameters, well under SQLite's 32,766. */
const chunkRows = 128

const insertTexts = new Map<string, string>()

/**
 * `INSERT … VALUES (…), … ON CONFLICT DO NOTHING` for `k` rows, with
 * `RETURNING id` when some row has a dedupe key (only those rows can be
 * skipped). Batches are cut into chunks of 128 rows and a remainder split in
 * powers of two, so at most sixteen texts (and prepared statements) exist.
 */
const insertText = (k: number, returning: boolean): string => {
  const key = `${k}${returning ? "r" : ""}`
  let text = insertTexts.get(key)
  if (text === undefined) {
    const row = `(${Array.from({ length: perRow }, () => "?").join(", ")})`
    text = `INSERT INTO nightshift_jobs ${insertColumns} VALUES ${Array.from({ length: k }, () => row).join(", ")}
      ON CONFLICT DO NOTHING${returning ? " RETURNING id" : ""}`
    insertTexts.set(key, text)
  }
  return text
}

/** Chunk sizes for `n` rows: full chunks, then the remainder's powers of two, largest first. */
const chunkSizes = (n: number): Array<number> => {
  const sizes: Array<number> = []
  for (let left = n; left > 0; ) {
    const k = left >= chunkRows ? chunkRows : 2 ** Math.floor(Math.log2(left))
    sizes.push(k)
    left -= k
  }
  return sizes
}

/**
 * The bound values of every row, `perRow` per job, and each job's state.
 * Payloads are stringified here; one that JSON cannot hold fails the call.
 */
const bindings = (first: number, now: number, jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
  Effect.try({
    try: () => {
      const params: Array<unknown> = new Array(jobs.length * perRow)
      const available: Array<boolean> = new Array(jobs.length)
      let p = 0
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i]!
        const runAt = job.runAt !== undefined ? Math.ceil(job.runAt) : Plans.after(now, job.delayMs ?? 0)
        const payload = job.payload === undefined ? null : JSON.stringify(job.payload)
        if (payload === undefined) throw new TypeError(`the payload of job ${i} has no JSON form`)
        available[i] = runAt <= now
        params[p++] = first + i
        params[p++] = job.kind
        params[p++] = job.queue
        params[p++] = payload
        params[p++] = available[i] ? "available" : "scheduled"
        params[p++] = job.priority
        params[p++] = job.maxAttempts
        params[p++] = runAt
        params[p++] = job.dedupeKey ?? null
        params[p++] = job.traceId ?? null
        params[p++] = job.spanId ?? null
        params[p++] = now
        params[p++] = job.partition ?? null
      }
      return { params, available }
    },
    catch: (cause) =>
      new JobStore.JobStoreError({
        message: `a job payload is not JSON-serialisable (encode it with its kind's Schema first): ${cause}`,
        cause
      })
  })

/**
 * Insert jobs inside the caller's transaction; results in input order.
 *
 * Rows are bound as statement parameters, up to 128 rows a statement. The
 * batch used to travel as one JSON parameter read by `json_each`: building
 * that text and SQLite's parse of it cost about a fifth of the call's CPU
 * time on 20,000 jobs (docs/benchmarks.md, "SQLite peers").
 */
export const insert = (sql: SqlClient.SqlClient, now: number, jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
  Effect.gen(function* () {
    const folded = Core.foldDuplicates(jobs)
    const { unique } = folded
    // The first statement writes, so the transaction takes the write lock at once.
    const [counter] = yield* sql<{ value: number }>`UPDATE nightshift_counters
      SET value = value + ${unique.length} WHERE name = 'job_id' RETURNING value`
    const first = counter!.value - unique.length + 1
    const { params, available } = yield* bindings(first, now, unique)
    const isNew = unique.map(() => true)
    const missing: Array<number> = []
    let offset = 0
    for (const k of chunkSizes(unique.length)) {
      const chunk = params.slice(offset * perRow, (offset + k) * perRow)
      if (unique.slice(offset, offset + k).some((job) => job.dedupeKey !== undefined)) {
        const rows = yield* sql.unsafe(insertText(k, true), chunk).values
        const inserted = new Set(rows.map((row) => row[0] as number))
        for (let i = offset; i < offset + k; i++) {
          if (!inserted.has(first + i)) {
            missing.push(i)
            isNew[i] = false
          }
        }
      } else {
        // Without a dedupe key nothing can conflict but an id, which the counter never hands out twice.
        const result = (yield* sql.unsafe(insertText(k, false), chunk).raw) as { readonly changes: number }
        if (result.changes !== k) {
          return yield* new JobStore.JobStoreError({
            message: `${k - result.changes} of ${k} jobs without a dedupe key were not inserted (an id was taken: was nightshift_counters edited?)`
          })
        }
      }
      offset += k
    }
    const ids = unique.map((_, i) => first + i)
    if (missing.length > 0) {
      for (const [i, id] of yield* existingHolders(sql, unique, missing)) ids[i] = id
    }
    return {
      results: Core.unfold(
        folded,
        ids.map((id, s): JobStore.EnqueueResult => ({ id: String(id), deduped: !isNew[s] }))
      ),
      queues: unique.flatMap((job, i) => (isNew[i] && available[i] ? [job.queue] : []))
    }
  })

/** The active jobs that the jobs not inserted (`missing`, indices in `unique`) were folded into: `[index, id]`. */
const existingHolders = (
  sql: SqlClient.SqlClient,
  unique: ReadonlyArray<JobStore.EnqueueInput>,
  missing: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
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
