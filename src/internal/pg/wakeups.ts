/**
 * Wake-up hints over LISTEN/NOTIFY: what is sent, and one resilient listener
 * per store that fans the hints out in-process.
 *
 * `PgClient.notify` cannot be used (it binds the payload as a parameter to
 * NOTIFY, which PostgreSQL rejects), so hints go out with `pg_notify`, inside
 * the caller's transaction when there is one: they are delivered on commit.
 * `PgClient.listen` neither fails nor reconnects when its connection dies, so
 * the listener sends itself a heartbeat and starts over when nothing arrives
 * for two heartbeats. Hints are only hints: polling stays the backstop.
 *
 * @internal
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as JobStore from "../../JobStore.js"
import type { Ctx } from "./context.js"

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

/** Send payloads on the store's channel, in the current transaction if any. */
export const notify = (ctx: Ctx, payloads: ReadonlyArray<string>) =>
  payloads.length === 0
    ? Effect.void
    : ctx.sql`SELECT pg_notify(${ctx.channel}, p) FROM unnest(${payloads}::text[]) AS p`.pipe(Effect.asVoid)

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
  /** How long to wait after a failure before listening again. */
  readonly retryDelay: Duration.Duration
}

/**
 * Start the listener in the current scope and return the stream of hints.
 * Waits (a few seconds at most) until LISTEN is in place, so that a hint
 * sent after this returns is not missed. Runs on the live clock: it watches a
 * real connection, whatever clock the rest of the store uses.
 */
export const start = (
  client: PgClient.PgClient,
  ctx: Ctx,
  options: ListenerOptions
): Effect.Effect<Stream.Stream<JobStore.Wakeup>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const hub = yield* PubSub.sliding<JobStore.Wakeup>(4096)
    const ready = yield* Deferred.make<void>()
    const beat = notify(ctx, [heartbeatPayload]).pipe(Effect.ignore)
    // Two missed heartbeats: with the default (500 ms) a dead connection is noticed within about 1 s.
    const stale = Duration.times(options.heartbeat, 2)
    const session = client.listen(ctx.channel).pipe(
      Stream.merge(
        Stream.fromSchedule(Schedule.spaced(options.heartbeat)).pipe(
          Stream.mapEffect(() => beat),
          Stream.drain
        )
      ),
      Stream.timeoutFail(() => new ListenerStale({ after: stale }), stale),
      Stream.tap(() => Deferred.succeed(ready, undefined)),
      Stream.runForEach((payload) => PubSub.publishAll(hub, decode(payload)))
    )
    const loop = session.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("nightshift: PostgreSQL listener stopped", cause)),
      Effect.zipRight(Effect.sleep(options.retryDelay)),
      Effect.forever,
      Effect.annotateLogs({ channel: ctx.channel })
    )
    const live = Clock.make()
    yield* loop.pipe(Effect.withClock(live), Effect.interruptible, Effect.forkScoped)
    yield* beat.pipe(
      Effect.zipRight(Deferred.isDone(ready)),
      Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("20 millis") }),
      Effect.timeoutOption("5 seconds"),
      Effect.withClock(live),
      Effect.tap((done) =>
        done._tag === "Some"
          ? Effect.void
          : Effect.logWarning(
              `nightshift: LISTEN on "${ctx.channel}" delivered nothing within 5 seconds (behind a transaction-mode pooler?); runners poll until it does`
            )
      )
    )
    return Stream.fromPubSub(hub)
  })
