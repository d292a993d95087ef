/**
 * Mutual exclusion by name, within one process or across replicas.
 *
 * The in-process implementation (`layerMemory`) serves single-process apps
 * and tests; the PostgreSQL implementation (`PgLock.layer`) uses advisory
 * locks so that a singleton periodic worker ticks on exactly one replica at a
 * time.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/**
 * Taking or releasing a lock failed (for example, the database is
 * unreachable). The guarded effect did not run.
 *
 * @since 0.1.0
 */
export class LockError extends Schema.TaggedError<LockError>()("LockError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * The lock service.
 *
 * @since 0.1.0
 */
export interface Service {
  /**
   * Run `effect` while holding the lock `key`, if it is free; otherwise run
   * nothing and return `None`. The lock is released when `effect` ends,
   * however it ends.
   */
  readonly tryWith: <A, E, R>(
    key: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | LockError, R>
}

/**
 * The `Lock` service tag.
 *
 * @since 0.1.0
 */
export class Lock extends Context.Tag("nightshift/Lock")<Lock, Service>() {}

/**
 * An in-process lock table.
 *
 * @since 0.1.0
 */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const held = new Set<string>()
  return {
    tryWith: (key, effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          if (held.has(key)) return Effect.succeedNone
          held.add(key)
          return restore(effect).pipe(
            Effect.map(Option.some),
            Effect.ensuring(Effect.sync(() => held.delete(key)))
          )
        })
      )
  }
})

/**
 * The in-process `Lock` layer.
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<Lock> = Layer.effect(Lock, makeMemory)
