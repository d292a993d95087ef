import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import pg from "pg"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobRunner from "../src/JobRunner.js"
import * as PgStore from "../src/PgStore.js"
const Noop = Job.make("bench_noop", { payload: Schema.Struct({ i: Schema.Number, t: Schema.Number }) })
const schema = "scratch_w3_" + Date.now().toString(36)
const url = "postgres://postgres@127.0.0.1:5432/test"
const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(PgStore.layerUrl(url, { schema }))))
const N = Number(process.argv[2] ?? 1000)
const lat = new Array<number>(N).fill(NaN)
const origin = performance.now()
const handlers = Job.handlers(Job.handle(Noop, ({ i, t }) => Effect.sync(() => { lat[i] = performance.now() - t })))
await runtime.runPromise(Effect.gen(function* () {
  yield* Layer.buildWithScope(JobRunner.layer(handlers, { concurrency: 10 }), yield* Effect.scope)
}).pipe(Effect.zipRight(Effect.never), Effect.scoped, Effect.forkDaemon))
await new Promise((r) => setTimeout(r, 1000))
const start = performance.now()
for (let i = 0; i < N; i++) {
  const wait = start + i * 10 - performance.now()
  if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  await runtime.runPromise(Effect.asVoid(JobQueue.enqueue(Noop, { i, t: performance.now() })))
}
await new Promise((r) => setTimeout(r, 500))
const sorted = lat.filter(Number.isFinite).sort((a, b) => a - b)
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(2)
console.log("n", sorted.length, "p50", pct(50), "p95", pct(95), "p99", pct(99), "max", pct(100))
const slow = lat.map((x, i) => [i, x] as const).filter(([, x]) => x > Number(pct(97)))
console.log("slow", slow.map(([i, x]) => `${i}@${(start - origin + i * 10).toFixed(0)}:${x.toFixed(1)}`).join(" "))
const c = new pg.Client({ connectionString: url }); await c.connect(); await c.query(`drop schema ${schema} cascade`); await c.end()
process.exit(0)
