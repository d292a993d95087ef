/**
 * The workloads, each run in fresh child processes on a fresh namespace:
 * drains (W1, W2, and the 100k scale drains), enqueue-to-start latency (W3),
 * the raw PostgreSQL ceiling (W4), backlog growth (W5) and the baselines.
 */
import { type Child, start, startAll } from "./proc.js"
import type { ChildSpec, DriverName, WorkerReport } from "./protocol.js"
import { now } from "./protocol.js"
import { percentile } from "./stats.js"

/** Where children run and which namespace each run gets. */
export interface Context {
  readonly entry: string
  readonly spec: (driver: DriverName) => ChildSpec
}

/** Duplicates (extra handler starts) and lost jobs (never started) over every worker's report. */
export interface Integrity {
  readonly duplicates: number
  readonly lost: number
}

export interface DrainResult extends Integrity {
  readonly enqueueMs: number
  readonly drainMs: number
  readonly n: number
  /** CPU time of the worker processes, summed (when they report it). */
  readonly cpuMs: number
  /** The largest share of the jobs one worker process ran (1 with one process). */
  readonly busiestShare: number
  /** CPU time of the database server over the drain (`serverCpu` given), else NaN. */
  readonly serverCpuMs: number
}

export interface LatencyResult extends Integrity {
  readonly mean: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  readonly samples: number
  /** Serial runs: the p50 of the enqueue call itself (producer side), over the measured jobs. */
  readonly enqueueCallP50: number
}

export interface RateResult {
  readonly ms: number
  readonly rows: number
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Poll `test` every `everyMs` until it holds; false on timeout. */
export const until = async (test: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5) => {
  const deadline = now() + timeoutMs
  while (!(await test())) {
    if (now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}

/**
 * Wait until `count()` reaches `total`, for as long as it keeps rising: false
 * once it stood still for `stallMs` (a slow worker still working through the
 * jobs is waited for; a stuck one is not).
 */
const whileAdvancing = async (count: () => number, total: number, stallMs: number) => {
  let last = count()
  let since = now()
  while (last < total) {
    await sleep(5)
    const c = count()
    if (c !== last) {
      last = c
      since = now()
    } else if (now() - since > stallMs) {
      return false
    }
  }
  return true
}

export const integrity = (reports: ReadonlyArray<WorkerReport>, n: number, first = 0): Integrity => {
  let duplicates = 0
  let lost = 0
  for (let i = first; i < n; i++) {
    let c = 0
    for (const r of reports) c += r.counts[i] ?? 0
    if (c === 0) lost++
    else duplicates += c - 1
  }
  return { duplicates, lost }
}

/**
 * How far a child's `now()` runs ahead of the harness's, in ms: from the
 * fastest of 20 round trips, to within half its round trip (about 0.05 ms).
 */
const clockOffset = async (child: Child): Promise<number> => {
  let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 }
  for (let i = 0; i < 20; i++) {
    const t0 = now()
    const theirs = await child.call<number>({ cmd: "clock" })
    const t1 = now()
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: theirs - (t0 + t1) / 2 }
  }
  return best.offset
}

/** Run `body` with an owner child that set up the namespace; tear down and close everything after. */
const withOwner = async <A>(
  ctx: Context,
  driver: DriverName,
  body: (owner: Child, spawn: (k: number) => Promise<Array<Child>>) => Promise<A>
): Promise<A> => {
  const spec = ctx.spec(driver)
  const owner = await start(ctx.entry, spec)
  const others: Array<Child> = []
  try {
    await owner.call({ cmd: "setup" })
    return await body(owner, async (k) => {
      const children = await startAll(
        ctx.entry,
        Array.from({ length: k }, () => spec)
      )
      others.push(...children)
      return children
    })
  } finally {
    await Promise.allSettled(others.map((c) => c.close()))
    await owner.call({ cmd: "teardown" }, 60_000).catch((e) => console.error(`teardown failed: ${e}`))
    await owner.close()
  }
}

/** Wait until the workers handled `n` jobs and the owner sees `n` completions committed. */
const awaitDrained = async (owner: Child, workers: ReadonlyArray<Child>, n: number, timeoutMs: number) => {
  const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
  if (!(await until(() => handled() >= n, timeoutMs))) return false
  return until(async () => (await owner.call<number>({ cmd: "committed", total: n })) >= n, 30_000)
}

/**
 * Enqueue `n` jobs in bulk (timed), then start `processes` worker processes
 * (0: the owner process works itself) and time until every completion is
 * committed.
 */
export const drain = (
  ctx: Context,
  driver: DriverName,
  options: {
    readonly n: number
    readonly processes: number
    readonly concurrency: number
    readonly timeoutMs: number
    /** Reads the database server's cumulative CPU ms (see `servercpu.ts`). */
    readonly serverCpu?: (() => number) | undefined
  }
): Promise<DrainResult> =>
  withOwner(ctx, driver, async (owner, spawn) => {
    const { n, concurrency } = options
    const enqueueMs = await owner.call<number>({ cmd: "enqueueBulk", n })
    const workers = options.processes === 0 ? [owner] : await spawn(options.processes)
    const t0 = now()
    const server0 = options.serverCpu?.() ?? Number.NaN
    await Promise.all(workers.map((w) => w.call({ cmd: "startWorker", n, concurrency })))
    const done = await awaitDrained(owner, workers, n, options.timeoutMs)
    const drainMs = done ? now() - t0 : Number.NaN
    const serverCpuMs = (options.serverCpu?.() ?? Number.NaN) - server0
    const reports = await Promise.all(workers.map((w) => w.call<WorkerReport>({ cmd: "stopWorker" })))
    const cpuMs = reports.reduce((sum, r) => sum + (r.cpuMs ?? Number.NaN), 0)
    const ran = reports.map((r) => r.counts.reduce((sum, c) => sum + (c > 0 ? 1 : 0), 0))
    const total = ran.reduce((sum, c) => sum + c, 0)
    const busiestShare = Math.max(...ran) / Math.max(1, total)
    return { enqueueMs, drainMs, n, cpuMs, busiestShare, serverCpuMs, ...integrity(reports, n) }
  })

/**
 * With an idle worker running, enqueue `warmup + n` jobs one at a time;
 * latency is enqueue call to handler start, over the last `n`. Paced at
 * `perSecond`, or `serial`: each job is enqueued only once the previous one
 * has started (and the worker has reported it, every 10 ms), so the worker
 * is idle whenever a job arrives (graphile-worker's `latencyTest` method).
 */
export const latency = (
  ctx: Context,
  driver: DriverName,
  options: {
    readonly n: number
    readonly warmup: number
    readonly perSecond: number
    readonly serial?: boolean
    readonly concurrency: number
    readonly sameProcess: boolean
  }
): Promise<LatencyResult> =>
  withOwner(ctx, driver, async (owner, spawn) => {
    const total = options.warmup + options.n
    const [worker] = options.sameProcess ? [owner] : await spawn(1)
    // Enqueue times are read on the owner's clock, start times on the worker's.
    const skew = options.sameProcess ? 0 : (await clockOffset(worker!)) - (await clockOffset(owner))
    if (Math.abs(skew) >= 0.5)
      console.error(`    (worker clock ${skew.toFixed(2)} ms off the producer's; corrected)`)
    await worker!.call({ cmd: "startWorker", n: total, concurrency: options.concurrency })
    await sleep(1_000)
    const calls: Array<number> = []
    if (options.serial) {
      for (let i = 0; i < total; i++) {
        const callMs = await owner.call<number>({ cmd: "produceOne", index: i })
        if (i >= options.warmup) calls.push(callMs)
        if (!(await until(() => worker!.progress() >= i + 1, 10_000, 1))) break
      }
    } else {
      await owner.call({ cmd: "produce", n: total, perSecond: options.perSecond })
    }
    await whileAdvancing(() => worker!.progress(), total, 10_000)
    const report = await worker!.call<WorkerReport>({ cmd: "stopWorker" })
    const measured = report.latencies
      .slice(options.warmup)
      .filter(Number.isFinite)
      .map((x) => x - skew)
    return {
      mean: measured.reduce((sum, x) => sum + x, 0) / measured.length,
      p50: percentile(measured, 50),
      p95: percentile(measured, 95),
      p99: percentile(measured, 99),
      max: percentile(measured, 100),
      samples: measured.length,
      enqueueCallP50: calls.length === 0 ? Number.NaN : percentile(calls, 50),
      ...integrity([report], total, options.warmup)
    }
  })

/** Run a baseline once in a fresh child. */
export const baseline = async (
  ctx: Context,
  driver: DriverName,
  args: Record<string, number>
): Promise<RateResult> => {
  const child = await start(ctx.entry, ctx.spec(driver))
  try {
    return await child.call<RateResult>({ cmd: "run", args })
  } finally {
    await child.close()
  }
}

/**
 * With `waiting` jobs in the queue, time a fresh worker until `measure` of
 * them are handled and committed.
 */
export const backlog = (
  ctx: Context,
  driver: DriverName,
  options: { readonly waiting: number; readonly measure: number; readonly concurrency: number }
): Promise<RateResult & Integrity> =>
  withOwner(ctx, driver, async (owner, spawn) => {
    await owner.call({ cmd: "fill", n: options.waiting }, 600_000)
    const [worker] = await spawn(1)
    const t0 = now()
    await worker!.call({ cmd: "startWorker", n: options.waiting, concurrency: options.concurrency })
    const done = await awaitDrained(owner, [worker!], options.measure, 120_000)
    const ms = done ? now() - t0 : Number.NaN
    const report = await worker!.call<WorkerReport>({ cmd: "stopWorker" })
    let duplicates = 0
    for (const c of report.counts) if (c > 1) duplicates += c - 1
    return { ms, rows: options.measure, duplicates, lost: 0 }
  })
