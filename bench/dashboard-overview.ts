/**
 * `npm run bench:overview`: what the dashboard overview costs on a
 * 1,000,000-row PostgreSQL job table. Not a test: it prints figures for
 * docs/benchmarks.md.
 *
 *   npm run bench:overview [-- --rows 1000000] [--runs 30] [--keep]
 *
 * It migrates a fresh schema, fills `jobs` in bulk with a day of history
 * (mostly completed jobs finished over the last 24 hours, some discarded
 * and cancelled, a backlog of available and scheduled jobs, retryable jobs
 * with errors, running jobs) across 6 queues, ANALYZEs it, and then times,
 * `--runs` times each:
 * `JobStore.activity` over the last 5 seconds (after seeding 5 seconds of
 * work at 200 jobs/s), its five statements one by one with their plans
 * (EXPLAIN ANALYZE), `JobStore.counts` for comparison (the sampler does
 * not use it: it counts every finished job too), and what
 * `GET /overview` does in memory for a full 24-hour window. Last, what the
 * retryable index adds to settling a retry (2,000 jobs in batches of 50,
 * with and without the index, 3 rounds each). The schema is dropped at the
 * end unless `--keep`.
 */

import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as History from "../src/internal/admin/history.js"
import * as PgStore from "../src/PgStore.js"
import { databaseUrl, option } from "./lib/env.js"

const rows = Number(option("rows") ?? 1_000_000)
const runs = Number(option("runs") ?? 30)
const keep = process.argv.includes("--keep")
const schema = `bench_overview_${process.pid}`

const stats = (ms: ReadonlyArray<number>) => {
  const sorted = [...ms].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { p50: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1]! }
}
const fmt = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`

const time = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const samples: Array<number> = []
    for (let i = 0; i < runs; i++) {
      const start = performance.now()
      yield* effect
      samples.push(performance.now() - start)
    }
    return stats(samples)
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  yield* PgStore.migrate({ schema })
  const jobs = sql(`${schema}.jobs`)
  const fillStart = performance.now()
  // i in 1..rows: 90% completed, 3% discarded, 1% cancelled (finished over the last day),
  // 4% available, 1% scheduled, 0.5% retryable, the rest running.
  yield* sql`INSERT INTO ${jobs} (kind, queue, payload, state, priority, attempt, max_attempts, run_at, created_at,
      attempted_at, finalized_at, lease_owner, lease_expires_at, errors)
    SELECT 'kind' || (i % 12), 'queue' || (i % 6), jsonb_build_object('n', i),
      s.state, 0, CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END, 3,
      s.t - interval '200 milliseconds', s.t - interval '300 milliseconds',
      CASE WHEN s.state IN ('available', 'scheduled') THEN NULL ELSE s.t END,
      CASE WHEN s.state IN ('completed', 'discarded', 'cancelled') THEN s.t + interval '50 milliseconds' END,
      CASE WHEN s.state = 'running' THEN 'bench' END,
      CASE WHEN s.state = 'running' THEN now() + interval '1 minute' END,
      CASE WHEN s.state IN ('discarded', 'retryable')
        THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'at', floor(extract(epoch from s.t) * 1000),
          'kind', 'failure', 'message', 'boom'))
        ELSE '[]'::jsonb END
    FROM generate_series(1, ${rows}) AS i,
    LATERAL (SELECT
      CASE WHEN i % 1000 < 900 THEN 'completed' WHEN i % 1000 < 930 THEN 'discarded'
        WHEN i % 1000 < 940 THEN 'cancelled' WHEN i % 1000 < 980 THEN 'available'
        WHEN i % 1000 < 990 THEN 'scheduled' WHEN i % 1000 < 995 THEN 'retryable' ELSE 'running' END AS state,
      CASE WHEN i % 1000 >= 980 AND i % 1000 < 990
        THEN now() + (i % 3600) * interval '1 second'
        ELSE now() - ((${rows} - i)::float8 / ${rows}) * interval '24 hours' END AS t) AS s`
  // The finished rows went to jobs_done (the store's trigger files them).
  yield* sql`ANALYZE ${jobs}`
  yield* sql`ANALYZE ${sql(`${schema}.jobs_done`)}`
  const fillMs = performance.now() - fillStart
  const [size] = yield* sql<{
    size: string
  }>`SELECT pg_size_pretty(pg_total_relation_size(${`${schema}.jobs`})) AS size`

  // The last 5 seconds at 200 jobs/s: 1,000 completions, 10 retries, 100 starts of running jobs.
  yield* sql`INSERT INTO ${jobs} (kind, queue, payload, state, attempt, max_attempts, run_at, created_at,
      attempted_at, finalized_at, errors)
    SELECT 'kind' || (i % 12), 'queue' || (i % 6), jsonb_build_object('n', i), 'completed', 1, 3,
      now() - i * interval '5 milliseconds' - interval '80 milliseconds', now() - i * interval '5 milliseconds' - interval '90 milliseconds',
      now() - i * interval '5 milliseconds' - interval '20 milliseconds', now() - i * interval '5 milliseconds', '[]'::jsonb
    FROM generate_series(1, 1000) AS i`
  yield* sql`UPDATE ${jobs} SET run_at = now() + interval '10 seconds',
      errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'at', floor(extract(epoch from now()) * 1000) - 100,
        'kind', 'failure', 'message', 'boom'))
    WHERE id IN (SELECT id FROM ${jobs} WHERE state = 'retryable' LIMIT 10)`
  yield* sql`UPDATE ${jobs} SET attempted_at = now() - interval '1 second'
    WHERE id IN (SELECT id FROM ${jobs} WHERE state = 'running' LIMIT 100)`
  const store = yield* PgStore.make({ schema })
  const now = (yield* store.now) + 1
  const since = now - 5000
  const [recent] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${jobs}
    WHERE finalized_at >= to_timestamp(${since}::float8 / 1000)`
  const activity = yield* store.activity(since)

  const results: Array<[string, { p50: number; p90: number; max: number }]> = []
  results.push(["JobStore.counts (every state; not used by the sampler)", yield* time(store.counts)])
  results.push(["JobStore.activity, last 5 s (5 statements)", yield* time(store.activity(since))])
  results.push(["JobStore.activity, last 60 s (after a gap)", yield* time(store.activity(now - 60_000))])

  // The three statements of `activity` (src/internal/store/statements.ts), with their plans.
  const from = sql`to_timestamp(${since}::float8 / 1000)`
  const to = sql`to_timestamp(${now}::float8 / 1000)`
  const lastError = sql.literal(
    "CASE WHEN jsonb_typeof(errors -> -1 -> 'at') = 'number' THEN (errors -> -1 ->> 'at')::float8 END"
  )
  const failed = sql`${lastError} >= ${since} AND ${lastError} < ${now}`
  const statements = {
    finished: sql`SELECT state, count(*)::int, sum(CASE WHEN state = 'completed' AND ${failed} THEN 1 ELSE 0 END)::int
      FROM ${jobs} WHERE state IN ('completed', 'discarded', 'cancelled') AND finalized_at >= ${from} AND finalized_at < ${to}
      GROUP BY state`,
    retried: sql`SELECT
      (SELECT count(*)::int FROM ${jobs} WHERE state = 'retryable' AND run_at >= ${from} AND ${failed}),
      (SELECT count(*)::int FROM ${jobs} WHERE state = 'running' AND ${failed})`,
    latencies: sql`SELECT extract(epoch from (attempted_at - run_at)) * 1000 FROM ${jobs}
        WHERE state = 'running' AND attempted_at >= ${from} AND attempted_at < ${to}
      UNION ALL
      SELECT extract(epoch from (attempted_at - run_at)) * 1000 FROM ${jobs}
        WHERE state IN ('completed', 'discarded', 'cancelled') AND finalized_at >= ${from} AND finalized_at < ${to}
          AND attempted_at >= ${from}
      LIMIT 1000`,
    "depth, waiting": sql`SELECT queue, state, count(*)::int FROM ${jobs}
      WHERE state IN ('available', 'scheduled', 'retryable') GROUP BY queue, state`,
    "depth, running": sql`SELECT queue, state, count(*)::int FROM ${jobs} WHERE state = 'running' GROUP BY queue, state`
  }
  const plans: Array<string> = []
  for (const [name, statement] of Object.entries(statements)) {
    results.push([`  activity: ${name}`, yield* time(statement)])
    const [compiled, params] = statement.compile()
    const plan = yield* sql.unsafe<{ "QUERY PLAN": string }>(
      `EXPLAIN (ANALYZE, COSTS OFF) ${compiled}`,
      params
    )
    plans.push(`${name}:\n${plan.map((r) => `    ${r["QUERY PLAN"]}`).join("\n")}`)
  }
  const countsPlan = yield* sql.unsafe<{ "QUERY PLAN": string }>(
    `EXPLAIN (ANALYZE, COSTS OFF) SELECT queue, state, count(*) FROM ${schema}.jobs_all GROUP BY queue, state`
  )
  plans.push(`counts:\n${countsPlan.map((r) => `    ${r["QUERY PLAN"]}`).join("\n")}`)

  // GET /overview in memory: a full history (720 samples, 1440 minutes, 9 depth columns), 24 h window.
  const history = new History.History(5000)
  let t = now - 86_400_000
  for (let i = 0; i < 17_280; i++) {
    t += 5000
    history.record(t - 5000, { ...activity, now: t })
  }
  const serve = () => JSON.stringify(history.points(86_400_000, t))
  const json = serve()
  results.push(["GET /overview?window=24h in memory (points + JSON)", yield* time(Effect.sync(serve))])

  // What the retryable index adds to a retry: settle 2,000 claimed jobs with a retry outcome in
  // batches of 50, with the index and without it (dropped, then rebuilt), alternating, 3 rounds each.
  const retry = { with: [] as Array<number>, without: [] as Array<number> }
  const retryRound = Effect.gen(function* () {
    yield* store.enqueue(
      Array.from({ length: 2000 }, (_, n) => ({
        kind: "retrybench",
        queue: "retrybench",
        payload: { n },
        priority: 0,
        maxAttempts: 5
      }))
    )
    const claimed = yield* store.claim({
      queues: ["retrybench"],
      kinds: ["retrybench"],
      limit: 2000,
      leaseMs: 60_000,
      owner: "bench"
    })
    const start = performance.now()
    for (let i = 0; i < claimed.length; i += 50) {
      yield* store.settle(
        claimed.slice(i, i + 50).map((j) => ({
          id: j.id,
          fence: j.fence,
          outcome: { _tag: "retry", delayMs: 3_600_000, error: { kind: "failure", message: "boom" } } as const
        }))
      )
    }
    return (performance.now() - start) / claimed.length
  })
  for (let round = 0; round < 3; round++) {
    retry.with.push(yield* retryRound)
    yield* sql`DROP INDEX ${sql(`${schema}.jobs_retryable_idx`)}`
    retry.without.push(yield* retryRound)
    yield* sql`CREATE INDEX jobs_retryable_idx ON ${jobs} (run_at) WHERE state = 'retryable'`
  }

  if (!keep) yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
  const [version] = yield* sql<{ v: string }>`SELECT split_part(version(), ' ', 2) AS v`
  console.log(
    `PostgreSQL ${version?.v}, ${rows.toLocaleString("en")} rows (${size?.size}), filled in ${(fillMs / 1000).toFixed(1)} s;`
  )
  console.log(
    `${recent?.n} rows finished in the 5 s span; activity returned ${JSON.stringify({ ...activity, latencies: activity.latencies.length, depth: activity.depth.length })}`
  )
  console.log(`${runs} runs each, one connection, ${new Date().toISOString()}\n`)
  console.log("| Query | p50 | p90 | max |\n|---|---|---|---|")
  for (const [name, s] of results) console.log(`| ${name} | ${fmt(s.p50)} | ${fmt(s.p90)} | ${fmt(s.max)} |`)
  console.log(
    `\nGET /overview?window=24h JSON: ${(json.length / 1024).toFixed(0)} KiB, ${JSON.parse(json).length} points`
  )
  console.log(
    `History memory: ${History.bytes.toLocaleString("en")} bytes (${History.baseSlots} + ${History.minuteSlots} rows × ${History.width} float64s)\n`
  )
  const perJob = (xs: ReadonlyArray<number>) => xs.map((x) => `${(x * 1000).toFixed(0)} µs`).join(", ")
  console.log(
    `Retry settle per job (batches of 50), with the retryable index: ${perJob(retry.with)}; without: ${perJob(retry.without)}\n`
  )
  console.log(plans.join("\n\n"))
})

const client = Layer.unwrapEffect(
  Effect.sync(() => PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 2 }))
)

Effect.runPromise(program.pipe(Effect.provide(client), Effect.scoped)).catch((e) => {
  console.error(e)
  process.exit(1)
})
