import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobRunner from "../src/JobRunner.js"
import * as MemoryStore from "../src/MemoryStore.js"

const Noop = Job.make("bench_noop", { payload: Schema.Struct({ i: Schema.Number, t: Schema.Number }) })
const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer)))
let resolveStart: ((t: number) => void) | undefined
const handlers = Job.handlers(Job.handle(Noop, () => Effect.sync(() => resolveStart?.(performance.now()))))
await runtime.runPromise(Effect.gen(function* () {
  yield* Layer.buildWithScope(JobRunner.layer(handlers, { concurrency: 10 }), yield* Effect.scope)
}).pipe(Effect.zipRight(Effect.never), Effect.scoped, Effect.forkDaemon))
await new Promise((r) => setTimeout(r, 300))
const N = Number(process.argv[2] ?? 2000)
const lat: number[] = [], call: number[] = []
const c0 = process.cpuUsage()
for (let i = 0; i < N; i++) {
  const started = new Promise<number>((r) => { resolveStart = r })
  const t0 = performance.now()
  await runtime.runPromise(Effect.asVoid(JobQueue.enqueue(Noop, { i, t: 0 })))
  const t1 = performance.now()
  const ts = await started
  lat.push(ts - t0); call.push(t1 - t0)
  if (process.argv[3]) await new Promise((r) => setTimeout(r, Number(process.argv[3])))
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!.toFixed(3)
const cu = process.cpuUsage(c0)
console.log("cpu us/job", ((cu.user + cu.system) / N).toFixed(0))
console.log("latency p50", med(lat.slice(100)), "call p50", med(call.slice(100)))
import { readdirSync, readFileSync } from "node:fs"
for (const t of readdirSync("/proc/self/task")) { const st = readFileSync(`/proc/self/task/${t}/stat`, "utf8"); const f = st.slice(st.lastIndexOf(")") + 2).split(" "); const name = readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim(); console.log(t, name, "utime", f[11], "stime", f[12]) }
process.exit(0)
