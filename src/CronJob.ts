/**
 * Cron-scheduled jobs: "enqueue kind K with payload P on cron C in zone Z".
 *
 * Every runner that declares a cron job enqueues it at each slot, and the
 * store records each `(name, slot)` once, so exactly one job is enqueued per
 * slot however many runners declare it (a slot key, not a lock): no node
 * needs to lead for it. With `backfill`, a runner starting after downtime
 * enqueues the slots missed since the last one recorded, oldest first, at
 * most `maxBackfill` of them (the most recent ones).
 *
 * @since 0.1.0
 */
import type * as Cron from "effect/Cron"
import * as Either from "effect/Either"
import * as CronParse from "./internal/worker/cron.js"
import type * as Job from "./Job.js"
import type * as JobQueue from "./JobQueue.js"

/**
 * A cron job whose expression does not parse, or whose time zone is
 * unknown: the same error as `Worker.InvalidCron` (tag `"InvalidCron"`),
 * with `cronJob` set to the cron job's name.
 *
 * @since 0.1.0
 */
export const InvalidCron = CronParse.InvalidCron

/** @since 0.1.0 */
export type InvalidCron = CronParse.InvalidCron

/**
 * @deprecated Use `InvalidCron` (the same class; its tag is `"InvalidCron"`).
 * @since 0.1.0
 */
export const InvalidCronJob = CronParse.InvalidCron

/**
 * @deprecated Use `InvalidCron`.
 * @since 0.1.0
 */
export type InvalidCronJob = CronParse.InvalidCron

/**
 * A declared cron job.
 *
 * @since 0.1.0
 */
export interface CronJob {
  readonly _tag: "CronJob"
  readonly name: string
  readonly expression: string
  readonly tz: string
  readonly cron: Cron.Cron
  readonly kind: Job.Kind<string, any, any, never>
  readonly payload: unknown
  readonly options: Pick<JobQueue.EnqueueOptions, "queue" | "priority" | "maxAttempts">
  readonly backfill: boolean
  /** With `backfill`: at most this many missed slots are enqueued at start-up (the most recent). */
  readonly backfillLimit: number
}

/**
 * The most missed slots `backfill: true` enqueues at start-up; pass a number
 * as `backfill` for another limit.
 *
 * @since 0.1.0
 */
export const maxBackfill = 100

/** @since 0.1.0 */
export interface Options extends Pick<JobQueue.EnqueueOptions, "queue" | "priority" | "maxAttempts"> {
  /** IANA time zone of the expression. Default `"UTC"`. */
  readonly tz?: string | undefined
  /**
   * After downtime, enqueue the slots missed since the last recorded one at
   * start-up, oldest first: `true` for at most `maxBackfill` (100), a number
   * for at most that many (the most recent). Default false.
   */
  readonly backfill?: boolean | number | undefined
  /** Unique name of this schedule (the slot key). Default: the kind's name. */
  readonly name?: string | undefined
}

/**
 * Declare a cron job. The expression has 5 fields (or 6 with seconds); it is
 * parsed here, so a bad expression or zone is an `InvalidCron` now rather
 * than a failure at the first slot.
 *
 * @example
 * ```ts
 * const nightly = CronJob.make(Report, { scope: "all" }, "0 3 * * *", { tz: "Europe/Paris" })
 * ```
 *
 * @since 0.1.0
 */
export const make = <Name extends string, A, I>(
  kind: Job.Kind<Name, A, I, never>,
  payload: A,
  expression: string,
  options: Options = {}
): Either.Either<CronJob, InvalidCron> => {
  const tz = options.tz ?? "UTC"
  const name = options.name ?? kind.name
  const parsed = CronParse.parse(expression, tz, { cronJob: name })
  if (Either.isLeft(parsed)) return Either.left(parsed.left)
  const { tz: _tz, backfill, name: _name, ...enqueue } = options
  return Either.right({
    _tag: "CronJob",
    name,
    expression,
    tz,
    cron: parsed.right,
    kind,
    payload,
    options: enqueue,
    backfill: backfill === true || (typeof backfill === "number" && backfill > 0),
    backfillLimit:
      backfill === true ? maxBackfill : typeof backfill === "number" ? Math.max(0, Math.floor(backfill)) : 0
  })
}
