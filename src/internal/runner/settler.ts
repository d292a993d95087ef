import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Events from "../../Events.js"
import type * as JobStore from "../../JobStore.js"
import * as Metrics from "../../Metrics.js"

/** An attempt's outcome waiting to be written. */
export interface Pending {
  readonly job: JobStore.JobRecord
  readonly outcome: JobStore.Outcome
  readonly durationMs: number
}

const eventTag = (outcome: JobStore.Outcome, state: JobStore.JobState | null): Events.JobEvent["_tag"] => {
  switch (outcome._tag) {
    case "completed":
      return "completed"
    case "retry":
      return state === "discarded" ? "discarded" : "retried"
    case "discard":
      return "discarded"
    case "snooze":
      return "snoozed"
    case "cancelled":
      return "cancelled"
    case "release":
      return "released"
  }
}

const errorOf = (outcome: JobStore.Outcome): string | undefined =>
  "error" in outcome && outcome.error !== undefined ? outcome.error.message.split("\n", 1)[0] : undefined

/**
 * Writes outcomes to the store in batches: whatever has piled up while the
 * previous batch was being written goes in the next one. A failed write is
 * retried with backoff; outcomes are never dropped (every settle is fenced,
 * so writing one late is harmless).
 */
export interface Settler {
  readonly offer: (pending: Pending) => Effect.Effect<void>
  /** `offer`, synchronously (the queue is unbounded, so it never waits). */
  readonly unsafeOffer: (pending: Pending) => void
  /**
   * Write batches until nothing is pending, for at most `budget` (the store
   * may be down at shutdown); succeeds with how many outcomes were left
   * unwritten.
   */
  readonly flush: (budget: Duration.Duration) => Effect.Effect<number>
  /** Write batches forever (a long-running worker). */
  readonly run: Effect.Effect<never>
  readonly size: Effect.Effect<number>
}

/** Scheduler turns a batch waits for more outcomes before it is written. */
const gatherTurns = 3

export const makeSettler = (store: JobStore.Service, maxBatch: number): Effect.Effect<Settler> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Pending>()
    const clock = yield* Effect.clock
    const lock = yield* Effect.makeSemaphore(1)

    const write = (batch: ReadonlyArray<Pending>) =>
      store.settle(batch.map((p) => ({ id: p.job.id, fence: p.job.fence, outcome: p.outcome }))).pipe(
        Effect.tapError((e) => Effect.logWarning("nightshift: settling job outcomes failed; retrying", e)),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.orDie, // the schedule above never ends
        Effect.flatMap((results) => report(batch, results))
      )

    const events = yield* Effect.serviceOption(Events.Events)

    const report = (batch: ReadonlyArray<Pending>, results: ReadonlyArray<JobStore.SettleResult>) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const published: Array<Events.JobEvent> = []
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!
          const r = results[i]
          if (r === undefined || !r.applied) continue
          Metrics.unsafeAttempt(p.job.kind, p.outcome._tag, p.durationMs)
          if (events._tag === "Some") {
            published.push({
              _tag: eventTag(p.outcome, r.state),
              id: p.job.id,
              kind: p.job.kind,
              queue: p.job.queue,
              at: now,
              attempt: p.job.attempt,
              error: errorOf(p.outcome),
              durationMs: p.durationMs
            })
          }
        }
        return events._tag === "Some" && published.length > 0
          ? events.value.publishAll(published)
          : Effect.void
      })

    /**
     * Take a batch with `take` and write it, retrying while the store fails,
     * under the lock. Interruptible (a store that stays down must not hold up
     * a shutdown); an interrupted batch goes back to the queue. Writing a
     * batch twice is harmless: settles are fenced. Succeeds with the batch size.
     */
    let inFlight = 0
    const takeAndWrite = (take: Effect.Effect<Iterable<Pending>>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(take), (chunk) => {
          const batch = Array.from(chunk)
          if (batch.length === 0) return Effect.succeed(0)
          inFlight += batch.length
          return restore(lock.withPermits(1)(write(batch))).pipe(
            Effect.onInterrupt(() => Queue.offerAll(queue, batch)),
            Effect.ensuring(Effect.sync(() => (inFlight -= batch.length))),
            Effect.as(batch.length)
          )
        })
      )

    // Once one outcome is pending, let the attempts finishing in the same few scheduler turns
    // join its batch: fewer, larger settles (SQLite drain 17k -> 23k jobs/s, memory 60k -> 70k+).
    const gather = Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (first) =>
      first.length >= maxBatch
        ? Effect.succeed(first)
        : Effect.zipRight(
            Effect.repeatN(Effect.yieldNow(), gatherTurns - 1),
            Effect.map(Queue.takeUpTo(queue, maxBatch - first.length), (rest) => Chunk.appendAll(first, rest))
          )
    )
    const step = takeAndWrite(gather)

    /** Until nothing is queued or being written (by `run` as well). */
    const flushAll: Effect.Effect<void> = Effect.gen(function* () {
      while (true) {
        if ((yield* takeAndWrite(Queue.takeUpTo(queue, maxBatch))) > 0) continue
        if (inFlight === 0) return
        yield* lock.withPermits(1)(Effect.void) // wait for the batch being written
      }
    })

    const flush = (budget: Duration.Duration) =>
      Effect.interruptible(flushAll).pipe(
        Effect.timeoutOption(budget),
        Effect.zipRight(Effect.map(Queue.size(queue), (queued) => queued + inFlight))
      )

    return {
      offer: (pending) => Effect.asVoid(Queue.offer(queue, pending)),
      unsafeOffer: (pending) => {
        queue.unsafeOffer(pending)
      },
      flush,
      run: Effect.forever(step),
      size: Queue.size(queue)
    }
  })
