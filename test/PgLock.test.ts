/**
 * PgLock against a real server: exclusion across separate pools (as separate
 * replicas would have), release however the effect ends, no lock left behind
 * in the pool, and what happens when the connection holding a lock dies.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Lock from "../src/Lock.js"
import * as PgLock from "../src/PgLock.js"
import { clientLayer, eventually, freshSchema } from "./setup/pg.js"

/** A replica: its own pool and its own lock service. */
const replica = (options: PgLock.Options = {}) =>
  Layer.build(PgLock.layer(options).pipe(Layer.provideMerge(clientLayer({ maxConnections: 4 })))).pipe(
    Effect.map((context) => ({
      lock: Context.get(context, Lock.Lock),
      sql: Context.get(context, SqlClient.SqlClient)
    }))
  )

/** Backends holding the advisory lock for `fullKey`. */
const holders = (sql: SqlClient.SqlClient, fullKey: string) =>
  sql<{ pid: number }>`
    SELECT pid FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(${fullKey}, 0)`.pipe(
    Effect.map((rows) => rows.map((r) => r.pid))
  )

describe("PgLock", () => {
  it.live("a key held by one replica is skipped by another until it is released", () =>
    Effect.gen(function* () {
      const key = freshSchema("lock")
      const a = yield* replica()
      const b = yield* replica()
      const release = yield* Deferred.make<void>()
      const entered = yield* Deferred.make<void>()
      const holding = yield* a.lock
        .tryWith(key, Effect.zipRight(Deferred.succeed(entered, undefined), Deferred.await(release)))
        .pipe(Effect.fork)
      yield* Deferred.await(entered)
      const ran = yield* Ref.make(false)
      expect(yield* b.lock.tryWith(key, Ref.set(ran, true))).toEqual(Option.none())
      expect(yield* a.lock.tryWith(key, Ref.set(ran, true))).toEqual(Option.none())
      expect(yield* Ref.get(ran)).toBe(false)
      expect(yield* b.lock.tryWith(`${key}_other`, Effect.succeed("other key"))).toEqual(
        Option.some("other key")
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holding)
      expect(yield* b.lock.tryWith(key, Effect.succeed(42))).toEqual(Option.some(42))
    }).pipe(Effect.scoped)
  )

  it.live("namespaces keep equal keys apart", () =>
    Effect.gen(function* () {
      const key = freshSchema("ns")
      const a = yield* replica({ namespace: "app_a" })
      const b = yield* replica({ namespace: "app_b" })
      const result = yield* a.lock.tryWith(key, b.lock.tryWith(key, Effect.succeed("both")))
      expect(result).toEqual(Option.some(Option.some("both")))
    }).pipe(Effect.scoped)
  )

  it.live("the lock is released however the effect ends, and never left on a pooled connection", () =>
    Effect.gen(function* () {
      const key = freshSchema("rel")
      const a = yield* replica()
      const b = yield* replica()
      const failed = yield* Effect.exit(a.lock.tryWith(key, Effect.fail("boom" as const)))
      expect(failed).toEqual(Exit.fail("boom"))
      const died = yield* Effect.exit(a.lock.tryWith(key, Effect.die("bug")))
      expect(Exit.isFailure(died)).toBe(true)
      const started = yield* Deferred.make<void>()
      const fiber = yield* a.lock
        .tryWith(key, Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
        .pipe(Effect.fork)
      yield* Deferred.await(started)
      expect(yield* holders(a.sql, `nightshift:${key}`)).toHaveLength(1)
      yield* Fiber.interrupt(fiber)
      expect(yield* holders(a.sql, `nightshift:${key}`)).toEqual([])
      expect(yield* b.lock.tryWith(key, Effect.succeed("free"))).toEqual(Option.some("free"))
    }).pipe(Effect.scoped)
  )

  it.live("when the connection holding the lock dies, the effect is interrupted and tryWith fails", () =>
    Effect.gen(function* () {
      const key = freshSchema("lost")
      const a = yield* replica({ checkInterval: "100 millis" })
      const b = yield* replica()
      const started = yield* Deferred.make<void>()
      const finalized = yield* Ref.make(false)
      const fiber = yield* a.lock
        .tryWith(
          key,
          Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Ref.set(finalized, true))
          )
        )
        .pipe(Effect.fork)
      yield* Deferred.await(started)
      const [pid] = yield* holders(b.sql, `nightshift:${key}`)
      expect(pid).toBeDefined()
      yield* b.sql`SELECT pg_terminate_backend(${pid})`
      const exit = yield* Fiber.await(fiber)
      expect(
        Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.map(String), Option.getOrThrow)
      ).toMatch(/LockError/)
      expect(yield* Ref.get(finalized)).toBe(true)
      yield* eventually(
        "another replica can take the lock",
        Effect.map(b.lock.tryWith(key, Effect.void), Option.isSome)
      )
    }).pipe(Effect.scoped)
  )

  it.live("ticks guarded by one key on three replicas never overlap", () =>
    Effect.gen(function* () {
      const key = freshSchema("tick")
      const replicas = [yield* replica(), yield* replica(), yield* replica()]
      const running = yield* Ref.make(0)
      const maxRunning = yield* Ref.make(0)
      const ran = yield* Ref.make(0)
      const tick = Effect.gen(function* () {
        const now = yield* Ref.updateAndGet(running, (n) => n + 1)
        yield* Ref.update(maxRunning, (m) => Math.max(m, now))
        yield* Effect.sleep("5 millis")
        yield* Ref.update(running, (n) => n - 1)
        yield* Ref.update(ran, (n) => n + 1)
      })
      yield* Effect.forEach(replicas, (r) => Effect.repeatN(r.lock.tryWith(key, tick), 15), {
        concurrency: "unbounded",
        discard: true
      })
      expect(yield* Ref.get(maxRunning)).toBe(1)
      expect(yield* Ref.get(ran)).toBeGreaterThan(0)
    }).pipe(Effect.scoped)
  )
})
