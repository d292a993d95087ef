import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"

/**
 * The delay (ms) a schedule gives before retry number `retry` (1 for the
 * retry after the first attempt), or `None` when the schedule has ended by
 * then. Steps the schedule on a virtual timeline starting at 0, so only the
 * schedule's own randomness (jitter) varies.
 */
export const delayFor = (
  schedule: Schedule.Schedule<unknown, unknown>,
  retry: number
): Effect.Effect<Option.Option<number>> =>
  Effect.gen(function* () {
    let state = schedule.initial
    let now = 0
    let delay = 0
    for (let i = 0; i < retry; i++) {
      const [next, , decision] = yield* schedule.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) return Option.none()
      const at = Math.max(now, Intervals.start(decision.intervals))
      delay = at - now
      now = at
      state = next
    }
    return Option.some(Math.round(delay))
  })
