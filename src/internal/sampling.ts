/**
 * Spacing for samplers that count the store (the runner's depth gauges,
 * the admin overview's history): counting a large backlog takes a while,
 * so a slow sample pushes the next one out.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * A sample waits at least this many times its own duration before the
 * next one, so that counting takes at most a twentieth of one database
 * connection's time however often the schedule asks.
 */
export const sampleCostFactor = 20

/** A sample and the schedule to repeat it on (see `costSpaced`). */
export interface CostSpaced<A, E, R> {
  /** `sample`, timed: its duration sets the next delay. */
  readonly sample: Effect.Effect<A, E, R>
  /** `Schedule.spaced(base)`, lengthened after a slow sample to `sampleCostFactor` times its duration. */
  readonly schedule: Schedule.Schedule<unknown, unknown>
}

/** Time `sample`, and space its repetitions by `base` or by `sampleCostFactor` times its last duration. */
export const costSpaced = <A, E, R>(
  sample: Effect.Effect<A, E, R>,
  base: Duration.DurationInput
): CostSpaced<A, E, R> => {
  let lastCost = Duration.zero
  return {
    sample: Effect.map(Effect.timed(sample), ([took, a]) => {
      lastCost = took
      return a
    }),
    schedule: Schedule.spaced(base).pipe(
      Schedule.modifyDelay((_, delay) => Duration.max(delay, Duration.times(lastCost, sampleCostFactor)))
    )
  }
}
