/**
 * Flow-control spike: rate limits (at most N starts per window W), two ways.
 *
 *   npx tsx bench/flow/rate.ts [--rounds 3] [--jobs 3000]
 *
 * - rate-slot:  N token rows per limited key; a row is free when its last use
 *   is at least W old; a claim takes free rows (SKIP LOCKED) and stamps them.
 *   Nothing to release: settle, rescue and cancel never touch them.
 * - rate-count: advisory lock on the key, then count the starts in the last W
 *   through an index on (queue, attempted_at), take at most N - count.
 *
 * Checked after each run: the most starts (attempted_at) in any window [t, t + W).
 */
import pg from "pg"
import { schemaSql } from "./sql.js"

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt
}
const ROUNDS = Number(arg("rounds", "3"))
const JOBS = Number(arg("jobs", "3000"))
const LOOPS = 10
const BATCH = 25
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const S = `flowspike_rate_${process.pid}`
const Q = "q"

const settings = `LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_sort = off
  SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off`
const due = `d.state IN ('available', 'scheduled', 'retryable') AND d.run_at <= p_now`
const take = `
  UPDATE ${S}.jobs AS j SET state = 'running', attempt = j.attempt + 1, fence = j.fence + 1, attempted_at = p_now,
    lease_owner = p_owner, lease_expires_at = p_now + interval '30 seconds'
  FROM pick WHERE j.id = pick.id RETURNING j.id`

const rateSql = `
  ALTER TABLE ${S}.slots ADD COLUMN used_at timestamptz NOT NULL DEFAULT '-infinity';
  CREATE INDEX jobs_started_idx ON ${S}.jobs (queue, attempted_at);

  CREATE FUNCTION ${S}.claim_rate_slot(p_queue text, p_limit integer, p_owner text, p_now timestamptz, p_window_ms float8)
  RETURNS TABLE(id bigint) ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH got AS MATERIALIZED (
        SELECT s.n FROM ${S}.slots s
        WHERE s.queue = p_queue AND s.key = 'rate' AND s.used_at <= p_now - p_window_ms * interval '1 millisecond'
        ORDER BY s.n LIMIT p_limit FOR UPDATE SKIP LOCKED),
      gotn AS (SELECT g.n, row_number() OVER (ORDER BY g.n) AS rn FROM got g),
      jobsel AS (
        SELECT x.id, row_number() OVER (ORDER BY x.priority, x.run_at, x.id) AS rn FROM (
          SELECT d.id, d.priority, d.run_at FROM ${S}.jobs d WHERE d.queue = p_queue AND ${due}
          ORDER BY d.priority, d.run_at, d.id LIMIT (SELECT count(*) FROM got) FOR UPDATE SKIP LOCKED) x),
      pick AS MATERIALIZED (SELECT js.id, gn.n AS slot FROM jobsel js JOIN gotn gn ON gn.rn = js.rn),
      used AS (
        UPDATE ${S}.slots s SET used_at = p_now
        FROM pick WHERE s.queue = p_queue AND s.key = 'rate' AND s.n = pick.slot)
      ${take};
  END $fn$;

  CREATE FUNCTION ${S}.claim_rate_count(p_queue text, p_limit integer, p_owner text, p_now timestamptz, p_window_ms float8, p_max integer)
  RETURNS TABLE(id bigint) ${settings} AS $fn$
  DECLARE v_room integer;
  BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_queue, 2));
    SELECT p_max - count(*) INTO v_room FROM ${S}.jobs c
    WHERE c.queue = p_queue AND c.attempted_at > p_now - p_window_ms * interval '1 millisecond';
    IF v_room <= 0 THEN RETURN; END IF;
    RETURN QUERY
      WITH pick AS (
        SELECT d.id FROM ${S}.jobs d WHERE d.queue = p_queue AND ${due}
        ORDER BY d.priority, d.run_at, d.id LIMIT least(p_limit, v_room) FOR UPDATE SKIP LOCKED)
      ${take};
  END $fn$;`

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const main = async () => {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(schemaSql(S))
  await admin.query(rateSql)
  const clients = await Promise.all(
    Array.from({ length: LOOPS }, async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      return c
    })
  )
  const configs = [
    { n: 100, w: 200 },
    { n: 1000, w: 2000 }
  ]
  const rows: Record<
    string,
    { ms: number; rate: number; maxInWindow: number; claims: number; claimP50: number }[]
  > = {}
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const { n, w } of configs) {
        for (const tech of round % 2 ? ["rate-count", "rate-slot"] : ["rate-slot", "rate-count"]) {
          await admin.query(`TRUNCATE ${S}.jobs, ${S}.slots RESTART IDENTITY`)
          await admin.query(
            `INSERT INTO ${S}.jobs (queue, partition, state, run_at)
             SELECT $1, 'p', 'available', now() - interval '1 hour' + i * interval '1 microsecond' FROM generate_series(1, $2) i`,
            [Q, JOBS]
          )
          await admin.query(
            `INSERT INTO ${S}.slots (queue, key, n) SELECT $1, 'rate', g FROM generate_series(1, $2) g`,
            [Q, n]
          )
          await admin.query(`VACUUM ANALYZE ${S}.jobs`)
          await admin.query(`VACUUM ANALYZE ${S}.slots`)
          let completed = 0
          let claims = 0
          const claimMs: number[] = []
          const t0 = performance.now()
          await Promise.all(
            clients.map(async (c, i) => {
              while (completed < JOBS) {
                const a = performance.now()
                const r =
                  tech === "rate-slot"
                    ? await c.query(`SELECT * FROM ${S}.claim_rate_slot($1, $2, $3, $4, $5)`, [
                        Q,
                        BATCH,
                        `w${i}`,
                        new Date(),
                        w
                      ])
                    : await c.query(`SELECT * FROM ${S}.claim_rate_count($1, $2, $3, $4, $5, $6)`, [
                        Q,
                        BATCH,
                        `w${i}`,
                        new Date(),
                        w,
                        n
                      ])
                claims++
                claimMs.push(performance.now() - a)
                if (r.rows.length === 0) {
                  await sleep(2)
                  continue
                }
                await c.query(`SELECT ${S}.settle($1, $2)`, [r.rows.map((x) => x.id), new Date()])
                completed += r.rows.length
              }
            })
          )
          const ms = performance.now() - t0
          const chk = await admin.query(
            `SELECT max(c)::int AS m, count(*) FILTER (WHERE attempt <> 1)::int AS bad FROM (
               SELECT attempt, count(*) OVER (ORDER BY attempted_at
                 RANGE BETWEEN CURRENT ROW AND $1::interval FOLLOWING) AS c
               FROM ${S}.jobs) x`,
            [`${w * 1000 - 1} microseconds`]
          )
          const done = await admin.query(`SELECT count(*)::int AS n FROM ${S}.jobs WHERE state = 'completed'`)
          if (done.rows[0].n !== JOBS || chk.rows[0].bad !== 0) throw new Error(`audit failed ${tech}`)
          const key = `${tech} N=${n}/W=${w}ms`
          const o = {
            ms,
            rate: (JOBS / ms) * 1000,
            maxInWindow: chk.rows[0].m,
            claims,
            claimP50: median(claimMs)
          }
          ;(rows[key] ??= []).push(o)
          console.error(`${key.padEnd(28)} ${JSON.stringify(o)}`)
        }
      }
    }
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await Promise.all([...clients, admin].map((c) => c.end()))
  }
  console.log(
    `\n${ROUNDS} rounds, ${JOBS} no-op jobs, ${LOOPS} loops, batch ${BATCH}; the ideal rate is N/W = 500 starts/s\n`
  )
  console.log(
    "| run | median ms | starts/s | most starts in any window W (limit N) | claims | claim p50 ms |"
  )
  console.log("|---|---|---|---|---|---|")
  for (const [k, os] of Object.entries(rows))
    console.log(
      `| ${k} | ${median(os.map((o) => o.ms)).toFixed(0)} | ${median(os.map((o) => o.rate)).toFixed(0)} | ${Math.max(...os.map((o) => o.maxInWindow))} | ${median(os.map((o) => o.claims)).toFixed(0)} | ${median(os.map((o) => o.claimP50)).toFixed(2)} |`
    )
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
