/**
 * Mutual exclusion by name, within one process or across replicas.
 *
 * The in-process implementation (`layerMemory`, one lock table per process)
 * serves single-process apps and tests; the PostgreSQL implementation (`PgLock.layer`) uses advisory
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
 * Taking a lock failed (for example, the database is unreachable), and the
 * guarded effect did not run; or the lock was lost while the effect ran (with
 * `PgLock`, the connection holding it died), and the effect was interrupted.
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
   * however it ends. If the lock is lost while `effect` runs, `effect` is
   * interrupted and this fails with `LockError`.
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
 * A fresh in-process lock table, private to the caller: locks taken through
 * it exclude only each other. Use it to simulate separate processes in a
 * test; an app wants `layerMemory`.
 *
 * @since 0.1.0
 */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => unsafeMakeMemory())

const unsafeMakeMemory = (): Service => {
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
}

/** The lock table of this process, shared by every `layerMemory`. */
const processTable: Service = unsafeMakeMemory()

/**
 * The in-process `Lock` layer. Every use of it, however often it is built or
 * provided, shares one lock table per process (per JavaScript realm), so
 * crews given it separately exclude each other, as replicas given
 * `PgLock.layer` on one database do.
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<Lock> = Layer.succeed(Lock, processTable)

/**
 * An in-process `Lock` layer with a lock table of its own, made each time
 * the layer is built: crews given different builds do not exclude each
 * other. For tests that simulate separate processes.
 *
 * @since 0.1.0
 */
export const layerMemoryIsolated: Layer.Layer<Lock> = Layer.effect(Lock, makeMemory)
