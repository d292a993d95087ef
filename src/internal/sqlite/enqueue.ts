/**
 * Inserting jobs: bulk insert with dedupe folded inside the call and into
 * stored active jobs, and cron slots taken once.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import * as Statements from "../store/statements.js"
import type { Exec } from "./db.js"
import * as Plans from "./plans.js"

/** The columns one enqueued job binds, in the order of `insertText` and `uniformText`. */
const insertColumns =
  "(id, kind, queue, payload, state, priority, max_attempts, run_at, dedupe_key, trace_id, span_id, created_at, partition_key)"
const perRow = 13

/** The most rows one statement inserts: 128 × 13 = 1,664 parameters, well under SQLite's 32,766. */
const chunkRows = 128

/**
 * The most rows of a uniform statement (two parameters a row): 512 × 2 +
 * 11 = 1,035 parameters. Fewer, larger statements: each execution opens a
 * cursor on the table and on every index.
 */
const uniformRows = 512

/** The columns every row of a uniform chunk shares, bound once: `uniformText`'s first parameters. */
const sharedCount = 11

const insertTexts = new Map<string, string>()

/** Takes `?` ids off the counter; the first statement of the transaction, so it takes the write lock at once. */
const counterText = "UPDATE nightshift_counters SET value = value + ? WHERE name = 'job_id' RETURNING value"

/** The active jobs holding some (kind, dedupe key) pairs, bound as one JSON list: id, kind, dedupe key. */
const holdersText = `SELECT j.id, j.kind, j.dedupe_key
  FROM json_each(?) AS s JOIN nightshift_jobs AS j
    ON j.kind = s.value ->> 0 AND j.dedupe_key = s.value ->> 1
  WHERE j.dedupe_key IS NOT NULL AND j.state IN ${Core.activeList}`

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

/**
 * The insert of `k` rows that differ only in id and payload (a bulk enqueue
 * of one kind, usually): the shared columns are bound once and each row
 * binds two values, not thirteen. Without a dedupe key only an id can
 * conflict (`WHERE true` lets SQLite parse the upsert after a SELECT).
 */
const uniformText = (k: number): string => {
  const key = `u${k}`
  let text = insertTexts.get(key)
  if (text === undefined) {
    text = `INSERT INTO nightshift_jobs ${insertColumns}
      SELECT column1, ?, ?, column2, ?, ?, ?, ?, ?, ?, ?, ?, ?
      FROM (VALUES ${Array.from({ length: k }, () => "(?, ?)").join(", ")}) WHERE true
      ON CONFLICT DO NOTHING`
    insertTexts.set(key, text)
  }
  return text
}

/** Chunk sizes for `n` rows: full chunks of `size`, then the remainder's powers of two, largest first. */
const chunkSizes = (n: number, size: number): Array<number> => {
  const sizes: Array<number> = []
  for (let left = n; left > 0; ) {
    const k = left >= size ? size : 2 ** Math.floor(Math.log2(left))
    sizes.push(k)
    left -= k
  }
  return sizes
}

/** A payload's stored text; one that JSON cannot hold fails the call. */
const payloadText = (job: JobStore.EnqueueInput, i: number): string | null => {
  if (job.payload === undefined) return null
  const text = JSON.stringify(job.payload) as string | undefined
  if (text === undefined) throw new TypeError(`the payload of job ${i} has no JSON form`)
  return text
}

const notSerialisable = (cause: unknown) =>
  new JobStore.JobStoreError({
    message: `a job payload is not JSON-serialisable (encode it with its kind's Schema first): ${cause}`,
    cause
  })

/** Each job's run time (epoch ms) at `now`. */
const runTimes = (now: number, jobs: ReadonlyArray<JobStore.EnqueueInput>): Array<number> => {
  const times = new Array<number>(jobs.length)
  const due = Plans.after(now, 0)
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!
    times[i] =
      job.runAt !== undefined
        ? Math.ceil(job.runAt)
        : job.delayMs === undefined || job.delayMs === 0
          ? due
          : Plans.after(now, job.delayMs)
  }
  return times
}

/** The results of `n` jobs inserted from id `first` on, none deduped. */
const freshResults = (first: number, n: number): Array<JobStore.EnqueueResult> => {
  const results = new Array<JobStore.EnqueueResult>(n)
  for (let i = 0; i < n; i++) results[i] = { id: String(first + i), deduped: false }
  return results
}

/** The queues of the jobs inserted (`isNew`, or all) that are due at `now`: the queues to wake. */
const dueQueues = (
  jobs: ReadonlyArray<JobStore.EnqueueInput>,
  runAt: ReadonlyArray<number>,
  now: number,
  isNew: ReadonlyArray<boolean> | undefined
): Set<string> => {
  const queues = new Set<string>()
  let last: string | undefined
  for (let i = 0; i < jobs.length; i++) {
    const queue = jobs[i]!.queue
    if (queue !== last && (isNew === undefined || isNew[i]) && runAt[i]! <= now) {
      queues.add(queue)
      last = queue
    }
  }
  return queues
}

/** Whether rows `from`..`to` (exclusive) share every column but id and payload, and have no dedupe key. */
const isUniform = (
  jobs: ReadonlyArray<JobStore.EnqueueInput>,
  runAt: ReadonlyArray<number>,
  from: number,
  to: number
): boolean => {
  const a = jobs[from]!
  if (a.dedupeKey !== undefined) return false
  const t = runAt[from]!
  for (let i = from + 1; i < to; i++) {
    const b = jobs[i]!
    if (
      b.dedupeKey !== undefined ||
      runAt[i] !== t ||
      b.kind !== a.kind ||
      b.queue !== a.queue ||
      b.priority !== a.priority ||
      b.maxAttempts !== a.maxAttempts ||
      b.partition !== a.partition ||
      b.traceId !== a.traceId ||
      b.spanId !== a.spanId
    )
      return false
  }
  return true
}

/** The bound values of a uniform chunk: the shared columns, then id and payload per row. */
const uniformParams = (
  first: number,
  now: number,
  jobs: ReadonlyArray<JobStore.EnqueueInput>,
  runAt: ReadonlyArray<number>,
  from: number,
  k: number
): Array<unknown> => {
  const a = jobs[from]!
  const params: Array<unknown> = new Array(sharedCount + 2 * k)
  params[0] = a.kind
  params[1] = a.queue
  params[2] = runAt[from]! <= now ? "available" : "scheduled"
  params[3] = a.priority
  params[4] = a.maxAttempts
  params[5] = runAt[from]!
  params[6] = null
  params[7] = a.traceId ?? null
  params[8] = a.spanId ?? null
  params[9] = now
  params[10] = a.partition ?? null
  let p = sharedCount
  for (let i = from; i < from + k; i++) {
    params[p++] = first + i
    params[p++] = payloadText(jobs[i]!, i)
  }
  return params
}

/** The bound values of rows `from`..`from + k`, `perRow` per job. */
const rowParams = (
  first: number,
  now: number,
  jobs: ReadonlyArray<JobStore.EnqueueInput>,
  runAt: ReadonlyArray<number>,
  from: number,
  k: number
): Array<unknown> => {
  const params: Array<unknown> = new Array(k * perRow)
  let p = 0
  for (let i = from; i < from + k; i++) {
    const job = jobs[i]!
    params[p++] = first + i
    params[p++] = job.kind
    params[p++] = job.queue
    params[p++] = payloadText(job, i)
    params[p++] = runAt[i]! <= now ? "available" : "scheduled"
    params[p++] = job.priority
    params[p++] = job.maxAttempts
    params[p++] = runAt[i]!
    params[p++] = job.dedupeKey ?? null
    params[p++] = job.traceId ?? null
    params[p++] = job.spanId ?? null
    params[p++] = now
    params[p++] = job.partition ?? null
  }
  return params
}

/** What one statement of a batch inserts: rows `from`..`from + k`, uniform or row by row. */
interface Chunk {
  readonly from: number
  readonly k: number
  readonly uniform: boolean
}

/**
 * The statements of a batch: uniform chunks of up to 512 rows while the
 * rows allow (a whole batch of one kind and options, usually), otherwise
 * chunks of up to 128 rows bound row by row.
 */
const chunksOf = (jobs: ReadonlyArray<JobStore.EnqueueInput>, runAt: ReadonlyArray<number>): Array<Chunk> => {
  const chunks: Array<Chunk> = []
  let from = 0
  if (isUniform(jobs, runAt, 0, jobs.length)) {
    for (const k of chunkSizes(jobs.length, uniformRows)) {
      chunks.push({ from, k, uniform: true })
      from += k
    }
    return chunks
  }
  for (const k of chunkSizes(jobs.length, chunkRows)) {
    chunks.push({ from, k, uniform: isUniform(jobs, runAt, from, from + k) })
    from += k
  }
  return chunks
}

/**
 * Insert jobs inside the caller's transaction; results in input order.
 *
 * Rows are bound as statement parameters. A batch whose rows share every
 * column but the payload (one kind, the same options, no dedupe key) binds
 * those columns once per statement of up to 512 rows; any other batch is
 * bound row by row, up to 128 rows a statement. The batch used to travel as
 * one JSON parameter read by `json_each`: building that text and SQLite's
 * parse of it cost about a fifth of the call's CPU time on 20,000 jobs
 * (docs/benchmarks.md, "SQLite peers").
 */
export const insert = (exec: Exec, now: number, jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
  Effect.gen(function* () {
    // Without dedupe keys nothing folds: skip the bookkeeping.
    const folded = jobs.some((job) => job.dedupeKey !== undefined) ? Core.foldDuplicates(jobs) : undefined
    const unique = folded === undefined ? jobs : folded.unique
    // The first statement writes, so the transaction takes the write lock at once.
    const [counter] = yield* exec.values(counterText, [unique.length])
    const first = (counter![0] as number) - unique.length + 1
    const runAt = runTimes(now, unique)
    // Only a chunk with a dedupe key can leave a job out; without one, every job is new.
    const isNew: Array<boolean> | undefined =
      folded === undefined ? undefined : new Array(unique.length).fill(true)
    const missing: Array<number> = []
    for (const { from, k, uniform } of chunksOf(unique, runAt)) {
      const keyed = !uniform && unique.slice(from, from + k).some((job) => job.dedupeKey !== undefined)
      const params = yield* Effect.try({
        try: () => (uniform ? uniformParams : rowParams)(first, now, unique, runAt, from, k),
        catch: notSerialisable
      })
      if (keyed) {
        const rows = yield* exec.values(insertText(k, true), params)
        const inserted = new Set(rows.map((row) => row[0] as number))
        for (let i = from; i < from + k; i++) {
          if (!inserted.has(first + i)) {
            missing.push(i)
            isNew![i] = false
          }
        }
      } else {
        // Without a dedupe key nothing can conflict but an id, which the counter never hands out twice.
        const text = uniform ? uniformText(k) : insertText(k, false)
        const result = (yield* exec.raw(text, params)) as { readonly changes: number }
        if (result.changes !== k) {
          return yield* new JobStore.JobStoreError({
            message: `${k - result.changes} of ${k} jobs without a dedupe key were not inserted (an id was taken: was nightshift_counters edited?)`
          })
        }
      }
    }
    const queues = dueQueues(unique, runAt, now, isNew)
    if (folded === undefined) return { results: freshResults(first, unique.length), queues }
    const ids = unique.map((_, i) => first + i)
    if (missing.length > 0) {
      for (const [i, id] of yield* existingHolders(exec, unique, missing)) ids[i] = id
    }
    const stored = ids.map((id, s): JobStore.EnqueueResult => ({ id: String(id), deduped: !isNew![s] }))
    return { results: Core.unfold(folded, stored), queues }
  })

/** The active jobs that the jobs not inserted (`missing`, indices in `unique`) were folded into: `[index, id]`. */
const existingHolders = (
  exec: Exec,
  unique: ReadonlyArray<JobStore.EnqueueInput>,
  missing: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
    const keys = JSON.stringify(missing.map((i) => [unique[i]!.kind, unique[i]!.dedupeKey]))
    const rows = yield* exec.values(holdersText, [keys])
    const byKey = new Map(rows.map(([id, kind, key]) => [JSON.stringify([kind, key]), id as number]))
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
export const cronSlot = (tables: Statements.Tables, exec: Exec, input: JobStore.CronSlotInput) =>
  Effect.gen(function* () {
    const { sql } = tables
    if (!(yield* Statements.takeCronSlot(tables, input.name, input.slot)))
      return { result: undefined, queues: [] }
    const now = yield* Clock.currentTimeMillis
    const { queues, results } = yield* insert(exec, now, [input.job])
    const result = results[0]!
    yield* sql`UPDATE nightshift_cron_slots SET job_id = ${Number(result.id)}
      WHERE name = ${input.name} AND slot = ${input.slot}`
    return { result, queues }
  })
