// Serial enqueue cost: JobQueue.enqueue vs PgStore.enqueue vs bare pg, per call wall and CPU.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import pg from "pg"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = "enqprobe"
const N = Number(process.env.N ?? 3000)
const Task = Job.make("task", { payload: Schema.Struct({ n: Schema.Number }) })

const stats = (label: string, walls: number[], cpuUs: number) => {
  walls.sort((a, b) => a - b)
  const p = (q: number) => walls[Math.floor(q * (walls.length - 1))]!.toFixed(3)
  console.log(`${label.padEnd(28)} p50 ${p(0.5)} ms  p90 ${p(0.9)}  cpu ${(cpuUs / walls.length).toFixed(1)} us/call`)
}

const timeLoop = async (label: string, call: () => Promise<unknown>) => {
  for (let i = 0; i < 300; i++) await call()
  const walls: number[] = []
  const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) {
    const t = performance.now()
    await call()
    walls.push(performance.now() - t)
  }
  const c = process.cpuUsage(c0)
  stats(label, walls, c.user + c.system)
}

const main = async () => {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  const layer = JobQueue.layer.pipe(Layer.provideMerge(PgStore.layerUrl(url, { schema })))
  const program = Effect.gen(function* () {
    const ctx = yield* Effect.context<JobQueue.JobQueue | JobStore.JobStore>()
    const run = <A, E>(e: Effect.Effect<A, E, JobQueue.JobQueue | JobStore.JobStore>) =>
      Effect.runPromise(Effect.provide(e, ctx))
    const store = yield* JobStore.JobStore
    const input = yield* JobQueue.toInput(Task, { n: 1 }, {}, { _tag: "None" } as never)
    const bare = new pg.Client({ connectionString: url })
    yield* Effect.promise(() => bare.connect())
    const json = JSON.stringify([["task", "default", { n: 1 }, 0, 20, null, null, null, null, null, null]])
    const rounds = Number(process.env.ROUNDS ?? 2)
    for (let r = 0; r < rounds; r++) {
      yield* Effect.promise(() => timeLoop("JobQueue.enqueue", () => run(JobQueue.enqueue(Task, { n: 1 }))))
      yield* Effect.promise(() => timeLoop("store.enqueue", () => run(store.enqueue([input]))))
      yield* Effect.promise(() =>
        timeLoop("bare pg enqueue()", () =>
          bare.query(`SELECT ids, deduped FROM ${schema}.enqueue($1::jsonb, now(), false)`, [json])
        )
      )
      yield* Effect.promise(() => timeLoop("bare pg SELECT 1", () => bare.query("SELECT 1")))
    }
    yield* Effect.promise(() => bare.end())
  })
  await Effect.runPromise(Effect.scoped(Effect.provide(program, layer)))
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin.end()
}
main()
