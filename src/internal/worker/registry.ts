import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as WorkerStatus from "../../WorkerStatus.js"
import * as Batch from "./batch.js"
import type { Mailbox, WorkerNotFound } from "./core.js"
import * as Metrics from "./metrics.js"
import * as Ticker from "./ticker.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

type Times =
  | "nextTickAt"
  | "nextRestartAt"
  | "lastStartAt"
  | "lastFinishAt"
  | "lastSuccessAt"
  | "lastFailureAt"

/**
 * The mutable status of one worker. Writers change fields and then call
 * `changed()`, which publishes a snapshot only when someone subscribes.
 * Times are numbers with `NaN` for "never" (shown as `null`): a field that
 * only ever holds doubles is updated in place, where a `number | null` field
 * would allocate a fresh heap number on every tick.
 */
export interface Cell extends Mutable<Omit<WorkerStatus.WorkerStatus, Times>> {
  nextTickAt: number
  nextRestartAt: number
  lastStartAt: number
  lastFinishAt: number
  lastSuccessAt: number
  lastFailureAt: number
}

/** "Never", for a time field of a cell. */
export const never = Number.NaN

/** Whoever supervises a node and can restart (and, unless it is the top, remove) it by its short name. */
export interface Owner {
  readonly restart: (name: string) => Effect.Effect<void, WorkerNotFound>
  readonly remove?: ((name: string) => Effect.Effect<void, WorkerNotFound>) | undefined
}

/** What the registry keeps per full name, across runs and re-adds. */
export interface Node {
  readonly cell: Cell
  /** Forced-tick requests; only periodic workers have their own. */
  readonly mailbox: Mailbox
  owner: Owner | undefined
  /** The short name under the owner. */
  key: string
}

/** The mailbox of workers that cannot be ticked: never active. */
const inert: Mailbox = { active: false, forced: undefined, waiter: undefined }

/** Find the node of a full name (kept when the kind matches, so counts survive re-adds) or make one. */
export const node = (
  registry: Registry,
  name: string,
  kind: WorkerStatus.Kind,
  restart: WorkerStatus.WorkerStatus["restart"],
  schedule: string | null
): Node => {
  const existing = registry.nodes.get(name)
  if (existing !== undefined && existing.cell.kind === kind) {
    existing.cell.restart = restart
    existing.cell.schedule = schedule
    return existing
  }
  const mailbox: Mailbox = kind === "periodic" ? { active: false, forced: undefined, waiter: undefined } : inert
  const fresh: Node = { cell: blank(name, kind, restart, schedule), mailbox, owner: undefined, key: name }
  registry.nodes.set(name, fresh)
  return fresh
}

/**
 * State shared by every worker of one started tree: the status table, the
 * change feed, the shared ticker and its tick batch, and live-node lookup
 * for forced ticks and restarts.
 */
export interface Registry {
  readonly ticker: Ticker.Ticker
  /** Where periodic workers queue the ticks a ticker pass makes due. */
  readonly batch: Batch.Batch
  readonly nodes: Map<string, Node>
  readonly changed: (cell: Cell) => void
  readonly snapshot: () => ReadonlyArray<WorkerStatus.WorkerStatus>
  readonly changes: Stream.Stream<WorkerStatus.WorkerStatus>
  readonly running: (delta: number) => void
  /**
   * Set by a child set while it launches a worker of a start request: plain
   * interval workers then arm their first tick when the whole request has
   * started (`Batch.Later`), from one clock reading, so workers started
   * together tick together.
   */
  starting: Array<Batch.Later> | undefined
}

/** The blank status of a worker that has not started. */
export const blank = (
  name: string,
  kind: WorkerStatus.Kind,
  restart: WorkerStatus.WorkerStatus["restart"],
  schedule: string | null
): Cell => ({
  name,
  kind,
  state: "starting",
  restart,
  schedule,
  nextTickAt: never,
  nextRestartAt: never,
  lastStartAt: never,
  lastFinishAt: never,
  lastSuccessAt: never,
  lastFailureAt: never,
  lastError: null,
  runs: 0,
  successes: 0,
  failures: 0,
  skips: 0,
  consecutiveFailures: 0,
  restarts: 0
})

const time = (t: number) => (Number.isNaN(t) ? null : t)

/** The JSON-ready status record of a cell. */
export const copy = (cell: Cell): WorkerStatus.WorkerStatus => ({
  ...cell,
  nextTickAt: time(cell.nextTickAt),
  nextRestartAt: time(cell.nextRestartAt),
  lastStartAt: time(cell.lastStartAt),
  lastFinishAt: time(cell.lastFinishAt),
  lastSuccessAt: time(cell.lastSuccessAt),
  lastFailureAt: time(cell.lastFailureAt)
})

/** A registry for a tree started in the current scope. */
export const make = (capacity = 4096): Effect.Effect<Registry, never, Scope.Scope> =>
  Effect.gen(function* () {
    const ticker = yield* Ticker.make
    const pubsub = yield* Effect.acquireRelease(
      PubSub.sliding<WorkerStatus.WorkerStatus>(capacity),
      PubSub.shutdown
    )
    const nodes = new Map<string, Node>()
    let subscribers = 0
    let running = 0
    const subscribe = Effect.acquireRelease(
      Effect.tap(PubSub.subscribe(pubsub), () => Effect.sync(() => subscribers++)),
      () => Effect.sync(() => subscribers--)
    )
    return {
      ticker,
      batch: Batch.make(ticker),
      nodes,
      changed: (cell) => {
        if (subscribers > 0) pubsub.unsafeOffer(copy(cell))
      },
      snapshot: () => Array.from(nodes.values(), (node) => copy(node.cell)),
      changes: Stream.unwrapScoped(Effect.map(subscribe, (queue) => Stream.fromQueue(queue))),
      running: (delta) => {
        running += delta
        Metrics.running.unsafeUpdate(running, [])
      },
      starting: undefined
    }
  })
