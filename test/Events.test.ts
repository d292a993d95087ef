/**
 * Lifecycle events: a queued job's cancel is published; a `JobQueue`
 * publishes to the bus it was built with, wherever it is used from; and every
 * subscriber sees each job's events in lifecycle order, even when the
 * enqueue's commit wakes a runner before the producer has published
 * `enqueued` (PostgreSQL: the commit's notification).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Events from "../src/Events.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Nightshift from "../src/Nightshift.js"
import { eventually, storeLayer } from "./setup/pg.js"

const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }) })

const event = (tag: Events.JobEvent["_tag"], id: string): Events.JobEvent => ({
  _tag: tag,
  id,
  kind: "ping",
  queue: "default",
  at: 0
})

/** Subscribe now; the returned effect yields what arrived so far. */
const collect = (events: Events.Service) =>
  Effect.gen(function* () {
    const stream = yield* events.subscribe
    const seen: Array<Events.JobEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(stream, (e) => Effect.sync(() => seen.push(e))))
    return seen
  })

const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("Events", () => {
  it.scoped("cancelling a queued job publishes `cancelled`", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(
        JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer), Layer.provideMerge(Events.layer))
      )
      const queue = Context.get(context, JobQueue.JobQueue)
      const seen = yield* collect(Context.get(context, Events.Events))
      const { id } = yield* queue.enqueue(Ping, { n: 1 })
      expect(yield* queue.cancel(id)).toEqual({ _tag: "cancelled" })
      // Cancelling it again changes nothing and publishes nothing.
      expect((yield* queue.cancel(id))._tag).toBe("final")
      yield* settle
      expect(seen.map((e) => [e._tag, e.id, e.kind, e.queue])).toEqual([
        ["enqueued", id, "ping", "default"],
        ["cancelled", id, "ping", "default"]
      ])
    })
  )

  it.scoped("a JobQueue publishes to the bus it was built with, used from a fiber without Events", () =>
    Effect.gen(function* () {
      const app = Nightshift.define({ workers: [], runner: false })
      const context = yield* Layer.build(Nightshift.layer(app).pipe(Layer.provideMerge(MemoryStore.layer)))
      const queue = Context.get(context, JobQueue.JobQueue)
      const seen = yield* collect(Context.get(context, Events.Events))
      // The effect below runs with no Events (nor anything else) in its context.
      const { id } = yield* queue.enqueue(Ping, { n: 1 })
      yield* queue.cancel(id)
      yield* settle
      expect(seen.map((e) => e._tag)).toEqual(["enqueued", "cancelled"])
    })
  )

  it.scoped("events published during an enqueue wait for its `enqueued`, in order", () =>
    Effect.gen(function* () {
      const events = yield* Events.make()
      const seen = yield* collect(events)
      const committed = yield* Deferred.make<void>()
      const proceed = yield* Deferred.make<void>()
      // An enqueue whose write has committed (job "1") but has not yet published `enqueued`.
      const producer = yield* Effect.fork(
        events.enqueueing(
          Effect.gen(function* () {
            yield* Deferred.succeed(committed, undefined)
            yield* Deferred.await(proceed)
            yield* events.publish(event("enqueued", "1"))
          })
        )
      )
      yield* Deferred.await(committed)
      // A runner woken by the commit.
      yield* events.publishAll([event("started", "1"), event("completed", "1")])
      yield* events.publish(event("started", "0"))
      yield* settle
      expect(seen).toEqual([])
      yield* Deferred.succeed(proceed, undefined)
      yield* Fiber.join(producer)
      yield* settle
      expect(seen.map((e) => `${e._tag}:${e.id}`)).toEqual([
        "enqueued:1",
        "started:1",
        "completed:1",
        "started:0"
      ])
    })
  )

  it.scoped(
    "an enqueue that begins later holds back nothing published before it; a failed one releases",
    () =>
      Effect.gen(function* () {
        const events = yield* Events.make()
        const seen = yield* collect(events)
        const first = yield* Deferred.make<void>()
        const second = yield* Deferred.make<void>()
        const inFirst = yield* Deferred.make<void>()
        const inSecond = yield* Deferred.make<void>()
        const a = yield* Effect.fork(
          events.enqueueing(Effect.zipRight(Deferred.succeed(inFirst, undefined), Deferred.await(first)))
        )
        yield* Deferred.await(inFirst)
        yield* events.publish(event("started", "a"))
        const b = yield* Effect.fork(
          events.enqueueing(
            Effect.zipRight(
              Deferred.succeed(inSecond, undefined),
              Effect.zipRight(Deferred.await(second), Effect.fail("store down"))
            )
          )
        )
        yield* Deferred.await(inSecond)
        yield* events.publish(event("started", "b"))
        // The first enqueue ends: "a" goes out, "b" still waits for the second.
        yield* Deferred.succeed(first, undefined)
        yield* Fiber.join(a)
        yield* settle
        expect(seen.map((e) => e.id)).toEqual(["a"])
        yield* Deferred.succeed(second, undefined)
        expect(yield* Effect.flip(Fiber.join(b))).toBe("store down")
        yield* settle
        expect(seen.map((e) => e.id)).toEqual(["a", "b"])
      })
  )
})

describe("Events on PostgreSQL", () => {
  const rank: Record<string, number> = { enqueued: 0, started: 1, completed: 2 }

  it.live(
    "40 back-to-back enqueues, woken by the commit's notification: every job's events in lifecycle order",
    () =>
      Effect.gen(function* () {
        for (let round = 0; round < 3; round++) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const app = Nightshift.define({
                workers: [],
                handlers: Job.handlers(Job.handle(Ping, () => Effect.void)),
                runner: { concurrency: 8, pollInterval: "1 hour" }
              })
              const context = yield* Layer.build(
                Nightshift.layer(app).pipe(
                  Layer.provideMerge(storeLayer({ label: "events", maxConnections: 6 }))
                )
              )
              const queue = Context.get(context, JobQueue.JobQueue)
              const events = Context.get(context, Events.Events)
              const seen = yield* collect(events)
              const ids: Array<string> = []
              for (let n = 0; n < 40; n++) ids.push((yield* queue.enqueue(Ping, { n })).id)
              yield* eventually(
                "every job completed",
                Effect.sync(() => seen.filter((e) => e._tag === "completed").length >= ids.length),
                "60 seconds"
              )
              const disorder: Array<string> = []
              for (const id of ids) {
                const tags = seen.filter((e) => e.id === id).map((e) => e._tag)
                const ranks = tags.map((t) => rank[t] ?? 99)
                const sorted = [...ranks].sort((x, y) => x - y)
                if (tags[0] !== "enqueued" || ranks.join() !== sorted.join())
                  disorder.push(`${id}: ${tags.join(" ")}`)
              }
              expect(disorder).toEqual([])
            })
          )
        }
      }),
    { timeout: 180_000 }
  )
})
