/**
 * Wake-up hints over LISTEN/NOTIFY: what is sent, and one resilient listener
 * per store that fans the hints out in-process.
 *
 * `PgClient.notify` cannot be used (it binds the payload as a parameter to
 * NOTIFY, which PostgreSQL rejects), so hints go out with `pg_notify`, inside
 * the caller's transaction when there is one: they are delivered on commit.
 * `PgClient.listen` neither fails nor reconnects when its connection dies, so
 * the listener sends itself a heartbeat and starts over when nothing arrives
 * for two heartbeats. While the database is unreachable it logs the first
 * failure and the recovery, not every attempt, and retries with a growing
 * delay (capped). Hints are only hints: polling stays the backstop.
 *
 * @internal
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as JobStore from "../../JobStore.js"
import * as Hints from "../store/hints.js"
import type { Ctx } from "./context.js"
import * as Direct from "./direct.js"
import { messageOf } from "./schema.js"

/** What travels in a notification payload. */
type Message =
  | { readonly t: "e"; readonly q: ReadonlyArray<string> }
  | { readonly t: "c"; readonly id: string }
  | { readonly t: "h" }

/** PostgreSQL rejects payloads of 8000 bytes or more. */
const maxPayload = 7000

/** Payloads announcing new work on `queues`, as few as fit. */
export const enqueuedPayloads = (queues: ReadonlyArray<string>): Array<string> => {
  const payloads: Array<string> = []
  let batch: Array<string> = []
  let size = 0
  for (const queue of new Set(queues)) {
    const cost = Buffer.byteLength(JSON.stringify(queue)) + 1
    if (batch.length > 0 && size + cost > maxPayload) {
      payloads.push(JSON.stringify({ t: "e", q: batch } satisfies Message))
      batch = []
      size = 0
    }
    batch.push(queue)
    size += cost
  }
  if (batch.length > 0) payloads.push(JSON.stringify({ t: "e", q: batch } satisfies Message))
  return payloads
}

/** The payload asking the node that runs job `id` to interrupt it. */
export const cancelPayload = (id: string): string => JSON.stringify({ t: "c", id } satisfies Message)

const heartbeatPayload = JSON.stringify({ t: "h" } satisfies Message)

/** Send payloads on the store's channel (or `channel`), in the current transaction if any. */
export const notify = (ctx: Ctx, payloads: ReadonlyArray<string>, channel: string = ctx.channel) =>
  payloads.length === 0
    ? Effect.void
    : ctx.sql`SELECT pg_notify(${channel}, p) FROM unnest(${payloads}::text[]) AS p`.pipe(Effect.asVoid)

/**
 * A channel of one listener's own for its heartbeats: the store's channel
 * and a random suffix, within PostgreSQL's 63 bytes (the schema name is at
 * most 48, the channel at most 55).
 */
const heartbeatChannel = (ctx: Ctx) =>
  `${ctx.channel}_${Math.random().toString(36).slice(2, 9).padEnd(7, "0")}`

const decode = (payload: string): ReadonlyArray<JobStore.Wakeup> => {
  try {
    const message = JSON.parse(payload) as Message
    if (message.t === "e" && Array.isArray(message.q)) {
      return message.q.map((queue) => ({ _tag: "enqueued", queue }))
    }
    if (message.t === "c" && typeof message.id === "string") return [{ _tag: "cancel", id: message.id }]
  } catch {
    // Not ours: ignore it.
  }
  return []
}

class ListenerStale extends Data.TaggedError("ListenerStale")<{ readonly after: Duration.Duration }> {
  override get message() {
    return `no notification (not even our own heartbeat) for ${Duration.format(this.after)}: reconnecting`
  }
}

/** Listener settings. */
export interface ListenerOptions {
  /** How often the listener pings itself. */
  readonly heartbeat: Duration.Duration
  /** How long to wait after a first failure before listening again; it doubles with each failure in a row. */
  readonly retryDelay: Duration.Duration
  /** The longest wait between attempts while the database stays unreachable. Default 2 s. */
  readonly maxRetryDelay?: Duration.Duration | undefined
}

/** The default longest wait between reconnection attempts. */
export const defaultMaxRetryDelay = Duration.seconds(2)

/**
 * The wait before the next attempt after `failures` failed sessions in a
 * row: `retryDelay`, doubled for each further failure, at most
 * `maxRetryDelay` (and never less than `retryDelay`).
 */
export const retryDelayAfter = (failures: number, options: ListenerOptions): Duration.Duration => {
  const base = Duration.toMillis(options.retryDelay)
  const max = Math.max(base, Duration.toMillis(options.maxRetryDelay ?? defaultMaxRetryDelay))
  return Duration.millis(Math.min(max, base * 2 ** Math.min(Math.max(failures - 1, 0), 30)))
}

/** One line for why a listener session ended: the error's message, no stack. */
const reason = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isEmpty(cause)) return "the notification stream ended"
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  const error = Cause.squash(cause)
  return messageOf(error)
}

/** Outage bookkeeping: failed sessions in a row, and when the first of them ended. */
interface Outage {
  readonly failures: number
  readonly since: number
}

/**
 * The store's hints, fed by a listener that starts, in the current scope, on
 * their first subscriber (a runner, or a reader of `wakeups`). A process
 * that only enqueues never listens: it holds no listening connection and
 * spends nothing on the notifications of every enqueue in the cluster (about
 * 90 µs of CPU each through the listen stream, measured on this machine).
 * The first subscription waits (a few seconds at most) until LISTEN is in
 * place, so that a hint sent after it returns is not missed. Runs on the
 * live clock: it watches a real connection, whatever clock the rest of the
 * store uses.
 */
export const start = (
  client: PgClient.PgClient,
  ctx: Ctx,
  options: ListenerOptions
): Effect.Effect<Hints.Hints, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    // The listener runs with the store's own fiber refs (logger, annotations, services),
    // not those of whichever subscriber starts it.
    const refs = yield* Effect.getFiberRefs
    // Set below; the hub runs it before each subscription.
    let activate: Effect.Effect<void> = Effect.void
    const hub = yield* Hints.make(Effect.suspend(() => activate))
    yield* Effect.addFinalizer(() => hub.shutdown)
    const ready = yield* Deferred.make<void>()
    const outage = yield* Ref.make<Outage>({ failures: 0, since: 0 })
    // A session that delivers anything (at least its own heartbeat) ends an outage: say so once.
    const connected = Effect.flatMap(Ref.get(outage), (o) =>
      o.failures === 0
        ? Effect.void
        : Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Ref.set(outage, { failures: 0, since: 0 }).pipe(
              Effect.zipRight(
                Effect.logInfo(
                  `nightshift: PostgreSQL listener reconnected after ${o.failures} failed attempt${o.failures === 1 ? "" : "s"} (${Duration.format(Duration.millis(Math.max(0, now - o.since)))} without wake-ups)`
                )
              )
            )
          )
    )
    // The first failure of an outage is a warning; the attempts after it are debug lines,
    // spaced further and further apart (see retryDelayAfter).
    const failed = (cause: Cause.Cause<unknown>) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const o = yield* Ref.updateAndGet(outage, (o) => ({
          failures: o.failures + 1,
          since: o.failures === 0 ? now : o.since
        }))
        const delay = retryDelayAfter(o.failures, options)
        if (o.failures === 1) {
          yield* Effect.logWarning(
            `nightshift: PostgreSQL listener stopped: ${reason(cause)}. Reconnecting (next try in ${Duration.format(delay)}, backing off up to ${Duration.format(options.maxRetryDelay ?? defaultMaxRetryDelay)}); runners poll meanwhile, and a line is logged when it is back`
          )
        } else {
          yield* Effect.logDebug(
            `nightshift: PostgreSQL listener attempt ${o.failures} failed: ${reason(cause)}; next try in ${Duration.format(delay)}`
          )
        }
        yield* Effect.sleep(delay)
      })
    // On a pool the store may use directly, the listener hears its heartbeats on a channel of
    // its own, beside the store's: on the shared channel every node would receive every
    // other node's heartbeats (2·N² a second for N nodes, each costing the server about
    // 12 µs per listening connection; docs/benchmarks.md). `PgClient.listen` takes one
    // channel per connection, so there they stay on the store's channel.
    const beats = ctx.pool === undefined ? ctx.channel : heartbeatChannel(ctx)
    const beat = notify(ctx, [heartbeatPayload], beats).pipe(Effect.ignore)
    const live = Clock.make()
    // Two missed heartbeats: with the default (500 ms) a dead connection is noticed within about 1 s.
    const stale = Duration.times(options.heartbeat, 2)
    const staleMs = Duration.toMillis(stale)
    /**
     * One LISTEN session: each notification goes straight to the hub from
     * the listen stream's own consumer, or, on a pool the store may use
     * directly, from the connection's own event (`Direct.listen`). Staleness
     * is watched beside it, from the time of the last notification, instead
     * of by stream combinators around every notification. Merging the
     * heartbeat stream into the listen stream and timing out each pull put a
     * merge queue and a raced timer between every notification and the hub:
     * 0.72 ms at the median from the pg client's event to the hub on a
     * loaded 2-core machine, 0.21 ms this way (two processes, serial jobs,
     * 2026-12-05); the stream's own hop was most of what was left.
     */
    const session = Effect.suspend(() => {
      let last = live.unsafeCurrentTimeMillis()
      let heard = false
      const first = Deferred.unsafeMake<void>(FiberId.none)
      const deliver = (payload: string) => {
        last = live.unsafeCurrentTimeMillis()
        hub.unsafePublish(decode(payload))
        if (heard) return
        heard = true
        Deferred.unsafeDone(first, Exit.void)
      }
      // The session's first notification (at least its own heartbeat) says the listener is up.
      const up = Deferred.await(first).pipe(
        Effect.zipRight(Deferred.succeed(ready, undefined)),
        Effect.zipRight(connected),
        Effect.zipRight(Effect.never)
      )
      const watch = Effect.forever(
        Effect.suspend(() => {
          const quiet = live.unsafeCurrentTimeMillis() - last
          return quiet >= staleMs
            ? Effect.fail(new ListenerStale({ after: stale }))
            : Effect.sleep(Duration.millis(staleMs - quiet))
        })
      )
      const beating = Effect.forever(Effect.zipRight(Effect.sleep(options.heartbeat), beat))
      const listening =
        ctx.pool === undefined
          ? client
              .listen(ctx.channel)
              .pipe(Stream.runForEach((payload) => Effect.sync(() => deliver(payload))))
          : // The store's channel first: a heartbeat heard on the second proves both are in place.
            Direct.listen(ctx.pool, [ctx.channel, beats], deliver)
      return listening.pipe(Effect.raceFirst(watch), Effect.raceFirst(beating), Effect.raceFirst(up))
    })
    const loop = session.pipe(
      Effect.matchCauseEffect({ onFailure: failed, onSuccess: () => failed(Cause.empty) }),
      Effect.forever,
      Effect.annotateLogs({ channel: ctx.channel })
    )
    // The first subscriber starts the listener; every subscriber waits until it is in place:
    // until a heartbeat sent after LISTEN comes back. One sent before LISTEN took effect is
    // lost, so one goes out every 20 ms, and each wait ends as soon as one arrives (checking
    // only before the next beat cost every runner's start about 20 ms).
    // The work runs in the store's scope, so a subscriber interrupted meanwhile stops nothing.
    const listening = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(listening, undefined))
    const listen = Effect.zipRight(
      loop.pipe(Effect.withClock(live), Effect.interruptible, Effect.forkIn(scope)),
      beat.pipe(
        Effect.zipRight(Effect.timeoutOption(Deferred.await(ready), "20 millis")),
        Effect.repeat({ until: (heard) => heard._tag === "Some" }),
        Effect.timeoutOption("5 seconds"),
        Effect.withClock(live),
        Effect.tap((done) =>
          done._tag === "Some"
            ? Effect.void
            : Effect.logWarning(
                `nightshift: LISTEN on "${ctx.channel}" delivered nothing within 5 seconds (behind a transaction-mode pooler?); runners poll until it does`
              )
        ),
        Effect.zipRight(Deferred.succeed(listening, undefined))
      )
    )
    let started = false
    activate = Effect.suspend(() => {
      if (started) return Deferred.await(listening)
      started = true
      return Effect.zipRight(
        Effect.forkIn(Effect.zipRight(Effect.setFiberRefs(refs), listen), scope),
        Deferred.await(listening)
      )
    })
    return hub
  })
