/**
 * The store's tables seen from the harness (bench/churn.ts): load finished
 * jobs by SQL, count the unfinished ones, and read a schema's table sizes and
 * dead tuples. PostgreSQL through `pg`, SQLite through better-sqlite3; both
 * write the store's own tables directly, so the store must have migrated
 * them first.
 *
 * Finished rows are clones of one job the library enqueued (every column not
 * overridden here keeps its value, so columns added later with defaults need
 * no change): 97% completed, 2% discarded (after their last attempt, with an
 * error), 1% cancelled, finished one after another over the last 20 hours
 * (inside the default retention of a day), ids in the same order.
 */
import Database from "better-sqlite3"
import type pg from "pg"

const spanMs = 20 * 3_600_000

/** `"schema".name`, for identifiers the harness made itself. */
const qualified = (schema: string, name: string) => `"${schema}"."${name}"`

/**
 * Per-row values for the clone; `g` is the row number (1…n), `t` the
 * template row, `f.fin` the row's finish time.
 */
const pgOverrides = (schema: string): Record<string, string> => ({
  id: `nextval(pg_get_serial_sequence('${qualified(schema, "jobs")}', 'id'))`,
  payload: "jsonb_build_object('i', g, 't', 0)",
  state: "CASE WHEN g % 50 = 0 THEN 'discarded' WHEN g % 100 = 1 THEN 'cancelled' ELSE 'completed' END",
  attempt: "CASE WHEN g % 50 = 0 THEN t.max_attempts WHEN g % 100 = 1 THEN 0 ELSE 1 END",
  run_at: "f.fin - interval '50 ms'",
  created_at: "f.fin - interval '50 ms'",
  attempted_at: "CASE WHEN g % 100 = 1 THEN NULL ELSE f.fin - interval '5 ms' END",
  finalized_at: "f.fin",
  lease_owner: "CASE WHEN g % 50 = 0 OR g % 100 = 1 THEN NULL ELSE 'bench-loader' END",
  lease_expires_at: "NULL",
  fence: "CASE WHEN g % 100 = 1 THEN 0 ELSE 1 END",
  errors: `CASE WHEN g % 50 = 0 THEN jsonb_build_array(jsonb_build_object('attempt', t.max_attempts,
    'at', floor(extract(epoch FROM f.fin) * 1000), 'kind', 'failure', 'message', 'bench: failed')) ELSE '[]'::jsonb END`
})

const pgColumns = async (client: pg.Client, schema: string, table: string) =>
  (
    await client.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER'
         AND coalesce(identity_generation, '') <> 'ALWAYS'
       ORDER BY ordinal_position`,
      [schema, table]
    )
  ).rows.map((r) => r.column_name)

/** `jobs_done` when the schema has it (PgStore migration 8 on), else `jobs`. */
export const finishedTablePg = async (client: pg.Client, schema: string) => {
  const { rows } = await client.query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [
    qualified(schema, "jobs_done")
  ])
  return rows[0]?.t == null ? "jobs" : "jobs_done"
}

/**
 * Insert `n` finished jobs into `schema`, cloned from the job `templateId`
 * (which is then deleted), in statements of `chunk` rows, then
 * `VACUUM ANALYZE` what was written, as autovacuum would have by then.
 * Returns the table written to.
 */
export const loadFinishedPg = async (
  client: pg.Client,
  schema: string,
  n: number,
  templateId: string,
  progress: (done: number) => void,
  chunk = 500_000
) => {
  let target = await finishedTablePg(client, schema)
  const targetColumns = new Set(await pgColumns(client, schema, target))
  const columns = (await pgColumns(client, schema, "jobs")).filter((c) => targetColumns.has(c))
  const overrides = pgOverrides(schema)
  const list = columns.map((c) => `"${c}"`).join(", ")
  const values = columns.map((c) => overrides[c] ?? `t."${c}"`).join(", ")
  const insert = (into: string, from: number, to: number) =>
    client.query(
      `INSERT INTO ${qualified(schema, into)} (${list})
       SELECT ${values}
       FROM ${qualified(schema, "jobs")} t, generate_series($1::bigint, $2::bigint) AS g,
         LATERAL (SELECT now() - interval '${spanMs} ms' + g * ($3::float8 * interval '1 ms') AS fin) AS f
       WHERE t.id = $4::bigint`,
      [from, to, spanMs / n, templateId]
    )
  for (let from = 1; from <= n; from += chunk) {
    const to = Math.min(n, from + chunk - 1)
    try {
      await insert(target, from, to)
    } catch (error) {
      // No partition of `jobs_done` for these finish times (23514): let `jobs` and its trigger place them.
      if (target === "jobs" || (error as { code?: string }).code !== "23514") throw error
      console.error(`loader: ${String(error)}; inserting into jobs instead (its trigger moves the rows)`)
      target = "jobs"
      await insert(target, from, to)
    }
    progress(to)
  }
  await client.query(`DELETE FROM ${qualified(schema, "jobs")} WHERE id = $1::bigint`, [templateId])
  await client.query(`VACUUM ANALYZE ${qualified(schema, "jobs")}`)
  if ((await finishedTablePg(client, schema)) === "jobs_done")
    await client.query(`VACUUM ANALYZE ${qualified(schema, "jobs_done")}`)
  return target
}

/** The id of the newest job in `schema.jobs`. */
export const newestJobPg = async (client: pg.Client, schema: string) =>
  (await client.query<{ id: string }>(`SELECT max(id)::text AS id FROM ${qualified(schema, "jobs")}`))
    .rows[0]!.id

/**
 * Unfinished jobs in `schema.jobs`, counted on the claim path's and the
 * lease's partial indexes (state terms as in their definitions).
 */
export const unfinishedPg = async (client: pg.Client, schema: string) => {
  const jobs = qualified(schema, "jobs")
  const { rows } = await client.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM ${jobs} WHERE state IN ('available', 'scheduled', 'retryable'))::int
          + (SELECT count(*) FROM ${jobs} WHERE state = 'running')::int AS n`
  )
  return rows[0]!.n
}

/** What the hot table and the finished rows look like now. */
export interface TableStats {
  readonly liveTuples: number
  readonly deadTuples: number
  readonly autovacuums: number
  readonly autoanalyzes: number
  /** VACUUM and ANALYZE run by hand (or by the stand-in of bench/lib/vacuum.ts). */
  readonly vacuums: number
  readonly analyzes: number
  readonly tableBytes: number
  readonly indexBytes: number
  /** `jobs_done` and its partitions, indexes and TOAST included; NaN when there is no such table. */
  readonly finishedBytes: number
  /** Leaf partitions of `jobs_done` (0 without it). */
  readonly finishedPartitions: number
  /** `count(*)` of `jobs`, when asked for. */
  readonly rows: number
  /** `count(*)` of `jobs_done`, when asked for and present. */
  readonly finishedRows: number
}

/**
 * `pg_stat_user_tables` and the sizes of `schema.jobs`, and of
 * `schema.jobs_done` with its partitions when present. `count` adds exact
 * row counts (a scan of each table).
 */
export const tableStatsPg = async (client: pg.Client, schema: string, count = false): Promise<TableStats> => {
  const jobs = qualified(schema, "jobs")
  const hot = (
    await client.query<{
      live: string
      dead: string
      autovacuums: string
      autoanalyzes: string
      vacuums: string
      analyzes: string
      table: string
      indexes: string
    }>(
      `SELECT n_live_tup AS live, n_dead_tup AS dead, autovacuum_count AS autovacuums,
         autoanalyze_count AS autoanalyzes, vacuum_count AS vacuums, analyze_count AS analyzes,
         pg_table_size(relid) AS table, pg_indexes_size(relid) AS indexes
       FROM pg_stat_user_tables WHERE relid = $1::regclass`,
      [jobs]
    )
  ).rows[0]
  const hasDone = (await finishedTablePg(client, schema)) === "jobs_done"
  const done = hasDone
    ? (
        await client.query<{ bytes: string; leaves: number }>(
          `SELECT coalesce(sum(pg_total_relation_size(relid)), 0) AS bytes, count(*) FILTER (WHERE isleaf)::int AS leaves
           FROM pg_partition_tree($1::regclass)`,
          [qualified(schema, "jobs_done")]
        )
      ).rows[0]
    : undefined
  const countOf = async (table: string) =>
    Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
  return {
    liveTuples: Number(hot?.live ?? Number.NaN),
    deadTuples: Number(hot?.dead ?? Number.NaN),
    autovacuums: Number(hot?.autovacuums ?? Number.NaN),
    autoanalyzes: Number(hot?.autoanalyzes ?? Number.NaN),
    vacuums: Number(hot?.vacuums ?? Number.NaN),
    analyzes: Number(hot?.analyzes ?? Number.NaN),
    tableBytes: Number(hot?.table ?? Number.NaN),
    indexBytes: Number(hot?.indexes ?? Number.NaN),
    finishedBytes: done === undefined ? Number.NaN : Number(done.bytes),
    finishedPartitions: done?.leaves ?? 0,
    rows: count ? await countOf(jobs) : Number.NaN,
    finishedRows: count && hasDone ? await countOf(qualified(schema, "jobs_done")) : Number.NaN
  }
}

/**
 * The SQLite store's file: the same finished rows, inserted by a recursive
 * CTE in one transaction (ids after the template's, and the store's id
 * counter moved past them). No `ANALYZE` after: SQLite has no autovacuum
 * to gather statistics and the store does not run it, so a user's file has
 * none either.
 */
export const loadFinishedSqlite = (
  file: string,
  n: number,
  progress: (done: number) => void,
  chunk = 500_000
) => {
  const db = new Database(file)
  try {
    db.pragma("journal_mode = WAL")
    db.pragma("busy_timeout = 10000")
    const template = db.prepare("SELECT max(id) AS id FROM nightshift_jobs").get() as { id: number }
    const columns = (db.prepare("PRAGMA table_info(nightshift_jobs)").all() as Array<{ name: string }>).map(
      (c) => c.name
    )
    const fin = "CAST(@start + x * @step AS INTEGER)"
    const overrides: Record<string, string> = {
      id: "@base + x",
      payload: "json_object('i', x, 't', 0)",
      state: "CASE WHEN x % 50 = 0 THEN 'discarded' WHEN x % 100 = 1 THEN 'cancelled' ELSE 'completed' END",
      attempt: "CASE WHEN x % 50 = 0 THEN t.max_attempts WHEN x % 100 = 1 THEN 0 ELSE 1 END",
      run_at: `${fin} - 50`,
      created_at: `${fin} - 50`,
      attempted_at: `CASE WHEN x % 100 = 1 THEN NULL ELSE ${fin} - 5 END`,
      finalized_at: fin,
      lease_owner: "CASE WHEN x % 50 = 0 OR x % 100 = 1 THEN NULL ELSE 'bench-loader' END",
      lease_expires_at: "NULL",
      fence: "CASE WHEN x % 100 = 1 THEN 0 ELSE 1 END",
      errors: `CASE WHEN x % 50 = 0 THEN json_array(json_object('attempt', t.max_attempts, 'at', ${fin},
        'kind', 'failure', 'message', 'bench: failed')) ELSE '[]' END`
    }
    db.prepare("CREATE TEMP TABLE bench_template AS SELECT * FROM nightshift_jobs WHERE id = ?").run(
      template.id
    )
    const insert = db.prepare(
      `WITH RECURSIVE g(x) AS (SELECT @from UNION ALL SELECT x + 1 FROM g WHERE x < @to)
       INSERT INTO nightshift_jobs (${columns.map((c) => `"${c}"`).join(", ")})
       SELECT ${columns.map((c) => overrides[c] ?? `t."${c}"`).join(", ")} FROM g, temp.bench_template t`
    )
    const start = Date.now() - spanMs
    db.transaction(() => {
      for (let from = 1; from <= n; from += chunk) {
        const to = Math.min(n, from + chunk - 1)
        insert.run({ from, to, base: template.id, start, step: spanMs / n })
        progress(to)
      }
      db.prepare("DELETE FROM nightshift_jobs WHERE id = ?").run(template.id)
      db.prepare("UPDATE nightshift_counters SET value = ? WHERE name = 'job_id'").run(template.id + n)
    })()
  } finally {
    db.close()
  }
}

/** A read connection on a SQLite store's file: unfinished jobs, counted on the partial indexes. */
export const sqliteCounter = (file: string) => {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  const due = db.prepare(
    "SELECT count(*) AS n FROM nightshift_jobs WHERE state IN ('available', 'scheduled', 'retryable')"
  )
  const running = db.prepare("SELECT count(*) AS n FROM nightshift_jobs WHERE state = 'running'")
  return {
    unfinished: () => (due.get() as { n: number }).n + (running.get() as { n: number }).n,
    close: () => db.close()
  }
}

/** The file's size, pages in use and free (`PRAGMA page_count`, `freelist_count`). */
export const sqliteSize = (file: string) => {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const pageSize = db.pragma("page_size", { simple: true }) as number
    const pages = db.pragma("page_count", { simple: true }) as number
    const free = db.pragma("freelist_count", { simple: true }) as number
    return { bytes: pageSize * pages, freeBytes: pageSize * free }
  } finally {
    db.close()
  }
}
