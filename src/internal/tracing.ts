/**
 * Spans only where they go somewhere: with Effect's default tracer, spans
 * are never exported, yet each one costs ids, an object and its bookkeeping
 * on hot paths (an enqueue, an attempt).
 */
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"

/** Effect's default tracer, whose spans go nowhere. */
export const nativeTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `Effect.withSpan`, skipped when the tracer in use is the default one. */
export const withSpanIfTraced =
  (name: string, options?: Tracer.SpanOptions) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.tracerWith((tracer) => (tracer === nativeTracer ? self : Effect.withSpan(self, name, options)))
