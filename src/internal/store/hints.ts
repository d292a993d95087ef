/**
 * Wake-up hints of an in-process store (memory, SQLite): a `PubSub` behind
 * the public `wakeups` stream, and listeners called synchronously when a
 * hint is published. A runner on the same store registers one to wake its
 * fetcher without a hop through the stream: the enqueue that makes work
 * due and the claim that takes it are then one scheduler turn apart.
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as JobStore from "../../JobStore.js"

/** How many undelivered hints a slow `wakeups` subscriber may lag behind before older ones are dropped. */
const capacity = 1024

type Listener = (hint: JobStore.Wakeup) => void

const listenersKey: unique symbol = Symbol.for("nightshift/JobStore/hintListeners")

/** A store service that also calls listeners synchronously on every hint. */
interface Listening {
  readonly [listenersKey]: (listener: Listener) => Effect.Effect<void, never, Scope.Scope>
}

export interface Hints {
  /** Call the listeners, then publish to the `wakeups` stream. */
  readonly publish: (hints: ReadonlyArray<JobStore.Wakeup>) => Effect.Effect<void>
  /** `publish`, run now (from a driver's callback). */
  readonly unsafePublish: (hints: ReadonlyArray<JobStore.Wakeup>) => void
  /** The public stream of hints. */
  readonly stream: Stream.Stream<JobStore.Wakeup>
  /** Subscribers of either kind (a store may skip recording hints nobody reads). */
  readonly subscribers: () => number
  /** Add the synchronous-listener hook to a store service. */
  readonly attach: <S extends JobStore.Service>(service: S) => S
  /** End the stream's subscriptions (when the store closes). */
  readonly shutdown: Effect.Effect<void>
}

/**
 * The hints of a store. `activate`, when given, runs before every
 * subscription of either kind and must be idempotent: a store whose hints
 * come from elsewhere (PostgreSQL's LISTEN) starts receiving them there on
 * the first subscriber, and has them flowing when the subscription returns.
 */
export const make = (activate: Effect.Effect<void> = Effect.void): Effect.Effect<Hints> =>
  Effect.gen(function* () {
    const pubsub = yield* PubSub.sliding<JobStore.Wakeup>(capacity)
    const listeners = new Set<Listener>()
    let streams = 0
    const counted = Effect.zipRight(
      activate,
      Effect.acquireRelease(
        Effect.tap(PubSub.subscribe(pubsub), () => {
          streams++
        }),
        () =>
          Effect.sync(() => {
            streams--
          })
      )
    )
    const listen = (listener: Listener) =>
      Effect.zipRight(
        activate,
        Effect.acquireRelease(
          Effect.sync(() => {
            // A fresh function per registration, so registering one twice is two listeners.
            const own: Listener = (hint) => listener(hint)
            listeners.add(own)
            return own
          }),
          (own) => Effect.sync(() => listeners.delete(own))
        )
      ).pipe(Effect.asVoid)
    const unsafePublish = (hints: ReadonlyArray<JobStore.Wakeup>) => {
      for (const listener of listeners) for (const hint of hints) listener(hint)
      // A sliding PubSub never waits (when full it drops the oldest), so this runs to its end here.
      if (streams > 0) Effect.runSync(PubSub.publishAll(pubsub, hints))
    }
    return {
      publish: (hints) => (hints.length === 0 ? Effect.void : Effect.sync(() => unsafePublish(hints))),
      unsafePublish,
      stream: Stream.unwrapScoped(Effect.map(counted, (dequeue) => Stream.fromQueue(dequeue))),
      subscribers: () => streams + listeners.size,
      attach: (service) => hook(service, listen),
      shutdown: PubSub.shutdown(pubsub)
    }
  })

/** Give a store service the synchronous-listener hook (`listenTo` calls `listen`). */
export const hook = <S extends JobStore.Service>(
  service: S,
  listen: (listener: Listener) => Effect.Effect<void, never, Scope.Scope>
): S => Object.assign(service, { [listenersKey]: listen })

/** Register a synchronous hint listener on `store` for the scope, when the store offers it. */
export const listenTo = (
  store: JobStore.Service,
  listener: Listener
): Effect.Effect<void, never, Scope.Scope> | undefined =>
  listenersKey in store ? (store as JobStore.Service & Listening)[listenersKey](listener) : undefined

/**
 * Have `store`'s hints flowing for the rest of the scope, when it has any:
 * a runner calls it before its first claim, so that a job enqueued after
 * that claim wakes it (a store that listens only for its subscribers starts
 * listening now).
 */
export const keepFlowing = (store: JobStore.Service): Effect.Effect<void, never, Scope.Scope> =>
  listenTo(store, () => undefined) ?? Effect.void
