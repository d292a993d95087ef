import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as WorkerStatus from "../../WorkerStatus.js"
import * as Batch from "./batch.js"
import type { Mailbox, Policy, WorkerNotFound } from "./core.js"
import * as History from "./history.js"
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
 *
 * Times are milliseconds since the registry's `base` (`Registry.stamp`), or
 * `null` for "never"; `copy` adds `base` back. An epoch millisecond is a
 * double, and a field holding one either keeps a boxed number per cell (a
 * double field) or allocates a fresh box on every write (a field that also
 * holds `null`); a time since `base` is a small integer for 24 days, stored
 * in the field itself. (After that, writes box again: slower, still exact.)
 */
export interface Cell extends Mutable<Omit<WorkerStatus.WorkerStatus, Times>> {
  nextTickAt: number | null
  nextRestartAt: number | null
  lastStartAt: number | null
  lastFinishAt: number | null
  lastSuccessAt: number | null
  lastFailureAt: number | null
}

/** "Never", for a time field of a cell. */
export const never = null

/** Whoever supervises a node and can restart (and, unless it is the top, remove) it by its short name. */
export interface Owner {
  readonly restart: (name: string) => Effect.Effect<void, WorkerNotFound>
  readonly remove?: ((name: string) => Effect.Effect<void, WorkerNotFound>) | undefined
}

/**
 * What the registry keeps per full name, across runs and re-adds. It is its
 * own mailbox for forced-tick requests (one object less per worker); only a
 * periodic run ever makes it active.
 */
export class Node implements Mailbox {
  active = false
  forced: Mailbox["forced"] = undefined
  waiter: Mailbox["waiter"] = undefined
  owner: Owner | undefined = undefined
  /** How the worker is supervised (set when it is added). */
  policy: Policy | undefined = undefined
  /** Its recent restarts, oldest first (made on the first). */
  restarts: Array<History.Restart> | undefined = undefined
  constructor(
    readonly cell: Cell,
    /** The short name under the owner. */
    public key: string,
    /** Its tick ring in the registry's `TickLog` (periodic workers); -1: none, or given back. */
    public slot: number
  ) {}
  /** Forced-tick requests. */
  get mailbox(): Mailbox {
    return this
  }
}

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
  if (existing !== undefined) forget(registry, existing)
  const fresh = new Node(
    blank(name, kind, restart, schedule),
    name,
    kind === "periodic" ? registry.ticks.allocate() : -1
  )
  registry.nodes.set(name, fresh)
  return fresh
}

/** Give back what a node holds in the registry (its tick ring) when it is dropped. */
const forget = (registry: Registry, node: Node): void => {
  registry.ticks.release(node.slot)
  node.slot = -1
}

/** Drop the status rows (and histories) of `name` and its subtree. */
export const forgetRows = (registry: Registry, name: string): void => {
  const { nodes } = registry
  const node = nodes.get(name)
  if (node !== undefined) {
    forget(registry, node)
    nodes.delete(name)
  }
  const below = `${name}/`
  for (const [key, child] of nodes) {
    if (key.startsWith(below)) {
      forget(registry, child)
      nodes.delete(key)
    }
  }
}

/** Record a restart (or giving up) of `node`. */
export const restarted = (node: Node, restart: History.Restart): void => {
  node.restarts = History.keepRestart(node.restarts, restart)
}

/** The history of `node`, newest first, with epoch times. */
export const history = (registry: Registry, node: Node): WorkerStatus.WorkerHistory => {
  const base = registry.base
  const time = (t: number | null) => (t === null ? null : t + base)
  const restarts = (node.restarts ?? [])
    .map((r) => ({
      at: r.at + base,
      reason: r.reason,
      attempt: r.attempt,
      error: r.error,
      backoffMs: r.backoff,
      restartAt: time(r.restartAt)
    }))
    .reverse()
  return {
    name: node.cell.name,
    kind: node.cell.kind,
    ticks: registry.ticks.read(node.slot, base),
    ticksRecorded: registry.ticks.total(node.slot),
    ticksKept: History.ticksPerWorker,
    restarts,
    restartsKept: History.restartsPerWorker
  }
}

/**
 * The supervision tree, from the full names (a node's parent is the name
 * before its last `/`), in start order.
 */
export const tree = (registry: Registry): ReadonlyArray<WorkerStatus.TreeNode> => {
  interface Building {
    readonly node: Node
    readonly children: Array<Building>
  }
  const byName = new Map<string, Building>()
  for (const [name, node] of registry.nodes) byName.set(name, { node, children: [] })
  const roots: Array<Building> = []
  for (const [name, entry] of byName) {
    const cut = name.lastIndexOf("/")
    const parent = cut < 0 ? undefined : byName.get(name.slice(0, cut))
    if (parent === undefined) roots.push(entry)
    else parent.children.push(entry)
  }
  const render = ({ node, children }: Building): WorkerStatus.TreeNode => ({
    name: node.cell.name,
    kind: node.cell.kind,
    state: node.cell.state,
    restart: node.cell.restart,
    maxRestarts: node.policy?.maxRestarts ?? 0,
    restartWindowMs: node.policy === undefined ? 0 : Duration.toMillis(node.policy.restartWindow),
    onMaxRestarts: node.policy?.onMaxRestarts ?? "escalate",
    children: children.map(render)
  })
  return roots.map(render)
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
  /** The tick rings of the periodic workers and the error texts of their failed ticks. */
  readonly ticks: History.TickLog
  /** The epoch millisecond cell times count from. */
  readonly base: number
  readonly changed: (cell: Cell) => void
  readonly snapshot: () => ReadonlyArray<WorkerStatus.WorkerStatus>
  readonly changes: Stream.Stream<WorkerStatus.WorkerStatus>
  readonly running: (delta: number) => void
  /** The cell time of the epoch millisecond `at` (of `ticker.now()`): milliseconds since the registry's base. */
  readonly stamp: (at: number) => number
  /** The JSON-ready status record of a cell. */
  readonly copy: (cell: Cell) => WorkerStatus.WorkerStatus
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

/** The JSON-ready status record of a cell whose times count from `base`. */
const copyFrom = (cell: Cell, base: number): WorkerStatus.WorkerStatus => {
  const time = (t: number | null) => (t === null ? null : t + base)
  return {
    ...cell,
    nextTickAt: time(cell.nextTickAt),
    nextRestartAt: time(cell.nextRestartAt),
    lastStartAt: time(cell.lastStartAt),
    lastFinishAt: time(cell.lastFinishAt),
    lastSuccessAt: time(cell.lastSuccessAt),
    lastFailureAt: time(cell.lastFailureAt)
  }
}

const noLabels: ReadonlyArray<never> = []

/** A registry for a tree started in the current scope. */
export const make = (capacity = 4096): Effect.Effect<Registry, never, Scope.Scope> =>
  Effect.gen(function* () {
    const ticker = yield* Ticker.make
    const pubsub = yield* Effect.acquireRelease(
      PubSub.sliding<WorkerStatus.WorkerStatus>(capacity),
      PubSub.shutdown
    )
    const nodes = new Map<string, Node>()
    // Whole milliseconds, so a time since it is exact both ways (`t - base + base === t`).
    const base = Math.floor(ticker.now())
    const copy = (cell: Cell) => copyFrom(cell, base)
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
      ticks: new History.TickLog(),
      base,
      changed: (cell) => {
        if (subscribers > 0) pubsub.unsafeOffer(copy(cell))
      },
      snapshot: () => Array.from(nodes.values(), (node) => copy(node.cell)),
      changes: Stream.unwrapScoped(Effect.map(subscribe, (queue) => Stream.fromQueue(queue))),
      running: (delta) => {
        running += delta
        Metrics.running.unsafeUpdate(running, noLabels)
      },
      stamp: (at) => at - base,
      copy,
      starting: undefined
    }
  })
