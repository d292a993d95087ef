/**
 * One shard of a sharded store goes away under running runner processes:
 * its server is stopped (connections refused) or frozen (SIGSTOP: every
 * connection left open and hanging) for longer than a lease, mid-drain, then
 * started or thawed again. The other shards' jobs must keep running, every node must say which
 * shard is unreachable (runner health and the admin readiness probe) and
 * recover without being restarted, and nothing may be lost; only jobs
 * claimed from that shard before it went away may run twice.
 *
 * Shard 0 is the scenario's schema on the shared test server (which also
 * holds `results`); shards 1 and 2 are servers of this file
 * (test/faults/server.ts).
 */
import { describe, expect } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Route from "../../src/internal/sharded/route.js"
import * as JobStore from "../../src/JobStore.js"
import * as PgStore from "../../src/PgStore.js"
import { awaitEvent, eventually, report, scenario } from "./harness.js"
import { dedicated, type Server } from "./server.js"

const total = 4_000
const leaseMs = 3_000
/**
 * A heartbeat that meets the hung shard waits `answerWithinMs` for it, and
 * the next one follows `heartbeatMs` later: together well inside the lease,
 * as docs/sharding.md asks (a runner refuses a lease without that room).
 */
const heartbeatMs = 500
const answerWithinMs = 1_000

/** The status of a node's admin readiness probe, and its body. */
const readiness = (base: string) =>
  Effect.promise(() =>
    fetch(new URL("/health/ready", base), { signal: AbortSignal.timeout(10_000) }).then(
      async (response) => ({ status: response.status, body: await response.text() }),
      () => ({ status: 0, body: "" })
    )
  )

/** How shard 2 goes away, and how it comes back. */
interface Fault {
  readonly title: string
  readonly label: string
  readonly away: (server: Server) => Effect.Effect<void>
  readonly back: (server: Server) => Effect.Effect<void>
}

const faults: ReadonlyArray<Fault> = [
  {
    title: "a shard's server stops for longer than a lease mid-drain",
    label: "shard",
    away: (server) => server.stop,
    back: (server) => server.start
  },
  {
    title: "a shard's server freezes (connections open, nothing answered) for longer than a lease mid-drain",
    label: "shard_frozen",
    away: (server) => server.freeze,
    back: (server) => server.thaw
  }
]

describe("fault: one shard of a sharded store goes away", () => {
  for (const fault of faults)
    scenario(
      `${fault.title}: the others run on, health names it, nothing lost`,
      { label: fault.label, timeout: 400_000 },
      ({ url, sql, schema, spawnUp }) =>
        Effect.gen(function* () {
          const [one, two] = yield* Effect.all([dedicated, dedicated], { concurrency: "unbounded" })
          const urls = [url, one.url, two.url]
          const store = Context.get(
            yield* Layer.build(PgStore.layerSharded(urls, { schema, listen: false })),
            JobStore.JobStore
          )
          const ids: Array<string> = []
          for (let start = 0; start < total; start += 1_000) {
            const batch = Array.from(
              { length: 1_000 },
              (_, k): JobStore.EnqueueInput => ({
                kind: "work",
                queue: "default",
                payload: { ms: 5 },
                priority: 0,
                maxAttempts: 25,
                partition: `t${(start + k) % 100}`
              })
            )
            for (const r of yield* store.enqueue(batch)) ids.push(r.id)
          }
          const onTwo = new Set(ids.filter((id) => Route.localId(id)!.shard === 2))
          expect(onTwo.size).toBeGreaterThan(total / 6)
          const nodes = yield* spawnUp(["a", "b"], {
            NS_SHARD_URLS: urls.join(","),
            NS_ADMIN: 1,
            NS_STATUS_MS: 250,
            NS_LEASE_MS: leaseMs,
            NS_HEARTBEAT_MS: heartbeatMs,
            NS_ANSWER_WITHIN_MS: answerWithinMs
          })
          yield* Effect.forEach(nodes, (node) => awaitEvent(node, "admin"), { discard: true })
          const admins = nodes.map((node) => node.events("admin")[0]!.url as string)
          const runs = (where: string) =>
            Effect.map(
              sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.results ${where}`),
              (rows) => rows[0]!.n
            )
          yield* eventually(
            "a fifth of the jobs have run",
            Effect.map(runs(""), (n) => n >= total / 5),
            "120 seconds"
          )

          const stopAt = Date.now()
          yield* fault.away(two)
          // The other shards' jobs keep running while shard 2 is down.
          yield* eventually(
            "other shards' jobs run while shard 2 is down",
            Effect.map(
              runs(`WHERE at > to_timestamp(${stopAt / 1000}) AND job_id % ${Route.shardSlots} <> 2`),
              (n) => n >= 300
            ),
            "60 seconds"
          )
          // Every node says which shard is unreachable: runner health, and readiness.
          yield* eventually(
            "every node reports shard 2 unreachable",
            Effect.sync(() =>
              nodes.every((node) =>
                node
                  .events("status")
                  .some(
                    (s) => s.at > stopAt && s.healthy === false && String(s.lastError).includes("shard 2")
                  )
              )
            ),
            "30 seconds"
          )
          const whileDown = yield* Effect.forEach(admins, readiness)
          // Down for longer than a lease: held jobs' leases run out meanwhile.
          yield* Effect.sleep(`${leaseMs * 2} millis`)
          const downMs = Date.now() - stopAt
          yield* fault.back(two)
          const restartAt = Date.now()

          yield* eventually(
            "every job completed",
            Effect.map(
              store.counts,
              (counts) =>
                counts.filter((c) => c.state === "completed").reduce((a, c) => a + c.count, 0) === total
            ),
            "180 seconds"
          )
          const firstRunOnTwo = yield* runs(
            `WHERE at > to_timestamp(${restartAt / 1000}) AND job_id % ${Route.shardSlots} = 2`
          )
          yield* eventually(
            "every node healthy again",
            Effect.sync(() =>
              nodes.every((node) => node.events("status").some((s) => s.at > restartAt && s.healthy === true))
            ),
            "30 seconds"
          )
          const afterwards = yield* Effect.forEach(admins, readiness)

          const rows = yield* sql<{ job_id: string; n: number; first: number }>`
          SELECT job_id::text, count(*)::int AS n, (extract(epoch from min(at)) * 1000)::float8 AS first
          FROM ${sql(`${schema}.results`)} WHERE phase = 'start' GROUP BY job_id`
          const ran = new Map(rows.map((r) => [r.job_id, r]))
          const lost = ids.filter((id) => !ran.has(id))
          const twice = rows.filter((r) => r.n > 1)
          yield* report(fault.label === "shard" ? "shard-down" : "shard-frozen", {
            enqueued: total,
            completed: total - lost.length,
            lost: lost.length,
            runTwice: twice.length,
            inFlightAtFault: twice.length,
            recoverMs: null,
            shards: 3,
            onStoppedShard: onTwo.size,
            downMs,
            readinessWhileDown: whileDown.map((r) => r.status),
            readinessAfter: afterwards.map((r) => r.status),
            stoppedShardRunsAfterRestart: firstRunOnTwo
          })
          expect(lost).toEqual([])
          for (const t of twice) {
            expect(onTwo.has(t.job_id)).toBe(true)
            expect(t.first).toBeLessThan(restartAt)
          }
          for (const r of whileDown) {
            expect(r.status).toBe(503)
            expect(r.body).toContain("shard 2")
          }
          expect(afterwards.map((r) => r.status)).toEqual([200, 200])
        })
    )
})
