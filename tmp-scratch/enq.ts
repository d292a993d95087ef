import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as MemoryStore from "../src/MemoryStore.js"
const Noop = Job.make("bench_noop", { payload: Schema.Struct({ i: Schema.Number, t: Schema.Number }) })
const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer)))
await runtime.runPromise(Effect.void)
const N = 20000
for (const label of ["void", "enqueue", "void", "enqueue"]) {
  const t0 = performance.now()
  for (let i = 0; i < N; i++) {
    if (label === "void") await runtime.runPromise(Effect.void)
    else await runtime.runPromise(Effect.asVoid(JobQueue.enqueue(Noop, { i, t: 0 })))
  }
  console.log(label, ((performance.now() - t0) / N * 1000).toFixed(1), "us/call")
}
