/**
 * Misbehaving handlers on a PostgreSQL runner: one that never returns, one
 * that fails, one that dies with a defect, one that blocks the event loop for
 * a second, one that throws before returning an effect. Each must end as its
 * kind's policy says, and the runner must keep working.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Events from "../../src/Events.js"
import * as Job from "../../src/Job.js"
import * as JobQueue from "../../src/JobQueue.js"
import * as JobRunner from "../../src/JobRunner.js"
import * as JobStore from "../../src/JobStore.js"
import { storeLayer } from "../setup/pg.js"
import { eventually, report } from "./harness.js"

const policy = { maxAttempts: 2, backoff: Schedule.spaced("100 millis") }
const Never = Job.make("never", { payload: Schema.Struct({}), timeout: "500 millis", retry: policy })
const Forever = Job.make("forever", { payload: Schema.Struct({}), retry: policy })
const Fails = Job.make("fails", { payload: Schema.Struct({}), retry: policy })
const Dies = Job.make("dies", { payload: Schema.Struct({}), retry: policy })
const Blocks = Job.make("blocks", { payload: Schema.Struct({}), retry: policy })
const Throws = Job.make("throws", { payload: Schema.Struct({}), retry: policy })
const Normal = Job.make("normal", { payload: Schema.Struct({ n: Schema.Number }), retry: policy })

const busy = (ms: number) => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // spin: the whole process, timers included, stands still
  }
}

const handlers = Job.handlers(
  Job.handle(Never, () => Effect.never),
  Job.handle(Forever, () => Effect.never),
  Job.handle(Fails, () => Effect.fail(new Error("the remote service said no"))),
  Job.handle(Dies, () =>
    Effect.sync(() => {
      throw new TypeError("cannot read properties of undefined")
    })
  ),
  Job.handle(Blocks, () => Effect.sync(() => busy(1_000))),
  Job.handle(Throws, (): Effect.Effect<void> => {
    throw new TypeError("thrown before an effect was returned")
  }),
  Job.handle(Normal, () => Effect.void)
)

const runnerOptions: JobRunner.Options = {
  concurrency: 4,
  pollInterval: "200 millis",
  leaseDuration: "10 seconds",
  heartbeatInterval: "1 second",
  rescueInterval: "1 second"
}

const App = (options: JobRunner.Options) =>
  JobRunner.layer(handlers, { ...runnerOptions, ...options }).pipe(
    Layer.provideMerge(JobQueue.layer),
    Layer.provideMerge(Events.layer),
    Layer.provideMerge(storeLayer({ label: "handlers", maxConnections: 8 }))
  )

const stateOf = (id: string) =>
  Effect.flatMap(JobStore.JobStore, (store) => store.get(id)).pipe(Effect.map((job) => job!))

const settled = (id: string) =>
  eventually(
    `job ${id} reaches a final state`,
    Effect.map(stateOf(id), (job) => JobStore.finalStates.includes(job.state)),
    "30 seconds"
  )

describe("fault: misbehaving handlers", () => {
  it.live(
    "never returns, fails, dies, blocks the event loop: each ends as its policy says and the runner keeps working",
    () =>
      Effect.gen(function* () {
        const runner = yield* JobRunner.JobRunner
        const never = yield* JobQueue.enqueue(Never, {})
        const forever = yield* JobQueue.enqueue(Forever, {})
        const fails = yield* JobQueue.enqueue(Fails, {})
        const dies = yield* JobQueue.enqueue(Dies, {})
        const blocks = yield* JobQueue.enqueue(Blocks, {})
        for (const job of [never, fails, dies, blocks]) yield* settled(job.id)

        const errorKinds = (id: string) =>
          Effect.map(stateOf(id), (job) => [job.state, job.errors.map((e) => e.kind)])
        expect(yield* errorKinds(never.id)).toEqual(["discarded", ["timeout", "timeout"]])
        expect(yield* errorKinds(fails.id)).toEqual(["discarded", ["failure", "failure"]])
        expect(yield* errorKinds(dies.id)).toEqual(["discarded", ["defect", "defect"]])
        expect(yield* errorKinds(blocks.id)).toEqual(["completed", []])
        expect((yield* stateOf(fails.id)).errors[0]!.message).toContain("the remote service said no")
        expect((yield* stateOf(dies.id)).errors[0]!.message).toContain("cannot read properties of undefined")

        // The never-ending job without a timeout holds one slot until it is cancelled.
        expect((yield* stateOf(forever.id)).state).toBe("running")
        const normal = yield* JobQueue.enqueueMany(
          Array.from({ length: 30 }, (_, n) => JobQueue.item(Normal, { n }))
        )
        for (const job of normal) yield* settled(job.id)
        expect((yield* runner.status).running).toBe(1)
        expect((yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.cancel(forever.id)))._tag).toBe("requested")
        yield* settled(forever.id)
        expect((yield* stateOf(forever.id)).state).toBe("cancelled")

        const status = yield* runner.status
        expect(status.healthy).toBe(true)
        expect(status.running).toBe(0)
        yield* report("misbehaving-handlers", {
          enqueued: 35,
          completed: 31,
          lost: 0,
          runTwice: 0,
          inFlightAtFault: 0,
          recoverMs: null,
          discarded: 3,
          cancelled: 1
        })
      }).pipe(Effect.provide(App({}))),
    { timeout: 120_000 }
  )

  // A handler that throws before returning its effect is a defect of that
  // attempt (the call runs inside `Effect.suspend`): the job is retried with
  // the defect kept, and its slot goes back to the runner.
  it.live(
    "a handler that throws before returning an effect is retried like a defect, and its slot is freed",
    () =>
      Effect.gen(function* () {
        const throws = yield* JobQueue.enqueue(Throws, {})
        const after = yield* JobQueue.enqueue(Normal, { n: 1 })
        yield* settled(throws.id).pipe(Effect.timeout("10 seconds"))
        expect((yield* stateOf(throws.id)).errors.map((e) => e.kind)).toEqual(["defect", "defect"])
        yield* settled(after.id).pipe(Effect.timeout("10 seconds"))
        expect((yield* stateOf(after.id)).state).toBe("completed")
      }).pipe(Effect.provide(App({ concurrency: 1 }))),
    { timeout: 60_000 }
  )
})
