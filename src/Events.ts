/**
 * Lifecycle events of jobs, on an in-process `PubSub`.
 *
 * They feed logs, metrics, the admin API's Server-Sent Events stream and the
 * dashboard. Publishing never blocks a runner: a subscriber that falls more
 * than `capacity` events behind loses the oldest ones.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * What happened to a job. `at` is epoch ms on the runner's clock.
 *
 * @since 0.1.0
 */
export interface JobEvent {
  readonly _tag:
    | "enqueued"
    | "started"
    | "completed"
    | "retried"
    | "snoozed"
    | "discarded"
    | "cancelled"
    | "rescued"
    | "released"
  readonly id: string
  readonly kind: string
  readonly queue: string
  readonly at: number
  readonly attempt?: number | undefined
  /** For failures: a short message (the full cause is on the job). */
  readonly error?: string | undefined
  /** For `enqueued`: the job was folded into an existing one. */
  readonly deduped?: boolean | undefined
  /** For `started`…`cancelled`: how long the attempt ran, ms. */
  readonly durationMs?: number | undefined
}

/**
 * The event bus.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly publish: (event: JobEvent) => Effect.Effect<void>
  /** Publish several events in one step, in order. */
  readonly publishAll: (events: Iterable<JobEvent>) => Effect.Effect<void>
  readonly subscribe: Effect.Effect<Stream.Stream<JobEvent>, never, Scope.Scope>
  /** A stream of events from now on (subscribes when run). */
  readonly stream: Stream.Stream<JobEvent>
  /**
   * Run an enqueue (the store write and the publishing of its `enqueued`
   * events). Events other than `enqueued` published while it runs are held
   * back, in order, until every enqueue that was already running when they
   * were published has ended, so that no subscriber sees a job's `started`
   * (or any later event) before its `enqueued`, however early the store's
   * commit wakes a runner. Enqueues that begin later hold nothing back.
   */
  readonly enqueueing: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * The `Events` service tag.
 *
 * @since 0.1.0
 */
export class Events extends Context.Tag("nightshift/Events")<Events, Service>() {}

/** An event held back until the enqueues running when it was published have ended. */
interface Held {
  readonly event: JobEvent
  /** Released once no enqueue with a ticket below this one is running. */
  readonly before: number
}

/**
 * An event bus keeping at most `capacity` unread events per subscriber.
 *
 * Per-job order: a job's `enqueued` is published by its producer after the
 * store's write returns, but the write's commit can wake a runner (a
 * PostgreSQL notification, a poll) that publishes `started` first. Each
 * enqueue therefore takes a ticket for its duration (`enqueueing`); any other
 * event published meanwhile waits in a FIFO until the enqueues holding lower
 * tickets have ended. A job's other events come after its commit, so after
 * its enqueue took its ticket: they wait for its `enqueued`. Events wait only
 * for enqueues already running when they were published, never for later
 * ones, so a steady stream of enqueues cannot hold them back for long.
 *
 * @since 0.1.0
 */
export const make = (capacity = 1024): Effect.Effect<Service> =>
  Effect.map(PubSub.sliding<JobEvent>(capacity), (hub) => {
    // One permit: deciding what to release and publishing it happen as one step.
    const lock = Effect.unsafeMakeSemaphore(1)
    let nextTicket = 0
    const running = new Set<number>()
    let held: Array<Held> = []

    const lowestRunning = () => {
      let lowest = Number.POSITIVE_INFINITY
      for (const t of running) if (t < lowest) lowest = t
      return lowest
    }

    /** Take the held events no running enqueue still holds back. */
    const releasable = (): Array<JobEvent> => {
      if (held.length === 0) return []
      const lowest = lowestRunning()
      let n = 0
      while (n < held.length && held[n]!.before <= lowest) n++
      if (n === 0) return []
      const out = held.slice(0, n).map((h) => h.event)
      held = held.slice(n)
      return out
    }

    const publishAll = (events: Iterable<JobEvent>) =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          const now: Array<JobEvent> = []
          for (const event of events) {
            if (event._tag !== "enqueued" && (running.size > 0 || held.length > 0)) {
              held.push({ event, before: nextTicket })
            } else {
              now.push(event)
            }
          }
          return now.length === 0 ? Effect.void : Effect.asVoid(PubSub.publishAll(hub, now))
        })
      )

    const end = (ticket: number) =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          running.delete(ticket)
          const ready = releasable()
          return ready.length === 0 ? Effect.void : Effect.asVoid(PubSub.publishAll(hub, ready))
        })
      )

    return {
      publish: (event) => publishAll([event]),
      publishAll,
      subscribe: Effect.map(PubSub.subscribe(hub), Stream.fromQueue),
      stream: Stream.fromPubSub(hub),
      enqueueing: (self) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            const ticket = nextTicket++
            running.add(ticket)
            return ticket
          }),
          () => self,
          end
        )
    }
  })

/**
 * The `Events` layer.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<Events> = Layer.effect(Events, make())

/**
 * Publish through the `Events` service when one is in context; do nothing
 * otherwise.
 *
 * @since 0.1.0
 */
export const publish = (event: JobEvent): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(Events), (events) =>
    events._tag === "Some" ? events.value.publish(event) : Effect.void
  )
