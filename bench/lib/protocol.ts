/**
 * What the harness and its child processes say to each other over the IPC
 * channel. Each child hosts one contestant (a driver) in a fresh process.
 */

/** Every contestant and baseline a child can host. */
export type DriverName =
  | "nightshift-pg"
  | "nightshift-pg-prefetch"
  | "nightshift-pg-keyed"
  | "nightshift-pg-sharded"
  | "nightshift-sqlite"
  | "nightshift-memory"
  | "graphile"
  | "graphile-batched"
  | "pg-boss"
  | "bullmq"
  | "plainjob"
  | "sidequest"
  | "ceiling-pg"
  | "raw-sqlite"
  | "raw-memory"

/** How a child is started: which driver, and the namespace (schema, key prefix or file) it owns. */
export interface ChildSpec {
  readonly driver: DriverName
  readonly namespace: string
  readonly databaseUrl: string
  readonly redisUrl: string
  /** Directory for SQLite files. */
  readonly tmpDir: string
}

/** A request from the harness; `id` pairs it with its reply. */
export type Command =
  | { readonly id: number; readonly cmd: "setup" }
  | { readonly id: number; readonly cmd: "enqueueBulk"; readonly n: number }
  | { readonly id: number; readonly cmd: "produce"; readonly n: number; readonly perSecond: number }
  | { readonly id: number; readonly cmd: "produceOne"; readonly index: number }
  | { readonly id: number; readonly cmd: "startWorker"; readonly n: number; readonly concurrency: number }
  | { readonly id: number; readonly cmd: "stopWorker" }
  | { readonly id: number; readonly cmd: "committed"; readonly total: number }
  | { readonly id: number; readonly cmd: "fill"; readonly n: number }
  | { readonly id: number; readonly cmd: "run"; readonly args: Record<string, number> }
  | { readonly id: number; readonly cmd: "teardown" }
  /** The child's `now()`, to measure its clock against the harness's. */
  | { readonly id: number; readonly cmd: "clock" }

/** What a worker saw: handler starts per job index, and per-job latency in ms (NaN when not measured). */
export interface WorkerReport {
  readonly counts: ReadonlyArray<number>
  readonly latencies: ReadonlyArray<number>
  /** CPU time (user + system) of the worker process from starting the worker to stopping it, in ms. */
  readonly cpuMs?: number
}

/** A reply to a command, or a progress note from a running worker. */
export type Message =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }
  | { readonly progress: number }

/**
 * Wall-clock time in ms with sub-ms resolution. Across processes it is
 * comparable only after correcting each process's offset: a process's
 * `performance.timeOrigin` can be several ms off another's (8 ms seen here),
 * so the latency workloads measure every child's offset first (`clock`).
 */
export const now = (): number => performance.timeOrigin + performance.now()
