/**
 * Flow-control spike: what a SIGKILLed claimer leaves behind, per technique.
 *
 *   npx tsx bench/flow/kill.ts
 *
 * A child process claims 2 jobs of partition P (per-partition limit 2, lease
 * 300 ms) and is SIGKILLed while "running" them. Then the parent claims P:
 * right away, after the lease expired, after today's rescue (jobs rows only)
 * and after the technique's own rescue. Prints how many jobs each claim got.
 */
import { fork } from "node:child_process"
import pg from "pg"
import { schemaSql } from "./sql.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const claimSql = (s: string, tech: string) =>
  ({
    "count-part2": `SELECT * FROM ${s}.claim_count_part('q', 10, $1, 300, now(), '', 2)`,
    "slot-part2": `SELECT * FROM ${s}.claim_slot_part('q', 10, $1, 300, now(), '')`,
    "counter-part2": `SELECT * FROM ${s}.claim_counter_part('q', 10, $1, 300, now(), '')`
  })[tech]!

if (process.argv[2] === "--child") {
  const [, , , s, tech] = process.argv
  const c = new pg.Client({ connectionString: url, application_name: "flowspike-child" })
  await c.connect()
  const r = await c.query(claimSql(s!, tech!), ["child"])
  process.send!({ claimed: r.rows.length, pid: (c as unknown as { processID: number }).processID })
  await new Promise(() => {}) // "running" forever, until SIGKILL
} else {
  const S = `flowspike_kill_${process.pid}`
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const out: string[] = []
  try {
    await c.query(schemaSql(S))
    for (const tech of ["count-part2", "slot-part2", "counter-part2"]) {
      await c.query(`TRUNCATE ${S}.jobs, ${S}.slots, ${S}.pcount RESTART IDENTITY`)
      await c.query(
        `INSERT INTO ${S}.jobs (queue, partition, state, run_at) SELECT 'q', 'P', 'available', now() - interval '1 s' FROM generate_series(1, 10)`
      )
      await c.query(`INSERT INTO ${S}.slots (queue, key, n) VALUES ('q', 'P', 1), ('q', 'P', 2)`)
      await c.query(`INSERT INTO ${S}.pcount (queue, partition, lim) VALUES ('q', 'P', 2)`)
      const child = fork(new URL(import.meta.url).pathname, ["--child", S, tech], { stdio: "inherit" })
      const msg = await new Promise<{ claimed: number; pid: number }>((res) =>
        child.once("message", res as never)
      )
      child.kill("SIGKILL")
      await new Promise((res) => child.once("exit", res))
      // Wait until the server has noticed the dead connection.
      for (let i = 0; i < 100; i++) {
        const a = await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1`, [msg.pid])
        if (a.rows[0].n === 0) break
        await sleep(20)
      }
      const claim = async () => {
        const r = await c.query(claimSql(S, tech), ["parent"])
        // Give back what we got, settled, so the next step starts from the same state.
        if (r.rows.length > 0) {
          const ids = r.rows.map((x) => x.id)
          if (tech === "slot-part2") await c.query(`SELECT ${S}.settle_slot('q', '{P}', $1, now())`, [ids])
          else if (tech === "counter-part2")
            await c.query(`SELECT ${S}.settle_counter('q', $1, now())`, [ids])
          else await c.query(`SELECT ${S}.settle($1, now())`, [ids])
        }
        return r.rows.length
      }
      const immediately = await claim()
      await sleep(400)
      const afterExpiry = await claim()
      const rescued = (await c.query(`SELECT ${S}.rescue(now()) AS n`)).rows[0].n
      const afterPlainRescue = await claim()
      let own = "–"
      if (tech === "slot-part2") {
        const swept = (await c.query(`SELECT ${S}.sweep_slots() AS n`)).rows[0].n
        own = `sweep freed ${swept} slot(s), then claimed ${await claim()}`
      } else if (tech === "counter-part2") {
        // The plain rescue already moved the rows out of running, so rescue_counter
        // finds nothing: the count stays wrong until repaired from the jobs rows.
        const held = (await c.query(`SELECT running FROM ${S}.pcount`)).rows[0].running
        own = `count row still says ${held} running; needs rescue_counter in the same statement as the rescue`
      }
      out.push(
        `| ${tech} | ${msg.claimed} | ${immediately} | ${afterExpiry} | ${rescued} → ${afterPlainRescue} | ${own} |`
      )
    }
    // The technique-aware rescues, run instead of the plain one.
    for (const [tech, rescue] of [
      ["slot-part2", "rescue_slot"],
      ["counter-part2", "rescue_counter"]
    ] as const) {
      await c.query(`TRUNCATE ${S}.jobs, ${S}.slots, ${S}.pcount RESTART IDENTITY`)
      await c.query(
        `INSERT INTO ${S}.jobs (queue, partition, state, run_at) SELECT 'q', 'P', 'available', now() - interval '1 s' FROM generate_series(1, 10)`
      )
      await c.query(`INSERT INTO ${S}.slots (queue, key, n) VALUES ('q', 'P', 1), ('q', 'P', 2)`)
      await c.query(`INSERT INTO ${S}.pcount (queue, partition, lim) VALUES ('q', 'P', 2)`)
      const child = fork(new URL(import.meta.url).pathname, ["--child", S, tech], { stdio: "inherit" })
      const msg = await new Promise<{ claimed: number }>((res) => child.once("message", res as never))
      child.kill("SIGKILL")
      await new Promise((res) => child.once("exit", res))
      await sleep(400)
      const n = (await c.query(`SELECT ${S}.${rescue}(now()) AS n`)).rows[0].n
      const r = await c.query(claimSql(S, tech), ["parent"])
      out.push(`| ${tech} with ${rescue} | ${msg.claimed} | – | – | ${n} → ${r.rows.length} | – |`)
    }
  } finally {
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await c.end()
  }
  console.log(
    "| technique | child claimed, then SIGKILL | parent claims at once | after lease expiry (no rescue) | rescue(): rows taken back → parent claims | repair |"
  )
  console.log("|---|---|---|---|---|---|")
  for (const l of out) console.log(l)
}
