/**
 * The contract every contestant implements inside its child process. Jobs
 * carry `{ i, t }`: their index, and when they were enqueued (`now()`, or 0
 * for bulk enqueues whose latency is not measured).
 */
import type { ChildSpec } from "../lib/protocol.js"

/**
 * Called by a worker at the start of each handler run; `at` is when the
 * handler started (`now()`), given when the handler ran in another thread or
 * process and its start is reported afterwards.
 */
export type OnJob = (i: number, t: number, at?: number) => void

/** A contestant, driven by the harness one command at a time. */
export interface Driver {
  /** Create the namespace from scratch and migrate; only the first process of a run calls it. */
  readonly setup: () => Promise<void>
  /** Enqueue jobs 0…n-1 with the peer's documented bulk API. */
  readonly enqueueBulk: (n: number) => Promise<void>
  /** Enqueue one job. */
  readonly enqueueOne: (i: number, t: number) => Promise<void>
  /** Start a worker with no-op handlers that call `onJob`. */
  readonly startWorker: (concurrency: number, onJob: OnJob) => Promise<void>
  /** Stop the worker, letting it finish what it holds. */
  readonly stopWorker: () => Promise<void>
  /** How many of the `total` jobs enqueued have their completion committed in the store. */
  readonly committed: (total: number) => Promise<number>
  /** Fill the queue with `n` waiting jobs as fast as the store allows (backlog workload). */
  readonly fill?: (n: number) => Promise<void>
  /** Drop the namespace and close connections. */
  readonly teardown: () => Promise<void>
}

/** A baseline: one self-contained timed run. */
export interface Baseline {
  readonly run: (args: Record<string, number>) => Promise<Record<string, number>>
}

/** Builds a driver or baseline for a child spec. */
export type Make = (spec: ChildSpec) => Promise<Driver | Baseline>
