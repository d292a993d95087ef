/**
 * The statements off the hot path (reading jobs, cancel and retry, pausing
 * queues, cron slots), written once for both SQL engines. Where the
 * dialects differ, `sql.onDialectOrElse` picks the form; what differs in
 * storage (table names, how a time is stored, how a row is read) comes from
 * the engine's `Tables`.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as Bulk from "./bulk.js"
import { activeList, finalList, parseId, waitingList } from "./core.js"
import { idBounds, listLimit, scanWindow, windowCursor } from "./list.js"

/** What the shared statements need from an engine. */
export interface Tables {
  /** The engine's client, without name transforms. */
  readonly sql: SqlClient.SqlClient
  /** The live jobs (scheduled, available, running, retryable); on SQLite, every job. */
  readonly jobs: Statement.Fragment
  /** Every job, live or finished, to read (on SQLite, `jobs`). */
  readonly all: Statement.Fragment
  /**
   * Where finished jobs live when not with the live ones (PostgreSQL's
   * `jobs_done`): a retry moves a row from there back to `jobs`, and a delete
   * looks in both.
   */
  readonly finished?:
    | { readonly table: Statement.Fragment; readonly columns: ReadonlyArray<string> }
    | undefined
  readonly pausedQueues: Statement.Fragment
  readonly cronSlots: Statement.Fragment
  /** "Now" as the engine stores a time (a `timestamptz`, or epoch ms). */
  readonly now: Effect.Effect<Statement.Fragment>
  /** A time (epoch ms) as the engine stores it. */
  readonly time: (ms: number) => Statement.Fragment
  /** The select list of a whole job row, the table aliased `j`. */
  readonly columns: Statement.Fragment
  /** Run a statement that selects `columns` and map its rows to records. */
  readonly read: (
    statement: Statement.Statement<object>
  ) => Effect.Effect<Array<JobStore.JobRecord>, SqlError | JobStore.JobStoreError>
}

/** `JobStore.get`. */
export const get = (t: Tables, id: string) => {
  const n = parseId(id)
  if (n === undefined) return Effect.succeed(undefined)
  return Effect.map(
    t.read(t.sql`SELECT ${t.columns} FROM ${t.all} j WHERE j.id = ${n}`),
    (jobs): JobStore.JobRecord | undefined => jobs[0]
  )
}

/** The SQL test of a payload search, in the engine's dialect. */
const payloadMatch = (t: Tables, match: JobStore.PayloadMatch): Statement.Fragment => {
  const { sql } = t
  const json = JSON.stringify(match.value)
  return sql.onDialectOrElse({
    // jsonb equality: same type and value. An expression index on
    // `(payload #> '{key}')` serves it (docs/postgres.md).
    pg: () => sql`j.payload #> ${[...match.path]}::text[] = ${json}::jsonb`,
    orElse: () => {
      // The payload column is JSON text; text that is not JSON (a hand edit) matches
      // nothing instead of failing the query (json_type fails on it, hence the CASE).
      const path = `$${match.path.map((key) => `."${key}"`).join("")}`
      const type = sql`json_type(j.payload, ${path})`
      const test =
        match.value === null
          ? sql`${type} = 'null'`
          : typeof match.value === "boolean"
            ? sql`${type} = ${match.value ? "true" : "false"}`
            : typeof match.value === "number"
              ? sql`${type} IN ('integer', 'real') AND json_extract(j.payload, ${path}) = ${match.value}`
              : sql`${type} = 'text' AND json_extract(j.payload, ${path}) = ${match.value}`
      return sql`(CASE WHEN json_valid(j.payload) THEN ${test} ELSE 0 END)`
    }
  })
}

/**
 * `JobStore.list`: newest first, a page of at most `listLimit` below the
 * cursor; a bounded filter (`JobStore.isWindowed`) reads one window of ids
 * (`scanWindow`), which the primary key serves.
 */
export const list = (t: Tables, filter: JobStore.ListFilter) => {
  const { sql } = t
  const empty = Effect.succeed<JobStore.ListPage>({ jobs: [], nextCursor: null })
  const limit = listLimit(filter.limit)
  const bounds = idBounds(filter)
  if (bounds === undefined) return empty
  if (filter.payload !== undefined && !JobStore.isPayloadPath(filter.payload.path)) return empty
  const where: Array<Statement.Fragment> = []
  if (filter.states !== undefined) where.push(sql.in("state", filter.states))
  if (filter.kinds !== undefined) where.push(sql.in("kind", filter.kinds))
  if (filter.queues !== undefined) where.push(sql.in("queue", filter.queues))
  if (filter.dedupeKey !== undefined) where.push(sql`j.dedupe_key = ${filter.dedupeKey}`)
  if (filter.createdFrom !== undefined) where.push(sql`j.created_at >= ${t.time(filter.createdFrom)}`)
  if (filter.createdTo !== undefined) where.push(sql`j.created_at < ${t.time(filter.createdTo)}`)
  if (filter.payload !== undefined) where.push(payloadMatch(t, filter.payload))
  const page = (more: (jobs: ReadonlyArray<JobStore.JobRecord>) => string | null) =>
    Effect.map(
      t.read(
        sql`SELECT ${t.columns} FROM ${t.all} j WHERE ${sql.and(where)} ORDER BY j.id DESC LIMIT ${limit + 1}`
      ),
      (rows): JobStore.ListPage => {
        const jobs = rows.slice(0, limit)
        return { jobs, nextCursor: rows.length > limit ? jobs[limit - 1]!.id : more(jobs) }
      }
    )
  if (!JobStore.isWindowed(filter)) {
    if (bounds.from > 1) where.push(sql`j.id >= ${bounds.from}`)
    if (bounds.below !== undefined) where.push(sql`j.id < ${bounds.below}`)
    return page(() => null)
  }
  return Effect.flatMap(
    sql<{ newest: number | null }>`SELECT CAST(max(id) AS double precision) AS newest FROM ${t.all}`,
    ([row]) => {
      const window = scanWindow(bounds, row?.newest ?? 0)
      if (window === undefined) return empty
      where.push(sql`j.id >= ${window.lo}`, sql`j.id < ${window.hi}`)
      return page(() => windowCursor(bounds, window.lo))
    }
  )
}

/** `JobStore.counts`: jobs per queue and state (states without jobs are absent). */
export const counts = (t: Tables) =>
  t.sql<JobStore.QueueCount>`SELECT queue, state, CAST(count(*) AS integer) AS count FROM ${t.all}
    GROUP BY queue, state ORDER BY queue, state`

/**
 * `JobStore.depth`: two reads, so that each can use its partial index
 * (waiting jobs, running jobs).
 */
export const depth = (t: Tables) =>
  Effect.gen(function* () {
    const { sql } = t
    const waiting = yield* sql<JobStore.QueueCount>`SELECT queue, state, CAST(count(*) AS integer) AS count
      FROM ${t.jobs} WHERE state IN ${sql.literal(waitingList)} GROUP BY queue, state`
    const running = yield* sql<JobStore.QueueCount>`SELECT queue, state, CAST(count(*) AS integer) AS count
      FROM ${t.jobs} WHERE state = 'running' GROUP BY queue, state`
    return [...waiting, ...running].map((r) => ({ queue: r.queue, state: r.state, count: Number(r.count) }))
  })

/**
 * `JobStore.activity` for the span [since, until), both epoch ms (a row
 * stamped at `until` itself, possibly after `until` was read, falls in the next span): three
 * reads, each through an index that holds only the rows it needs. Finished
 * jobs come from the finalized index (a range of finish times), retried ones
 * from the retryable index (a retry sets run-at to its failure time plus
 * the backoff, so run-at >= since) and the lease index (jobs already running
 * again), latencies from the lease and finalized indexes, depth from the claim and lease indexes. The latest
 * error's time is read from the `errors` list of those rows only.
 */
export const activity = (t: Tables, since: number, until: number) => {
  const { sql } = t
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const time = (ms: number) => (pg ? sql`to_timestamp(${ms}::float8 / 1000)` : sql`${ms}`)
  const from = time(since)
  const to = time(until)
  const lastError = sql.literal(
    pg
      ? "CASE WHEN jsonb_typeof(errors -> -1 -> 'at') = 'number' THEN (errors -> -1 ->> 'at')::float8 END"
      : "CASE WHEN json_valid(errors) THEN json_extract(errors, '$[#-1].at') END"
  )
  const latency = sql.literal(
    pg ? "extract(epoch from (attempted_at - run_at)) * 1000" : "attempted_at - run_at"
  )
  const failedInSpan = sql`${lastError} >= ${since} AND ${lastError} < ${until}`
  return Effect.gen(function* () {
    const finished = yield* sql<{ state: JobStore.JobState; count: number; retried: number }>`SELECT state,
        CAST(count(*) AS integer) AS count,
        CAST(sum(CASE WHEN state = 'completed' AND ${failedInSpan} THEN 1 ELSE 0 END) AS integer) AS retried
      FROM ${t.all} WHERE state IN ${sql.literal(finalList)} AND finalized_at >= ${from} AND finalized_at < ${to}
      GROUP BY state`
    const [live] = yield* sql<{ retryable: number; running: number }>`SELECT
      (SELECT CAST(count(*) AS integer) FROM ${t.jobs}
        WHERE state = 'retryable' AND run_at >= ${from} AND ${failedInSpan}) AS retryable,
      (SELECT CAST(count(*) AS integer) FROM ${t.jobs} WHERE state = 'running' AND ${failedInSpan}) AS running`
    const latencies = yield* sql<{ ms: number }>`SELECT ${latency} AS ms FROM ${t.jobs}
        WHERE state = 'running' AND attempted_at >= ${from} AND attempted_at < ${to}
      UNION ALL
      SELECT ${latency} AS ms FROM ${t.all}
        WHERE state IN ${sql.literal(finalList)} AND finalized_at >= ${from} AND finalized_at < ${to}
          AND attempted_at >= ${from}
      LIMIT ${JobStore.activityLatencyLimit}`
    const queues = yield* depth(t)
    const count = (state: JobStore.JobState) => finished.find((r) => r.state === state)?.count ?? 0
    return {
      now: until,
      completed: count("completed"),
      discarded: count("discarded"),
      cancelled: count("cancelled"),
      retried:
        (live?.retryable ?? 0) + (live?.running ?? 0) + finished.reduce((n, r) => n + (r.retried ?? 0), 0),
      latencies: latencies.map((r) => Number(r.ms)),
      depth: queues
    } satisfies JobStore.Activity
  })
}

/**
 * `JobStore.cancel`, to run in a transaction: a waiting job ends cancelled
 * now; a running one is flagged for its runner, whose id is returned.
 */
export const cancel = (t: Tables, id: string): Effect.Effect<JobStore.CancelResult, SqlError> => {
  const n = parseId(id)
  if (n === undefined) return Effect.succeed({ _tag: "not-found" })
  const { sql } = t
  return Effect.gen(function* () {
    const now = yield* t.now
    const queued = yield* sql`UPDATE ${t.jobs} SET state = 'cancelled', finalized_at = ${now}
      WHERE id = ${n} AND state IN ${sql.literal(waitingList)} RETURNING id`
    if (queued.length > 0) return { _tag: "cancelled" } as const
    const [running] = yield* sql<{ lease_owner: string | null }>`UPDATE ${t.jobs} SET cancel_requested = TRUE
      WHERE id = ${n} AND state = 'running' RETURNING lease_owner`
    if (running !== undefined) return { _tag: "requested", owner: running.lease_owner } as const
    const [row] = yield* sql<{ state: JobStore.JobState }>`SELECT state FROM ${t.all} WHERE id = ${n}`
    return row === undefined
      ? ({ _tag: "not-found" } as const)
      : ({ _tag: "final", state: row.state } as const)
  })
}

/**
 * Make the final jobs among `ids` available now with room for one more
 * attempt, except those whose dedupe key another live job holds; returns the
 * ids and queues retried. Where finished jobs have a table of their own, the
 * rows move back to the live one.
 */
const retryRows = (t: Tables, ids: ReadonlyArray<number>) => {
  const { sql } = t
  const greatest = sql.onDialectOrElse({ sqlite: () => "max", orElse: () => "greatest" })
  const keyFree = (row: string) =>
    sql`(${sql.literal(row)}.dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM ${t.jobs} AS o
      WHERE o.kind = ${sql.literal(row)}.kind AND o.dedupe_key = ${sql.literal(row)}.dedupe_key
        AND o.state IN ${sql.literal(activeList)}))`
  return Effect.flatMap(t.now, (now) =>
    t.finished === undefined
      ? sql<{ id: number | string; queue: string }>`UPDATE ${t.jobs} AS j
          SET state = 'available', run_at = ${now}, finalized_at = NULL, cancel_requested = FALSE, lease_owner = NULL,
            max_attempts = ${sql.literal(greatest)}(max_attempts, attempt + 1)
          WHERE ${sql.in("id", ids)} AND state IN ${sql.literal(finalList)} AND ${keyFree("j")}
          RETURNING id, queue`
      : sql<{ id: number | string; queue: string }>`WITH moved AS (
            DELETE FROM ${t.finished.table} AS d WHERE ${sql.in("d.id", ids)} AND ${keyFree("d")}
            RETURNING d.*
          )
          INSERT INTO ${t.jobs} (${sql.literal(kept(t.finished.columns).join(", "))},
            state, run_at, finalized_at, cancel_requested, lease_owner, max_attempts)
          SELECT ${sql.literal(
            kept(t.finished.columns)
              .map((c) => `m.${c}`)
              .join(", ")
          )}, 'available', ${now}, NULL, FALSE, NULL,
            greatest(m.max_attempts, m.attempt + 1)
          FROM moved m
          RETURNING id, queue`
  )
}

/** The columns a retry moving a job back keeps as they were (of all `columns`); it sets the others. */
const kept = (columns: ReadonlyArray<string>) => columns.filter((c) => !retrySets.has(c))
const retrySets = new Set([
  "state",
  "run_at",
  "finalized_at",
  "cancel_requested",
  "lease_owner",
  "max_attempts"
])

/**
 * `JobStore.retry`, to run in a transaction: a final job becomes available
 * now with room for one more attempt, unless another live job holds its
 * dedupe key. Returns the queue to wake when it was retried.
 */
export const retry = (
  t: Tables,
  id: string
): Effect.Effect<{ readonly result: JobStore.RetryResult; readonly queue?: string }, SqlError> => {
  const n = parseId(id)
  if (n === undefined) return Effect.succeed({ result: { _tag: "not-found" } })
  const { sql } = t
  return Effect.gen(function* () {
    const [retried] = yield* retryRows(t, [n])
    if (retried !== undefined) return { result: { _tag: "retried" }, queue: retried.queue } as const
    const [row] = yield* sql<{ state: JobStore.JobState }>`SELECT state FROM ${t.all} WHERE id = ${n}`
    return {
      result: row === undefined ? { _tag: "not-found" } : { _tag: "not-retryable", state: row.state }
    } as const
  })
}

/** The ids of a batch, as an SQL list. */
const idList = (t: Tables, batch: ReadonlyArray<Bulk.BulkId>) =>
  t.sql.in(
    "id",
    batch.map((b) => b.num)
  )

/** The state of each id of a batch still stored. */
const statesOf = (t: Tables, batch: ReadonlyArray<Bulk.BulkId>) =>
  Effect.map(
    t.sql<{
      id: number | string
      state: JobStore.JobState
    }>`SELECT id, state FROM ${t.all} WHERE ${idList(t, batch)}`,
    (rows) => new Map(rows.map((row) => [String(row.id), row.state]))
  )

/**
 * `JobStore.retryMany` for one batch, to run in a transaction: as `retry`,
 * and of final jobs of the batch sharing a kind and dedupe key only the
 * newest is retried (the others would take the key it holds once retried).
 * Returns the queues to wake.
 */
export const retryBatch = (t: Tables, batch: ReadonlyArray<Bulk.BulkId>) => {
  const { sql } = t
  return Effect.gen(function* () {
    const rows = yield* sql<{
      id: number | string
      state: JobStore.JobState
      kind: string
      dedupe_key: string | null
    }>`SELECT id, state, kind, dedupe_key FROM ${t.all} WHERE ${idList(t, batch)}
      ORDER BY id DESC`
    const states = new Map<string, JobStore.JobState>()
    const keys = new Set<string>()
    const chosen: Array<number> = []
    const keyed = new Set<string>()
    for (const row of rows) {
      const id = String(row.id)
      states.set(id, row.state)
      if (!JobStore.finalStates.includes(row.state)) continue
      if (row.dedupe_key !== null) {
        keyed.add(id)
        const key = `${row.kind}\u0000${row.dedupe_key}`
        if (keys.has(key)) continue
        keys.add(key)
      }
      chosen.push(Number(row.id))
    }
    const retried = chosen.length === 0 ? [] : yield* retryRows(t, chosen)
    const result = Bulk.outcome(
      batch,
      new Set(retried.map((r) => String(r.id))),
      new Set(),
      states,
      (id, state) => (JobStore.finalStates.includes(state) && keyed.has(id) ? "dedupe" : "state")
    )
    return { result, queues: [...new Set(retried.map((r) => r.queue))] }
  })
}

/**
 * `JobStore.cancelMany` for one batch, to run in a transaction: waiting jobs
 * end cancelled now, running ones are flagged for their runners.
 */
export const cancelBatch = (t: Tables, batch: ReadonlyArray<Bulk.BulkId>) => {
  const { sql } = t
  return Effect.gen(function* () {
    const now = yield* t.now
    const queued = yield* sql<{
      id: number | string
      kind: string
      queue: string
      attempt: number
    }>`UPDATE ${t.jobs} SET state = 'cancelled', finalized_at = ${now}
      WHERE ${idList(t, batch)} AND state IN ${sql.literal(waitingList)} RETURNING id, kind, queue, attempt`
    // PostgreSQL: lock the running rows in id order first, as settles and heartbeats do, so
    // that a batch never waits on them in another order (a deadlock).
    yield* sql.onDialectOrElse({
      pg: () =>
        sql`SELECT id FROM ${t.jobs} WHERE ${idList(t, batch)} AND state = 'running' ORDER BY id FOR UPDATE`,
      orElse: () => Effect.void
    })
    const running = yield* sql<{ id: number | string }>`UPDATE ${t.jobs} SET cancel_requested = TRUE
      WHERE ${idList(t, batch)} AND state = 'running' RETURNING id`
    const changed = new Set(queued.map((r) => String(r.id)))
    const requested = new Set(running.map((r) => String(r.id)))
    const rest = batch.filter((b) => !changed.has(b.id) && !requested.has(b.id))
    const states = rest.length === 0 ? new Map<string, JobStore.JobState>() : yield* statesOf(t, rest)
    const cancelled = queued.map((r) => ({
      id: String(r.id),
      kind: r.kind,
      queue: r.queue,
      attempt: r.attempt
    }))
    return { ...Bulk.outcome(batch, changed, requested, states), cancelled }
  })
}

/** `JobStore.deleteMany` for one batch, to run in a transaction: every job that is not running. */
export const deleteBatch = (t: Tables, batch: ReadonlyArray<Bulk.BulkId>) => {
  const { sql } = t
  return Effect.gen(function* () {
    const live = yield* sql<{ id: number | string }>`DELETE FROM ${t.jobs}
      WHERE ${idList(t, batch)} AND state <> 'running' RETURNING id`
    const gone =
      t.finished === undefined
        ? live
        : [
            ...live,
            ...(yield* sql<{
              id: number | string
            }>`DELETE FROM ${t.finished.table} WHERE ${idList(t, batch)} RETURNING id`)
          ]
    const changed = new Set(gone.map((r) => String(r.id)))
    const rest = batch.filter((b) => !changed.has(b.id))
    const states = rest.length === 0 ? new Map<string, JobStore.JobState>() : yield* statesOf(t, rest)
    return Bulk.outcome(batch, changed, new Set(), states)
  })
}

/** `JobStore.runNow`, to run in a transaction. Returns the queue to wake when the job moved. */
export const runNow = (
  t: Tables,
  id: string
): Effect.Effect<{ readonly result: JobStore.RunNowResult; readonly queue?: string }, SqlError> => {
  const n = parseId(id)
  if (n === undefined) return Effect.succeed({ result: { _tag: "not-found" } })
  const { sql } = t
  return Effect.gen(function* () {
    const now = yield* t.now
    const [moved] = yield* sql<{ queue: string }>`UPDATE ${t.jobs} SET state = 'available', run_at = ${now}
      WHERE id = ${n} AND state IN ('scheduled', 'retryable') RETURNING queue`
    if (moved !== undefined) return { result: { _tag: "moved" }, queue: moved.queue } as const
    const [row] = yield* sql<{ state: JobStore.JobState }>`SELECT state FROM ${t.all} WHERE id = ${n}`
    if (row === undefined) return { result: { _tag: "not-found" } } as const
    return {
      result: row.state === "available" ? { _tag: "due" } : { _tag: "not-waiting", state: row.state }
    } as const
  })
}

/** `JobStore.pause` (idempotent). */
export const pause = (t: Tables, queue: string) =>
  Effect.flatMap(t.now, (now) =>
    Effect.asVoid(t.sql`INSERT INTO ${t.pausedQueues} (queue, paused_at) VALUES (${queue}, ${now})
      ON CONFLICT DO NOTHING`)
  )

/** `JobStore.resume`: true when the queue was paused. */
export const resume = (t: Tables, queue: string) =>
  Effect.map(
    t.sql`DELETE FROM ${t.pausedQueues} WHERE queue = ${queue} RETURNING queue`,
    (rows) => rows.length > 0
  )

/** `JobStore.paused`: by the names' code points on both engines. */
export const paused = (t: Tables) => {
  const { sql } = t
  const collate = sql.onDialectOrElse({ pg: () => ` COLLATE "C"`, orElse: () => "" })
  return Effect.map(
    sql<{ queue: string }>`SELECT queue FROM ${t.pausedQueues} ORDER BY queue${sql.literal(collate)}`,
    (rows) => rows.map((row) => row.queue)
  )
}

/**
 * Take a cron slot, in a transaction with its job's enqueue: true when this
 * caller recorded it; the key lets exactly one caller take each slot, in
 * whatever order callers reach them.
 */
export const takeCronSlot = (t: Tables, name: string, slot: number) => {
  const { sql } = t
  const at = sql.onDialectOrElse({ pg: () => "enqueued_at", orElse: () => "created_at" })
  return Effect.flatMap(t.now, (now) =>
    Effect.map(
      sql`INSERT INTO ${t.cronSlots} (name, slot, ${sql.literal(at)}) VALUES (${name}, ${slot}, ${now})
        ON CONFLICT DO NOTHING RETURNING slot`,
      (rows) => rows.length > 0
    )
  )
}

/** `JobStore.lastCronSlot`: the latest slot recorded for a name. */
export const lastCronSlot = (t: Tables, name: string) =>
  Effect.map(
    t.sql<{ slot: number | null }>`SELECT CAST(max(slot) AS double precision) AS slot FROM ${t.cronSlots}
      WHERE name = ${name}`,
    (rows) => rows[0]?.slot ?? undefined
  )
