/**
 * Leader election among the processes that share a store.
 *
 * Maintenance (rescuer, pruner, cron enqueuer) runs on the leader. The
 * in-process implementation (`layerAlways`) makes this process the leader; the
 * PostgreSQL implementation (`PgLeader.layer`) elects one leader among all
 * processes sharing the schema and hands over within a bounded time when the
 * leader dies.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"

/**
 * The leader service.
 *
 * @since 0.1.0
 */
export interface Service {
  /** Is this process the leader now? */
  readonly isLeader: Effect.Effect<boolean>
  /** The current value, then every change. */
  readonly changes: Stream.Stream<boolean>
  /** This process's identity among the candidates. */
  readonly id: string
}

/**
 * The `Leader` service tag.
 *
 * @since 0.1.0
 */
export class Leader extends Context.Tag("nightshift/Leader")<Leader, Service>() {}

/**
 * A leader service whose leadership follows a `SubscriptionRef`; used by
 * implementations and tests.
 *
 * @since 0.1.0
 */
export const fromRef = (id: string, ref: SubscriptionRef.SubscriptionRef<boolean>): Service => ({
  id,
  isLeader: SubscriptionRef.get(ref),
  changes: ref.changes
})

/**
 * A leader service that never changes its answer.
 *
 * @since 0.1.0
 */
export const fromConstant = (isLeader: boolean, id = "local"): Service => ({
  id,
  isLeader: Effect.succeed(isLeader),
  changes: Stream.succeed(isLeader)
})

/**
 * This process is always the leader: for single-process deployments.
 *
 * @since 0.1.0
 */
export const layerAlways: Layer.Layer<Leader> = Layer.effect(
  Leader,
  Effect.map(SubscriptionRef.make(true), (ref) => fromRef("local", ref))
)

/**
 * Run `effect` only while this process is the leader: it starts when
 * leadership is gained and is interrupted when it is lost.
 *
 * @since 0.1.0
 */
export const whileLeader = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, E, Leader | R> =>
  Effect.flatMap(Leader, (leader) =>
    leader.changes.pipe(
      Stream.changes,
      Stream.flatMap((lead) => (lead ? Stream.fromEffect(effect) : Stream.empty), { switch: true }),
      Stream.runDrain
    )
  )
