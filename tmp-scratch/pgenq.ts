import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import pg from "pg"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as PgStore from "../src/PgStore.js"
const Noop = Job.make("bench_noop", { payload: Schema.Struct({ i: Schema.Number, t: Schema.Number }) })
const schema = "scratch_enq_" + Date.now().toString(36)
const url = "postgres://postgres@127.0.0.1:5432/test"
const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(PgStore.layerUrl(url, { schema }))))
await runtime.runPromise(Effect.void)
const client = new pg.Client({ connectionString: url }); await client.connect()
await client.query(`create table if not exists ${schema}.raw (id bigserial primary key, payload jsonb)`)
const N = Number(process.argv[2] ?? 2000)
for (const label of ["raw", "enqueue", "raw", "enqueue"]) {
  const t0 = performance.now(); const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) {
    if (label === "raw") await client.query(`insert into ${schema}.raw (payload) values ($1) returning id`, [{ i, t: 0 }])
    else await runtime.runPromise(Effect.asVoid(JobQueue.enqueue(Noop, { i, t: 0 })))
  }
  const cpu = process.cpuUsage(c0)
  console.log(label, ((performance.now() - t0) / N * 1000).toFixed(0), "us/call wall", ((cpu.user + cpu.system) / N).toFixed(0), "us/call cpu")
}
await client.query(`drop schema ${schema} cascade`); await client.end()
await runtime.dispose()
