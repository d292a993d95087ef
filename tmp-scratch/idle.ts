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
const handlers = Job.handlers(Job.handle(Noop, () => Effect.void))
if (process.argv[2] !== "none") await runtime.runPromise(Effect.gen(function* () {
  yield* Layer.buildWithScope(JobRunner.layer(handlers, { concurrency: 10 }), yield* Effect.scope)
}).pipe(Effect.zipRight(Effect.never), Effect.scoped, Effect.forkDaemon))
await runtime.runPromise(Effect.void)
await new Promise((r) => setTimeout(r, 1000))
const c0 = process.cpuUsage()
await new Promise((r) => setTimeout(r, 5000))
const cu = process.cpuUsage(c0)
console.log(process.argv[2] ?? "runner", "idle cpu ms per s", ((cu.user + cu.system) / 5000).toFixed(1))
process.exit(0)
