/**
 * Many nodes on one PostgreSQL schema, as real node processes.
 *
 * Three processes (test/fixtures/pg-node.ts) each run a job runner, a cron
 * job every second, a singleton periodic worker and a leader candidate. They
 * drain 5,000 jobs; midway, the process that leads is SIGKILLed (it holds
 * jobs, and may hold the singleton lock). The survivors finish the work and
 * are then stopped gracefully. Nodes report what they do to tables in the
 * test's schema; the scenario runs once and each test checks one guarantee
 * in what was recorded.
 *
 * Starting node processes is slow on a small machine, so the scenario starts
 * three, once. Waits are for outcomes, with generous deadlines.
 */
import * as Path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { beforeAll, describe, expect, it } from "vitest"
import type * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import { type Node, running, spawnFixture } from "./setup/nodes.js"
import { clientLayer, databaseUrl, dropSchema, eventually, freshSchema } from "./setup/pg.js"

const fixture = Path.join(import.meta.dirname, "fixtures", "pg-node.ts")
const leaseMs = 5_000
const rescueIntervalMs = 500
const total = 5_000

/** Start a node process; it is SIGKILLed when the scope closes if still running. */
const spawnNode = (schema: string, name: string) =>
  spawnFixture(fixture, name, {
    DATABASE_URL: databaseUrl(),
    NS_SCHEMA: schema,
    NS_NODE: name,
    NS_LEASE_MS: String(leaseMs)
  })

/** Ask nodes to shut down gracefully, and wait (SIGKILL after 20 s). */
const stop = (nodes: ReadonlyArray<Node>) =>
  Effect.forEach(
    nodes.filter(running),
    (node) =>
      Effect.promise(async () => {
        node.process.kill("SIGTERM")
        const timer = setTimeout(() => node.process.kill("SIGKILL"), 20_000)
        await node.exited
        clearTimeout(timer)
      }),
    { concurrency: "unbounded", discard: true }
  )

/** A migrated schema with the tables the nodes report to, dropped when the scope closes. */
const prepare = Effect.gen(function* () {
  const context = yield* Layer.build(clientLayer({ maxConnections: 4 }))
  const sql = Context.get(context, SqlClient.SqlClient)
  const client = Context.get(context, PgClient.PgClient)
  const schema = freshSchema("multi")
  yield* Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
  yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  yield* sql.unsafe(`
    CREATE TABLE ${schema}.nodes (node text, pid integer, at timestamptz DEFAULT clock_timestamp());
    CREATE TABLE ${schema}.runs (id bigserial, job_id bigint, node text, attempt integer,
                                 at timestamptz DEFAULT clock_timestamp());
    CREATE TABLE ${schema}.ticks (id serial, node text, started_at timestamptz, ended_at timestamptz);
    CREATE TABLE ${schema}.cron_log (slot bigint, node text, won boolean, job_id bigint);
    CREATE TABLE ${schema}.leader_log (node text, is_leader boolean, at timestamptz);`)
  const count = (from: string) =>
    Effect.map(sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`), (rows) => rows[0]!.n)
  return { schema, sql, client, count }
})

const enqueueWork = (store: JobStore.Service) =>
  Effect.forEach(
    Array.from({ length: total / 1_000 }, (_, batch) => batch),
    (batch) =>
      store.enqueue(
        Array.from({ length: 1_000 }, (_, k) => ({
          kind: "work",
          queue: "default",
          payload: { i: batch * 1_000 + k },
          priority: 0,
          maxAttempts: 5
        }))
      ),
    { discard: true }
  )

/** Everything the scenario recorded, read back after the nodes stopped. */
const scenario = Effect.gen(function* () {
  const { schema, sql, client, count } = yield* prepare
  const t = (name: string) => sql(`${schema}.${name}`)
  const dbNow = Effect.map(
    sql<{ now: number }>`SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS now`,
    (rows) => rows[0]!.now
  )
  const producer = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(
    Effect.provideService(PgClient.PgClient, client)
  )
  yield* enqueueWork(producer)

  const nodes: Array<Node> = []
  for (const name of ["n1", "n2", "n3"]) nodes.push(yield* spawnNode(schema, name))
  const report = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.tapErrorCause(effect, () =>
      Effect.sync(() => {
        for (const node of nodes) console.error(`--- ${node.name} ---\n${node.output()}`)
      })
    )

  return yield* report(
    Effect.gen(function* () {
      const currentLeader = Effect.map(
        sql<{ leader_id: string; expires: number; elected: number }>`
          SELECT leader_id, (extract(epoch from expires_at) * 1000)::float8 AS expires,
                 (extract(epoch from elected_at) * 1000)::float8 AS elected
          FROM ${t("leaders")} WHERE expires_at > now()`,
        (rows) => rows[0]
      )
      yield* eventually(
        "three nodes are up",
        Effect.map(count(`${schema}.nodes`), (n) => n === 3),
        "120 seconds"
      )
      yield* eventually(
        "the nodes are well into the work, with a leader that holds jobs, ticks and cron slots",
        Effect.gen(function* () {
          const leader = yield* currentLeader
          if (leader === undefined) return false
          const [progress] = yield* sql<{ runs: number; mine: number; ticks: number; slots: number }>`
            SELECT (SELECT count(*)::int FROM ${t("runs")}) AS runs,
                   (SELECT count(*)::int FROM ${t("runs")} WHERE node = ${leader.leader_id}) AS mine,
                   (SELECT count(*)::int FROM ${t("ticks")}) AS ticks,
                   (SELECT count(*)::int FROM ${t("cron_log")} WHERE won) AS slots`
          return (
            progress!.runs >= 1_500 && progress!.mine >= 100 && progress!.ticks >= 10 && progress!.slots >= 2
          )
        }),
        "120 seconds"
      )

      // Kill the leader. The time is read first, so it is no later than the kill.
      const victim = (yield* currentLeader)!
      const killedAt = yield* dbNow
      const killed = nodes.find((n) => n.name === victim.leader_id)!
      killed.process.kill("SIGKILL")
      yield* Effect.promise(() => killed.exited)
      const deadLease = (yield* sql<{ leader_id: string; expires: number }>`
        SELECT leader_id, (extract(epoch from expires_at) * 1000)::float8 AS expires FROM ${t("leaders")}`)[0]

      yield* eventually(
        "every job is completed",
        Effect.map(
          count(`${schema}.jobs_all WHERE kind = 'work' AND state = 'completed'`),
          (n) => n === total
        ),
        "180 seconds"
      )
      yield* eventually(
        "another node leads",
        Effect.map(currentLeader, (l) => l !== undefined && l.leader_id !== killed.name),
        "60 seconds"
      )
      const slotsAtKill = yield* count(`${schema}.cron_log WHERE won`)
      yield* eventually(
        "cron slots keep coming after the kill",
        Effect.map(count(`${schema}.cron_log WHERE won`), (n) => n >= slotsAtKill + 2),
        "60 seconds"
      )
      const newLeader = (yield* currentLeader)!
      yield* stop(nodes)

      return {
        exits: nodes.map((n) => ({ name: n.name, code: n.process.exitCode, signal: n.process.signalCode })),
        killed: killed.name,
        killedAt,
        deadLease,
        newLeader: newLeader.leader_id,
        newLeaderElected: newLeader.elected,
        states: yield* sql<{ state: string; n: number }>`
          SELECT state, count(*)::int AS n FROM ${t("jobs_all")} WHERE kind = 'work' GROUP BY state`,
        distinctRan: yield* count(`(SELECT DISTINCT job_id FROM ${schema}.runs) AS ran`),
        twice: yield* sql<{ job_id: string; nodes: Array<string> }>`
          SELECT job_id::text, array_agg(node ORDER BY id) AS nodes FROM ${t("runs")}
          GROUP BY job_id HAVING count(*) > 1`,
        rescued: yield* sql<{ id: string; at: number; message: string }>`
          SELECT j.id::text AS id, (e->>'at')::float8 AS at, e->>'message' AS message
          FROM ${t("jobs_all")} j, jsonb_array_elements(j.errors) e WHERE e->>'kind' = 'rescued'`,
        ticks: yield* sql<{ node: string; started: number; ended: number | null }>`
          SELECT node, (extract(epoch from started_at) * 1000)::float8 AS started,
                 (extract(epoch from ended_at) * 1000)::float8 AS ended
          FROM ${t("ticks")} ORDER BY started_at`,
        slots: yield* sql<{ slot: number; tries: number; wins: number }>`
          SELECT slot::float8 AS slot, count(*)::int AS tries, count(*) FILTER (WHERE won)::int AS wins
          FROM ${t("cron_log")} GROUP BY slot ORDER BY slot`,
        // The store's own record of the slots taken, which the reports must match.
        taken: (yield* sql<{ slot: number }>`
          SELECT slot::float8 AS slot FROM ${t("cron_slots")} WHERE name = 'every-second' ORDER BY slot`).map(
          (row) => row.slot
        ),

        cronJobs: yield* count(`${schema}.jobs_all WHERE kind = 'cron_tick'`),
        leaderLog: yield* sql<{ node: string; leading: boolean; at: number }>`
          SELECT node, is_leader AS leading, (extract(epoch from at) * 1000)::float8 AS at
          FROM ${t("leader_log")} ORDER BY at`
      }
    })
  )
}).pipe(Effect.scoped)

type Report = Effect.Effect.Success<typeof scenario>

describe("PostgreSQL, three node processes, the leader SIGKILLed mid-run", () => {
  let r: Report
  beforeAll(async () => {
    r = await Effect.runPromise(scenario)
  }, 600_000)

  it("drains 5,000 jobs: every one completed, none lost", () => {
    // The survivors shut down gracefully when asked.
    expect(r.exits.filter((e) => e.name !== r.killed && e.signal === "SIGKILL")).toEqual([])
    expect(r.states).toEqual([{ state: "completed", n: total }])
    expect(r.distinctRan).toBe(total)
  })

  it("only jobs that were in flight on the killed process ran twice, and each ran there first", () => {
    const rescued = new Set(r.rescued.map((x) => x.id))
    for (const job of r.twice) {
      expect(job.nodes).toHaveLength(2)
      expect(job.nodes[0]).toBe(r.killed)
      expect(rescued.has(job.job_id)).toBe(true)
    }
  })

  it("the killed process's jobs were rescued, after the kill, and only its jobs", () => {
    expect(r.rescued.length).toBeGreaterThan(0)
    for (const x of r.rescued) {
      expect(x.message).toContain(r.killed)
      expect(x.at).toBeGreaterThan(r.killedAt)
    }
    // How long that took is measured, not asserted (a loaded machine stretches it):
    // about the lease plus one rescuer interval.
    const slowest = Math.max(...r.rescued.map((x) => x.at - r.killedAt))
    console.log(
      `rescued ${r.rescued.length} jobs, the last ${Math.round(slowest)} ms after the kill (lease ${leaseMs} ms, rescuer every ${rescueIntervalMs} ms)`
    )
  })

  it("the singleton periodic worker never ran two ticks at once, across all three processes", () => {
    expect(r.ticks.length).toBeGreaterThanOrEqual(20)
    expect(new Set(r.ticks.map((t) => t.node)).size).toBeGreaterThanOrEqual(2)
    // A tick cut short by the SIGKILL has no end; it ended no later than the kill. Any
    // other tick without an end may have run until its process exited: none may follow it.
    const end = (t: Report["ticks"][number]) =>
      t.ended ?? (t.node === r.killed ? r.killedAt : Number.POSITIVE_INFINITY)
    for (let i = 1; i < r.ticks.length; i++) {
      expect(r.ticks[i]!.started, `tick ${i} starts after tick ${i - 1} ends`).toBeGreaterThanOrEqual(
        end(r.ticks[i - 1]!)
      )
    }
  })

  it("the cron job declared on every process was enqueued exactly once for every slot any process reached", () => {
    // Every slot that some process tried to enqueue has exactly one winner, and one job.
    expect(r.slots.length).toBeGreaterThanOrEqual(4)
    for (const s of r.slots) expect(s.wins, `slot ${new Date(s.slot).toISOString()}`).toBe(1)
    expect(r.slots.some((s) => s.tries > 1)).toBe(true)
    expect(r.slots.every((s) => s.slot % 1_000 === 0)).toBe(true)
    expect(r.cronJobs).toBe(r.slots.length)
    // Each report was written in its slot's transaction: the slots reported are the slots taken.
    expect(r.slots.map((s) => s.slot)).toEqual(r.taken)
  })

  it("another process took over leadership only after the dead leader's lease ran out", () => {
    expect(r.newLeader).not.toBe(r.killed)
    expect(r.deadLease?.leader_id).toBe(r.killed)
    // The database elected the new leader once the dead one's lease had expired.
    expect(r.newLeaderElected).toBeGreaterThanOrEqual(r.deadLease!.expires)
    // And the new leader knew it.
    const takeover = r.leaderLog.find((e) => e.node === r.newLeader && e.leading && e.at > r.killedAt)
    expect(takeover).toBeDefined()
    expect(takeover!.at).toBeGreaterThanOrEqual(r.deadLease!.expires)
  })
})
