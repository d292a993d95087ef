import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import type * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Types from "effect/Types"
import type * as WorkerStatus from "../../WorkerStatus.js"
import type * as Registry from "./registry.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("nightshift/Worker")

/** @internal */
export type TypeId = typeof TypeId

/** Restart policy of a worker. */
export type Restart = "permanent" | "transient" | "temporary"

/** Supervision options, resolved with their defaults. */
export interface Policy {
  readonly restart: Restart
  readonly backoff: Schedule.Schedule<unknown, unknown>
  readonly maxRestarts: number
  readonly restartWindow: Duration.Duration
  readonly onMaxRestarts: "escalate" | "stop"
  readonly shutdownTimeout: Duration.Duration
}

/** The outcome of one tick. */
export const TickOutcome = Schema.Union(
  Schema.TaggedStruct("success", {}),
  Schema.TaggedStruct("failure", { error: Schema.String }),
  Schema.TaggedStruct("skipped", { reason: Schema.String }),
  Schema.TaggedStruct("timeout", {}),
  Schema.TaggedStruct("interrupted", {})
)

/** The outcome of one tick. */
export type TickOutcome = typeof TickOutcome.Type

/**
 * Per-node state that outlives a single run: forced-tick requests wait here
 * until the periodic loop picks them up.
 */
export interface Mailbox {
  active: boolean
  /** Made on the first request (most workers are never forced). */
  forced: Array<(outcome: TickOutcome) => void> | undefined
  /** The run to wake when a request arrives. */
  waiter: { readonly kick: () => void } | undefined
}

/** The service a running worker uses to manage its own child workers. */
export interface ChildrenService {
  /** Start `worker` as a child; fails if a child of that name exists. */
  readonly add: <E, R>(worker: Worker<E, R>) => Effect.Effect<void, DuplicateWorker, R>
  /** Stop the child of the same name (if any) and start `worker` in its place. */
  readonly replace: <E, R>(worker: Worker<E, R>) => Effect.Effect<void, never, R>
  /** Stop and forget the child `name` (its short name). */
  readonly remove: (name: string) => Effect.Effect<void, WorkerNotFound>
  /** The status of every child. */
  readonly list: Effect.Effect<ReadonlyArray<WorkerStatus.WorkerStatus>>
}

/**
 * The child-worker service inside a running worker's program. Children stop
 * when the worker's run ends (stop, restart or failure).
 */
export class Children extends Context.Tag("nightshift/Crew/Children")<Children, ChildrenService>() {}

/** What a running worker's program knows about its own run. */
export interface RunInfo {
  /** The worker's full name (`"parent/child"` when nested). */
  readonly name: string
  /**
   * The restart attempt of this run: 0 on the first run, 1 after the first
   * restart, and so on. Counted from when the worker was added to its
   * supervisor; a restart by `handle.restart` counts too.
   */
  readonly attempt: number
}

/** The current run of the worker whose program is running. */
export class CurrentRun extends Context.Tag("nightshift/Worker/CurrentRun")<CurrentRun, RunInfo>() {}

/** The services the runtime provides to every worker's program, so constructors drop them from `R`. */
export type Provided = Children | CurrentRun

/** What the runtime hands to a worker's program for one run. */
export interface RunContext {
  /** Tell the supervisor that the run ended (what a timer-driven run calls once it has finished). */
  readonly ended: (exit: Exit.Exit<void, unknown>) => void
  /** Set when the program already recorded the failure that ends the run (a consumer's item). */
  failureRecorded: boolean
  /** A crew calls this once its static children are started; its parent waits for it before starting the next sibling. */
  ready: () => void
  isReady: boolean
  readonly name: string
  readonly cell: Registry.Cell
  /** The worker's registry node (its restart history and tick ring). */
  readonly node: Registry.Node
  readonly registry: Registry.Registry
  readonly mailbox: Mailbox
  readonly children: ChildrenService & {
    /** Start several children in order, in one request (a crew's static children). */
    readonly addAll: (workers: ReadonlyArray<Worker<any, any>>) => Effect.Effect<void, DuplicateWorker>
    /** Stop the children (if any were started); run when the run ends. */
    readonly close: Effect.Effect<void>
  }
}

/**
 * One run of a worker as its supervisor sees it: something to interrupt and
 * to observe the end of. A fiber for most kinds; a timer-driven object for
 * periodic workers, which hold no fiber while idle.
 */
export interface Run {
  readonly interrupt: () => void
  readonly observe: (observer: (exit: Exit.Exit<void, unknown>) => void) => void
}

/** How a worker's run is started. */
export type Body<E, R> =
  | { readonly _tag: "Fiber"; readonly run: (context: RunContext) => Effect.Effect<void, E, R> }
  | {
      readonly _tag: "Timer"
      /**
       * Start a run in `runtime` (the worker's services and log annotations);
       * the run calls `context.ended` once it has finished, and closes
       * `context.children` itself.
       */
      readonly launch: (context: RunContext, runtime: Runtime.Runtime<any>) => Run
    }

/** A worker: a named program plus how it runs and is supervised. */
export interface Worker<out E = unknown, out R = never> extends Pipeable {
  readonly [TypeId]: { readonly _E: Types.Covariant<E>; readonly _R: Types.Covariant<R> }
  readonly name: string
  readonly kind: WorkerStatus.Kind
  readonly policy: Policy
  /** Description of the schedule, for periodic workers. */
  readonly schedule: string | undefined
  /** The static children of a crew. */
  readonly workers: ReadonlyArray<Worker<any, any>>
  /** @internal */
  readonly body: Body<E, R>
}

/** A worker name must be non-empty and must not contain `/` (it separates nested names). */
export const validName = (name: string): boolean => name.length > 0 && !name.includes("/")

/** A worker value: a class, so its six fields sit in the object itself (a worker per job type, or ten thousand). */
class WorkerImpl<E, R> implements Worker<E, R> {
  declare readonly [TypeId]: { readonly _E: Types.Covariant<E>; readonly _R: Types.Covariant<R> }
  constructor(
    readonly name: string,
    readonly kind: WorkerStatus.Kind,
    readonly policy: Policy,
    readonly schedule: string | undefined,
    readonly workers: ReadonlyArray<Worker<any, any>>,
    readonly body: Body<E, R>
  ) {}
  pipe() {
    // biome-ignore lint/complexity/noArguments: pipeArguments takes the call's arguments object
    return pipeArguments(this, arguments)
  }
}
Object.defineProperty(WorkerImpl.prototype, TypeId, { value: { _E: (_: never) => _, _R: (_: never) => _ } })

const noWorkers: ReadonlyArray<Worker<any, any>> = []

/** Build a worker value. */
export const make = <E, R>(fields: {
  readonly name: string
  readonly kind: WorkerStatus.Kind
  readonly policy: Policy
  readonly schedule?: string | undefined
  readonly workers?: ReadonlyArray<Worker<any, any>> | undefined
  readonly body: Body<E, R>
}): Worker<E, R> => {
  if (!validName(fields.name)) {
    throw new InvalidWorkerName({
      worker: fields.name,
      message: `worker name ${JSON.stringify(fields.name)} must be non-empty and contain no "/" (it separates nested names)`
    })
  }
  return new WorkerImpl(
    fields.name,
    fields.kind,
    fields.policy,
    fields.schedule,
    fields.workers ?? noWorkers,
    fields.body
  )
}

/** Supervision options common to every worker constructor. */
export interface Options {
  readonly restart?: Restart | undefined
  readonly backoff?: Schedule.Schedule<unknown, unknown> | undefined
  readonly maxRestarts?: number | undefined
  readonly restartWindow?: Duration.DurationInput | undefined
  readonly onMaxRestarts?: "escalate" | "stop" | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/** Exponential from 100 ms (factor 2), jittered, capped at 30 s. */
export const defaultBackoff: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.jittered,
  // `modifyDelay`'s first argument is the output (the unjittered delay); the second is the jittered delay.
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(30)))
)

/** Resolve options against the defaults. */
export const policy = (options: Options | undefined): Policy =>
  options === undefined ||
  (options.restart === undefined &&
    options.backoff === undefined &&
    options.maxRestarts === undefined &&
    options.restartWindow === undefined &&
    options.onMaxRestarts === undefined &&
    options.shutdownTimeout === undefined)
    ? defaultPolicy
    : resolve(options)

const resolve = (options: Options | undefined): Policy => ({
  restart: options?.restart ?? "permanent",
  backoff: options?.backoff ?? defaultBackoff,
  maxRestarts: options?.maxRestarts ?? 5,
  restartWindow: Duration.decode(options?.restartWindow ?? "1 minute"),
  onMaxRestarts: options?.onMaxRestarts ?? "escalate",
  shutdownTimeout: Duration.decode(options?.shutdownTimeout ?? "10 seconds")
})

const defaultPolicy = resolve(undefined)

/** A child gave up (restart intensity exceeded) and escalated to its parent. */
export class CrewFailed extends Schema.TaggedError<CrewFailed>()("CrewFailed", {
  /** Full name of the crew (or worker) that failed; empty for an unnamed top level. */
  crew: Schema.String,
  /** Full name of the child that gave up. */
  worker: Schema.String,
  /** Why the child gave up. */
  reason: Schema.String,
  /** The child's last failure, pretty-printed. */
  cause: Schema.String
}) {
  override get message(): string {
    const crew = this.crew === "" ? "the top level" : `"${this.crew}"`
    return `worker "${this.worker}" ${this.reason} and escalated to ${crew}; raise its maxRestarts / restartWindow or set onMaxRestarts: "stop" to keep the crew running. Last failure: ${this.cause}`
  }
}

/**
 * No worker of that name in the started tree. `worker` is the name asked for
 * (a full name, `"app/parent/child"`). The admin API answers with the same
 * error (404).
 */
export class WorkerNotFound extends Schema.TaggedError<WorkerNotFound>()("WorkerNotFound", {
  worker: Schema.String,
  message: Schema.String
}) {}

/** A `WorkerNotFound` for `worker`, saying how names are written. */
export const workerNotFound = (worker: string): WorkerNotFound =>
  new WorkerNotFound({
    worker,
    message: `no worker named ${JSON.stringify(worker)}: the crew handle takes full names, the started crew's first ("app/parent/child"), as Handle.status lists them; Children.remove takes a child's short name`
  })

/**
 * A forced tick was asked of a worker that is not periodic. `kind` is the
 * worker's kind when known. The admin API answers with the same error (409).
 */
export class NotPeriodic extends Schema.TaggedError<NotPeriodic>()("NotPeriodic", {
  worker: Schema.String,
  kind: Schema.optional(Schema.String),
  message: Schema.String
}) {}

/** A `NotPeriodic` for `worker` of `kind`. */
export const notPeriodic = (worker: string, kind: string): NotPeriodic =>
  new NotPeriodic({
    worker,
    kind,
    message: `worker ${JSON.stringify(worker)} is a ${kind} worker; only periodic workers can be ticked`
  })

/**
 * A worker of that name already exists under the same parent: returned by
 * `add`, thrown by `Crew.make` for two static workers of one name.
 */
export class DuplicateWorker extends Schema.TaggedError<DuplicateWorker>()("DuplicateWorker", {
  worker: Schema.String,
  message: Schema.String
}) {}

/** A `DuplicateWorker` for the full name `worker`. */
export const duplicateWorker = (worker: string, hint: string): DuplicateWorker =>
  new DuplicateWorker({
    worker,
    message: `a worker named ${JSON.stringify(worker)} already exists here; ${hint}`
  })

/** A worker name that is empty or contains `/`; thrown by the worker constructors. */
export class InvalidWorkerName extends Schema.TaggedError<InvalidWorkerName>()("InvalidWorkerName", {
  worker: Schema.String,
  message: Schema.String
}) {}
