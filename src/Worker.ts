/**
 * Workers: named Effect programs plus how they run.
 *
 * - `make`: a long-running program (a consumer loop, a listener);
 * - `periodic` / `cron`: a tick on a `Schedule`, with a startup hook,
 *   jitter, a gate, a timeout, an error hook and an optional singleton lock;
 * - `consumer` / `batchConsumer`: items from a `Queue` or `Stream`, one at a
 *   time with bounded concurrency, or in batches flushed on size or time.
 *
 * A worker is a description; run it under a `Crew` (`Crew.start`,
 * `Crew.layer`), which supervises it with the restart policy in its options.
 * Inside its program, `CurrentRun` gives its full name and restart attempt.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Chunk from "effect/Chunk"
import type * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import type * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Stream from "effect/Stream"
import * as Consumer from "./internal/worker/consumer.js"
import * as core from "./internal/worker/core.js"
import * as CronParse from "./internal/worker/cron.js"
import * as Metrics from "./internal/worker/metrics.js"
import * as Periodic from "./internal/worker/periodic.js"
import type * as Lock from "./Lock.js"

/**
 * A worker: a named program plus how it runs and is supervised. `E` is the
 * program's failure type, `R` the services it needs.
 *
 * @since 0.1.0
 */
export interface Worker<out E = unknown, out R = never> extends core.Worker<E, R> {}

/**
 * @since 0.1.0
 */
export declare namespace Worker {
  /** The failure type of a worker (or of a union of workers). */
  export type Error<W> = W extends Worker<infer E, any> ? E : never
  /** The services a worker (or a union of workers) needs. */
  export type Context<W> = W extends Worker<any, infer R> ? R : never
}

/**
 * Restart policy: `permanent` restarts after any exit, `transient` only after
 * a failure, `temporary` never.
 *
 * @since 0.1.0
 */
export type Restart = core.Restart

/**
 * Supervision options common to every worker constructor.
 *
 * - `restart` (default `"permanent"`);
 * - `backoff`: delay schedule between restarts (default exponential from
 *   100 ms, factor 2, jittered, capped at 30 s). It starts over after a run
 *   that lasted at least `restartWindow`. When it ends, the worker gives up
 *   as if `maxRestarts` were exceeded;
 * - `maxRestarts` / `restartWindow` (default 5 within 1 minute): needing more
 *   restarts than that marks the worker failed;
 * - `onMaxRestarts` (default `"escalate"`): `"escalate"` fails the parent crew
 *   (its own supervisor then decides), `"stop"` only stops this worker;
 * - `shutdownTimeout` (default 10 s): how long a stop may take before the
 *   worker is reported and left behind.
 *
 * @since 0.1.0
 */
export interface Options extends core.Options {}

/**
 * What a running worker's program knows about its own run: its full `name`
 * and its restart `attempt` (0 on the first run, 1 after the first restart,
 * …; counted from when the worker was added to its supervisor, including
 * restarts by `handle.restart`; a worker whose parent crew restarts is added
 * again and starts at 0).
 *
 * @since 0.1.0
 */
export type RunInfo = core.RunInfo

/**
 * The `CurrentRun` service, provided by the crew to every worker's program
 * (and to a periodic worker's ticks, hooks and `startup`); worker
 * constructors drop it from the worker's requirements.
 *
 * @example
 * ```ts
 * Worker.make("listener", Effect.gen(function* () {
 *   const { attempt } = yield* Worker.CurrentRun
 *   if (attempt > 0) yield* Effect.logInfo(`listening again after ${attempt} restarts`)
 *   yield* listenForever
 * }))
 * ```
 *
 * @since 0.1.0
 */
export const CurrentRun = core.CurrentRun

/** @since 0.1.0 */
export type CurrentRun = core.CurrentRun

/**
 * The restart attempt of the running worker: 0 on its first run, 1 after its
 * first restart, and so on.
 *
 * @since 0.1.0
 */
export const attempt: Effect.Effect<number, never, CurrentRun> = Effect.map(
  core.CurrentRun,
  (run) => run.attempt
)

/**
 * Options of a periodic worker. `R2` is what `shouldRun` and `onError` need,
 * `E` the tick's failure type; `ES` and `RS` are the failure type and the
 * services of `startup`.
 *
 * @since 0.1.0
 */
export interface PeriodicOptions<R2 = never, E = unknown, ES = never, RS = never> extends Options {
  /** When to tick: any `Schedule`, or a duration for `Schedule.spaced`. */
  readonly schedule: Schedule.Schedule<unknown, unknown> | Duration.DurationInput
  /**
   * Shown in the status table. Derived for durations, cron expressions and
   * the schedules of `spaced`, `fixed`, `exponential` and `described`; any
   * other `Schedule` shows "custom schedule" without it.
   */
  readonly description?: string | undefined
  /** Delay the first tick (and the schedule's start) by a random amount in `[0, initialJitter)`. */
  readonly initialJitter?: Duration.DurationInput | undefined
  /** Tick once at start (after the jitter) before following the schedule. */
  readonly runOnStart?: boolean | undefined
  /**
   * Runs at the start of every run of the worker (its first start and each
   * restart), before the initial jitter and the first tick; the schedule
   * starts when it succeeds. A failure or defect fails the run like a
   * long-running worker's: recorded in the status table, logged, and
   * restarted per the restart policy with backoff (startup runs again
   * first). Not gated by `shouldRun`, not under the singleton lock, not
   * bounded by `timeout`, not passed to `onError`. Children it adds live for
   * the run.
   */
  readonly startup?: Effect.Effect<unknown, ES, RS> | undefined
  /** Asked before every tick; `false` skips the tick (recorded as skipped, not failed). */
  readonly shouldRun?: Effect.Effect<boolean, never, R2> | undefined
  /** Interrupt a tick that runs longer; recorded as a `timeout` outcome. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Called with the cause of every failed or timed-out tick. */
  readonly onError?: ((cause: Cause.Cause<E>) => Effect.Effect<unknown, never, R2>) | undefined
  /**
   * Run each tick under `Lock.tryWith("worker:<full name>", tick)`, so that
   * one replica ticks at a time; a tick skipped because another replica holds
   * the lock is recorded as skipped. Requires the `Lock` service.
   */
  readonly singleton?: boolean | undefined
}

/**
 * Options of a cron worker: a periodic worker whose schedule is a cron
 * expression read in `tz` (an IANA zone; default `"UTC"`).
 *
 * @since 0.1.0
 */
export interface CronOptions<R2 = never, E = unknown, ES = never, RS = never>
  extends Omit<PeriodicOptions<R2, E, ES, RS>, "schedule"> {
  readonly tz?: string | DateTime.TimeZone | undefined
}

/**
 * The outcome of one tick: `success`, `failure` (with the pretty cause),
 * `skipped` (with the reason), `timeout`, or `interrupted` (the worker stopped
 * during the tick).
 *
 * @since 0.1.0
 */
export const TickOutcome = core.TickOutcome

/** @since 0.1.0 */
export type TickOutcome = core.TickOutcome

/**
 * A cron expression (or its time zone) could not be parsed: returned by
 * `Worker.cron` (with `worker` set) and `CronJob.make` (with `cronJob` set).
 *
 * @since 0.1.0
 */
export const InvalidCron = CronParse.InvalidCron

/** @since 0.1.0 */
export type InvalidCron = CronParse.InvalidCron

/**
 * A worker name that is empty or contains `/`. Thrown by the worker
 * constructors (a mistake in code, like two static workers of one name in
 * `Crew.make`, which throws `Crew.DuplicateWorker`).
 *
 * @since 0.1.0
 */
export const InvalidWorkerName = core.InvalidWorkerName

/** @since 0.1.0 */
export type InvalidWorkerName = core.InvalidWorkerName

/**
 * A long-running worker: `effect` runs until it ends or is interrupted. How
 * an exit is handled follows the `restart` policy.
 *
 * @since 0.1.0
 */
export const make = <E, R>(
  name: string,
  effect: Effect.Effect<unknown, E, R>,
  options?: Options
): Worker<E, Exclude<R, core.Provided>> =>
  core.make<E, any>({
    name,
    kind: "long-running",
    policy: core.policy(options),
    body: { _tag: "Fiber", run: () => effect as Effect.Effect<void, E, R> }
  })

/** Descriptions of the schedules made by `spaced`, `fixed`, `exponential` and `described`. */
const descriptions = new WeakMap<object, string>()

/** Descriptions of plain durations given as a string or a number of ms, made once each (workers often share one). */
const formatted = new Map<string | number, string>()

const describe = (schedule: PeriodicOptions<any, any, any, any>["schedule"]): string | undefined => {
  if (Schedule.isSchedule(schedule)) return descriptions.get(schedule)
  if (typeof schedule !== "string" && typeof schedule !== "number")
    return `every ${Duration.format(schedule)}`
  let text = formatted.get(schedule)
  if (text === undefined) {
    text = `every ${Duration.format(schedule)}`
    if (formatted.size < 1000) formatted.set(schedule, text)
  }
  return text
}

/**
 * A copy of `schedule` that the status table describes as `description`.
 * A `Schedule` value cannot be inspected, so a periodic worker given one
 * shows "custom schedule" unless it was made by `spaced`, `fixed`,
 * `exponential` or `described`, or the worker's `description` option says
 * otherwise (the option wins). Combinators (`Schedule.union`, `jittered`, …)
 * return new schedules without the description.
 *
 * @example
 * ```ts
 * Worker.periodic("report", { schedule: Worker.described(Schedule.cron(expr), `cron ${expr}`) }, report)
 * ```
 *
 * @since 0.1.0
 */
export const described: {
  (description: string): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, description: string): Schedule.Schedule<Out, In, R>
} = dual(
  2,
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, description: string): Schedule.Schedule<Out, In, R> => {
    const copy = Schedule.makeWithState(self.initial, self.step)
    descriptions.set(copy, description)
    return copy
  }
)

/**
 * `Schedule.spaced(interval)` (the next tick one interval after the last one
 * ended), described as `"every 5m"` in the status table. A plain duration as
 * the `schedule` option means the same and takes a faster path.
 *
 * @since 0.1.0
 */
export const spaced = (interval: Duration.DurationInput): Schedule.Schedule<number> =>
  described(Schedule.spaced(interval), `every ${Duration.format(interval)}`)

/**
 * `Schedule.fixed(interval)` (ticks on a fixed cadence from the start; an
 * overrun collapses the missed ticks into one), described as
 * `"every 5m (fixed)"`.
 *
 * @since 0.1.0
 */
export const fixed = (interval: Duration.DurationInput): Schedule.Schedule<number> =>
  described(Schedule.fixed(interval), `every ${Duration.format(interval)} (fixed)`)

/**
 * `Schedule.exponential(base, factor)` (delays of `base`, `base × factor`,
 * `base × factor²`, …), described as `"exponential from 1s, ×2"`.
 *
 * @since 0.1.0
 */
export const exponential = (base: Duration.DurationInput, factor = 2): Schedule.Schedule<Duration.Duration> =>
  described(Schedule.exponential(base, factor), `exponential from ${Duration.format(base)}, ×${factor}`)

const periodicWorker = <E, R, R2, ES, RS>(
  name: string,
  options: PeriodicOptions<R2, E, ES, RS>,
  tick: Effect.Effect<unknown, E, R>,
  description: string | undefined
): Worker<any, any> => {
  const schedule = Schedule.isSchedule(options.schedule)
    ? (options.schedule as Schedule.Schedule<unknown, unknown>)
    : undefined
  const interval =
    schedule === undefined ? Duration.toMillis(options.schedule as Duration.DurationInput) : undefined
  return core.make({
    name,
    kind: "periodic",
    policy: core.policy(options),
    schedule: options.description ?? description ?? "custom schedule",
    body: Periodic.body<E, R | R2 | RS>({
      schedule,
      interval,
      initialJitter: options.initialJitter === undefined ? 0 : Duration.toMillis(options.initialJitter),
      runOnStart: options.runOnStart ?? false,
      startup: options.startup,
      shouldRun: options.shouldRun,
      timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout),
      onError: options.onError,
      singleton: options.singleton ?? false,
      tick
    })
  })
}

/**
 * A periodic worker: `tick` runs on `options.schedule`. The schedule is
 * stepped when a tick ends, so a tick never overlaps itself; an overrun tick
 * makes the next one follow the schedule from the moment it ended (for
 * `Schedule.fixed`, the missed ticks collapse into one immediate tick). A
 * failed tick is recorded and logged, and the schedule continues.
 *
 * With `singleton: true` the worker requires the `Lock` service.
 *
 * @since 0.1.0
 */
export const periodic: {
  <E, R, R2 = never, ES = never, RS = never>(
    name: string,
    options: PeriodicOptions<R2, NoInfer<E>, ES, RS> & { readonly singleton?: false | undefined },
    tick: Effect.Effect<unknown, E, R>
  ): Worker<E | ES, Exclude<R | R2 | RS, core.Provided>>
  <E, R, R2 = never, ES = never, RS = never>(
    name: string,
    options: PeriodicOptions<R2, NoInfer<E>, ES, RS>,
    tick: Effect.Effect<unknown, E, R>
  ): Worker<E | ES, Exclude<R | R2 | RS, core.Provided> | Lock.Lock>
} = <E, R, R2, ES, RS>(
  name: string,
  options: PeriodicOptions<R2, E, ES, RS>,
  tick: Effect.Effect<unknown, E, R>
) => periodicWorker(name, options, tick, describe(options.schedule))

/**
 * A periodic worker on a cron expression (5 fields, or 6 with seconds
 * first) read in `options.tz` (default `"UTC"`; an IANA zone follows its
 * daylight-saving rules). An invalid expression or zone is returned as
 * `InvalidCron` here, never raised at the first tick.
 *
 * @since 0.1.0
 */
export const cron: {
  <E, R, R2 = never, ES = never, RS = never>(
    name: string,
    expression: string,
    options: CronOptions<R2, NoInfer<E>, ES, RS> & { readonly singleton?: false | undefined },
    tick: Effect.Effect<unknown, E, R>
  ): Either.Either<Worker<E | ES, Exclude<R | R2 | RS, core.Provided>>, InvalidCron>
  <E, R, R2 = never, ES = never, RS = never>(
    name: string,
    expression: string,
    options: CronOptions<R2, NoInfer<E>, ES, RS>,
    tick: Effect.Effect<unknown, E, R>
  ): Either.Either<Worker<E | ES, Exclude<R | R2 | RS, core.Provided> | Lock.Lock>, InvalidCron>
} = <E, R, R2, ES, RS>(
  name: string,
  expression: string,
  options: CronOptions<R2, E, ES, RS>,
  tick: Effect.Effect<unknown, E, R>
) => {
  const tz = options.tz ?? "UTC"
  return CronParse.parse(expression, tz, { worker: name }).pipe(
    Either.map((parsed) =>
      periodicWorker(
        name,
        { ...options, schedule: Schedule.cron(parsed) },
        tick,
        `cron ${expression} (${CronParse.zoneName(tz)})`
      )
    )
  )
}

/**
 * A consumer: takes items from a `Queue` or a `Stream` one at a time and
 * handles up to `concurrency` (default 1) at once. A handler failure fails
 * the run, so the restart policy applies (a `Stream` source is then
 * subscribed again; a `Queue` keeps its items). Catch errors in `handle` to
 * skip bad items instead.
 *
 * @since 0.1.0
 */
export const consumer = <A, E2, R2, E, R>(
  name: string,
  source: Queue.Dequeue<A> | Stream.Stream<A, E2, R2>,
  handle: (a: A) => Effect.Effect<unknown, E, R>,
  options?: Options & { readonly concurrency?: number | undefined }
): Worker<E | E2, Exclude<R | R2, core.Provided>> =>
  core.make<E | E2, any>({
    name,
    kind: "consumer",
    policy: core.policy(options),
    body: { _tag: "Fiber", run: Consumer.one(source, handle, Math.max(1, options?.concurrency ?? 1)) }
  })

/**
 * A batch consumer: collects items from a `Queue` or `Stream` and calls
 * `handle` with a batch when it holds `maxSize` items or `maxWait` has passed
 * since its first item, whichever comes first. Batches are handled one at a
 * time.
 *
 * @since 0.1.0
 */
export const batchConsumer = <A, E2, R2, E, R>(
  name: string,
  source: Queue.Dequeue<A> | Stream.Stream<A, E2, R2>,
  handle: (batch: Chunk.Chunk<A>) => Effect.Effect<unknown, E, R>,
  options: Options & { readonly maxSize: number; readonly maxWait: Duration.DurationInput }
): Worker<E | E2, Exclude<R | R2, core.Provided>> =>
  core.make<E | E2, any>({
    name,
    kind: "batch",
    policy: core.policy(options),
    body: {
      _tag: "Fiber",
      run: Consumer.batch(source, handle, Math.max(1, options.maxSize), Duration.toMillis(options.maxWait))
    }
  })

/**
 * The metrics workers record (Effect `Metric`s, exported by whatever metrics
 * layer the app installs):
 *
 * - `ticks`: counter `nightshift_worker_ticks_total`, tagged `outcome`
 *   (`success`, `failure`, `timeout`, `skipped`, `interrupted`);
 * - `tickDuration`: histogram `nightshift_worker_tick_duration_seconds`;
 * - `restarts`: counter `nightshift_worker_restarts_total`, tagged `worker`;
 * - `running`: gauge `nightshift_workers_running`.
 *
 * Per-worker tick counts are in the status table rather than in metric
 * labels, so 10,000 workers do not make 50,000 series.
 *
 * @since 0.1.0
 */
export const metrics = {
  ticks: Metrics.ticks,
  tickDuration: Metrics.tickDuration,
  restarts: Metrics.restarts,
  running: Metrics.running
} as const
