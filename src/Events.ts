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
}

/**
 * The `Events` service tag.
 *
 * @since 0.1.0
 */
export class Events extends Context.Tag("nightshift/Events")<Events, Service>() {}

/**
 * An event bus keeping at most `capacity` unread events per subscriber.
 *
 * @since 0.1.0
 */
export const make = (capacity = 1024): Effect.Effect<Service> =>
  Effect.map(PubSub.sliding<JobEvent>(capacity), (hub) => ({
    publish: (event) => Effect.asVoid(PubSub.publish(hub, event)),
    publishAll: (events) => Effect.asVoid(PubSub.publishAll(hub, events)),
    subscribe: Effect.map(PubSub.subscribe(hub), Stream.fromQueue),
    stream: Stream.fromPubSub(hub)
  }))

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
