/**
 * Flow-control spike: drains and the fairness scenario, every technique side
 * by side, rounds interleaved. See README.md.
 *
 *   npx tsx bench/flow/run.ts [--rounds 3] [--batch 25] [--loops 10] [--jobs 20000] [--parts 1000]
 *     [--only name,name] [--skip-fairness] [--skip-skew] [--bare] [--keep]
 *
 * DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/postgres.
 * Works in its own schema flowspike_<pid>, dropped at the end (unless --keep).
 */
import pg from "pg"
import { schemaSql } from "./sql.js"

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt
}
const flag = (name: string) => process.argv.includes(`--${name}`)
const ROUNDS = Number(arg("rounds", "3"))
const BATCH = Number(arg("batch", "25"))
const LOOPS = Number(arg("loops", "10"))
const JOBS = Number(arg("jobs", "20000"))
const PARTS = Number(arg("parts", "1000"))
const PER_PART = 2
const GLOBAL = 50
const FAIR_A = Number(arg("fair-a", "50000"))
const FAIR_B = 100
const ONLY = arg("only", "")
  .split(",")
  .filter((x) => x !== "")
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const S = `flowspike_${process.pid}`
const Q = "q"
const LEASE_MS = 30_000

type Limit = "none" | "part" | "global"
type Tech = {
  name: string
  limit: Limit
  /** claim SQL; $1 queue, $2 limit, $3 owner, $4 lease, $5 now, $6 cursor (when fair) */
  claim: string
  cursor: boolean
  settle: "plain" | "slot" | "counter"
  setup?: string
}

const techs: Tech[] = [
  {
    name: "base",
    limit: "none",
    claim: `SELECT * FROM ${S}.claim_base($1, $2, $3, $4, $5)`,
    cursor: false,
    settle: "plain"
  },
  {
    name: "fair",
    limit: "none",
    claim: `SELECT * FROM ${S}.claim_fair($1, $2, $3, $4, $5, $6)`,
    cursor: true,
    settle: "plain"
  },
  {
    name: "count-part2",
    limit: "part",
    claim: `SELECT * FROM ${S}.claim_count_part($1, $2, $3, $4, $5, $6, ${PER_PART})`,
    cursor: true,
    settle: "plain"
  },
  {
    name: "slot-part2",
    limit: "part",
    claim: `SELECT * FROM ${S}.claim_slot_part($1, $2, $3, $4, $5, $6)`,
    cursor: true,
    settle: "slot",
    setup: `INSERT INTO ${S}.slots (queue, key, n)
      SELECT '${Q}', p.partition, g FROM (SELECT DISTINCT partition FROM ${S}.jobs) p, generate_series(1, ${PER_PART}) g`
  },
  {
    name: "counter-part2",
    limit: "part",
    claim: `SELECT * FROM ${S}.claim_counter_part($1, $2, $3, $4, $5, $6)`,
    cursor: true,
    settle: "counter",
    setup: `INSERT INTO ${S}.pcount (queue, partition, lim) SELECT DISTINCT '${Q}', partition, ${PER_PART} FROM ${S}.jobs`
  },
  ...[GLOBAL, 500].flatMap((g): Tech[] => [
    {
      name: `count-global${g}`,
      limit: "global",
      claim: `SELECT * FROM ${S}.claim_count_global($1, $2, $3, $4, $5, ${g})`,
      cursor: false,
      settle: "plain"
    },
    {
      name: `sharded-global${g}`,
      limit: "global",
      claim: `SELECT * FROM ${S}.claim_count_sharded($1, $2, $3, $4, $5, ${g}, ${Math.max(1, Math.min(10, Math.floor(g / BATCH)))})`,
      cursor: false,
      settle: "plain"
    },
    {
      name: `slot-global${g}`,
      limit: "global",
      claim: `SELECT * FROM ${S}.claim_slot_global($1, $2, $3, $4, $5)`,
      cursor: false,
      settle: "slot",
      setup: `INSERT INTO ${S}.slots (queue, key, n) SELECT '${Q}', '*', g FROM generate_series(1, ${g}) g`
    }
  ])
]

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const connect = async () => {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query(`SET search_path = ${S}, public`)
  return c
}

type Outcome = {
  ms: number
  jobsPerSec: number
  claims: number
  empty: number
  claimP50: number
  dup: number
  maxPartSampled: number
  maxGlobalSampled: number
  maxPartClient: number
  maxGlobalClient: number
  samples: number
  auditOk: boolean
  audit: string
  bWaitP50?: number
  bWaitP99?: number
  bWaitMax?: number
}

/** Repeatedly reads the running rows in one snapshot: exact maxima at each sample. */
const sampler = (c: pg.Client) => {
  let stop = false
  const res = { maxPart: 0, maxGlobal: 0, samples: 0 }
  const done = (async () => {
    while (!stop) {
      const r = await c.query(
        `SELECT coalesce(sum(n), 0)::int AS g, coalesce(max(n), 0)::int AS p FROM (
           SELECT count(*) AS n FROM ${S}.jobs WHERE queue = $1 AND state = 'running' GROUP BY partition) x`,
        [Q]
      )
      res.maxGlobal = Math.max(res.maxGlobal, r.rows[0].g)
      res.maxPart = Math.max(res.maxPart, r.rows[0].p)
      res.samples++
      await sleep(1)
    }
  })()
  return {
    res,
    finish: async () => {
      stop = true
      await done
      return res
    }
  }
}

const run = async (
  admin: pg.Client,
  clients: pg.Client[],
  samplerClient: pg.Client,
  tech: Tech,
  mode: "drain" | "skew" | "fair"
): Promise<Outcome> => {
  await admin.query(`TRUNCATE ${S}.jobs, ${S}.slots, ${S}.pcount RESTART IDENTITY`)
  if (mode === "drain") {
    await admin.query(
      `INSERT INTO ${S}.jobs (queue, partition, state, run_at)
       SELECT $1, 'p' || lpad((i % $2)::text, 5, '0'), 'available', now() - interval '1 hour' + i * interval '1 microsecond'
       FROM generate_series(1, $3) i`,
      [Q, PARTS, JOBS]
    )
  } else if (mode === "skew") {
    // Quadratic skew: partition p00000 holds ~3% of the jobs, the top 10 ~10%; a
    // deterministic permutation of i spreads every partition's jobs over the run_at order.
    await admin.query(
      `INSERT INTO ${S}.jobs (queue, partition, state, run_at)
       SELECT $1, 'p' || lpad(floor($2 * power(((i::bigint * 7919) % $3)::float8 / $3, 2))::int::text, 5, '0'),
         'available', now() - interval '1 hour' + i * interval '1 microsecond'
       FROM generate_series(1, $3) i`,
      [Q, PARTS, JOBS]
    )
  } else {
    await admin.query(
      `INSERT INTO ${S}.jobs (queue, partition, state, run_at)
       SELECT $1, 'A', 'available', now() - interval '1 hour' + i * interval '1 microsecond'
       FROM generate_series(1, $2) i`,
      [Q, FAIR_A]
    )
  }
  if (tech.setup) await admin.query(tech.setup)
  await admin.query(`VACUUM ANALYZE ${S}.jobs`)
  await admin.query(`VACUUM ANALYZE ${S}.slots`)
  await admin.query(`VACUUM ANALYZE ${S}.pcount`)

  const total = mode === "fair" ? FAIR_A + FAIR_B : JOBS
  let completed = 0
  let claims = 0
  let empty = 0
  let dup = 0
  const claimMs: number[] = []
  const seen = new Set<string>()
  const runningPart = new Map<string, number>()
  let runningGlobal = 0
  let maxPartClient = 0
  let maxGlobalClient = 0
  let bEnqueuedAt = 0
  const bWaits: number[] = []
  let stop = false

  const smp = sampler(samplerClient)
  const t0 = performance.now()
  const loop = async (c: pg.Client, i: number) => {
    let cursor = `p${String(Math.floor((i * PARTS) / LOOPS)).padStart(5, "0")}`
    const owner = `w${i}`
    while (!stop && completed < total) {
      const a = performance.now()
      const args: unknown[] = [Q, BATCH, owner, LEASE_MS, new Date()]
      if (tech.cursor) args.push(cursor)
      const r = await c.query(tech.claim, args)
      const b = performance.now()
      claims++
      claimMs.push(b - a)
      if (r.rows.length === 0) {
        empty++
        await sleep(2)
        continue
      }
      let bestOrd = -1
      for (const row of r.rows as { id: string; partition: string; ord: number }[]) {
        if (seen.has(row.id)) dup++
        seen.add(row.id)
        const n = (runningPart.get(row.partition) ?? 0) + 1
        runningPart.set(row.partition, n)
        maxPartClient = Math.max(maxPartClient, n)
        runningGlobal++
        if (row.partition === "B") bWaits.push(b - bEnqueuedAt)
        if (row.ord >= bestOrd) {
          bestOrd = row.ord
          cursor = row.partition
        }
      }
      maxGlobalClient = Math.max(maxGlobalClient, runningGlobal)
      // Accounting errs low (increment after the claim returned, decrement before
      // the settle is sent): any excess it reports really happened.
      const ids = r.rows.map((x) => x.id)
      const keys = [...new Set(r.rows.map((x) => x.partition as string))]
      for (const row of r.rows) runningPart.set(row.partition, runningPart.get(row.partition)! - 1)
      runningGlobal -= r.rows.length
      const now = new Date()
      if (tech.settle === "plain") await c.query(`SELECT ${S}.settle($1, $2)`, [ids, now])
      else if (tech.settle === "slot")
        await c.query(`SELECT ${S}.settle_slot($1, $2, $3, $4)`, [
          Q,
          tech.limit === "global" ? ["*"] : keys,
          ids,
          now
        ])
      else await c.query(`SELECT ${S}.settle_counter($1, $2, $3)`, [Q, ids, now])
      completed += r.rows.length
      if (mode === "fair" && bWaits.length >= FAIR_B) stop = true
    }
  }
  const loops = clients.map((c, i) => loop(c, i))
  if (mode === "fair") {
    await sleep(300)
    await admin.query(
      `INSERT INTO ${S}.jobs (queue, partition, state, run_at) SELECT $1, 'B', 'available', now() FROM generate_series(1, $2)`,
      [Q, FAIR_B]
    )
    bEnqueuedAt = performance.now()
  }
  const settled = await Promise.allSettled(loops)
  const ms = performance.now() - t0
  const s = await smp.finish()
  for (const x of settled) if (x.status === "rejected") throw new Error(`${tech.name} ${mode}: ${x.reason}`)

  const a = await admin.query(
    `SELECT count(*) FILTER (WHERE state = 'completed')::int AS done,
            count(*) FILTER (WHERE state = 'running')::int AS running,
            count(*) FILTER (WHERE attempt > 1)::int AS reclaimed,
            (SELECT count(*)::int FROM ${S}.slots WHERE job_id IS NOT NULL) AS held_slots,
            (SELECT coalesce(sum(running), 0)::int FROM ${S}.pcount) AS counted
     FROM ${S}.jobs`
  )
  const x = a.rows[0]
  const expectDone = mode === "fair" ? completed : JOBS
  const auditOk =
    x.done === expectDone && x.running === 0 && x.reclaimed === 0 && x.held_slots === 0 && x.counted === 0
  return {
    ms,
    jobsPerSec: (completed / ms) * 1000,
    claims,
    empty,
    claimP50: median(claimMs),
    dup,
    maxPartSampled: s.maxPart,
    maxGlobalSampled: s.maxGlobal,
    maxPartClient,
    maxGlobalClient,
    samples: s.samples,
    auditOk,
    audit: JSON.stringify(x),
    ...(mode === "fair"
      ? { bWaitP50: pct(bWaits, 50), bWaitP99: pct(bWaits, 99), bWaitMax: Math.max(...bWaits) }
      : {})
  }
}

const main = async () => {
  const admin = await connect().catch(async () => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    return c
  })
  await admin.query(schemaSql(S))
  if (flag("bare"))
    await admin.query(
      `DROP INDEX ${S}.jobs_part_claim_idx; DROP INDEX ${S}.jobs_running_idx; DROP INDEX ${S}.jobs_running_shard_idx`
    )
  const clients = await Promise.all(Array.from({ length: LOOPS }, connect))
  const samplerClient = await connect()
  const drainTechs = techs.filter((t) => ONLY.length === 0 || ONLY.includes(t.name))
  const fairTechs = techs.filter((t) => ["base", "fair", "count-part2"].includes(t.name))
  const results = new Map<string, Outcome[]>()
  const push = (k: string, o: Outcome) => {
    results.set(k, [...(results.get(k) ?? []), o])
    const flagBad = o.dup > 0 || !o.auditOk ? " !!AUDIT" : ""
    console.error(
      `${k.padEnd(22)} ${o.ms.toFixed(0).padStart(6)} ms ${o.jobsPerSec.toFixed(0).padStart(6)} j/s claims ${o.claims} empty ${o.empty} claimP50 ${o.claimP50.toFixed(2)} ms maxPart s/c ${o.maxPartSampled}/${o.maxPartClient} maxGlobal s/c ${o.maxGlobalSampled}/${o.maxGlobalClient} samples ${o.samples} dup ${o.dup}` +
        (o.bWaitP50 !== undefined
          ? ` B wait p50 ${o.bWaitP50.toFixed(0)} p99 ${o.bWaitP99!.toFixed(0)} max ${o.bWaitMax!.toFixed(0)} ms`
          : "") +
        flagBad +
        (flagBad ? ` ${o.audit}` : "")
    )
  }
  try {
    for (let round = 0; round < ROUNDS; round++) {
      console.error(`-- round ${round + 1}`)
      // Rotate the order each round so no technique always runs first.
      const order = drainTechs.map((_, i) => drainTechs[(i + round) % drainTechs.length]!)
      for (const t of order) push(`drain ${t.name}`, await run(admin, clients, samplerClient, t, "drain"))
      if (!flag("skip-skew"))
        for (const t of order) push(`skew ${t.name}`, await run(admin, clients, samplerClient, t, "skew"))
      if (!flag("skip-fairness"))
        for (const t of fairTechs) push(`fair ${t.name}`, await run(admin, clients, samplerClient, t, "fair"))
    }
  } finally {
    if (!flag("keep")) await admin.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await Promise.all([...clients, samplerClient, admin].map((c) => c.end()))
  }

  // Report: medians over rounds; ratio = median of per-round ratios to drain base.
  const baseOf = (k: string) => results.get(`${k.split(" ")[0]} base`) ?? []
  console.log(
    `\n${ROUNDS} rounds, ${LOOPS} claimer loops, batch ${BATCH}, ${JOBS} jobs over ${PARTS} partitions; fairness: A ${FAIR_A} backlog, B ${FAIR_B} enqueued 300 ms in\n`
  )
  console.log(
    "| run | median ms | jobs/s | vs base | claims | empty claims | claim p50 ms | max running/partition (sampled / loops) | max running global (sampled / loops) | dup | audit | B wait p50 / p99 ms |"
  )
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|")
  for (const [k, os] of results) {
    const ratio =
      baseOf(k).length === os.length && !k.startsWith("fair")
        ? median(os.map((o, i) => o.jobsPerSec / baseOf(k)[i]!.jobsPerSec)).toFixed(2)
        : "–"
    const mx = (f: (o: Outcome) => number) => Math.max(...os.map(f))
    console.log(
      `| ${k} | ${median(os.map((o) => o.ms)).toFixed(0)} | ${median(os.map((o) => o.jobsPerSec)).toFixed(0)} | ${ratio} | ${median(os.map((o) => o.claims)).toFixed(0)} | ${median(os.map((o) => o.empty)).toFixed(0)} | ${median(os.map((o) => o.claimP50)).toFixed(2)} | ${mx((o) => o.maxPartSampled)} / ${mx((o) => o.maxPartClient)} | ${mx((o) => o.maxGlobalSampled)} / ${mx((o) => o.maxGlobalClient)} | ${mx((o) => o.dup)} | ${os.every((o) => o.auditOk) ? "ok" : "FAIL"} | ${os[0]!.bWaitP50 !== undefined ? `${median(os.map((o) => o.bWaitP50!)).toFixed(0)} / ${median(os.map((o) => o.bWaitP99!)).toFixed(0)}` : "–"} |`
    )
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
