/**
 * `npm run bench:flow`: the flow-control figures of issue 14, measured
 * through the real runner in fresh worker processes, side by side in one
 * run, on PostgreSQL and SQLite (and the memory store on request).
 *
 *   npm run bench:flow [-- --rounds 3] [--engines pg,sqlite,memory] [--only drain,places,fair,rate]
 *                      [--quick] [--no-write] [--variants keyed,global50] [--base <dir>]
 *
 * `--variants` keeps some drain variants (`keyed`, `perPartition2`,
 * `global50`, `global2000`, `plain`). `--base <dir>` (a checkout of another commit, with
 * `node_modules` and `bench/node_modules` linked in) also runs every drain
 * variant on the library bundled from there, interleaved with this
 * checkout's in every round, so the library before and after a change is
 * measured side by side (rows marked "(base)", ratios paired within each
 * side; `--no-write` is implied).
 *
 * 1. Drain: 20,000 no-op jobs over 1,000 partition keys (`p<i % 1000>`),
 *    two worker processes at concurrency 50, for a kind with
 *    `perPartition: 2`, one with `global: 50`, one with `global: 2000` (more
 *    than the two runners ever hold, so it shows what the limit's machinery
 *    costs when it does not bind; not a target), one with keys and no limits
 *    (the reference), and one without keys or limits. Target: `perPartition:
 *    2` and `global: 50` ≥ 0.8× the reference, paired round by round.
 * 1b. Places: the same drain (5,000 jobs) of a kind with `global: 50` whose
 *    handler takes 10 ms: drain ÷ the limit's ceiling (50 / 10 ms).
 * 2. Fairness: key A has a 50,000-job backlog; once 1,000 of A's jobs have
 *    completed, key B enqueues 100 jobs one at a time (100/s). B's wait from
 *    enqueue to handler start, p50/p99, with keys (fair claiming), with keys
 *    and the runner at `prefetch: 0` (not a default: it shows what the
 *    buffer adds), and the same jobs without keys.
 * 3. Rate limit: a kind with `rateLimit: { limit: 100, per: "1 second" }`,
 *    a 6,000-job backlog, two worker processes for 30 s. The most claims in
 *    any 1 s window ÷ 100 (must never exceed 1.0), the mean claims per
 *    1 s ÷ 100, and the same for handler starts as the workers see them;
 *    with the runners at the default prefetch and at `prefetch: 0`.
 *
 * Every measurement runs in fresh processes on a fresh PostgreSQL schema or
 * SQLite file, dropped afterwards. Rounds alternate the variants' order.
 * Prints the Markdown section, then one JSON summary as the last line, and
 * writes the "Flow control" section of BENCHMARKS.md (which
 * `npm run bench` keeps). Method: docs/benchmarks.md, "Flow control".
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { vacuumCatalogs } from "./lib/catalogs.js"
import { databaseUrl, machine, option, redisUrl, versions } from "./lib/env.js"
import {
  ask,
  bundleFlowChild,
  clockOffset,
  type FlowKind,
  type FlowReport,
  type FlowSample,
  maxInWindow,
  slowJobMs,
  startFlow
} from "./lib/flow.js"
import type { Child } from "./lib/proc.js"
import { type DriverName, now } from "./lib/protocol.js"
import { evaluate, type Target, targetJson, targetsTable } from "./lib/report.js"
import { Results } from "./lib/results.js"
import { serverCpuReader } from "./lib/servercpu.js"
import { percentile, type Summary } from "./lib/stats.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)

const flag = (name: string) => process.argv.includes(`--${name}`)

type Engine = "pg" | "sqlite" | "memory"
const engineNames: Record<Engine, string> = { pg: "PostgreSQL", sqlite: "SQLite", memory: "memory" }
const drivers: Record<Engine, DriverName> = {
  pg: "nightshift-pg",
  sqlite: "nightshift-sqlite",
  memory: "nightshift-memory"
}

const quick = flag("quick")
const baseDir = option("base")
const settings = {
  rounds: Number(option("rounds") ?? (quick ? 1 : 3)),
  engines: (option("engines") ?? "pg,sqlite").split(",") as Array<Engine>,
  only: option("only")?.split(","),
  drain: {
    jobs: quick ? 2_000 : 20_000,
    partitions: 1_000,
    /** Worker processes and concurrency each: 100 slots, so `global: 50` binds. Memory: one process at 100. */
    processes: 2,
    concurrency: 50,
    timeoutMs: 180_000
  },
  fair: {
    backlog: quick ? 5_000 : 50_000,
    /** A's jobs the worker has started before B's first enqueue. */
    warm: quick ? 200 : 1_000,
    bJobs: 100,
    bPerSecond: 100,
    concurrency: 10,
    timeoutMs: 180_000
  },
  rate: {
    backlog: quick ? 1_500 : 6_000,
    seconds: quick ? 5 : 30,
    limit: 100,
    windowMs: 1_000,
    processes: 2,
    concurrency: 10
  },
  /** `global: 50` with jobs that take `slowJobMs`: how near the limit's ceiling the places stay busy. */
  places: {
    jobs: quick ? 1_000 : 5_000
  },
  /** How often the owner process samples the running jobs (`JobStore.flowState`) during a drain. */
  sampleEveryMs: 50
}

for (const e of settings.engines)
  if (!(e in drivers)) throw new Error(`--engines: unknown engine ${e} (pg, sqlite, memory)`)

const enabled = (scenario: string) => settings.only === undefined || settings.only.includes(scenario)

// Catalogs vacuumed before each measurement on a server without autovacuum (see `vacuumCatalogs`).
const results = new Results(() => vacuumCatalogs(databaseUrl()))
const tmpDir = mkdtempSync(join(tmpdir(), "nightshift-bench-flow-"))
const runId = Date.now().toString(36)
let sequence = 0
let entry = ""
let readServerCpu: (() => number) | undefined
let baseEntry = ""

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const until = async (test: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5) => {
  const deadline = now() + timeoutMs
  while (!(await test())) {
    if (now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}

/** Run `body` with an owner child that set up a fresh namespace; `spawn` adds worker processes (memory: the owner itself). */
const withOwner = async <A>(
  engine: Engine,
  body: (owner: Child, spawn: (k: number) => Promise<Array<Child>>) => Promise<A>,
  childEntry: string = entry
): Promise<A> => {
  const spec = {
    driver: drivers[engine],
    namespace: `nsflow_${runId}_${sequence++}`,
    databaseUrl: databaseUrl(),
    redisUrl: redisUrl(),
    tmpDir
  }
  const owner = await startFlow(childEntry, spec)
  const others: Array<Child> = []
  try {
    await ask(owner, { cmd: "setup" })
    return await body(owner, async (k) => {
      if (engine === "memory") return [owner]
      const children = await Promise.all(Array.from({ length: k }, () => startFlow(childEntry, spec)))
      others.push(...children)
      return children
    })
  } finally {
    await Promise.allSettled(others.map((c) => c.close()))
    await ask(owner, { cmd: "teardown" }, 60_000).catch((e) => console.error(`teardown failed: ${e}`))
    await owner.close()
  }
}

const duplicatesOf = (reports: ReadonlyArray<FlowReport>, from: number, to: number) => {
  let duplicates = 0
  let lost = 0
  for (let i = from; i < to; i++) {
    let c = 0
    for (const r of reports) c += r.counts[i] ?? 0
    if (c === 0) lost++
    else duplicates += c - 1
  }
  return { duplicates, lost }
}

const measure = results.measure.bind(results)

// ---------------------------------------------------------------------------------------------
// 1. Drain

type DrainVariant = "keyed" | "perPartition2" | "global50" | "global2000" | "plain"
const allDrainVariants: ReadonlyArray<DrainVariant> = [
  "keyed",
  "perPartition2",
  "global50",
  "global2000",
  "plain"
]
const drainVariants: ReadonlyArray<DrainVariant> = allDrainVariants.filter(
  (v) => option("variants")?.split(",").includes(v) ?? true
)
/** A drain contestant: a variant, on this checkout's library or on `--base`'s. */
type DrainContestant = DrainVariant | `${DrainVariant}@base`
const drainContestants: ReadonlyArray<DrainContestant> = drainVariants.flatMap((v) =>
  baseDir === undefined ? [v] : [v, `${v}@base` as const]
)
const variantOf = (c: DrainContestant) => c.replace("@base", "") as DrainVariant
const entryOf = (c: DrainContestant) => (c.endsWith("@base") ? baseEntry : entry)
const drainLabels: Record<DrainVariant, string> = {
  keyed: "keys, no limits (reference)",
  perPartition2: "keys, `perPartition: 2`",
  global50: "keys, `global: 50`",
  global2000: "keys, `global: 2000` (above what the runners hold)",
  plain: "no keys, no limits"
}

const drainOnce = (engine: Engine, kind: FlowKind, childEntry: string, n = settings.drain.jobs) =>
  withOwner(
    engine,
    async (owner, spawn) => {
      const { processes } = settings.drain
      const concurrency =
        engine === "memory" ? settings.drain.concurrency * processes : settings.drain.concurrency
      const enqueueMs = await ask<number>(
        owner,
        { cmd: "enqueue", kind, from: 0, n, tenant: "mod1000" },
        600_000
      )
      const workers = await spawn(processes)
      await ask(owner, { cmd: "startSampler", everyMs: settings.sampleEveryMs })
      const server0 = engine === "pg" ? readServerCpu?.() : undefined
      const t0 = now()
      await Promise.all(workers.map((w) => ask(w, { cmd: "startWorker", kind, concurrency, n })))
      const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
      const done =
        (await until(() => handled() >= n, settings.drain.timeoutMs)) &&
        (await until(async () => (await ask<number>(owner, { cmd: "committed" })) >= n, 30_000))
      const drainMs = done ? now() - t0 : Number.NaN
      const serverMs = server0 === undefined ? Number.NaN : readServerCpu!() - server0
      const sample = await ask<FlowSample>(owner, { cmd: "stopSampler" })
      const reports = await Promise.all(workers.map((w) => ask<FlowReport>(w, { cmd: "stopWorker" })))
      const cpuMs = reports.reduce((sum, r) => sum + r.cpuMs, 0)
      return {
        values: {
          enqueue: (n / enqueueMs) * 1000,
          drain: (n / drainMs) * 1000,
          // Too few samples (a drain in the sampler's own process can starve it) say nothing.
          maxRunning: sample.samples >= 5 ? sample.maxRunning : Number.NaN,
          maxPerPartition: sample.samples >= 5 ? sample.maxPerPartition : Number.NaN,
          samples: sample.samples,
          cpuUsPerJob: (cpuMs * 1000) / n,
          // The database server's CPU from /proc (every backend's: other load on it counts too).
          serverCpuUsPerJob: (serverMs * 1000) / n
        },
        integrity: duplicatesOf(reports, 0, n)
      }
    },
    childEntry
  )

const drainRound = async (
  engine: Engine,
  round: number,
  order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>
) => {
  if (!enabled("drain")) return
  for (const c of order(drainContestants))
    await measure(`drain:${engine}`, c, round, () => drainOnce(engine, variantOf(c), entryOf(c)))
}

// ---------------------------------------------------------------------------------------------
// 1b. Places: `global: 50` with jobs that take time

/** The most a limit of 50 places can start with jobs of `slowJobMs`: 50 / 10 ms = 5,000 jobs/s. */
const placesCeiling = (50 * 1000) / slowJobMs

const placesRound = async (engine: Engine, round: number) => {
  if (!enabled("places")) return
  await measure(`places:${engine}`, "global50slow", round, async () => {
    const run = await drainOnce(engine, "global50slow", entry, settings.places.jobs)
    return { ...run, values: { ...run.values, busy: run.values.drain / placesCeiling } }
  })
}

// ---------------------------------------------------------------------------------------------
// 2. Fairness

type FairVariant = "keyed" | "keyedNoPrefetch" | "plain"
const fairVariants: ReadonlyArray<FairVariant> = ["keyed", "keyedNoPrefetch", "plain"]
const fairLabels: Record<FairVariant, string> = {
  keyed: "keys A and B (fair claiming)",
  keyedNoPrefetch: "keys A and B, the runner at `prefetch: 0` (not a default)",
  plain: "the same jobs without keys"
}

const fairOnce = (engine: Engine, kind: FlowKind, prefetch: number | undefined) =>
  withOwner(engine, async (owner, spawn) => {
    const { backlog, bJobs, warm, concurrency } = settings.fair
    const total = backlog + bJobs
    await ask(owner, { cmd: "enqueue", kind, from: 0, n: backlog, tenant: "A" }, 600_000)
    const [worker] = await spawn(1)
    // Enqueue times are read on the owner's clock, start times on the worker's.
    const skew = worker === owner ? 0 : (await clockOffset(worker!)) - (await clockOffset(owner))
    await ask(worker!, {
      cmd: "startWorker",
      kind,
      concurrency,
      n: total,
      ...(prefetch === undefined ? {} : { prefetch })
    })
    // A's progress is read from the store by the producer: a worker draining a backlog on an
    // embedded store (SQLite) answers its IPC channel only once the backlog is gone.
    const completed = () => ask<number>(owner, { cmd: "committed" })
    if (!(await until(async () => (await completed()) >= warm, 60_000, 10)))
      throw new Error("the worker did not start A")
    // With the worker in the producer's process (memory), B cannot arrive while A drains.
    if ((await completed()) >= backlog) throw new Error("A's backlog was drained before B's first enqueue")
    await ask(owner, {
      cmd: "produce",
      kind,
      from: backlog,
      n: bJobs,
      perSecond: settings.fair.bPerSecond,
      tenant: "B"
    })
    await until(
      async () => (await ask<number>(worker!, { cmd: "started", from: backlog, to: total })) >= bJobs,
      settings.fair.timeoutMs,
      20
    )
    const report = await ask<FlowReport>(worker!, { cmd: "stopWorker" })
    const waits: Array<number> = []
    let firstEnqueue = Number.POSITIVE_INFINITY
    let lastStart = 0
    for (let i = backlog; i < total; i++) {
      if ((report.counts[i] ?? 0) === 0) continue
      waits.push(report.starts[i]! - report.enqueued[i]! - skew)
      firstEnqueue = Math.min(firstEnqueue, report.enqueued[i]! + skew)
      lastStart = Math.max(lastStart, report.starts[i]!)
    }
    // A's jobs started from B's first enqueue to B's last start (worker clock): what B waited behind.
    let aMeanwhile = 0
    for (let i = 0; i < backlog; i++) {
      const t = report.starts[i]!
      if ((report.counts[i] ?? 0) > 0 && t >= firstEnqueue && t <= lastStart) aMeanwhile++
    }
    const b = duplicatesOf([report], backlog, total)
    const all = duplicatesOf([report], 0, total)
    return {
      values: {
        p50: percentile(waits, 50),
        p99: percentile(waits, 99),
        max: percentile(waits, 100),
        aMeanwhile
      },
      integrity: { duplicates: all.duplicates, lost: b.lost }
    }
  })

const fairRound = async (
  engine: Engine,
  round: number,
  order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>
) => {
  if (!enabled("fair")) return
  for (const variant of order(fairVariants))
    await measure(`fair:${engine}`, variant, round, () =>
      variant === "keyedNoPrefetch" ? fairOnce(engine, "keyed", 0) : fairOnce(engine, variant, undefined)
    )
}

// ---------------------------------------------------------------------------------------------
// 3. Rate limit accuracy

type RateVariant = "rate100" | "rate100NoPrefetch"
const rateVariants: ReadonlyArray<RateVariant> = ["rate100", "rate100NoPrefetch"]
const rateLabels: Record<RateVariant, string> = {
  rate100: "default prefetch",
  rate100NoPrefetch: "`prefetch: 0`"
}

const rateOnce = (engine: Engine, prefetch: number | undefined) =>
  withOwner(engine, async (owner, spawn) => {
    const { backlog, seconds, limit, windowMs, processes, concurrency } = settings.rate
    await ask(owner, { cmd: "enqueue", kind: "rate100", from: 0, n: backlog, tenant: "A" }, 600_000)
    const workers = await spawn(processes)
    const offsets = await Promise.all(workers.map((w) => clockOffset(w)))
    await Promise.all(
      workers.map((w) =>
        ask(w, {
          cmd: "startWorker",
          kind: "rate100",
          concurrency,
          n: backlog,
          ...(prefetch === undefined ? {} : { prefetch })
        })
      )
    )
    const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
    if (!(await until(() => handled() >= 1, 60_000))) throw new Error("no job started")
    await sleep(seconds * 1000 + 500)
    const reports = await Promise.all(workers.map((w) => ask<FlowReport>(w, { cmd: "stopWorker" })))
    const claimed = await ask<Array<[number, number]>>(owner, { cmd: "claimTimes", kind: "rate100" }, 120_000)
    const claims = claimed.map(([, t]) => t)
    const first = Math.min(...claims)
    const inSpan = claims.filter((t) => t < first + seconds * 1000).length
    // Handler starts, on the harness's clock (first start of each index; indexes are unique across workers).
    const startOf = new Map<number, number>()
    for (const [k, r] of reports.entries())
      for (const [i, t] of r.starts.entries())
        if ((r.counts[i] ?? 0) > 0 && !startOf.has(i)) startOf.set(i, t - offsets[k]!)
    const starts = [...startOf.values()]
    // Claim to handler start: the store's clock (the database server's, or the claiming process's
    // for SQLite) against the harness's, all on this machine.
    const lags = claimed.flatMap(([i, t]) => (startOf.has(i) ? [startOf.get(i)! - t] : []))
    const seen = duplicatesOf(reports, 0, backlog)
    return {
      values: {
        maxClaims: maxInWindow(claims, windowMs) / limit,
        meanClaims: inSpan / (seconds * (1000 / windowMs)) / limit,
        maxHandlerStarts: maxInWindow(starts, windowMs) / limit,
        lagP50: percentile(lags, 50),
        lagP99: percentile(lags, 99),
        claims: claims.length
      },
      // Not every job is meant to run within the 30 s: only duplicates count.
      integrity: { duplicates: seen.duplicates, lost: 0 }
    }
  })

const rateRound = async (
  engine: Engine,
  round: number,
  order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>
) => {
  if (!enabled("rate")) return
  for (const variant of order(rateVariants))
    await measure(`rate:${engine}`, variant, round, () =>
      rateOnce(engine, variant === "rate100NoPrefetch" ? 0 : undefined)
    )
}

// ---------------------------------------------------------------------------------------------
// Report

const targets = (engine: Engine): ReadonlyArray<Target> => [
  {
    name: "drain, `perPartition: 2` ÷ keys without limits",
    a: { workload: `drain:${engine}`, contestant: "perPartition2", key: "drain" },
    b: { workload: `drain:${engine}`, contestant: "keyed", key: "drain" },
    goal: 0.8
  },
  {
    name: "drain, `global: 50` ÷ keys without limits",
    a: { workload: `drain:${engine}`, contestant: "global50", key: "drain" },
    b: { workload: `drain:${engine}`, contestant: "keyed", key: "drain" },
    goal: 0.8
  },
  {
    name: "rate limit, most claims in any 1 s ÷ 100",
    a: { workload: `rate:${engine}`, contestant: "rate100", key: "maxClaims" },
    goal: 1,
    atMost: true
  },
  {
    name: "rate limit, runners at `prefetch: 0`, most claims in any 1 s ÷ 100",
    a: { workload: `rate:${engine}`, contestant: "rate100NoPrefetch", key: "maxClaims" },
    goal: 1,
    atMost: true
  }
]

const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const fixed = (digits: number) => (x: number) => (Number.isFinite(x) ? x.toFixed(digits) : "–")
const cell = (s: Summary, f: (x: number) => string) =>
  s.n === 0 ? "–" : s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`)
  ].join("\n")

const faults = (workload: string, contestant: string) => {
  const f = results.faults(workload, contestant)
  return `${f.duplicates} / ${f.lost}${f.errors.length > 0 ? `, ${f.errors.length} failed run(s): ${f.errors[0]}` : ""}`
}

const measured = (workload: string) => results.contestants(workload).length > 0

const drainTable = (engine: Engine) => {
  const w = `drain:${engine}`
  return table(
    [
      "variant",
      "drain jobs/s",
      "÷ keys without limits (paired)",
      "most running (sampled)",
      "most running with one key (sampled)",
      "worker CPU µs/job",
      "database server CPU µs/job",
      "duplicates / lost"
    ],
    drainContestants
      .filter((c) => results.contestants(w).includes(c))
      .map((c) => {
        const v = variantOf(c)
        const s = (key: string) => results.summary(w, c, key)
        const reference = c.endsWith("@base") ? "keyed@base" : "keyed"
        const ratio = results.ratio(
          { workload: w, contestant: c, key: "drain" },
          { workload: w, contestant: reference, key: "drain" }
        )
        return [
          `${drainLabels[v]}${c.endsWith("@base") ? " (base)" : ""}`,
          cell(s("drain"), int),
          v === "keyed" ? "1" : cell(ratio, fixed(2)),
          cell(s("maxRunning"), int),
          v === "plain" ? "–" : cell(s("maxPerPartition"), int),
          cell(s("cpuUsPerJob"), int),
          cell(s("serverCpuUsPerJob"), int),
          faults(w, c)
        ]
      })
  )
}

const placesTable = (engine: Engine) => {
  const s = (key: string) => results.summary(`places:${engine}`, "global50slow", key)
  return table(
    [
      "drain jobs/s",
      `÷ the limit's ceiling (50 places / ${slowJobMs} ms = ${k(placesCeiling)} jobs/s)`,
      "most running (sampled)",
      "worker CPU µs/job",
      "database server CPU µs/job",
      "duplicates / lost"
    ],
    [
      [
        cell(s("drain"), int),
        cell(s("busy"), fixed(2)),
        cell(s("maxRunning"), int),
        cell(s("cpuUsPerJob"), int),
        cell(s("serverCpuUsPerJob"), int),
        faults(`places:${engine}`, "global50slow")
      ]
    ]
  )
}

/** One row per variant measured in `workload`: its label, then `cells` from its summaries. */
const variantRows = <V extends string>(
  workload: string,
  variants: ReadonlyArray<V>,
  labels: Record<V, string>,
  cells: (s: (key: string) => ReturnType<typeof results.summary>, variant: V) => ReadonlyArray<string>
): Array<Array<string>> =>
  variants
    .filter((v) => results.contestants(workload).includes(v))
    .map((v) => [labels[v], ...cells((key) => results.summary(workload, v, key), v)])

const fairTable = (engine: Engine) => {
  const w = `fair:${engine}`
  return table(
    [
      "claiming",
      "B wait p50 ms",
      "p99 ms",
      "max ms",
      "A's jobs started while B waited",
      "duplicates / B lost"
    ],
    variantRows(w, fairVariants, fairLabels, (s, v) => [
      cell(s("p50"), fixed(1)),
      cell(s("p99"), fixed(1)),
      cell(s("max"), fixed(1)),
      cell(s("aMeanwhile"), int),
      faults(w, v)
    ])
  )
}

const rateTable = (engine: Engine) => {
  const w = `rate:${engine}`
  return table(
    [
      "runners",
      "most claims in any 1 s ÷ 100",
      "mean claims per 1 s ÷ 100",
      "most handler starts in any 1 s ÷ 100",
      "claim → handler start p50 / p99 ms",
      "claims in the run",
      "duplicates"
    ],
    variantRows(w, rateVariants, rateLabels, (s, v) => [
      cell(s("maxClaims"), fixed(2)),
      cell(s("meanClaims"), fixed(3)),
      cell(s("maxHandlerStarts"), fixed(2)),
      `${cell(s("lagP50"), fixed(1))} / ${cell(s("lagP99"), fixed(1))}`,
      cell(s("claims"), int),
      String(results.faults(w, v).duplicates)
    ])
  )
}

const k = (n: number) => n.toLocaleString("en-US")

/** The commit measured: HEAD, and whether src/ differs from it. */
const commit = () => {
  const git = (args: ReadonlyArray<string>) => {
    try {
      return execFileSync("git", args, {
        cwd: rootDir,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"]
      }).trim()
    } catch {
      return ""
    }
  }
  const head = git(["rev-parse", "--short", "HEAD"])
  if (head === "") return "an unknown commit"
  return git(["status", "--porcelain", "--", "src"]) === ""
    ? head
    : `${head} with uncommitted changes in src/`
}

/** One store's block of the section: its own date, rounds, targets and tables. */
const engineBlock = (
  engine: Engine,
  run: { readonly startedAt: Date; readonly minutes: number; readonly load: string; readonly commit: string }
) => {
  const { drain, fair, rate } = settings
  const drainSlots =
    engine === "memory"
      ? `one process at concurrency ${drain.processes * drain.concurrency} (the memory store cannot be shared)`
      : `${drain.processes} worker processes at concurrency ${drain.concurrency}`
  const workers = (n: number, c: number) =>
    engine === "memory"
      ? `the producer's own process at concurrency ${c}`
      : `${n} worker process${n > 1 ? "es" : ""} at concurrency ${c}`
  const parts = [
    `### ${engineNames[engine]}`,
    `\`npm run bench:flow\`, ${run.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, at ${run.commit}: ${settings.rounds} round(s), ${run.minutes.toFixed(1)} minutes for the whole run, load average ${run.load}.`,
    targetsTable(
      targets(engine)
        .filter((t) => measured(t.a.workload))
        .map((t) => evaluate(results, t))
    )
  ]
  if (measured(`drain:${engine}`))
    parts.push(
      `**Drain**: ${k(drain.jobs)} no-op jobs over ${k(drain.partitions)} partition keys, ${drainSlots}.\n\n${drainTable(engine)}`
    )
  if (measured(`places:${engine}`))
    parts.push(
      `**Places**: \`global: 50\` with jobs that take ${slowJobMs} ms (a sleep in the handler), ${k(settings.places.jobs)} jobs over ${k(drain.partitions)} partition keys, ${drainSlots}: how near the limit's own ceiling the drain runs, which the no-op drain above cannot show (there every place turns over once per settle-and-claim round trip, so the round trip sets the rate).\n\n${placesTable(engine)}`
    )
  if (measured(`fair:${engine}`))
    parts.push(
      `**Fairness**: B's ${fair.bJobs} jobs (${fair.bPerSecond}/s, one at a time) behind A's backlog of ${k(fair.backlog)}, ${workers(1, fair.concurrency)}.\n\n${fairTable(engine)}`
    )
  if (measured(`rate:${engine}`))
    parts.push(
      `**Rate limit accuracy**: \`rateLimit: { limit: ${rate.limit}, per: "1 second" }\`, a backlog of ${k(rate.backlog)}, ${workers(rate.processes, rate.concurrency)}, ${rate.seconds} s.\n\n${rateTable(engine)}`
    )
  return parts.join("\n\n")
}

const intro = () =>
  [
    "## Flow control",
    "Written by `npm run bench:flow` (bench/flowcontrol.ts), one block per store; a run rewrites the blocks of the stores it measured and keeps the others, and `npm run bench` keeps this section as it is. Method and analysis: [docs/benchmarks.md](docs/benchmarks.md#flow-control).",
    `Every measurement is a producer process that sets up a fresh schema or file and enqueues, and fresh worker processes running \`JobRunner.layer\` with every option at its default apart from \`concurrency\` (so \`prefetch\` is \`"auto"\`), serving one job kind. Rounds alternate the variants' order; ratios are paired round by round; cells are medians with the min–max over rounds. Drain: timed from starting the workers until every completion is committed; "most running" is sampled every ${settings.sampleEveryMs} ms from the producer process through \`JobStore.flowState\` (claimed jobs, counting those a runner holds ahead). Fairness: B's wait runs from just before its enqueue call to its handler's start, the two processes' clocks corrected; B starts once ${k(settings.fair.warm)} of A's jobs have completed. Rate: claims are the jobs' \`attemptedAt\` on the store's clock (what the limit counts), a window is any \`[t, t + 1 s)\`, and the mean is the claims in the ${settings.rate.seconds} s from the first claim ÷ ${settings.rate.seconds}; handler starts are read in the workers and lag their claims.`
  ].join("\n\n")

const order: ReadonlyArray<Engine> = ["pg", "sqlite", "memory"]

/**
 * Write the "Flow control" section of BENCHMARKS.md: this run's blocks, and
 * the blocks of stores this run did not measure as they were.
 */
const writeSection = (file: string, blocks: ReadonlyMap<Engine, string>) => {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n"
  const start = text.search(/^## Flow control\b.*$/m)
  const rest = start < 0 ? "" : text.slice(start + 1)
  const endAt = rest.search(/^## /m)
  const old = start < 0 ? "" : endAt < 0 ? text.slice(start) : text.slice(start, start + 1 + endAt)
  const kept = new Map<Engine, string>()
  for (const piece of old.split(/^(?=### )/m).slice(1)) {
    const engine = order.find((e) => piece.startsWith(`### ${engineNames[e]}\n`))
    if (engine !== undefined && !blocks.has(engine)) kept.set(engine, piece.trimEnd())
  }
  const section = [
    intro(),
    ...order.flatMap((e) => {
      const block = blocks.get(e) ?? kept.get(e)
      return block === undefined ? [] : [block]
    })
  ].join("\n\n")
  const before = start < 0 ? `${text.trimEnd()}\n\n` : text.slice(0, start)
  const after = start < 0 || endAt < 0 ? "" : `\n\n${text.slice(start + 1 + endAt).trimEnd()}`
  writeFileSync(file, `${before}${section}${after}\n`)
  return section
}

const main = async () => {
  const started = now()
  const startedAt = new Date()
  const measuredCommit = commit()
  const machineAtStart = machine()
  entry = bundleFlowChild(rootDir, benchDir)
  if (settings.engines.includes("pg")) readServerCpu = await serverCpuReader(databaseUrl())
  if (baseDir !== undefined) baseEntry = bundleFlowChild(baseDir, join(baseDir, "bench"))
  console.error(
    `bench:flow: ${settings.rounds} round(s) on ${settings.engines.join(", ")}; PostgreSQL ${databaseUrl()}; load average ${machineAtStart.loadAverage.join(" ")}`
  )
  for (let round = 1; round <= settings.rounds; round++) {
    const order = <A>(xs: ReadonlyArray<A>): ReadonlyArray<A> => (round % 2 === 1 ? xs : [...xs].reverse())
    for (const engine of order(settings.engines)) {
      await drainRound(engine, round, order)
      await placesRound(engine, round)
      await fairRound(engine, round, order)
      await rateRound(engine, round, order)
    }
  }
  rmSync(tmpDir, { recursive: true, force: true })

  const minutes = (now() - started) / 60_000
  const machineAtEnd = machine()
  const load = `${machineAtStart.loadAverage.join(" / ")} at the start, ${machineAtEnd.loadAverage.join(" / ")} at the end (${machineAtStart.cores} shared cores)`
  const blocks = new Map(
    settings.engines.map(
      (e) => [e, engineBlock(e, { startedAt, minutes, load, commit: measuredCommit })] as const
    )
  )
  const section =
    flag("no-write") || baseDir !== undefined
      ? [intro(), ...blocks.values()].join("\n\n")
      : writeSection(join(rootDir, "BENCHMARKS.md"), blocks)
  process.stdout.write(`${section}\n`)
  const summary = {
    date: startedAt.toISOString(),
    minutes: Math.round(minutes * 10) / 10,
    rounds: settings.rounds,
    engines: settings.engines,
    machine: { ...machineAtStart, loadAverageAtEnd: machineAtEnd.loadAverage },
    versions: versions(rootDir, benchDir),
    targets: settings.engines.flatMap((e) =>
      targets(e)
        .filter((t) => measured(t.a.workload))
        .map((t) => ({ engine: e, ...targetJson(evaluate(results, t)) }))
    ),
    samples: results.samples
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
