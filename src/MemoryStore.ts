/**
 * The in-memory `JobStore` engine: for tests and single-process apps that do
 * not need jobs to survive a restart.
 *
 * All time comes from Effect's `Clock`, so under `TestClock` run-at times,
 * backoff, leases and retention move only when the test adjusts the clock.
 * Every operation is one synchronous step, so operations are atomic with
 * respect to each other. Claims cost O(log n): ready jobs sit in heaps per
 * queue and kind, ordered by priority, run-at and id.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Engine } from "./internal/memory/engine.js"
import * as Core from "./internal/store/core.js"
import * as Hints from "./internal/store/hints.js"
import * as JobStore from "./JobStore.js"

/**
 * Make a fresh, empty memory store.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<JobStore.Service> = Effect.gen(function* () {
  const engine = new Engine()
  const hints = yield* Hints.make()
  engine.listening = () => hints.subscribers() > 0

  const step = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.clockWith((clock) => {
      const result = f(clock.unsafeCurrentTimeMillis())
      const wakeups = engine.takeHints()
      return wakeups.length === 0 ? Effect.succeed(result) : Effect.as(hints.publish(wakeups), result)
    })

  const service: JobStore.Service = {
    engine: "memory",
    enqueue: (jobs) => step((now) => engine.enqueue(now, jobs)),
    claim: (request) => step((now) => engine.claim(now, request)),
    heartbeat: (owner, leases, leaseMs) => step((now) => engine.heartbeat(now, owner, leases, leaseMs)),
    settle: (settlements) => step((now) => engine.settle(now, settlements)),
    settleAndClaim: (settlements, request) =>
      step((now) => {
        const settled = engine.settle(now, settlements)
        return { settled, claimed: engine.claim(now, request) }
      }),
    rescue: (limit) => step((now) => engine.rescue(now, limit)),
    prune: (request) => step((now) => engine.prune(now, request)),
    get: (id) => Effect.sync(() => engine.get(id)),
    list: (filter) => Effect.sync(() => engine.list(filter)),
    counts: Effect.sync(() => engine.counts()),
    depth: Effect.sync(() => engine.counts().filter((c) => !Core.isFinal(c.state))),
    activity: (since) => step((now) => engine.activity(now, since)),
    cancel: (id) => step((now) => engine.cancel(now, id)),
    retry: (id) => step((now) => engine.retry(now, id)),
    retryMany: (ids) => step((now) => engine.bulk(ids, (batch) => engine.retryMany(now, batch))),
    cancelMany: (ids) => step((now) => engine.bulk(ids, (batch) => engine.cancelMany(now, batch))),
    deleteMany: (ids) => step(() => engine.bulk(ids, (batch) => engine.deleteMany(batch))),
    runNow: (id) => step((now) => engine.runNow(now, id)),
    pause: (queue) => Effect.sync(() => engine.pause(queue)),
    resume: (queue) => step(() => engine.resume(queue)),
    paused: Effect.sync(() => engine.paused()),
    declareLimits: (rules) => Effect.sync(() => engine.declareLimits(rules)),
    flowState: (options) => step((now) => engine.flowState(now, options)),
    enqueueCronSlot: (input) => step((now) => engine.enqueueCronSlot(now, input)),
    lastCronSlot: (name) => Effect.sync(() => engine.lastCronSlot(name)),
    now: Effect.clockWith((clock) => clock.currentTimeMillis),
    ping: Effect.void,
    wakeups: hints.stream
  }
  return hints.attach(service)
})

/**
 * A `JobStore` layer backed by a fresh memory store.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<JobStore.JobStore> = Layer.effect(JobStore.JobStore, make)
