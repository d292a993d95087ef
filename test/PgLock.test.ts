/**
 * PgLock against a real server: exclusion across separate pools (as separate
 * replicas would have), release however the effect ends, no lock left behind
 * in the pool, and what happens when the connection holding a lock dies.
 */
import * as Net from "node:net"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Crew from "../src/Crew.js"
import * as Lock from "../src/Lock.js"
import * as PgLock from "../src/PgLock.js"
import * as Worker from "../src/Worker.js"
import { clientLayer, databaseUrl, eventually, freshSchema } from "./setup/pg.js"

/** A replica: its own pool and its own lock service. */
const replica = (options: PgLock.Options = {}) =>
  Layer.build(PgLock.layer(options).pipe(Layer.provideMerge(clientLayer({ maxConnections: 4 })))).pipe(
    Effect.map((context) => ({
      lock: Context.get(context, Lock.Lock),
      sql: Context.get(context, SqlClient.SqlClient)
    }))
  )

/**
 * A TCP proxy in front of the test server that can go silent: `freeze` stops
 * forwarding in both directions while every socket stays open, as a network
 * partition does; `cut` then closes the server side, as the server does once
 * it notices.
 */
const silentProxy = Effect.acquireRelease(
  Effect.async<{
    readonly url: string
    readonly freeze: () => void
    readonly cut: () => void
    readonly close: () => void
  }>((resume) => {
    const target = new URL(databaseUrl())
    const pairs: Array<{ readonly client: Net.Socket; readonly server: Net.Socket }> = []
    let frozen = false
    const proxy = Net.createServer((client) => {
      const server = Net.connect(Number(target.port || 5432), target.hostname)
      pairs.push({ client, server })
      const forward = (from: Net.Socket, to: Net.Socket) =>
        from.on("data", (chunk) => {
          if (!frozen) to.write(chunk)
        })
      forward(client, server)
      forward(server, client)
      // While frozen, a closed side is not passed on either.
      const pass = (to: Net.Socket) => () => {
        if (!frozen) to.destroy()
      }
      client.on("close", pass(server))
      server.on("close", pass(client))
      client.on("error", () => undefined)
      server.on("error", () => undefined)
    })
    proxy.listen(0, "127.0.0.1", () => {
      const address = proxy.address() as Net.AddressInfo
      const url = new URL(target.href)
      url.hostname = "127.0.0.1"
      url.port = String(address.port)
      resume(
        Effect.succeed({
          url: url.href,
          freeze: () => {
            frozen = true
          },
          cut: () => {
            for (const pair of pairs) pair.server.destroy()
          },
          close: () => {
            for (const pair of pairs) {
              pair.client.destroy()
              pair.server.destroy()
            }
            proxy.close()
          }
        })
      )
    })
  }),
  (proxy) => Effect.sync(proxy.close)
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

  it.live(
    "a held lock is released on its own connection when the effect ends, and taken at once elsewhere",
    () =>
      Effect.gen(function* () {
        const key = freshSchema("norm")
        const a = yield* replica({ checkInterval: "10 minutes" })
        const b = yield* replica({ checkInterval: "10 minutes" })
        for (let round = 0; round < 5; round++) {
          const [pid] = yield* a.lock
            .tryWith(key, holders(b.sql, `nightshift:${key}`))
            .pipe(Effect.map(Option.getOrThrow))
          expect(pid).toBeDefined()
          expect(yield* holders(b.sql, `nightshift:${key}`)).toEqual([])
          expect(yield* b.lock.tryWith(key, Effect.succeed(round))).toEqual(Option.some(round))
        }
      }).pipe(Effect.scoped)
  )

  // The periodic check is set to 10 minutes: only the connection's own
  // failure can tell the holder in time.
  it.live(
    "when the connection holding the lock is terminated, the effect is interrupted at once and tryWith fails with LockError",
    () =>
      Effect.gen(function* () {
        const key = freshSchema("lost")
        const a = yield* replica({ checkInterval: "10 minutes" })
        const b = yield* replica()
        for (let round = 0; round < 3; round++) {
          const started = yield* Deferred.make<void>()
          const interrupted = yield* Ref.make(false)
          const fiber = yield* a.lock
            .tryWith(
              key,
              Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
                Effect.onInterrupt(() => Ref.set(interrupted, true))
              )
            )
            .pipe(Effect.fork)
          yield* Deferred.await(started)
          const [pid] = yield* holders(b.sql, `nightshift:${key}`)
          expect(pid).toBeDefined()
          // Waits until the backend has exited, so its locks are released.
          yield* b.sql`SELECT pg_terminate_backend(${pid}::int, 20000)`
          const exit = yield* Fiber.await(fiber).pipe(
            Effect.timeoutFail({
              duration: "30 seconds",
              onTimeout: () => new Error("the holder never learned that its connection was terminated")
            })
          )
          const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          expect(Option.map(error, (e) => e instanceof Lock.LockError)).toEqual(Option.some(true))
          expect(Option.getOrThrow(error).message).toMatch(/lost/)
          expect(yield* Ref.get(interrupted)).toBe(true)
          expect(yield* b.lock.tryWith(key, Effect.succeed("taken"))).toEqual(Option.some("taken"))
          // The pool dropped the dead connection: the replica takes the lock again.
          expect(yield* a.lock.tryWith(key, Effect.succeed("again"))).toEqual(Option.some("again"))
        }
      }).pipe(Effect.scoped)
  )

  it.live(
    "a singleton tick whose lock is lost is interrupted and recorded as failed because the lock was lost",
    () =>
      Effect.gen(function* () {
        const name = freshSchema("gc")
        const a = yield* replica({ checkInterval: "10 minutes" })
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const logs: Array<string> = []
        const logger = Logger.make(({ message, cause }) => {
          logs.push(`${String(message)} ${Cause.pretty(cause)}`)
        })
        const worker = Worker.periodic(
          name,
          { schedule: "1 hour", runOnStart: true, singleton: true },
          Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
        )
        const crew = yield* Crew.start(worker).pipe(
          Effect.provideService(Lock.Lock, a.lock),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
        yield* Deferred.await(started)
        const [pid] = yield* holders(a.sql, `nightshift:worker:${name}`)
        expect(pid).toBeDefined()
        yield* a.sql`SELECT pg_terminate_backend(${pid}::int, 20000)`
        yield* Deferred.await(interrupted)
        yield* eventually(
          "the tick is recorded",
          Effect.map(crew.statusOf(name), (status) => status.failures === 1)
        )
        const status = yield* crew.statusOf(name)
        expect(status.lastError).toMatch(/lock "worker:.*" was lost, so the guarded effect was interrupted/)
        expect(
          logs.filter((line) =>
            /tick of ".*" failed LockError: .* was lost, so the guarded effect was interrupted/.test(line)
          )
        ).toHaveLength(1)
      }).pipe(Effect.scoped)
  )

  it.live(
    "when the connection holding the lock goes silent, the effect is interrupted after checkInterval",
    () =>
      Effect.gen(function* () {
        const key = freshSchema("silent")
        const proxy = yield* silentProxy
        const context = yield* Layer.build(
          PgLock.layer({ checkInterval: "1 second" }).pipe(
            Layer.provide(
              PgClient.layer({
                url: Redacted.make(proxy.url),
                maxConnections: 2,
                applicationName: "nightshift-test"
              })
            )
          )
        )
        const a = Context.get(context, Lock.Lock)
        const b = yield* replica()
        const started = yield* Deferred.make<void>()
        const fiber = yield* a
          .tryWith(key, Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
          .pipe(Effect.fork)
        yield* Deferred.await(started)
        proxy.freeze()
        const exit = yield* Fiber.await(fiber)
        const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.map(error, (e) => e instanceof Lock.LockError)).toEqual(Option.some(true))
        expect(Option.getOrThrow(error).message).toMatch(/lost.*did not answer within 1s/)
        // The server still holds the lock for the silent session until it notices it is gone.
        expect(yield* b.lock.tryWith(key, Effect.void)).toEqual(Option.none())
        proxy.cut()
        yield* eventually(
          "the server has ended the session and released the lock",
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
