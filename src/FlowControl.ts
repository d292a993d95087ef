/**
 * Flow control: how many jobs of a kind or a queue may run at once across
 * every node, how many per partition key (a tenant, an account), and how
 * many may start per window.
 *
 * Limits are declared in code, on a kind (`Job.make(…, { concurrency,
 * rateLimit })`) or on a queue (the runner's `queueLimits`). A runner writes
 * the limits of the kinds and queues it serves to the store when it starts,
 * and every claim, on every node, reads them there: the store enforces them
 * atomically, so no interleaving of claims exceeds a limit, and the last
 * deploy's limits apply cluster-wide without touching existing jobs.
 *
 * A job held back by a limit stays `available`, is not counted as an
 * attempt, and says why in `JobQueue.get`/`list` (`waiting`).
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { isStorableText } from "./internal/input.js"

/**
 * Concurrency limits: at most `global` jobs running at once across every
 * node, and at most `perPartition` running per partition key. Jobs without a
 * partition key count toward `global` only.
 *
 * @since 0.2.0
 */
export interface Concurrency {
  readonly global?: number | undefined
  readonly perPartition?: number | undefined
}

/**
 * A rate limit: at most `limit` starts in any window of length `per`
 * (a sliding window, exact: never more than `limit` starts between any two
 * instants `per` apart), counted over the whole kind or queue (`by: "all"`,
 * the default) or per partition key (`by: "partition"`). A start is a claim:
 * a retry starts again and counts again.
 *
 * Starts are also paced: at most `burst` (default: a tenth of `limit`,
 * rounded up) in any `per × burst / limit`, the share of the window that
 * keeps the same rate. `limit: 100, per: "1 second"` starts at most 10 in
 * any 100 ms; `limit: 5, per: "1 second"` at most 1 in any 200 ms. A
 * backlog then starts spread over the window instead of a whole window's
 * worth at once, and the handlers' own starts (a few milliseconds after
 * their claims) stay within about the limit too.
 *
 * @since 0.2.0
 */
export interface RateLimit {
  readonly limit: number
  readonly per: Duration.DurationInput
  readonly by?: "all" | "partition" | undefined
  /**
   * The most starts at once: at most `burst` in any `per × burst / limit`.
   * Default: a tenth of `limit`, rounded up. `burst: limit` is the plain
   * sliding window (a whole window's starts may go at once), for a budget
   * such as 3 imports an hour that may run together.
   *
   * @since 0.4.0
   */
  readonly burst?: number | undefined
}

/**
 * The limits of a kind or a queue.
 *
 * @since 0.2.0
 */
export interface Limits {
  readonly concurrency?: Concurrency | undefined
  readonly rateLimit?: RateLimit | undefined
}

/**
 * Why a job that is not running yet has not started, as `JobQueue.get` and
 * `list`, the admin API and the dashboard report it:
 *
 * - `scheduled`: its run-at is in the future.
 * - `queue paused`: its queue is paused.
 * - `partition at limit`: its partition key has `perPartition` jobs running.
 * - `global limit`: its kind or queue has `global` jobs running.
 * - `rate limited`: its kind or queue (or partition) used its starts for the window, or for its pace.
 *
 * A due job with no reason (`null`) is only waiting its turn.
 *
 * @since 0.2.0
 */
export const Waiting = Schema.Literal(
  "scheduled",
  "queue paused",
  "partition at limit",
  "global limit",
  "rate limited"
)

/** @since 0.2.0 */
export type Waiting = typeof Waiting.Type

/** The largest limit (`global`, `perPartition`, a rate's `limit`). @since 0.2.0 */
export const maxLimit = 1_000_000

/** The longest rate window: 31 days. @since 0.2.0 */
export const maxWindowMs = 31 * 86_400_000

/** The longest partition key, in characters. @since 0.2.0 */
export const maxPartitionLength = 1000

/**
 * Limits no job can have (0, negative, fractional or NaN, a window that is
 * not a positive duration), or `queueLimits` naming an invalid queue; thrown
 * by `Job.make` and failed by the runner at start (a mistake in code).
 *
 * @since 0.2.0
 */
export class InvalidLimits extends Schema.TaggedError<InvalidLimits>()("InvalidLimits", {
  /** `kind <name>` or `queue <name>`. */
  scope: Schema.String,
  message: Schema.String
}) {}

/**
 * What is wrong with a set of limits, if anything.
 *
 * @since 0.2.0
 */
export const limitsProblem = (limits: Limits): string | undefined => {
  if (typeof limits !== "object" || limits === null) return "limits must be an object"
  const count = (name: string, n: unknown) =>
    n === undefined || (typeof n === "number" && Number.isSafeInteger(n) && n >= 1 && n <= maxLimit)
      ? undefined
      : `${name} must be an integer from 1 to ${maxLimit}, got ${String(n)}`
  const c = limits.concurrency
  if (c !== undefined) {
    if (typeof c !== "object" || c === null) return "concurrency must be an object"
    const bad = count("concurrency.global", c.global) ?? count("concurrency.perPartition", c.perPartition)
    if (bad !== undefined) return bad
    if (c.global === undefined && c.perPartition === undefined)
      return "concurrency must set global, perPartition or both"
  }
  const r = limits.rateLimit
  if (r !== undefined) {
    if (typeof r !== "object" || r === null) return "rateLimit must be an object"
    if (r.limit === undefined) return "rateLimit.limit is required"
    const bad = count("rateLimit.limit", r.limit)
    if (bad !== undefined) return bad
    const ms = windowMs(r.per)
    if (ms === undefined || !(ms > 0 && ms <= maxWindowMs))
      return `rateLimit.per must be a duration from 1 millisecond to 31 days, got ${JSON.stringify(String(r.per))}`
    if (r.by !== undefined && r.by !== "all" && r.by !== "partition")
      return `rateLimit.by must be "all" or "partition", got ${JSON.stringify(String(r.by))}`
    if (count("rateLimit.burst", r.burst) !== undefined || (r.burst !== undefined && r.burst > r.limit))
      return `rateLimit.burst must be an integer from 1 to rateLimit.limit (${r.limit}), got ${String(r.burst)}`
  }
  return undefined
}

/** A rate window in whole milliseconds, or undefined when it is not a duration. */
const windowMs = (per: Duration.DurationInput): number | undefined => {
  try {
    const ms = Duration.toMillis(Duration.decode(per))
    return Number.isFinite(ms) ? Math.ceil(ms) : undefined
  } catch {
    return undefined
  }
}

/**
 * What is wrong with a partition key, if anything: it must be text of 1 to
 * 1,000 characters that JSON and every database carry unchanged (no NUL, no
 * lone surrogate).
 *
 * @since 0.2.0
 */
export const partitionProblem = (partition: unknown): string | undefined => {
  if (typeof partition !== "string") return `partition must be a string, got ${typeof partition}`
  if (partition.length === 0 || partition.length > maxPartitionLength)
    return `partition must be 1 to ${maxPartitionLength} characters, got ${partition.length}`
  if (!isStorableText(partition)) return "partition must be well-formed text without NUL characters"
  return undefined
}

/**
 * The limits of one kind or queue as the store keeps them: one row per
 * scope, counts as integers and the window in milliseconds. `null` means no
 * such limit.
 *
 * @since 0.2.0
 */
export const Rule = Schema.Struct({
  scope: Schema.Literal("kind", "queue"),
  name: Schema.String,
  global: Schema.NullOr(Schema.Int),
  perPartition: Schema.NullOr(Schema.Int),
  rateLimit: Schema.NullOr(Schema.Int),
  rateWindowMs: Schema.NullOr(Schema.Int),
  rateByPartition: Schema.Boolean,
  /** `rateLimit.burst` as declared; `null`: the default, a tenth of the limit. @since 0.4.0 */
  rateBurst: Schema.NullOr(Schema.Int)
})

/** @since 0.2.0 */
export type Rule = typeof Rule.Type

/**
 * The store's rule for a kind's or a queue's limits (checked with
 * `limitsProblem` first); no limits gives a rule with every limit `null`,
 * which clears what an earlier deploy declared.
 *
 * @since 0.2.0
 */
export const toRule = (scope: "kind" | "queue", name: string, limits: Limits | undefined): Rule => ({
  scope,
  name,
  global: limits?.concurrency?.global ?? null,
  perPartition: limits?.concurrency?.perPartition ?? null,
  rateLimit: limits?.rateLimit?.limit ?? null,
  rateWindowMs: limits?.rateLimit === undefined ? null : (windowMs(limits.rateLimit.per) ?? null),
  rateByPartition: limits?.rateLimit?.by === "partition",
  rateBurst: limits?.rateLimit?.burst ?? null
})

/** Whether a rule limits anything. @since 0.2.0 */
export const isEmpty = (rule: Rule): boolean =>
  rule.global === null && rule.perPartition === null && rule.rateLimit === null
