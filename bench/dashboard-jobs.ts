/**
 * `tsx bench/dashboard-jobs.ts`: the time of every query the dashboard's job
 * views and the bulk routes make, through the admin API, on a PostgreSQL
 * table of 1,000,000 jobs (issue 15). Not a test: figures for
 * docs/benchmarks.md ("Dashboard: job search and bulk actions").
 *
 *   tsx bench/dashboard-jobs.ts [--rows 1000000] [--repeat 5] [--keep]
 *
 * The table is filled in a fresh schema by one INSERT … SELECT (no runner):
 * 90% completed, 4% discarded, 3% available, 1% scheduled, 1% retryable,
 * 1% cancelled; 10 kinds, 3 queues; payload `{"tenantId": "t-<i % 10000>",
 * "n": i}`; every tenth job a dedupe key; created one per millisecond.
 * Each route is called `repeat` times; the median and the slowest are
 * printed (ms, the whole HTTP round trip on loopback). The payload search
 * runs without, then with, the expression index docs/postgres.md suggests.
 * The schema is dropped at the end unless `--keep`.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Admin from "../src/Admin.js"
import * as Job from "../src/Job.js"
import * as Nightshift from "../src/Nightshift.js"
import * as PgStore from "../src/PgStore.js"
import { databaseUrl, machine, option } from "./lib/env.js"

const rows = Number(option("rows") ?? 1_000_000)
const repeat = Number(option("repeat") ?? 5)
const keep = process.argv.includes("--keep")
const schema = `dash_bench_${Date.now().toString(36)}`
const token = "bench-token"

const fill = (sql: PgClient.PgClient) =>
  sql.unsafe(`
    INSERT INTO ${schema}.jobs (kind, queue, payload, state, priority, attempt, max_attempts, run_at, created_at,
      attempted_at, finalized_at, lease_owner, dedupe_key, errors)
    SELECT 'kind_' || (i % 10), 'queue_' || (i % 3),
      jsonb_build_object('tenantId', 't-' || (i % 10000), 'n', i),
      s.state, 0, CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END, 3,
      CASE WHEN s.state = 'scheduled' THEN now() + interval '1 day' ELSE t END, t,
      CASE WHEN s.state IN ('available', 'scheduled') THEN NULL ELSE t END,
      CASE WHEN s.state IN ('completed', 'discarded', 'cancelled') THEN t + interval '5 ms' END,
      CASE WHEN s.state = 'completed' THEN 'node-' || (i % 4) END,
      CASE WHEN i % 10 = 0 THEN 'order-' || i END,
      CASE WHEN s.state IN ('discarded', 'retryable') THEN jsonb_build_array(jsonb_build_object('attempt', 1,
        'at', floor(extract(epoch from t) * 1000), 'kind', 'failure', 'message', 'Error: boom',
        'startedAt', floor(extract(epoch from t) * 1000), 'node', 'node-1')) ELSE '[]'::jsonb END
    FROM generate_series(1, ${rows}) AS i,
      LATERAL (SELECT now() - (${rows} - i) * interval '1 millisecond' AS t) AS c,
      LATERAL (SELECT CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 94 THEN 'discarded'
        WHEN i % 100 < 97 THEN 'available' WHEN i % 100 < 98 THEN 'scheduled'
        WHEN i % 100 < 99 THEN 'retryable' ELSE 'cancelled' END AS state) AS s`)

const time = async (f: () => Promise<void>) => {
  const times: Array<number> = []
  for (let n = 0; n < repeat; n++) {
    const start = performance.now()
    await f()
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return { median: times[Math.floor(times.length / 2)]!, max: times[times.length - 1]! }
}

const main = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  yield* PgStore.migrate({ schema })
  const filled = performance.now()
  yield* fill(sql)
  // The finished rows went to jobs_done (the store's trigger files them).
  yield* sql.unsafe(`ANALYZE ${schema}.jobs; ANALYZE ${schema}.jobs_done`)
  console.log(`filled ${rows.toLocaleString("en")} rows in ${Math.round(performance.now() - filled)} ms`)
  const context = yield* Layer.build(
    Admin.layer({ port: 0, token: Redacted.make(token) }).pipe(
      Layer.provideMerge(
        Nightshift.layer(Nightshift.define({ workers: [], runner: false, handlers: Job.handlers() }))
      ),
      Layer.provideMerge(PgStore.layer({ schema, migrate: false, listen: false }))
    )
  )
  const base = Context.get(context, Admin.Server).url
  const request = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(new URL(path, base), {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" })
      },
      body: body === undefined ? null : JSON.stringify(body)
    })
    const json = (await response.json()) as any
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`)
    return json
  }
  const results: Array<readonly [string, string, { median: number; max: number }]> = []
  const measure = (
    label: string,
    method: string,
    path: string,
    body?: () => unknown,
    note?: (json: any) => string
  ) =>
    Effect.promise(async () => {
      let last: any
      const t = await time(async () => {
        last = await request(method, path, body?.())
      })
      const said = note?.(last) ?? ""
      results.push([label, said, t])
      console.log(`${label}: median ${t.median.toFixed(1)} ms, max ${t.max.toFixed(1)} ms ${said}`)
    })
  const jobs = (json: any) => `(${json.jobs.length} jobs${json.nextCursor === null ? "" : ", more"})`
  const middle = Math.floor(rows / 2)
  const [{ t } = { t: 0 }] = yield* sql<{
    t: number
  }>`SELECT floor(extract(epoch from created_at) * 1000)::float8 AS t
    FROM ${sql(`${schema}.jobs_all`)} WHERE id = ${middle}`

  yield* measure("list, newest 50", "GET", "/jobs?limit=50", undefined, jobs)
  yield* measure("list, state=discarded", "GET", "/jobs?state=discarded&limit=50", undefined, jobs)
  yield* measure("list, state=scheduled", "GET", "/jobs?state=scheduled&limit=50", undefined, jobs)
  yield* measure("list, kind + queue", "GET", "/jobs?kind=kind_3&queue=queue_1&limit=50", undefined, jobs)
  yield* measure(
    "list, id range (50 ids)",
    "GET",
    `/jobs?idFrom=${middle}&idTo=${middle + 49}`,
    undefined,
    jobs
  )
  yield* measure(
    "list, created in the last 2 s",
    "GET",
    `/jobs?createdFrom=${Date.now() - 2_000}`,
    undefined,
    jobs
  )
  yield* measure("list, created before the middle", "GET", `/jobs?createdTo=${t}&limit=50`, undefined, jobs)
  yield* measure(
    "list, dedupe key (newest job's)",
    "GET",
    `/jobs?dedupeKey=order-${rows - (rows % 10)}`,
    undefined,
    jobs
  )
  yield* measure("list, dedupe key (oldest job's)", "GET", "/jobs?dedupeKey=order-10", undefined, jobs)
  yield* measure(
    "list, payload tenantId = t-42 (100 matches)",
    "GET",
    "/jobs?payload=tenantId&value=t-42",
    undefined,
    jobs
  )
  yield* measure("list, payload with no match", "GET", "/jobs?payload=tenantId&value=nobody", undefined, jobs)
  yield* measure(
    "count, state=discarded (capped at 10,000)",
    "GET",
    "/jobs/count?state=discarded",
    undefined,
    (j) => JSON.stringify(j)
  )
  yield* measure(
    "count, payload tenantId = t-42",
    "GET",
    "/jobs/count?payload=tenantId&value=t-42",
    undefined,
    (j) => JSON.stringify(j)
  )
  yield* measure("job detail", "GET", `/jobs/${middle}`)

  yield* sql.unsafe(`CREATE INDEX jobs_tenant_idx ON ${schema}.jobs ((payload #> '{tenantId}'))`)
  yield* sql.unsafe(`CREATE INDEX jobs_done_tenant_idx ON ${schema}.jobs_done ((payload #> '{tenantId}'))`)
  yield* sql.unsafe(`ANALYZE ${schema}.jobs; ANALYZE ${schema}.jobs_done`)
  yield* measure(
    "list, payload t-42, expression index",
    "GET",
    "/jobs?payload=tenantId&value=t-42",
    undefined,
    jobs
  )
  yield* measure(
    "list, payload no match, expression index",
    "GET",
    "/jobs?payload=tenantId&value=nobody",
    undefined,
    jobs
  )
  yield* measure(
    "count, payload t-42, expression index",
    "GET",
    "/jobs/count?payload=tenantId&value=t-42",
    undefined,
    (j) => JSON.stringify(j)
  )

  // Bulk: each call acts on jobs no earlier call changed.
  const discardedIds = (yield* sql<{ id: string }>`SELECT id::text FROM ${sql(`${schema}.jobs_all`)}
    WHERE state = 'discarded' ORDER BY id LIMIT ${1000 * repeat}`).map((r) => r.id)
  let batch = 0
  const next = () => discardedIds.slice(1000 * batch, 1000 * ++batch)
  yield* measure(
    "bulk retry, 1,000 ids",
    "POST",
    "/jobs/bulk/retry",
    () => ({ ids: next() }),
    (j) => `(changed ${j.changed})`
  )
  yield* measure(
    "bulk cancel, filter state=available, max 1,000",
    "POST",
    "/jobs/bulk/cancel",
    () => ({ filter: { state: ["available"] }, max: 1000 }),
    (j) => `(changed ${j.changed})`
  )
  yield* measure(
    "bulk delete, filter state=cancelled, max 1,000",
    "POST",
    "/jobs/bulk/delete",
    () => ({ filter: { state: ["cancelled"] }, max: 1000 }),
    (j) => `(changed ${j.changed})`
  )
  let tenant = 100
  yield* measure(
    "bulk cancel, payload tenantId (100 matches)",
    "POST",
    "/jobs/bulk/cancel",
    () => ({ filter: { payload: { path: "tenantId", value: `t-${tenant++}` } } }),
    (j) => `(changed ${j.changed}, skipped ${j.skipped.reduce((n: number, s: any) => n + s.count, 0)})`
  )
  const scheduled = (yield* sql<{ id: string }>`SELECT id::text FROM ${sql(`${schema}.jobs`)}
    WHERE state = 'scheduled' ORDER BY id LIMIT ${repeat}`).map((r) => r.id)
  let s = 0
  yield* Effect.promise(async () => {
    const t = await time(async () => {
      await request("POST", `/jobs/${scheduled[s++]}/run`)
    })
    results.push(["run now", "", t])
    console.log(`run now: median ${t.median.toFixed(1)} ms, max ${t.max.toFixed(1)} ms`)
  })

  console.log(`\n${JSON.stringify(machine())}, ${rows.toLocaleString("en")} rows, ${repeat} calls each\n`)
  console.log("| route | median ms | max ms | result |\n| --- | --- | --- | --- |")
  for (const [label, said, t] of results)
    console.log(`| ${label} | ${t.median.toFixed(1)} | ${t.max.toFixed(1)} | ${said} |`)
}).pipe(
  Effect.ensuring(
    keep
      ? Effect.void
      : Effect.flatMap(PgClient.PgClient, (sql) =>
          sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        ).pipe(Effect.ignore)
  ),
  Effect.scoped,
  Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 4 }))
)

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
