import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Events from "../../Events.js"
import type * as JobStore from "../../JobStore.js"
import * as Metrics from "../../Metrics.js"
import { macrotask } from "./eventLoop.js"

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
  /**
   * The leases of jobs whose outcome is offered and not yet written: the
   * runner keeps heartbeating them, so a store that is slow to take outcomes
   * cannot let their leases run out and have finished jobs rescued and run
   * again.
   */
  readonly held: () => ReadonlyArray<JobStore.Lease>
  /** Call `f` after every batch the store took (one listener; the last set wins). */
  readonly onWritten: (f: () => void) => void
  /**
   * Before each batch, ask `f` for a claim to send with it (one provider;
   * the last set wins). With a store that has `settleAndClaim`, a batch
   * written while `f` returns a claim is written with that claim after it,
   * in one round trip, and `onWritten` is not called for it: the claim's
   * `done` is, with the jobs claimed, or with `undefined` when the claim was
   * not made (the batch is then written alone, as without a claim).
   */
  readonly claimWith: (f: () => Rider | undefined) => void
}

/** A claim sent after a batch of outcomes (see `Settler.claimWith`). */
export interface Rider {
  readonly request: JobStore.ClaimRequest
  /** Called once, uninterruptibly: with the jobs claimed, or `undefined` when no claim was made. */
  readonly done: (claimed: ReadonlyArray<JobStore.JobRecord> | undefined) => void
}

/** How long an outcome the store deferred (its shard unreachable) waits before it is offered again. */
const deferRetry = Duration.seconds(1)

/** Scheduler turns a batch waits for more outcomes before it is written. */
const gatherTurns = 3
const afterTurns = Effect.repeatN(Effect.yieldNow(), gatherTurns - 1)

export const makeSettler = (store: JobStore.Service, maxBatch: number): Effect.Effect<Settler> =>
  Effect.gen(function* () {
    // Outcomes offered and not yet taken into a batch, oldest first; `ready` is open while
    // there are any. (A plain array: an Effect Queue cost an allocation and a check of its
    // takers per outcome.)
    let queue: Array<Pending> = []
    const ready = Effect.unsafeMakeLatch(false)
    const push = (pending: Pending) => {
      queue.push(pending)
      if (queue.length === 1) ready.unsafeOpen()
    }
    /** Take up to `n` outcomes, oldest first. */
    const takeUpTo = (n: number) =>
      Effect.sync((): Array<Pending> => {
        if (queue.length === 0) return []
        let batch: Array<Pending>
        if (queue.length <= n) {
          batch = queue
          queue = []
        } else batch = queue.splice(0, n)
        if (queue.length === 0) ready.unsafeClose()
        return batch
      })
    /** Put an interrupted batch back in front of what was offered since. */
    const putBack = (batch: ReadonlyArray<Pending>) =>
      Effect.sync(() => {
        if (batch.length === 0) return
        queue = batch.concat(queue)
        ready.unsafeOpen()
      })
    const clock = yield* Effect.clock
    const lock = yield* Effect.makeSemaphore(1)
    let written = () => {}
    // Offered and not yet written, by job id.
    const holding = new Map<string, JobStore.JobRecord>()
    // Outcomes the store deferred (a shard unreachable), each batch waiting out `deferRetry`
    // before it is offered again; a flush offers them at once.
    const parked = new Set<ReadonlyArray<Pending>>()
    const unpark = (batch: ReadonlyArray<Pending>) =>
      Effect.suspend(() => (parked.delete(batch) ? putBack(batch) : Effect.void))
    const parkedCount = () => {
      let n = 0
      for (const batch of parked) n += batch.length
      return n
    }

    let rider: () => Rider | undefined = () => undefined
    /**
     * Once a claim rides the batches (flow control: each settle frees
     * places), a batch still of one outcome after its scheduler turns also
     * waits for one turn of the event loop. Attempts that end on a timer (a
     * sleep, a timeout) end one timer callback at a time, with the
     * microtasks run between them; with an in-process store (SQLite), whose
     * writes block the thread, each such batch held one outcome and the
     * next timer waited for its write: under `global: 50` with 10 ms jobs,
     * one settle-and-claim per job and about 10 jobs running instead of 50.
     * After a turn of the event loop every timer due has fired and its
     * outcome joins the batch. Batches that grew over their scheduler turns
     * (jobs that end without a timer) are written at once, as before.
     */
    let waitOutTimers = false

    /**
     * The batch with the claim the provider gives (see `claimWith`), in one
     * uninterruptible call: claimed jobs are always handed to `done`, never
     * lost between the store and the runner. `None` when there was no claim
     * to send or the call failed (the batch is then written alone).
     */
    const settleWithClaim = (
      settlements: ReadonlyArray<JobStore.Settlement>
    ): Effect.Effect<Option.Option<ReadonlyArray<JobStore.SettleResult>>> => {
      const settleAndClaim = store.settleAndClaim
      if (settleAndClaim === undefined) return Effect.succeedNone
      return Effect.uninterruptible(
        Effect.suspend(() => {
          const ride = rider()
          if (ride === undefined) return Effect.succeedNone
          return settleAndClaim(settlements, ride.request).pipe(
            Effect.matchEffect({
              onFailure: (e) =>
                Effect.zipRight(
                  Effect.sync(() => ride.done(undefined)),
                  Effect.as(
                    Effect.logWarning(
                      "nightshift: settling job outcomes with a claim failed; settling alone",
                      e
                    ),
                    Option.none()
                  )
                ),
              onSuccess: ({ claimed, settled }) =>
                Effect.sync(() => {
                  ride.done(claimed)
                  return Option.some(settled)
                })
            })
          )
        })
      )
    }

    const write = (batch: ReadonlyArray<Pending>) =>
      Effect.suspend(() => {
        const settlements = batch.map((p) => ({ id: p.job.id, fence: p.job.fence, outcome: p.outcome }))
        return Effect.flatMap(
          settleWithClaim(settlements),
          (rode): Effect.Effect<readonly [ReadonlyArray<JobStore.SettleResult>, boolean]> =>
            Option.isSome(rode) ? Effect.succeed([rode.value, true]) : settleAlone(settlements)
        )
      }).pipe(
        Effect.tap(([results, rode]) => {
          // Outcomes the store could not deliver yet (a shard is down) are offered again
          // after a pause; they stay held, so their leases are kept meanwhile.
          const deferred: Array<Pending> = []
          for (let i = 0; i < batch.length; i++) {
            const p = batch[i]!
            if (results[i]?.deferred === true) deferred.push(p)
            else if (holding.get(p.job.id) === p.job) holding.delete(p.job.id)
          }
          if (!rode) written()
          if (deferred.length === 0) return Effect.void
          parked.add(deferred)
          return Effect.forkDaemon(Effect.delay(unpark(deferred), deferRetry))
        }),
        Effect.flatMap(([results]) => report(batch, results))
      )

    const settleAlone = (settlements: ReadonlyArray<JobStore.Settlement>) =>
      store.settle(settlements).pipe(
        Effect.tapError((e) => Effect.logWarning("nightshift: settling job outcomes failed; retrying", e)),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.orDie, // the schedule above never ends
        Effect.map((results): readonly [ReadonlyArray<JobStore.SettleResult>, boolean] => [results, false])
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

    // Outcomes taken from the queue and not yet written; `idle` is open while there are none.
    let inFlight = 0
    const idle = Effect.unsafeMakeLatch(true)
    const track = (n: number) => {
      if (inFlight === 0 && n > 0) idle.unsafeClose()
      inFlight += n
      if (inFlight === 0) idle.unsafeOpen()
    }

    /** The outcomes offered since `batch` was taken, added to it (up to `maxBatch`). */
    const joinInto = (batch: Array<Pending>) =>
      Effect.suspend(() =>
        Effect.map(takeUpTo(maxBatch - batch.length), (rest) => {
          for (const p of rest) batch.push(p)
          track(rest.length)
        })
      )

    /**
     * Take a batch with `take` (then, if `gather`, let the attempts finishing
     * in the next few scheduler turns join it) and write it under the lock,
     * retrying while the store fails. Interruptible (a store that stays down
     * must not hold up a shutdown); an interrupted batch goes back to the
     * queue. Writing a batch twice is harmless: settles are fenced. Succeeds
     * with the batch size.
     */
    const takeAndWrite = (take: Effect.Effect<Array<Pending>>, gather: boolean) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(take), (batch) => {
          if (batch.length === 0) return Effect.succeed(0)
          track(batch.length)
          const more =
            gather && batch.length < maxBatch
              ? Effect.zipRight(
                  Effect.zipRight(restore(afterTurns), joinInto(batch)),
                  Effect.suspend(() =>
                    waitOutTimers && batch.length === 1
                      ? Effect.zipRight(restore(macrotask), joinInto(batch))
                      : Effect.void
                  )
                )
              : Effect.void
          // suspended: `write` reads the batch when it runs, after `more` has added to it
          const written = Effect.suspend(() => write(batch))
          return Effect.zipRight(more, restore(lock.withPermits(1)(written))).pipe(
            Effect.onInterrupt(() => putBack(batch)),
            Effect.ensuring(Effect.sync(() => track(-batch.length))),
            Effect.map(() => batch.length)
          )
        })
      )

    // Once one outcome is pending, the attempts finishing in the same few scheduler turns join
    // its batch: fewer, larger settles (SQLite drain 17k -> 23k jobs/s, memory 60k -> 70k+).
    const step = takeAndWrite(Effect.zipRight(ready.await, takeUpTo(maxBatch)), true)

    /**
     * Until nothing is queued, being written (by `run` as well) or deferred:
     * deferred outcomes are offered again at once, then, while the store
     * keeps deferring them, every `deferRetry`.
     */
    const flushAll: Effect.Effect<void> = Effect.gen(function* () {
      let unparked = false
      while (true) {
        if ((yield* takeAndWrite(takeUpTo(maxBatch), false)) > 0) continue
        if (inFlight > 0) {
          yield* idle.await
          continue
        }
        if (parked.size === 0) return
        if (unparked) yield* Effect.sleep(deferRetry)
        unparked = true
        for (const batch of [...parked]) yield* unpark(batch)
      }
    })

    const flush = (budget: Duration.Duration) =>
      Effect.interruptible(flushAll).pipe(
        Effect.timeoutOption(budget),
        Effect.zipRight(Effect.sync(() => queue.length + inFlight + parkedCount()))
      )

    return {
      offer: (pending) =>
        Effect.suspend(() => {
          holding.set(pending.job.id, pending.job)
          push(pending)
          return Effect.void
        }),
      unsafeOffer: (pending) => {
        holding.set(pending.job.id, pending.job)
        push(pending)
      },
      flush,
      run: Effect.forever(step),
      size: Effect.sync(() => queue.length),
      held: () => Array.from(holding.values(), (job) => ({ id: job.id, fence: job.fence })),
      onWritten: (f) => {
        written = f
      },
      claimWith: (f) => {
        rider = f
        waitOutTimers = true
      }
    }
  })
