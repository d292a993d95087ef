/**
 * The flow-control benchmark's side of its children (bench/contestants/flow.ts):
 * the commands they answer, bundling them, and driving them through
 * bench/lib/proc.ts (same IPC framing as the main harness's children).
 */
import { dirname, join } from "node:path"
import { bundle, bundleChild } from "./build.js"
import { type Child, start } from "./proc.js"
import type { ChildSpec } from "./protocol.js"
import { now } from "./protocol.js"

/** The kinds a flow child knows (bench/contestants/flow.ts). */
export type FlowKind =
  | "keyed"
  | "perPartition2"
  | "global50"
  | "global2000"
  | "global50slow"
  | "plain"
  | "rate100"

/** How long a `global50slow` job's handler takes (ms). */
export const slowJobMs = 10

/** How bulk-enqueued jobs get their tenant: `p<i % 1000>`, or one fixed key. */
export type TenantSpec = "mod1000" | "A" | "B"

/** A request to a flow child. */
export type FlowCommand =
  | { readonly cmd: "clock" }
  | { readonly cmd: "setup" }
  /** Bulk-enqueue jobs `from … from + n - 1` (timed, ms returned). */
  | {
      readonly cmd: "enqueue"
      readonly kind: FlowKind
      readonly from: number
      readonly n: number
      readonly tenant: TenantSpec
    }
  /** Enqueue jobs one at a time, paced at `perSecond`, each stamped with its enqueue time. */
  | {
      readonly cmd: "produce"
      readonly kind: FlowKind
      readonly from: number
      readonly n: number
      readonly perSecond: number
      readonly tenant: string
    }
  /** Start a runner serving `kind` only, at `concurrency` (and `prefetch` when given), all else default; tally indexes 0 … n-1. */
  | {
      readonly cmd: "startWorker"
      readonly kind: FlowKind
      readonly concurrency: number
      readonly n: number
      readonly prefetch?: number
    }
  /** How many indexes in `from … to - 1` have started. */
  | { readonly cmd: "started"; readonly from: number; readonly to: number }
  | { readonly cmd: "stopWorker" }
  | { readonly cmd: "committed" }
  | { readonly cmd: "startSampler"; readonly everyMs: number }
  | { readonly cmd: "stopSampler" }
  /** Every job of `kind` that was claimed: `[index, latest claim time on the store's clock]`. */
  | { readonly cmd: "claimTimes"; readonly kind: FlowKind }
  | { readonly cmd: "teardown" }

/** What a worker saw, per job index: handler starts, the first start's time and the job's enqueue time (0: none). */
export interface FlowReport {
  readonly counts: ReadonlyArray<number>
  readonly starts: ReadonlyArray<number>
  readonly enqueued: ReadonlyArray<number>
  readonly cpuMs: number
}

/** The sampler's maxima of running jobs, read through `JobStore.flowState`. */
export interface FlowSample {
  readonly samples: number
  readonly maxRunning: number
  /** Most running jobs with one partition key in any sample. */
  readonly maxPerPartition: number
  readonly errors: number
}

/** Send a flow command (proc.ts types its requests for the main harness's children). */
export const ask = <A = unknown>(child: Child, request: FlowCommand, timeoutMs?: number): Promise<A> =>
  child.call<A>(request as unknown as Parameters<Child["call"]>[0], timeoutMs)

/**
 * Bundle bench/contestants/flow.ts beside the main harness's child bundle
 * (which brings the `node_modules` links), so it runs on plain `node`.
 */
export const bundleFlowChild = (rootDir: string, benchDir: string) => {
  const out = join(dirname(bundleChild(rootDir, benchDir)), "flow.mjs")
  bundle(rootDir, join(benchDir, "contestants", "flow.ts"), out)
  return out
}

/** Start a flow child. */
export const startFlow = (entry: string, spec: ChildSpec) => start(entry, spec)

/**
 * How far a child's `now()` runs ahead of the harness's, in ms (the fastest
 * of 20 round trips; as in the main harness's latency workloads).
 */
export const clockOffset = async (child: Child): Promise<number> => {
  let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 }
  for (let i = 0; i < 20; i++) {
    const t0 = now()
    const theirs = await ask<number>(child, { cmd: "clock" })
    const t1 = now()
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: theirs - (t0 + t1) / 2 }
  }
  return best.offset
}

/**
 * The most times in any half-open window `[t, t + windowMs)` starting at one
 * of them: a store that counts a start at `s` while `s > now - windowMs`
 * allows at most its limit in every such window.
 */
export const maxInWindow = (times: ReadonlyArray<number>, windowMs: number): number => {
  const s = [...times].sort((a, b) => a - b)
  let best = 0
  let j = 0
  for (let i = 0; i < s.length; i++) {
    if (j < i) j = i
    while (j < s.length && s[j]! < s[i]! + windowMs) j++
    best = Math.max(best, j - i)
  }
  return best
}
