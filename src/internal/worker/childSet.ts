import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as WorkerStatus from "../../WorkerStatus.js"
import type * as Batch from "./batch.js"
import { ChildrenHandle } from "./children.js"
import {
  Children,
  CrewFailed,
  CurrentRun,
  type DuplicateWorker,
  duplicateWorker,
  type Mailbox,
  type Run,
  type RunContext,
  type Worker,
  type WorkerNotFound,
  workerNotFound
} from "./core.js"
import * as Metrics from "./metrics.js"
import * as Registry from "./registry.js"
import type * as Ticker from "./ticker.js"

/**
 * The workers one owner (a crew, a worker using `Children`, or the top level)
 * supervises. All decisions run in one actor fiber, one message at a time, so
 * start, exit, restart, replace and shutdown never race.
 */
export interface ChildSet extends Registry.Owner {
  readonly add: (
    worker: Worker<any, any>,
    context: Context.Context<any>,
    replace: boolean
  ) => Effect.Effect<void, DuplicateWorker>
  /** Start several workers in order, in one request; stops at the first duplicate name. */
  readonly addAll: (
    workers: ReadonlyArray<Worker<any, any>>,
    context: Context.Context<any>
  ) => Effect.Effect<void, DuplicateWorker>
  readonly remove: (name: string) => Effect.Effect<void, WorkerNotFound>
  readonly list: Effect.Effect<ReadonlyArray<WorkerStatus.WorkerStatus>>
  /** Stop every child in reverse start order; idempotent. */
  readonly close: Effect.Effect<void>
}

/** Options of a child set. */
export interface Options {
  /** Full name of the owner; children are named `${prefix}/${name}` (or just `name` when empty). */
  readonly prefix: string
  readonly registry: Registry.Registry
  /** Called once when a child gives up with `onMaxRestarts: "escalate"`. */
  readonly escalate: (error: CrewFailed) => void
  /**
   * Drop the status rows of dynamic children (and their subtrees) when the
   * set closes: the set of one run, whose dynamic children end with it. The
   * rows of static children (a crew's) stay: the next run starts the same
   * workers again.
   */
  readonly forgetOnClose: boolean
}

interface Child {
  readonly name: string
  readonly fullName: string
  readonly worker: Worker<any, any>
  readonly context: Context.Context<any>
  /** Added by `add` / `replace` rather than as a crew's static child. */
  readonly dynamic: boolean
  readonly node: Registry.Node
  run: Run | undefined
  ctx: RunContext | undefined
  generation: number
  launches: number
  /** When the run started, as a cell time (`Registry.stamp`). */
  startedAt: number
  restartTimes: Array<number> | undefined
  backoffState: unknown
  backoffEntry: Ticker.Entry | undefined
  restartCounter: Metric.Metric.Counter<number> | undefined
  escalation: CrewFailed | undefined
}

type Reply<E = never> = Deferred.Deferred<void, E>

type Message =
  | {
      readonly _tag: "Exit"
      readonly child: Child
      readonly generation: number
      readonly exit: Exit.Exit<void, unknown>
    }
  | { readonly _tag: "Due"; readonly child: Child; readonly generation: number }
  | {
      readonly _tag: "Add"
      readonly workers: ReadonlyArray<Worker<any, any>>
      readonly context: Context.Context<any>
      readonly replace: boolean
      readonly dynamic: boolean
      readonly reply: Reply<DuplicateWorker>
    }
  | { readonly _tag: "Remove"; readonly name: string; readonly reply: Reply<WorkerNotFound> }
  | { readonly _tag: "Restart"; readonly name: string; readonly reply: Reply<WorkerNotFound> }
  | { readonly _tag: "Close"; readonly reply: Reply }

const isRunCounted = (kind: WorkerStatus.Kind) => kind === "long-running" || kind === "crew"

const fiberRun = (fiber: Fiber.RuntimeFiber<void, unknown>): Run => ({
  interrupt: () => fiber.unsafeInterruptAsFork(FiberId.none),
  observe: (observer) => fiber.addObserver(observer)
})

/**
 * The runtime a timer-driven run forks its ticks in: the child's services plus
 * `Children` and `CurrentRun`, and the log annotation `worker`. Its fiber
 * refs are those of a fiber forked from `base` (`forked`, made once per
 * `base`) with that context as its current context, so a tick can also run
 * in a fiber that takes them wholesale (the periodic batch, `batch.ts`).
 *
 * Ten thousand workers keep one each, so they are built small: the refs map
 * shares every entry with `forked` but the two that differ, and those two
 * hold one value each (a fork would stack them on `forked`'s history, which
 * only a join back into the forking fiber reads, and nothing joins this one).
 */
const runtimeFor = (
  base: Runtime.Runtime<never>,
  forked: FiberRefs.FiberRefs,
  child: Child,
  children: ChildrenHandle,
  run: CurrentRun["Type"]
): Runtime.Runtime<any> => {
  const annotations = FiberRefs.getOrDefault(forked, FiberRef.currentLogAnnotations)
  const context = Context.add(Context.add(child.context, Children, children), CurrentRun, run)
  const locals = new Map(forked.locals)
  locals.set(FiberRef.currentLogAnnotations, [
    [annotator, HashMap.set(annotations, "worker", child.fullName)]
  ])
  locals.set(FiberRef.currentContext, [[annotator, context]])
  return Runtime.make({ context, runtimeFlags: base.runtimeFlags, fiberRefs: FiberRefs.unsafeMake(locals) })
}

const annotator = FiberId.unsafeMake()

/** What a run's context reaches of its child set. */
interface Owner {
  readonly registry: Registry.Registry
  /** The run of `child` started as `generation` ended. */
  readonly exited: (child: Child, generation: number, exit: Exit.Exit<void, unknown>) => void
}

/**
 * The context of one run: a class (its methods on the prototype), since ten
 * thousand periodic workers keep one each for as long as they run.
 */
class ChildRun implements RunContext {
  failureRecorded = false
  isReady = false
  constructor(
    private readonly owner: Owner,
    private readonly child: Child,
    private readonly generation: number,
    readonly children: ChildrenHandle
  ) {}
  get name(): string {
    return this.child.fullName
  }
  get cell(): Registry.Cell {
    return this.child.node.cell
  }
  get node(): Registry.Node {
    return this.child.node
  }
  get registry(): Registry.Registry {
    return this.owner.registry
  }
  get mailbox(): Mailbox {
    return this.child.node.mailbox
  }
  ready(): void {
    this.isReady = true
  }
  ended(exit: Exit.Exit<void, unknown>): void {
    this.owner.exited(this.child, this.generation, exit)
  }
}

/** Wait until a crew's run has started its static children (or has ended). */
const started = (ctx: RunContext, run: Run) =>
  Effect.async<void>((resume) => {
    let done = false
    const once = () => {
      if (done) return
      done = true
      resume(Effect.void)
    }
    if (ctx.isReady) return once()
    ctx.ready = once
    run.observe(once)
  })

/** The effect that waits for a run to end. */
const ended = (run: Run) => Effect.async<void>((resume) => run.observe(() => resume(Effect.void)))

/** Start a child set; its actor fiber is a daemon that ends with `close`. */
export const make = (options: Options): Effect.Effect<ChildSet> =>
  Effect.gen(function* () {
    const { prefix, registry } = options
    const ticker = registry.ticker
    const queue = yield* Queue.unbounded<Message>()
    const closeReply = yield* Deferred.make<void>()
    const children = new Map<string, Child>()
    let closeRequested = false
    let closed = false
    let escalated = false

    /**
     * The interval workers of the start request being handled, armed when it
     * has started them all (from one clock reading, so they share the
     * ticker's wake-ups; each first tick comes at least an interval after
     * its worker started).
     */
    let starting: Array<Batch.Later> | undefined
    const armStarted = () => {
      const started = starting
      starting = undefined
      if (started === undefined || started.length === 0) return
      const now = ticker.now()
      for (const run of started) run.later(now)
    }

    const fullName = (name: string) => (prefix === "" ? name : `${prefix}/${name}`)
    const offer = (message: Message) => queue.unsafeOffer(message)
    const owner: Owner = {
      registry,
      exited: (child, generation, exit) => offer({ _tag: "Exit", child, generation, exit })
    }
    const escalateFrom = (child: Child, error: CrewFailed) => {
      child.escalation = error
      child.run?.interrupt()
    }
    /** The actor's fiber refs forked once for timer-driven runs (`runtimeFor`), by the actor's refs they came from. */
    let forkedFrom: FiberRefs.FiberRefs | undefined
    let forked: FiberRefs.FiberRefs | undefined
    const notFound = (name: string) => Effect.failSync(() => workerNotFound(fullName(name)))

    const ask = <E>(message: (reply: Reply<E>) => Message, onClosed: Effect.Effect<void, E>) =>
      Effect.suspend(() => {
        if (closed) return onClosed
        return Effect.flatMap(Deferred.make<void, E>(), (reply) => {
          offer(message(reply))
          return Deferred.await(reply)
        })
      })

    const self: ChildSet = {
      add: (worker, context, replace) =>
        ask<DuplicateWorker>(
          (reply) => ({ _tag: "Add", workers: [worker], context, replace, dynamic: true, reply }),
          Effect.void
        ),
      addAll: (workers, context) =>
        ask<DuplicateWorker>(
          (reply) => ({ _tag: "Add", workers, context, replace: false, dynamic: false, reply }),
          Effect.void
        ),
      remove: (name) => ask<WorkerNotFound>((reply) => ({ _tag: "Remove", name, reply }), notFound(name)),
      restart: (name) => ask<WorkerNotFound>((reply) => ({ _tag: "Restart", name, reply }), notFound(name)),
      list: Effect.sync(() => Array.from(children.values(), (c) => registry.copy(c.node.cell))),
      close: Effect.suspend(() => {
        if (!closeRequested) {
          closeRequested = true
          offer({ _tag: "Close", reply: closeReply })
        }
        return Deferred.await(closeReply)
      })
    }

    /** Start one run of a child: a fiber, or a timer-driven run for periodic workers. */
    const start = (child: Child, generation: number): Effect.Effect<Run> => {
      const handle = new ChildrenHandle(child.fullName, registry, make, escalateFrom, child)
      const ctx = new ChildRun(owner, child, generation, handle)
      child.ctx = ctx
      const run: CurrentRun["Type"] = { name: child.fullName, attempt: child.launches - 1 }
      const body = child.worker.body
      if (body._tag === "Timer") {
        // The run reports its own end (`ctx.ended`).
        return Effect.map(Effect.runtime<never>(), (base) => {
          if (forked === undefined || forkedFrom !== base.fiberRefs) {
            forkedFrom = base.fiberRefs
            forked = FiberRefs.forkAs(base.fiberRefs, annotator)
          }
          registry.starting = starting
          try {
            return body.launch(ctx, runtimeFor(base, forked, child, handle, run))
          } finally {
            registry.starting = undefined
          }
        })
      }
      const program = body.run(ctx).pipe(
        Effect.ensuring(handle.close),
        Effect.withSpan("nightshift.worker.run", {
          captureStackTrace: false,
          attributes: { "nightshift.worker": child.fullName, "nightshift.worker.kind": child.worker.kind }
        }),
        Effect.provideService(Children, handle),
        Effect.provideService(CurrentRun, run),
        Effect.annotateLogs("worker", child.fullName),
        Effect.provide(child.context)
      )
      return Effect.map(Effect.forkDaemon(program), (fiber) => {
        const run = fiberRun(fiber)
        run.observe((exit) => ctx.ended(exit))
        return run
      })
    }

    const launch = (child: Child): Effect.Effect<void> =>
      Effect.suspend(() => {
        const generation = ++child.generation
        const cell = child.node.cell
        const now = registry.stamp(ticker.now())
        if (child.launches++ > 0) {
          cell.restarts++
          child.restartCounter ??= Metric.tagged(Metrics.restarts, "worker", child.fullName)
          child.restartCounter.unsafeUpdate(1, [])
        }
        child.startedAt = now
        cell.state = "starting"
        cell.nextRestartAt = Registry.never
        if (isRunCounted(child.worker.kind)) {
          cell.runs++
          cell.lastStartAt = now
          cell.state = "running"
        }
        registry.changed(cell)
        registry.running(1)
        return Effect.flatMap(start(child, generation), (run) => {
          child.run = run
          return child.worker.kind === "crew" ? started(child.ctx!, run) : Effect.void
        })
      })

    /** Keep in the worker's restart history that it gave up (`why`) after its run ended with `error`. */
    const gaveUp = (child: Child, at: number, attempt: number, why: string, error: string | null) =>
      Registry.restarted(child.node, {
        at,
        reason: "gave up",
        attempt,
        error: error === null ? why : `${why}; last failure: ${error}`,
        backoff: null,
        restartAt: null
      })

    const giveUp = (child: Child, reason: string) => {
      const cell = child.node.cell
      cell.state = "failed"
      registry.changed(cell)
      if (child.worker.policy.onMaxRestarts === "stop" || escalated) return
      escalated = true
      options.escalate(
        new CrewFailed({
          crew: prefix,
          worker: child.fullName,
          reason,
          cause: cell.lastError ?? "(no error recorded)"
        })
      )
    }

    /** Record how a run ended (at cell time `now`); returns the failure cause, if it failed. */
    const recordExit = (child: Child, exit: Exit.Exit<void, unknown>, now: number) => {
      const { cell } = child.node
      const cause: Cause.Cause<unknown> | undefined =
        child.escalation !== undefined
          ? Cause.fail(child.escalation)
          : Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
            ? exit.cause
            : undefined
      child.escalation = undefined
      const counted = isRunCounted(child.worker.kind)
      const recorded = child.ctx?.failureRecorded === true
      if (cause !== undefined && !recorded) {
        cell.failures++
        cell.consecutiveFailures++
        cell.lastFailureAt = now
        cell.lastError = Cause.pretty(cause)
        if (counted) cell.lastFinishAt = now
      } else if (cause === undefined && counted) {
        cell.successes++
        cell.consecutiveFailures = 0
        cell.lastSuccessAt = cell.lastFinishAt = now
      }
      return cause
    }

    /** After a run ended on its own: stop, give up, or back off and restart. */
    const onExit = (child: Child, exit: Exit.Exit<void, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        child.run = undefined
        registry.running(-1)
        const { cell } = child.node
        const policy = child.worker.policy
        const now = ticker.now()
        const cause = recordExit(child, exit, registry.stamp(now))
        const failed = cause !== undefined
        if (!(policy.restart === "permanent" || (policy.restart === "transient" && failed))) {
          cell.state = failed ? "failed" : "stopped"
          registry.changed(cell)
          return Effect.void
        }
        const error = failed ? cell.lastError : null
        const attempt = child.launches - 1
        const windowMs = Duration.toMillis(policy.restartWindow)
        const recent = (child.restartTimes ?? []).filter((t) => t > now - windowMs)
        if (recent.length >= policy.maxRestarts) {
          const reason = `needed more than ${policy.maxRestarts} restarts within ${Duration.format(policy.restartWindow)}`
          gaveUp(child, registry.stamp(now), attempt, reason, error)
          giveUp(child, reason)
          return Effect.void
        }
        recent.push(now)
        child.restartTimes = recent
        if (registry.stamp(now) - child.startedAt >= windowMs) child.backoffState = policy.backoff.initial
        return Effect.map(policy.backoff.step(now, undefined, child.backoffState), ([state, , decision]) => {
          child.backoffState = state
          if (ScheduleDecision.isDone(decision)) {
            gaveUp(child, registry.stamp(now), attempt, "used up its backoff schedule", error)
            return giveUp(child, "used up its backoff schedule")
          }
          // A whole epoch millisecond (a jittered backoff is fractional), never earlier than the decision.
          const at = Math.ceil(Math.max(now, Intervals.start(decision.intervals)))
          Registry.restarted(child.node, {
            at: registry.stamp(now),
            reason: failed ? "failed" : "exited",
            attempt,
            error,
            backoff: at - Math.floor(now),
            restartAt: registry.stamp(at)
          })
          cell.state = "backing off"
          cell.nextRestartAt = registry.stamp(at)
          registry.changed(cell)
          child.backoffEntry ??= ticker.entry(() =>
            offer({ _tag: "Due", child, generation: child.generation })
          )
          ticker.arm(child.backoffEntry, at)
        })
      })

    /** Interrupt a child's run and wait for it, at most its shutdown timeout. */
    const stop = (child: Child): Effect.Effect<void> =>
      Effect.suspend(() => {
        child.generation++
        if (child.backoffEntry !== undefined) ticker.disarm(child.backoffEntry)
        const { cell } = child.node
        const { shutdownTimeout } = child.worker.policy
        cell.nextRestartAt = Registry.never
        const run = child.run
        child.run = undefined
        if (run === undefined) {
          if (cell.state !== "failed") cell.state = "stopped"
          registry.changed(cell)
          return Effect.void
        }
        run.interrupt()
        return Effect.flatMap(Effect.timeoutOption(ended(run), shutdownTimeout), (done) => {
          registry.running(-1)
          if (Option.isSome(done)) {
            if (cell.state !== "failed") cell.state = "stopped"
            registry.changed(cell)
            return Effect.void
          }
          const left = `did not stop within its shutdown timeout of ${Duration.format(shutdownTimeout)}; left running in the background`
          cell.state = "failed"
          cell.lastError = left
          registry.changed(cell)
          return Effect.logWarning(`worker "${child.fullName}" ${left}`)
        })
      })

    /** Add and launch a child; a dynamic child gets a fresh status row (a static one keeps its row across its parent's runs). */
    const addChild = (worker: Worker<any, any>, context: Context.Context<any>, dynamic: boolean) =>
      Effect.suspend(() => {
        const name = fullName(worker.name)
        if (dynamic) forgetRows(name)
        const node = Registry.node(
          registry,
          name,
          worker.kind,
          worker.policy.restart,
          worker.schedule ?? null
        )
        node.owner = self
        node.key = worker.name
        node.policy = worker.policy
        const child: Child = {
          name: worker.name,
          fullName: name,
          worker,
          context,
          dynamic,
          node,
          run: undefined,
          ctx: undefined,
          generation: 0,
          launches: 0,
          startedAt: 0,
          restartTimes: undefined,
          backoffState: worker.policy.backoff.initial,
          backoffEntry: undefined,
          restartCounter: undefined,
          escalation: undefined
        }
        children.set(worker.name, child)
        return launch(child)
      })

    /** Drop the status rows (and histories) of `name` and its subtree. */
    const forgetRows = (name: string) => Registry.forgetRows(registry, name)

    const forget = (child: Child) =>
      Effect.sync(() => {
        children.delete(child.name)
        forgetRows(child.fullName)
      })

    /** Answer a request that arrived after the set closed. */
    const refuse = (message: Message): Effect.Effect<unknown> => {
      switch (message._tag) {
        case "Add":
        case "Close":
          return Deferred.done(message.reply as Reply<unknown>, Exit.void)
        case "Remove":
        case "Restart":
          return Deferred.fail(message.reply, workerNotFound(fullName(message.name)))
        default:
          return Effect.void
      }
    }

    /** Add (or, with `replace`, swap in) one worker. */
    const place = (
      worker: Worker<any, any>,
      context: Context.Context<any>,
      replace: boolean,
      dynamic: boolean
    ) =>
      Effect.suspend((): Effect.Effect<void, DuplicateWorker> => {
        const existing = children.get(worker.name)
        if (existing === undefined) return addChild(worker, context, dynamic)
        if (!replace)
          return Effect.fail(
            duplicateWorker(fullName(worker.name), "use replace to swap it, or remove it first")
          )
        return stop(existing).pipe(
          Effect.zipRight(Effect.sync(() => children.delete(worker.name))),
          Effect.zipRight(addChild(worker, context, dynamic))
        )
      })

    const current = (child: Child, generation: number) =>
      generation === child.generation && children.get(child.name) === child

    const handle = (message: Message): Effect.Effect<void> => {
      switch (message._tag) {
        case "Exit":
          return current(message.child, message.generation)
            ? onExit(message.child, message.exit)
            : Effect.void
        case "Due":
          return current(message.child, message.generation) && message.child.run === undefined
            ? launch(message.child)
            : Effect.void
        case "Add":
          starting = []
          return Effect.forEach(
            message.workers,
            (worker) => place(worker, message.context, message.replace, message.dynamic),
            {
              discard: true
            }
          ).pipe(
            Effect.exit,
            Effect.tap(() => Effect.sync(armStarted)),
            Effect.flatMap((exit) => Deferred.done(message.reply, exit))
          )
        case "Remove": {
          const child = children.get(message.name)
          if (child === undefined) return Effect.asVoid(refuse(message))
          return stop(child).pipe(
            Effect.zipRight(forget(child)),
            Effect.zipRight(Deferred.done(message.reply, Exit.void))
          )
        }
        case "Restart": {
          const child = children.get(message.name)
          if (child === undefined) return Effect.asVoid(refuse(message))
          const asked = registry.stamp(ticker.now())
          const attempt = Math.max(0, child.launches - 1)
          return stop(child).pipe(
            Effect.zipRight(
              Effect.sync(() => {
                child.backoffState = child.worker.policy.backoff.initial
                Registry.restarted(child.node, {
                  at: asked,
                  reason: "requested",
                  attempt,
                  error: null,
                  backoff: null,
                  restartAt: null
                })
              })
            ),
            Effect.zipRight(launch(child)),
            Effect.zipRight(Deferred.done(message.reply, Exit.void))
          )
        }
        case "Close":
          return Effect.forEach(Array.from(children.values()).reverse(), stop, { discard: true }).pipe(
            Effect.zipRight(
              Effect.sync(() => {
                closed = true
                if (!options.forgetOnClose) return
                for (const child of children.values()) if (child.dynamic) forgetRows(child.fullName)
              })
            ),
            Effect.zipRight(Queue.takeAll(queue)),
            Effect.flatMap((rest) => Effect.forEach(rest, refuse, { discard: true })),
            Effect.zipRight(Queue.shutdown(queue)),
            Effect.zipRight(Deferred.done(message.reply, Exit.void))
          )
      }
    }

    const actor: Effect.Effect<void> = Effect.suspend(() =>
      closed ? Effect.void : Effect.zipRight(Effect.flatMap(Queue.take(queue), handle), actor)
    )
    yield* Effect.forkDaemon(actor)
    return self
  })
