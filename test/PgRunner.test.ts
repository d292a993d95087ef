/**
 * The job runner on PostgreSQL, two nodes in one process (each with its own
 * pool and store): a cancel sent from one node interrupts the job running on
 * the other through a notification (its heartbeat is too slow to be the
 * messenger here), its finalizers run, and it ends cancelled; an enqueue on
 * one node wakes the other's idle runner without waiting for its poll.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobRunner from "../src/JobRunner.js"
import * as JobStore from "../src/JobStore.js"
import * as PgStore from "../src/PgStore.js"
import { clientLayer, dropSchema, eventually, freshSchema } from "./setup/pg.js"

const Slow = Job.make("slow", { payload: Schema.Struct({ n: Schema.Number }) })
const Quick = Job.make("quick", { payload: Schema.Struct({ n: Schema.Number }) })

/**
 * A node's store on its own pool, in the current scope. Its listener's
 * heartbeat is slow, so that a loaded machine never makes the listener look
 * stale and reconnect (a notification sent in that gap would be lost, and
 * these tests wait for notifications, not polls).
 */
const nodeStore = (schema: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 6 }))
    const client = Context.get(context, PgClient.PgClient)
    const store = yield* PgStore.make({ schema, migrate: false, listenerHeartbeat: "5 seconds" }).pipe(
      Effect.provideService(PgClient.PgClient, client)
    )
    return { store, sql: client.withoutTransforms() }
  })

const schemaIn = (label: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 2 }))
    const sql = Context.get(context, SqlClient.SqlClient)
    const schema = freshSchema(label)
    yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    yield* Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
    return schema
  })

/** Run a runner for `handlers` on `store` in the current scope. */
const runner = <R>(store: JobStore.Service, handlers: Job.Handlers<R>, options: JobRunner.Options) =>
  Layer.build(JobRunner.layer(handlers, options)).pipe(
    Effect.provideService(JobStore.JobStore, store),
    Effect.map(Context.get(JobRunner.JobRunner))
  )

const producer = (store: JobStore.Service) =>
  Effect.map(
    Layer.build(JobQueue.layer.pipe(Layer.provide(Layer.succeed(JobStore.JobStore, store)))),
    Context.get(JobQueue.JobQueue)
  )

describe("JobRunner on PostgreSQL, two nodes", () => {
  it.live(
    "a cancel from another node interrupts the running job, runs its finalizers, and ends it cancelled",
    () =>
      Effect.gen(function* () {
        const schema = yield* schemaIn("cancel")
        const a = yield* nodeStore(schema)
        const b = yield* nodeStore(schema)
        const started = yield* Deferred.make<string>()
        const finalized = yield* Ref.make(false)
        const handlers = Job.handlers(
          Job.handle(Slow, (_, job) =>
            Deferred.succeed(started, job.id).pipe(
              Effect.zipRight(Effect.never),
              Effect.onInterrupt(() => Ref.set(finalized, true))
            )
          )
        )
        // A heartbeat every 20 s: only the notification can deliver the cancel in time.
        yield* runner(a.store, handlers, {
          id: "node-a",
          pollInterval: "200 millis",
          leaseDuration: "60 seconds",
          heartbeatInterval: "20 seconds"
        })
        const queue = yield* producer(b.store)
        const { id } = yield* queue.enqueue(Slow, { n: 1 })
        expect(yield* Deferred.await(started)).toBe(id)
        expect(yield* queue.cancel(id)).toEqual({ _tag: "requested", owner: "node-a" })
        yield* eventually(
          "the job ends cancelled",
          Effect.map(b.store.get(id), (job) => job?.state === "cancelled"),
          "10 seconds"
        )
        expect(yield* Ref.get(finalized)).toBe(true)
        const job = (yield* b.store.get(id))!
        expect(job.attempt).toBe(1)
        expect(job.leaseOwner).toBeNull()
      }).pipe(Effect.scoped)
  )

  it.live("an enqueue on one node wakes the other node's idle runner before its next poll", () =>
    Effect.gen(function* () {
      const schema = yield* schemaIn("wake")
      const a = yield* nodeStore(schema)
      const b = yield* nodeStore(schema)
      const ran = yield* Deferred.make<number>()
      const handlers = Job.handlers(Job.handle(Quick, ({ n }) => Deferred.succeed(ran, n)))
      // Polls once a minute: only the notification can start the job in time.
      const idle = yield* runner(a.store, handlers, { id: "node-a", pollInterval: "60 seconds" })
      const queue = yield* producer(b.store)
      yield* eventually(
        "the runner has made its first (empty) claim",
        Effect.map(idle.status, (s) => s.lastClaimAt !== null)
      )
      yield* queue.enqueue(Quick, { n: 7 })
      const n = yield* Deferred.await(ran).pipe(Effect.timeout("20 seconds"))
      expect(n).toBe(7)
    }).pipe(Effect.scoped)
  )

  describe("a settle that makes the job due now wakes the runner before its next poll", () => {
    // The runner polls once every 10 minutes: only a wake-up after the first
    // attempt's settle can start the second attempt within the deadline.
    const again = (name: string, retry: Job.RetryPolicy | undefined, fail: Effect.Effect<never, unknown>) =>
      it.live(name, () =>
        Effect.gen(function* () {
          const schema = yield* schemaIn("resettle")
          const node = yield* nodeStore(schema)
          const Again = Job.make("again", {
            payload: Schema.Struct({ n: Schema.Number }),
            ...(retry === undefined ? {} : { retry })
          })
          const attempts = yield* Ref.make(0)
          const second = yield* Deferred.make<number>()
          const handlers = Job.handlers(
            Job.handle(Again, (_, job) =>
              Ref.updateAndGet(attempts, (n) => n + 1).pipe(
                Effect.flatMap((n) => (n === 1 ? fail : Deferred.succeed(second, job.attempt)))
              )
            )
          )
          const idle = yield* runner(node.store, handlers, { id: "node-a", pollInterval: "10 minutes" })
          yield* eventually(
            "the runner has made its first (empty) claim",
            Effect.map(idle.status, (s) => s.lastClaimAt !== null)
          )
          const queue = yield* producer(node.store)
          const { id } = yield* queue.enqueue(Again, { n: 1 })
          yield* Deferred.await(second).pipe(Effect.timeout("30 seconds"))
          yield* eventually(
            "the second attempt is settled",
            Effect.map(node.store.get(id), (job) => job?.state === "completed")
          )
        }).pipe(Effect.scoped)
      )

    again("Job.Retry with delay 0", undefined, Effect.fail(new Job.Retry({ reason: "again", delay: 0 })))
    again("Job.Snooze for 0", undefined, Effect.fail(new Job.Snooze({ duration: 0 })))
    again(
      "a retry whose backoff is zero",
      { maxAttempts: 3, backoff: Schedule.spaced(0) },
      Effect.fail("boom")
    )
  })

  it.live("a handler error with a NUL character does not hold up the other jobs settled with it", () =>
    Effect.gen(function* () {
      const schema = yield* schemaIn("nul")
      const node = yield* nodeStore(schema)
      const Bad = Job.make("bad", { payload: Schema.Struct({}), retry: { maxAttempts: 1 } })
      const handlers = Job.handlers(
        Job.handle(Bad, () => Effect.fail(new Error("the device said \u0000 and stopped"))),
        Job.handle(Quick, () => Effect.void)
      )
      yield* runner(node.store, handlers, { id: "node-a", concurrency: 20, pollInterval: "200 millis" })
      const queue = yield* producer(node.store)
      const bad = yield* queue.enqueue(Bad, {})
      const quick = yield* queue.enqueueMany(
        Array.from({ length: 30 }, (_, n) => JobQueue.item(Quick, { n }))
      )
      yield* eventually(
        "every job is final",
        Effect.map(
          Effect.forEach([bad, ...quick], (job) => node.store.get(job.id)),
          (jobs) => jobs.every((job) => job !== undefined && JobStore.finalStates.includes(job.state))
        ),
        "30 seconds"
      )
      for (const job of quick) expect((yield* node.store.get(job.id))!.state).toBe("completed")
      const stored = (yield* node.store.get(bad.id))!
      expect(stored.state).toBe("discarded")
      expect(stored.errors[0]!.message).toContain("the device said \uFFFD and stopped")
    }).pipe(Effect.scoped)
  )
})
