import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { RunContext } from "./core.js"

/** Where a consumer takes its items from. */
export type Source<A, E, R> = Queue.Dequeue<A> | Stream.Stream<A, E, R>

/** Wrap one unit of work (an item or a batch) with status recording and a span. */
const tracked = <X, E, R>(ctx: RunContext, handle: (x: X) => Effect.Effect<unknown, E, R>, span: string) => {
  const { cell, registry } = ctx
  let inflight = 0
  return (x: X): Effect.Effect<void, E, R> =>
    Effect.suspend(() => {
      inflight++
      cell.state = "running"
      cell.lastStartAt = registry.stamp(registry.ticker.now())
      cell.runs++
      registry.changed(cell)
      return handle(x)
    }).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          inflight--
          const now = registry.stamp(registry.ticker.now())
          if (inflight === 0) cell.state = "idle"
          if (Exit.isSuccess(exit)) {
            cell.lastFinishAt = cell.lastSuccessAt = now
            cell.successes++
            cell.consecutiveFailures = 0
          } else if (!Cause.isInterruptedOnly(exit.cause)) {
            cell.lastFinishAt = cell.lastFailureAt = now
            cell.failures++
            cell.consecutiveFailures++
            cell.lastError = Cause.pretty(exit.cause)
            ctx.failureRecorded = true
          }
          registry.changed(cell)
        })
      ),
      Effect.asVoid,
      Effect.withSpan(span, {
        root: true,
        captureStackTrace: false,
        attributes: { "nightshift.worker": ctx.name }
      })
    )
}

const markIdle = (ctx: RunContext) =>
  Effect.sync(() => {
    ctx.cell.state = "idle"
    ctx.registry.changed(ctx.cell)
  })

/** Take items one at a time, handling up to `concurrency` at once. A handler failure fails the run. */
export const one =
  <A, E2, R2, E, R>(
    source: Source<A, E2, R2>,
    handle: (a: A) => Effect.Effect<unknown, E, R>,
    concurrency: number
  ) =>
  (ctx: RunContext): Effect.Effect<void, E | E2, R | R2> => {
    const work = tracked(ctx, handle, "nightshift.worker.item")
    const drain: Effect.Effect<void, E | E2, R | R2> = Queue.isDequeue(source)
      ? Effect.forEach(
          Array.from({ length: concurrency }),
          () => Effect.forever(Effect.flatMap(Queue.take(source as Queue.Dequeue<A>), work)),
          { concurrency, discard: true }
        )
      : Stream.runDrain(Stream.mapEffect(source as Stream.Stream<A, E2, R2>, work, { concurrency }))
    return Effect.zipRight(markIdle(ctx), drain)
  }

/**
 * Collect up to `maxSize` elements into `batch`: wait for the first, then
 * take what is there and keep waiting until the batch is full or `maxWait`
 * has passed since its first element.
 */
const collect = <T>(
  queue: Queue.Dequeue<T>,
  batch: Array<T>,
  maxSize: number,
  maxWait: number,
  now: () => number
) =>
  Effect.flatMap(Queue.take(queue), (first) => {
    batch.push(first)
    const deadline = now() + maxWait
    const fill: Effect.Effect<Array<T>> = Effect.suspend(() => {
      if (batch.length >= maxSize) return Effect.succeed(batch)
      return Effect.flatMap(Queue.takeUpTo(queue, maxSize - batch.length), (more) => {
        if (Chunk.isNonEmpty(more)) {
          for (const x of more) batch.push(x)
          return fill
        }
        const left = deadline - now()
        if (left <= 0) return Effect.succeed(batch)
        return Effect.flatMap(Effect.timeoutOption(Queue.take(queue), left), (next) => {
          if (Option.isNone(next)) return Effect.succeed(batch)
          batch.push(next.value)
          return fill
        })
      })
    })
    return fill
  })

/**
 * One round: collect a batch and hand it to `work`. When the worker is
 * stopped while a batch is being collected, the items already taken are
 * handed to `flush` rather than lost.
 */
const round = <T, E, R>(
  collectInto: (batch: Array<T>) => Effect.Effect<unknown>,
  work: (batch: Array<T>) => Effect.Effect<void, E, R>,
  flush: (batch: Array<T>) => Effect.Effect<void, never, R>
): Effect.Effect<void, E, R> =>
  Effect.suspend(() => {
    const batch: Array<T> = []
    let handedOver = false
    return collectInto(batch).pipe(
      Effect.onInterrupt(() => (handedOver || batch.length === 0 ? Effect.void : flush(batch))),
      Effect.zipRight(
        Effect.suspend(() => {
          handedOver = true
          return work(batch)
        })
      )
    )
  })

/** Batches from a queue; flushes on size or on time, whichever comes first, and on stop. */
export const batch =
  <A, E2, R2, E, R>(
    source: Source<A, E2, R2>,
    handle: (batch: Chunk.Chunk<A>) => Effect.Effect<unknown, E, R>,
    maxSize: number,
    maxWait: number
  ) =>
  (ctx: RunContext): Effect.Effect<void, E | E2, R | R2> => {
    const work = tracked(ctx, handle, "nightshift.worker.batch")
    const now = ctx.registry.ticker.now
    // The last, partial batch at stop: handled like any other, its failure logged.
    const flush = (items: Array<A>) =>
      items.length === 0
        ? Effect.void
        : Effect.catchAllCause(work(Chunk.unsafeFromArray(items)), (cause) =>
            Effect.logWarning("nightshift: the batch flushed at stop failed", cause)
          )
    if (Queue.isDequeue(source)) {
      const queue = source as Queue.Dequeue<A>
      return Effect.zipRight(
        markIdle(ctx),
        Effect.forever(
          round(
            (batch: Array<A>) => collect(queue, batch, maxSize, maxWait, now),
            (items) => work(Chunk.unsafeFromArray(items)),
            flush
          )
        )
      )
    }
    const stream = source as Stream.Stream<A, E2, R2>
    return Effect.scoped(
      Effect.gen(function* () {
        const queue = yield* Stream.toQueueOfElements(stream, { capacity: maxSize })
        yield* markIdle(ctx)
        for (;;) {
          const items: Array<Exit.Exit<A, Option.Option<E2>>> = []
          yield* collect(queue, items, maxSize, maxWait, now).pipe(
            Effect.onInterrupt(() => flush(items.filter(Exit.isSuccess).map((item) => item.value)))
          )
          const values: Array<A> = []
          let end: Exit.Exit<A, Option.Option<E2>> | undefined
          for (const item of items) {
            if (Exit.isSuccess(item)) values.push(item.value)
            else {
              end = item
              break
            }
          }
          if (values.length > 0) yield* work(Chunk.unsafeFromArray(values))
          if (end !== undefined) {
            const error = Cause.flipCauseOption((end as Exit.Failure<A, Option.Option<E2>>).cause)
            if (Option.isSome(error)) return yield* Effect.failCause(error.value)
            return
          }
        }
      })
    )
  }
