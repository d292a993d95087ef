/**
 * Crews: supervisors of workers.
 *
 * A crew runs each worker in its own fiber inside the crew's scope (not
 * periodic workers: those of one started tree share a single timer and hold
 * no fiber while idle, and the ticks that fall due together run one after
 * another in a shared fiber, a tick that suspends keeping it to itself),
 * restarts it according to its policy (with backoff and restart intensity),
 * nests (a crew is itself a worker, so a subtree restarts together), lets
 * running workers manage child workers (`Children`), shuts down in reverse
 * start order with a timeout per worker, and keeps a status table with a
 * change feed.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as ChildSet from "./internal/worker/childSet.js"
import * as core from "./internal/worker/core.js"
import * as Periodic from "./internal/worker/periodic.js"
import * as Registry from "./internal/worker/registry.js"
import type * as Worker from "./Worker.js"
import type * as WorkerStatus from "./WorkerStatus.js"

/**
 * A child gave up (more restarts than `maxRestarts` within `restartWindow`,
 * or its backoff schedule ended) with `onMaxRestarts: "escalate"`.
 *
 * @since 0.1.0
 */
export const CrewFailed = core.CrewFailed

/** @since 0.1.0 */
export type CrewFailed = core.CrewFailed

/**
 * No worker of that name in the started tree (`worker`: the name asked
 * for; the crew handle takes full names). The admin API answers with this
 * same class (404).
 *
 * @since 0.1.0
 */
export const WorkerNotFound = core.WorkerNotFound

/** @since 0.1.0 */
export type WorkerNotFound = core.WorkerNotFound

/**
 * A forced tick was asked of a worker that is not periodic (`worker`,
 * `kind`). The admin API answers with this same class (409).
 *
 * @since 0.1.0
 */
export const NotPeriodic = core.NotPeriodic

/** @since 0.1.0 */
export type NotPeriodic = core.NotPeriodic

/**
 * A worker of that name already exists under the same parent (`worker`: its
 * full name). Returned by `add`; thrown by `make` when two static workers
 * share a name (a mistake in code).
 *
 * @since 0.1.0
 */
export const DuplicateWorker = core.DuplicateWorker

/** @since 0.1.0 */
export type DuplicateWorker = core.DuplicateWorker

/**
 * The child-worker service available inside every running worker's program:
 * `add`, `replace`, `remove` (by short name) and `list`. Children are named
 * `"parent/child"` and stop when the parent's run ends.
 *
 * @since 0.1.0
 */
export const Children = core.Children

/** @since 0.1.0 */
export type Children = core.Children

/** @since 0.1.0 */
export type ChildrenService = core.ChildrenService

/**
 * A running crew (or single worker) started by `start` or `layer`.
 *
 * Every operation that names a worker (`statusOf`, `tick`, `restart`,
 * `remove`) takes its full name, as the status table shows it: the started
 * crew's name first (`"app/report"`, `"app/inner/flaky"`); a single worker
 * started alone is named by its own name. `add` and `replace` take a worker,
 * which becomes `"<crew>/<worker.name>"`.
 *
 * @since 0.1.0
 */
export interface Handle {
  /** A snapshot of every worker in the tree, in start order (nested names like `"parent/child"`). */
  readonly status: Effect.Effect<ReadonlyArray<WorkerStatus.WorkerStatus>>
  /** A snapshot of one worker's status, by full name (`"app/parent/child"`); fails when there is none. */
  readonly statusOf: (name: string) => Effect.Effect<WorkerStatus.WorkerStatus, WorkerNotFound>
  /**
   * One worker's recent history, by full name: its last ticks (periodic
   * workers: the last 16, with start, duration, outcome and the failure's
   * cause) and its last 10 restarts (when, why, the backoff waited). Fixed
   * memory: see "History" in docs/workers.md.
   */
  readonly history: (name: string) => Effect.Effect<WorkerStatus.WorkerHistory, WorkerNotFound>
  /** The supervision tree: the started crew (or worker) and the workers below it, in start order. */
  readonly tree: Effect.Effect<ReadonlyArray<WorkerStatus.TreeNode>>
  /** Every status change from the moment of subscription. A subscriber more than 4096 changes behind loses the oldest. */
  readonly changes: Stream.Stream<WorkerStatus.WorkerStatus>
  /** Run one tick of a periodic worker (by full name) now, through its gate, lock, timeout and recording; waits for a running tick first. */
  readonly tick: (name: string) => Effect.Effect<Worker.TickOutcome, WorkerNotFound | NotPeriodic>
  /** Stop a worker (by full name; with its subtree) and start it again now, without backoff. */
  readonly restart: (name: string) => Effect.Effect<void, WorkerNotFound>
  /** Start a top-level child (a child of the started crew). */
  readonly add: <E, R>(worker: Worker.Worker<E, R>) => Effect.Effect<void, DuplicateWorker, R>
  /** Stop the top-level child of the same name, if any, and start `worker` in its place. */
  readonly replace: <E, R>(worker: Worker.Worker<E, R>) => Effect.Effect<void, never, R>
  /**
   * Stop and forget a worker below the started crew, by full name
   * (`"app/worker"`, `"app/inner/child"`), as `statusOf`, `tick` and
   * `restart` take it.
   */
  readonly remove: (name: string) => Effect.Effect<void, WorkerNotFound>
  /** The status of the top-level children. */
  readonly list: Effect.Effect<ReadonlyArray<WorkerStatus.WorkerStatus>>
  /** Completes when the crew is shut down; fails when a child escalates to it. */
  readonly await: Effect.Effect<void, CrewFailed>
}

/**
 * The `Crew` service: the handle of the crew started by `layer`.
 *
 * @since 0.1.0
 */
export class Crew extends Context.Tag("nightshift/Crew")<Crew, Handle>() {}

/** The context type a list of workers needs. */
type Needs<W> = W extends Worker.Worker<any, infer R> ? R : never

/**
 * A crew: a worker that supervises `workers`, started in order. It fails with
 * `CrewFailed` when a child escalates; its own options then decide (by
 * default it is restarted with all its children). Two workers of one name
 * are a mistake in code: `make` throws `DuplicateWorker`.
 *
 * @since 0.1.0
 */
export const make = <W extends Worker.Worker<any, any>>(
  name: string,
  workers: Iterable<W>,
  options?: Worker.Options
): Worker.Worker<CrewFailed, Needs<W>> => {
  const list = Array.from(workers)
  const names = new Set<string>()
  for (const w of list) {
    if (names.has(w.name)) {
      throw core.duplicateWorker(
        `${name}/${w.name}`,
        `Crew.make("${name}") was given two workers of that name`
      )
    }
    names.add(w.name)
  }
  return core.make({
    name,
    kind: "crew",
    policy: core.policy(options),
    workers: list,
    body: {
      _tag: "Fiber",
      run: (ctx) =>
        Effect.orDie(ctx.children.addAll(list)).pipe(
          Effect.zipRight(Effect.sync(() => ctx.ready())),
          Effect.zipRight(Effect.never)
        )
    }
  })
}

/**
 * Run a crew (or a single worker) in the current scope and return its
 * handle. Closing the scope shuts it down gracefully: workers stop in reverse
 * start order, each within its `shutdownTimeout`.
 *
 * A started crew is the top of its tree: nobody restarts it, and when a
 * child escalates to it the whole tree stops and `await` fails. A single
 * worker started alone is supervised by its own options.
 *
 * @since 0.1.0
 */
export const start = <E, R>(worker: Worker.Worker<E, R>): Effect.Effect<Handle, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const registry = yield* Registry.make()
    const context = yield* Effect.context<R>()
    const failed = yield* Deferred.make<void, CrewFailed>()
    const isCrew = worker.kind === "crew"
    const top = isCrew
      ? Registry.node(registry, worker.name, "crew", worker.policy.restart, null).cell
      : undefined
    let root: ChildSet.ChildSet | undefined
    const set = yield* ChildSet.make({
      prefix: isCrew ? worker.name : "",
      registry,
      forgetOnClose: false,
      escalate: (error) => {
        if (top !== undefined) {
          top.state = "failed"
          top.failures++
          top.lastError = error.message
          registry.changed(top)
        }
        Deferred.unsafeDone(failed, Exit.fail(error))
        if (root !== undefined) Effect.runFork(root.close)
      }
    })
    root = set
    if (top !== undefined) {
      const topNode = registry.nodes.get(worker.name)!
      topNode.policy = worker.policy
      topNode.owner = {
        restart: () =>
          Effect.suspend(() => {
            Registry.restarted(topNode, {
              at: registry.stamp(registry.ticker.now()),
              reason: "requested",
              attempt: 0,
              error: null,
              backoff: null,
              restartAt: null
            })
            return Effect.forEach(worker.workers, (w) => Effect.ignore(set.restart(w.name)), {
              discard: true
            })
          })
      }
      top.state = "running"
      top.runs = 1
      top.lastStartAt = registry.stamp(registry.ticker.now())
    }
    yield* Effect.addFinalizer(() =>
      set.close.pipe(
        Effect.zipRight(
          Effect.sync(() => {
            if (top !== undefined && top.state !== "failed") {
              top.state = "stopped"
              top.lastFinishAt = registry.stamp(registry.ticker.now())
              registry.changed(top)
            }
          })
        ),
        Effect.zipRight(Deferred.done(failed, Exit.void))
      )
    )
    yield* Effect.orDie(set.addAll(isCrew ? worker.workers : [worker], context))
    const lookup = (name: string) =>
      Effect.suspend(() => {
        const node = registry.nodes.get(name)
        return node === undefined ? Effect.fail(core.workerNotFound(name)) : Effect.succeed(node)
      })
    const handle: Handle = {
      status: Effect.sync(registry.snapshot),
      statusOf: (name) => Effect.map(lookup(name), (node) => registry.copy(node.cell)),
      history: (name) => Effect.map(lookup(name), (node) => Registry.history(registry, node)),
      tree: Effect.sync(() => Registry.tree(registry)),
      changes: registry.changes,
      tick: (name) =>
        Effect.flatMap(lookup(name), (node) =>
          node.cell.kind === "periodic"
            ? Periodic.force(node.mailbox)
            : Effect.fail(core.notPeriodic(name, node.cell.kind))
        ),
      restart: (name) =>
        Effect.flatMap(lookup(name), (node) =>
          node.owner === undefined ? Effect.fail(core.workerNotFound(name)) : node.owner.restart(node.key)
        ),
      add: <E, R>(w: Worker.Worker<E, R>) =>
        Effect.flatMap(Effect.context<R>(), (ctx) => set.add(w, ctx, false)),
      replace: <E, R>(w: Worker.Worker<E, R>) =>
        Effect.flatMap(Effect.context<R>(), (ctx) => Effect.orDie(set.add(w, ctx, true))),
      remove: (name) =>
        Effect.flatMap(lookup(name), (node) =>
          node.owner?.remove === undefined
            ? Effect.fail(core.workerNotFound(name))
            : node.owner.remove(node.key)
        ),
      list: set.list,
      await: Deferred.await(failed)
    }
    return handle
  })

/**
 * A layer that runs the crew `name` for the layer's lifetime and provides its
 * handle as the `Crew` service.
 *
 * @since 0.1.0
 */
export const layer = <W extends Worker.Worker<any, any>>(
  name: string,
  workers: Iterable<W>,
  options?: Worker.Options
): Layer.Layer<Crew, never, Needs<W>> => Layer.scoped(Crew, start(make(name, workers, options)))
