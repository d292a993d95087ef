import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Lock from "../../Lock.js"
import { nativeTracer } from "../tracing.js"
import type * as Batch from "./batch.js"
import type { Body, Mailbox, Run, RunContext, TickOutcome } from "./core.js"
import * as History from "./history.js"
import * as Metrics from "./metrics.js"
import * as Registry from "./registry.js"
import type * as Ticker from "./ticker.js"

/** How a periodic worker runs, resolved. */
export interface Spec<E, R> {
  /** Either a `Schedule` to step after each tick ... */
  readonly schedule: Schedule.Schedule<unknown, unknown> | undefined
  /** ... or a plain interval in ms (`spaced` semantics), computed without stepping a `Schedule`. */
  readonly interval: number | undefined
  readonly initialJitter: number
  readonly runOnStart: boolean
  /** Runs first in every run; its failure fails the run. */
  readonly startup: Effect.Effect<unknown, unknown, R> | undefined
  readonly shouldRun: Effect.Effect<boolean, never, R> | undefined
  readonly timeout: Duration.Duration | undefined
  readonly onError: ((cause: Cause.Cause<E>) => Effect.Effect<unknown, never, R>) | undefined
  readonly singleton: boolean
  readonly tick: Effect.Effect<unknown, E, R>
}

/**
 * The body of a periodic worker (`Body`, `_tag: "Timer"`): its resolved
 * spec, and `launch` on the prototype, so a worker value costs one object
 * and no closure.
 */
class PeriodicBody<E, R> implements Spec<E, R> {
  readonly _tag = "Timer"
  readonly schedule: Schedule.Schedule<unknown, unknown> | undefined
  readonly interval: number | undefined
  readonly initialJitter: number
  readonly runOnStart: boolean
  readonly startup: Effect.Effect<unknown, unknown, R> | undefined
  readonly shouldRun: Effect.Effect<boolean, never, R> | undefined
  readonly timeout: Duration.Duration | undefined
  readonly onError: ((cause: Cause.Cause<E>) => Effect.Effect<unknown, never, R>) | undefined
  readonly singleton: boolean
  readonly tick: Effect.Effect<unknown, E, R>
  constructor(spec: Spec<E, R>) {
    this.schedule = spec.schedule
    this.interval = spec.interval
    this.initialJitter = spec.initialJitter
    this.runOnStart = spec.runOnStart
    this.startup = spec.startup
    this.shouldRun = spec.shouldRun
    this.timeout = spec.timeout
    this.onError = spec.onError
    this.singleton = spec.singleton
    this.tick = spec.tick
  }
  /** Start a periodic run in `runtime` (which carries the worker's services and log annotations). */
  launch(ctx: RunContext, runtime: Runtime.Runtime<any>): Run {
    return new PeriodicRun<E, R>(ctx, this, runtime).start()
  }
}

class TickTimeout {
  readonly _tag = "TickTimeout"
}

const success: TickOutcome = { _tag: "success" }
const timedOut: TickOutcome = { _tag: "timeout" }
const interrupted: TickOutcome = { _tag: "interrupted" }
const gated: TickOutcome = { _tag: "skipped", reason: History.gatedReason }
const locked: TickOutcome = { _tag: "skipped", reason: History.lockedReason }
const stopped: TickOutcome = { _tag: "skipped", reason: "the worker stopped before the tick could run" }
const notRunning: TickOutcome = { _tag: "skipped", reason: "the worker is not running" }

/** Ask the periodic run behind `box` for one tick now; it runs after a tick in flight. */
export const force = (box: Mailbox): Effect.Effect<TickOutcome> =>
  Effect.async<TickOutcome>((resume) => {
    if (!box.active) return resume(Effect.succeed(notRunning))
    const reply = (outcome: TickOutcome) => resume(Effect.succeed(outcome))
    ;(box.forced ??= []).push(reply)
    box.waiter?.kick()
    return Effect.sync(() => {
      const i = box.forced?.indexOf(reply) ?? -1
      if (i >= 0) box.forced!.splice(i, 1)
    })
  })

/** The outcome of a tick that failed with `cause`, or (no cause) succeeded with `value`. */
const classify = (
  cause: Cause.Cause<unknown> | undefined,
  value: unknown,
  singleton: boolean
): TickOutcome => {
  if (cause === undefined) {
    if (value === gated) return gated
    return singleton && Option.isNone(value as Option.Option<unknown>) ? locked : success
  }
  if (Cause.isInterruptedOnly(cause)) return interrupted
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure) && failure.value instanceof TickTimeout) return timedOut
  return { _tag: "failure", error: Cause.pretty(cause) }
}

const tickLabels = Metrics.tickLabels
const noLabels: ReadonlyArray<never> = []

/** What the fiber in flight runs: a bare tick, a tick then a schedule step, or only a step. */
type Job = "tick" | "tick-step" | "step"

/**
 * One run of a periodic worker. It holds no fiber while idle: the shared
 * ticker calls `fire` when the next tick is due, and the tick joins the
 * pass's batch (`batch.ts`), which runs the due ticks one after another in a
 * shared fiber until one suspends. Ticks started any other way (forced, on
 * start, after an overrun) and the startup run in a short-lived fiber of
 * their own, started on the spot. The schedule is stepped when a tick ends,
 * so ticks never overlap; forced ticks queue behind a tick in flight.
 *
 * Ten thousand of these stay alive for as long as their workers run, so the
 * object keeps only what a tick needs: no closures of its own (the mailbox
 * wakes it through `kick`, the supervisor learns of its end through
 * `ctx.ended`), and its rarely used effects are built on first use.
 */
class PeriodicRun<E, R> implements Run, Ticker.Entry, Batch.Item, Batch.Later {
  bucket: Ticker.Bucket | undefined = undefined
  slot = 0
  /** The fiber refs of a tick (`Batch.Item`): the runtime's, with the runtime's context as the current context. */
  readonly refs: FiberRefs.FiberRefs
  private state: unknown
  /** The instant the first schedule step is taken from when it runs ahead of time (the end of the initial jitter). */
  private stepFrom: number | undefined = undefined
  private pendingDue = false
  private stopping = false
  private finished = false
  /** When the job in flight started, as a cell time (`Registry.stamp`). */
  private tickStart = 0
  /** A tick (or step) is running; set before its fiber starts, which may run synchronously and force a tick. */
  private busy = false
  private inFlight: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  private job: Job = "tick"
  /** The reply of the forced tick in flight, if it is one. */
  private reply: ((outcome: TickOutcome) => void) | undefined = undefined
  private result: Exit.Exit<void, unknown> | undefined = undefined
  /** Who else waits for the end (`observe`), besides the supervisor (`ctx.ended`); rarely anyone. */
  private observers: Array<(exit: Exit.Exit<void, unknown>) => void> | undefined = undefined
  /** Gate, lock and timeout around the user's tick; marks the start itself when gated or locked. */
  private readonly body: Effect.Effect<unknown, unknown, R>
  private next_: Effect.Effect<boolean> | undefined = undefined
  private stepped_: Effect.Effect<boolean, never, R> | undefined = undefined

  constructor(
    private readonly ctx: RunContext,
    private readonly spec: PeriodicBody<E, R>,
    readonly runtime: Runtime.Runtime<R>
  ) {
    this.refs =
      FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentContext) === runtime.context
        ? runtime.fiberRefs
        : FiberRefs.updateAs(runtime.fiberRefs, {
            fiberId: FiberId.unsafeMake(),
            fiberRef: FiberRef.currentContext,
            value: runtime.context as Context.Context<never>
          })
    this.state = spec.schedule?.initial
    this.body = this.makeBody()
  }

  private now(): number {
    return this.ctx.registry.ticker.now()
  }

  /** Whether the start is marked inside the body (after the gate and the lock) rather than before it. */
  private get marksStart(): boolean {
    return this.spec.shouldRun !== undefined || this.spec.singleton
  }

  /** Step the schedule (never used for plain intervals). */
  private get next(): Effect.Effect<boolean> {
    this.next_ ??= Effect.suspend(() => this.step())
    return this.next_
  }

  /** A scheduled tick of a `Schedule`-driven worker: the tick, then the step, in one fiber. */
  private get stepped(): Effect.Effect<boolean, never, R> {
    this.stepped_ ??= Effect.flatMap(Effect.exit(this.body), (exit) => {
      this.settleExit(exit)
      return this.next
    })
    return this.stepped_
  }

  /** Called by the ticker when the next tick is due: the tick joins the pass's batch. */
  fire(): void {
    this.due(true)
  }

  private fork(program: Effect.Effect<unknown, unknown, R>): Fiber.RuntimeFiber<unknown, unknown> {
    return Runtime.runFork(this.runtime, program)
  }

  private markStart(): void {
    const { cell, registry } = this.ctx
    cell.state = "running"
    cell.lastStartAt = this.tickStart
    cell.runs++
    registry.changed(cell)
  }

  private makeBody(): Effect.Effect<unknown, unknown, R> {
    const { spec, ctx, runtime } = this
    const { name } = ctx
    let body: Effect.Effect<unknown, unknown, R> = this.marksStart
      ? Effect.zipRight(
          Effect.sync(() => this.markStart()),
          spec.tick
        )
      : spec.tick
    if (spec.timeout !== undefined) {
      const duration = spec.timeout
      body = Effect.timeoutFail(body, { duration, onTimeout: () => new TickTimeout() })
    }
    if (spec.singleton) {
      const lock = Context.getOption(runtime.context as Context.Context<never>, Lock.Lock)
      body = Option.isSome(lock)
        ? lock.value.tryWith(`worker:${name}`, body)
        : Effect.dieMessage(
            `worker "${name}" is a singleton but no Lock service was provided (use Lock.layerMemory or PgLock.layer)`
          )
    }
    if (spec.shouldRun !== undefined) {
      const guarded = body
      body = Effect.flatMap(spec.shouldRun, (ok) => (ok ? guarded : Effect.succeed(gated)))
    }
    return Runtime.runSync(runtime)(Effect.tracer) !== nativeTracer
      ? Effect.withSpan(body, "nightshift.worker.tick", {
          root: true,
          captureStackTrace: false,
          attributes: { "nightshift.worker": name }
        })
      : body
  }

  /**
   * Classify and record a finished tick (that ended at the epoch millisecond
   * `end`); a failure is logged and handed to `onError` in a fiber of its own.
   */
  private settle(
    cause: Cause.Cause<unknown> | undefined,
    value: unknown,
    end: number,
    forced = false
  ): TickOutcome {
    const outcome = classify(cause, value, this.spec.singleton)
    const { cell, node, registry } = this.ctx
    const stamp = registry.stamp(end)
    record(cell, outcome, this.tickStart, stamp)
    registry.ticks.record(node.slot, outcome, this.tickStart, stamp, forced)
    if (outcome._tag === "failure" || outcome._tag === "timeout") this.report(outcome, cause!)
    return outcome
  }

  private settleExit(exit: Exit.Exit<unknown, unknown>): TickOutcome {
    return Exit.isSuccess(exit)
      ? this.settle(undefined, exit.value, this.now())
      : this.settle(exit.cause, undefined, this.now())
  }

  private report(outcome: TickOutcome, failure: Cause.Cause<unknown>): void {
    const { spec, ctx } = this
    const cause: Cause.Cause<E> =
      outcome._tag === "timeout"
        ? Cause.die(
            new Cause.TimeoutException(
              `tick of "${ctx.name}" timed out after ${Duration.format(spec.timeout ?? 0)}`
            )
          )
        : (failure as Cause.Cause<E>)
    const log = Effect.logWarning(`tick of "${ctx.name}" failed`, cause)
    this.fork(
      spec.onError === undefined
        ? log
        : Effect.zipRight(log, Effect.catchAllCause(spec.onError(cause), Effect.logError))
    )
  }

  /** Step the schedule from now (or from `stepFrom`, once) and arm the ticker; `false` when the schedule is done. */
  private step(): Effect.Effect<boolean> {
    const { cell, registry } = this.ctx
    const now = this.stepFrom ?? this.now()
    this.stepFrom = undefined
    return Effect.map(this.spec.schedule!.step(now, undefined, this.state), ([state, , decision]) => {
      this.state = state
      if (ScheduleDecision.isDone(decision)) {
        cell.nextTickAt = Registry.never
        registry.changed(cell)
        return false
      }
      this.arm(Math.max(now, Intervals.start(decision.intervals)))
      return true
    })
  }

  start(): this {
    const { mailbox: box } = this.ctx
    box.active = true
    box.waiter = this
    const startup = this.spec.startup
    if (startup === undefined) {
      this.begin()
      return this
    }
    // Forced ticks wait behind the startup as behind a tick in flight.
    this.busy = true
    const fiber = this.fork(startup)
    this.inFlight = fiber
    fiber.addObserver((exit) => this.onStarted(exit))
    return this
  }

  /** The startup ended: fail the run, stop, or start the schedule. */
  private onStarted(exit: Exit.Exit<unknown, unknown>): void {
    this.busy = false
    this.inFlight = undefined
    if (this.stopping) {
      this.end(Exit.interrupt(FiberId.none))
    } else if (Exit.isFailure(exit)) {
      this.fork(Effect.logWarning(`startup of "${this.ctx.name}" failed`, exit.cause))
      this.end(exit as Exit.Exit<void, unknown>)
    } else {
      this.begin()
      if (this.result === undefined && !this.busy) this.drainForced()
    }
  }

  /**
   * Start following the schedule. The initial jitter is a whole number of
   * milliseconds; the first tick's time is known (and shown) from the start:
   * the end of the jitter with `runOnStart`, else the schedule's first
   * decision taken from the end of the jitter.
   */
  private begin(): void {
    const { ctx, spec } = this
    const { cell, registry } = ctx
    cell.state = "idle"
    registry.changed(cell)
    const jitter =
      spec.initialJitter > 0 ? Math.floor(Runtime.runSync(this.runtime)(Random.next) * spec.initialJitter) : 0
    const from = this.now() + jitter
    if (spec.runOnStart) {
      if (jitter > 0) this.arm(from)
      else this.due()
    } else if (spec.interval !== undefined) {
      if (jitter === 0 && registry.starting !== undefined) {
        // One of many workers started together: armed with them once they have all started (`later`).
        registry.starting.push(this)
        cell.nextTickAt = registry.stamp(from + spec.interval)
      } else {
        this.arm(from + spec.interval)
      }
    } else {
      this.stepFrom = from
      this.exec("step", undefined)
    }
  }

  /** A scheduled tick is due; `batched` when the ticker fired it (it then runs at the end of the pass). */
  private due(batched = false): void {
    if (this.result !== undefined || this.stopping) return
    if (this.busy) {
      this.pendingDue = true
      return
    }
    this.exec(this.spec.interval === undefined ? "tick-step" : "tick", undefined, batched)
  }

  /** Arm the ticker for the next tick, at a whole epoch millisecond (never earlier than asked). */
  private arm(instant: number): void {
    const { cell, registry } = this.ctx
    const at = Math.ceil(instant)
    cell.nextTickAt = registry.stamp(at)
    registry.changed(cell)
    registry.ticker.arm(this, at)
  }

  /** A forced tick was asked for (the mailbox's waiter). */
  kick(): void {
    if (!this.busy && this.result === undefined && !this.stopping) this.drainForced()
  }

  private drainForced(): void {
    const reply = this.ctx.mailbox.forced?.shift()
    if (reply !== undefined) this.exec("tick", reply)
  }

  /** Run `job` now in a fiber of its own, or (`batched`) queue it in the ticker pass's batch. */
  private exec(job: Job, reply: ((outcome: TickOutcome) => void) | undefined, batched = false): void {
    this.job = job
    this.reply = reply
    this.busy = true
    if (batched) {
      this.ctx.registry.batch.push(this)
      return
    }
    const fiber = this.fork(this.startJob())
    this.inFlight = fiber
    fiber.addObserver((exit) =>
      Exit.isSuccess(exit) ? this.onEnd(undefined, exit.value) : this.onEnd(exit.cause, undefined)
    )
  }

  /** Stamp the start of the job and return its program. */
  private startJob(): Effect.Effect<unknown, unknown, R> {
    const job = this.job
    this.tickStart = this.ctx.registry.stamp(this.now())
    if (job !== "step" && !this.marksStart) this.markStart()
    return job === "tick" ? this.body : job === "tick-step" ? this.stepped : this.next
  }

  /** The batch takes the queued tick (`Batch.Item`); nothing to run once the worker has stopped. */
  claim(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<unknown, unknown> | undefined {
    if (this.result !== undefined) return undefined
    this.inFlight = fiber
    // The batch fiber runs it with this run's fiber refs, which hold the services `R`.
    return this.startJob() as Effect.Effect<unknown, unknown>
  }

  /** The batched tick ended (`Batch.Item`). */
  done(cause: Cause.Cause<unknown> | undefined, value: unknown): void {
    this.onEnd(cause, value)
  }

  /** The job in flight ended: failed with `cause`, or (no cause) succeeded with `value`. */
  private onEnd(cause: Cause.Cause<unknown> | undefined, value: unknown): void {
    this.busy = false
    this.inFlight = undefined
    const { job, reply } = this
    this.reply = undefined
    if (job === "tick") {
      const end = this.now()
      const outcome = this.settle(cause, value, end, reply !== undefined)
      if (reply !== undefined) {
        reply(outcome)
        this.ctx.registry.changed(this.ctx.cell)
      } else if (!this.stopping && !this.ctx.registry.batch.afterRun(this)) {
        this.arm(end + this.spec.interval!)
      }
    } else if (cause !== undefined && !this.stopping) {
      this.end(Exit.failCause(cause))
    } else if (cause === undefined && value === false) {
      this.end(Exit.void)
    }
    if (this.result !== undefined) return
    if (this.stopping) this.end(Exit.interrupt(FiberId.none))
    else if ((this.ctx.mailbox.forced?.length ?? 0) > 0) this.drainForced()
    else if (this.pendingDue) {
      this.pendingDue = false
      this.due()
    }
  }

  /**
   * Arm the next tick of a plain interval from `now` (`Batch.Later`): the end
   * of the batch run its tick ended in, or the end of the start request it
   * was started in.
   */
  later(now: number): void {
    if (this.result === undefined && !this.stopping) this.arm(now + this.spec.interval!)
  }

  interrupt(): void {
    if (this.result !== undefined || this.stopping) return
    this.stopping = true
    this.ctx.registry.ticker.disarm(this)
    if (this.inFlight !== undefined) this.inFlight.unsafeInterruptAsFork(FiberId.none)
    else this.end(Exit.interrupt(FiberId.none))
  }

  private end(exit: Exit.Exit<void, unknown>): void {
    if (this.result !== undefined) return
    this.result = exit
    const { ctx } = this
    const { mailbox: box, cell, registry } = ctx
    registry.ticker.disarm(this)
    box.active = false
    box.waiter = undefined
    const forced = box.forced
    box.forced = undefined
    if (forced !== undefined) for (const reply of forced) reply(stopped)
    cell.nextTickAt = Registry.never
    this.fork(ctx.children.close).addObserver(() => {
      this.finished = true
      const observers = this.observers
      this.observers = undefined
      ctx.ended(exit)
      if (observers !== undefined) for (const observer of observers) observer(exit)
    })
  }

  observe(observer: (exit: Exit.Exit<void, unknown>) => void): void {
    if (this.finished) observer(this.result!)
    else (this.observers ??= []).push(observer)
  }
}

/** Record a finished tick in the status cell and metrics (no publish); `start` and `end` are cell times. */
const record = (cell: RunContext["cell"], outcome: TickOutcome, start: number, end: number) => {
  cell.state = "idle"
  Metrics.ticks.unsafeUpdate(1, tickLabels[outcome._tag])
  if (outcome._tag === "skipped") {
    cell.skips++
    return
  }
  cell.lastFinishAt = end
  Metrics.tickDuration.unsafeUpdate((end - start) / 1000, noLabels)
  switch (outcome._tag) {
    case "success":
      cell.successes++
      cell.lastSuccessAt = end
      cell.consecutiveFailures = 0
      return
    case "timeout":
    case "failure":
      cell.failures++
      cell.lastFailureAt = end
      cell.consecutiveFailures++
      cell.lastError = outcome._tag === "failure" ? outcome.error : "the tick timed out"
  }
}

/** The body of a periodic worker following `spec`. */
export const body = <E, R>(spec: Spec<E, R>): Body<E, R> => new PeriodicBody(spec)
