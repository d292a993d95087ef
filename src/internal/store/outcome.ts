/**
 * What every engine stores of an outcome: text a database can hold and a
 * delay in range, whatever the handler produced.
 *
 * @internal
 */
import * as JobStore from "../../JobStore.js"
import { replaceUnstorable } from "../input.js"

/**
 * Text any engine can store: NUL characters (PostgreSQL refuses them in text
 * and jsonb) and lone surrogates become U+FFFD, and it is cut to `max`
 * characters with a note of how much was left out.
 */
export const storableText = (text: string, max: number = JobStore.maxErrorMessageLength): string => {
  const clean = replaceUnstorable(text)
  if (clean.length <= max) return clean
  // Never cut a surrogate pair in two.
  const end = /[\uD800-\uDBFF]/.test(clean.charAt(max - 1)) ? max - 1 : max
  return `${clean.slice(0, end)}… (${clean.length - end} more characters cut)`
}

/** A delay clamped to 0..`JobStore.maxDelayMs` (NaN is 0). */
export const storableDelay = (delayMs: number): number =>
  Number.isNaN(delayMs) ? 0 : Math.min(JobStore.maxDelayMs, Math.max(0, delayMs))

const storableError = (error: JobStore.AttemptErrorInput): JobStore.AttemptErrorInput => ({
  kind: storableText(error.kind, 200),
  message: storableText(error.message)
})

/** The outcome as a store keeps it. */
export const storableOutcome = (outcome: JobStore.Outcome): JobStore.Outcome => {
  switch (outcome._tag) {
    case "retry":
      return { _tag: "retry", delayMs: storableDelay(outcome.delayMs), error: storableError(outcome.error) }
    case "snooze":
      return { _tag: "snooze", delayMs: storableDelay(outcome.delayMs) }
    case "discard":
      return { _tag: "discard", error: storableError(outcome.error) }
    case "cancelled":
      return outcome.error === undefined
        ? outcome
        : { _tag: "cancelled", error: storableError(outcome.error) }
    case "completed":
    case "release":
      return outcome
  }
}

/** Settlements as a store keeps them. */
export const storableSettlements = (
  settlements: ReadonlyArray<JobStore.Settlement>
): Array<JobStore.Settlement> =>
  settlements.map((s) => ({ id: s.id, fence: s.fence, outcome: storableOutcome(s.outcome) }))
