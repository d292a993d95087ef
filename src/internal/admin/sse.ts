import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type * as Crew from "../../Crew.js"
import type * as Events from "../../Events.js"
import type * as WorkerStatus from "../../WorkerStatus.js"

/** One Server-Sent Events frame with a JSON body. */
export const frame = (event: string, data: unknown): string =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/** Tells the client how long to wait before reconnecting, and that both subscriptions are live. */
const hello = `retry: 2000\n${frame("ready", {})}`

/**
 * The event stream of one client: job lifecycle events (`job`) and worker
 * status changes (`worker`), with a comment line every `keepAlive` so idle
 * proxies keep the connection. Both feeds are subscribed before the first
 * frame is sent, so a client that saw `ready` misses nothing after it. The
 * stream ends when `closing` completes (the server shuts down).
 */
export const stream = (
  events: Events.Service,
  crew: Crew.Handle,
  keepAlive: Duration.DurationInput,
  closing: Deferred.Deferred<void>
): Stream.Stream<string> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const jobs = yield* events.subscribe
      const workers = yield* Queue.sliding<WorkerStatus.WorkerStatus>(1024)
      yield* crew.changes.pipe(
        Stream.runForEach((w) => Queue.offer(workers, w)),
        Effect.forkScoped
      )
      yield* Effect.yieldNow()
      return Stream.make(hello).pipe(
        Stream.concat(
          Stream.mergeAll(
            [
              Stream.map(jobs, (e) => frame("job", e)),
              Stream.map(Stream.fromQueue(workers), (w) => frame("worker", w)),
              Stream.as(Stream.fromSchedule(Schedule.spaced(keepAlive)), ": keep-alive\n\n")
            ],
            { concurrency: "unbounded" }
          )
        )
      )
    })
  ).pipe(Stream.interruptWhenDeferred(closing))

/** The streaming response. */
export const response = (body: Stream.Stream<string>): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.stream(Stream.encodeText(body), {
    contentType: "text/event-stream; charset=utf-8",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
