/**
 * `npm run bench:flow`: the flow-control figures of issue 14, measured
 * through the real runner in fresh worker processes, side by side in one
 * run, on PostgreSQL and SQLite (and the memory store on request).
 *
 *   npm run bench:flow [-- --rounds 3] [--engines pg,sqlite,memory] [--only drain,fair,rate]
 *                      [--quick] [--no-write]
 *
 * 1. Drain: 20,000 no-op jobs over 1,000 partition keys (`p<i % 1000>`),
 *    two worker processes at concurrency 50, for a kind with
 *    `perPartition: 2`, one with `global: 50`, one with keys and no limits
 *    (the reference), and one without keys or limits. Target: each limited
 *    drain ≥ 0.8× the reference, paired round by round.
 * 2. Fairness: key A has a 50,000-job backlog; once the worker has started
 *    A's jobs, key B enqueues 100 jobs one at a time (100/s). B's wait from
 *    enqueue to handler start, p50/p99, with keys (fair claiming) and the
 *    same jobs without keys.
 * 3. Rate limit: a kind with `rateLimit: { limit: 100, per: "1 second" }`,
 *    a 6,000-job backlog, two worker processes for 30 s. The most claims in
 *    any 1 s window ÷ 100 (must never exceed 1.0) and the mean claims per
 *    1 s ÷ 100.
 *
 * Every measurement runs in fresh processes on a fresh PostgreSQL schema or
 * SQLite file, dropped afterwards. Rounds alternate the variants' order.
 * Prints the Markdown section, then one JSON summary as the last line, and
 * writes the "Flow control" section of BENCHMARKS.md (which
 * `npm run bench` keeps). Method: docs/benchmarks.md, "Flow control".
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { databaseUrl, machine, redisUrl, versions } from "./lib/env.js"
import {
  ask,
  bundleFlowChild,
  clockOffset,
  type FlowKind,
  type FlowReport,
  type FlowSample,
  maxInWindow,
  startFlow
} from "./lib/flow.js"
import type { Child } from "./lib/proc.js"
import { type DriverName, now } from "./lib/protocol.js"
import { evaluate, type Target, targetJson, targetsTable } from "./lib/report.js"
import { Results } from "./lib/results.js"
import { percentile, type Summary } from "./lib/stats.js"
import type { Integrity } from "./lib/workloads.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)

const flag = (name: string) => process.argv.includes(`--${name}`)
const option = (name: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

type Engine = "pg" | "sqlite" | "memory"
const engineNames: Record<Engine, string> = { pg: "PostgreSQL", sqlite: "SQLite", memory: "memory" }
const drivers: Record<Engine, DriverName> = {
  pg: "nightshift-pg",
  sqlite: "nightshift-sqlite",
  memory: "nightshift-memory"
}

const quick = flag("quick")
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
  /** How often the owner process samples the running jobs (`JobStore.flowState`) during a drain. */
  sampleEveryMs: 25
}

for (const e of settings.engines)
  if (!(e in drivers)) throw new Error(`--engines: unknown engine ${e} (pg, sqlite, memory)`)

const enabled = (scenario: string) => settings.only === undefined || settings.only.includes(scenario)

const results = new Results()
const tmpDir = mkdtempSync(join(tmpdir(), "nightshift-bench-flow-"))
const runId = Date.now().toString(36)
let sequence = 0
let entry = ""

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const until = async (test: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5) => {
  const deadline = now() + timeoutMs
  while (!(await test())) {
    if (now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}

const firstLine = (e: unknown) =>
  String(e instanceof Error ? e.message : e)
    .split("\n")[0]!
    .slice(0, 300)

/** Run `body` with an owner child that set up a fresh namespace; `spawn` adds worker processes (memory: the owner itself). */
const withOwner = async <A>(
  engine: Engine,
  body: (owner: Child, spawn: (k: number) => Promise<Array<Child>>) => Promise<A>
): Promise<A> => {
  const spec = {
    driver: drivers[engine],
    namespace: `nsflow_${runId}_${sequence++}`,
    databaseUrl: databaseUrl(),
    redisUrl: redisUrl(),
    tmpDir
  }
  const owner = await startFlow(entry, spec)
  const others: Array<Child> = []
  try {
    await ask(owner, { cmd: "setup" })
    return await body(owner, async (k) => {
      if (engine === "memory") return [owner]
      const children = await Promise.all(Array.from({ length: k }, () => startFlow(entry, spec)))
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

const describe = (values: Record<string, number>, integrity: Integrity | undefined) =>
  [
    ...Object.entries(values).map(
      ([k, v]) => `${k} ${Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2)}`
    ),
    ...(integrity ? [`dup ${integrity.duplicates}`, `lost ${integrity.lost}`] : [])
  ].join(", ")

const measure = async (
  workload: string,
  contestant: string,
  round: number,
  body: () => Promise<{ values: Record<string, number>; integrity?: Integrity }>
) => {
  const t0 = now()
  try {
    const { values, integrity } = await body()
    results.add({ workload, contestant, round, values, integrity })
    console.error(`[round ${round}] ${workload} ${contestant}: ${describe(values, integrity)}`)
  } catch (error) {
    results.add({ workload, contestant, round, values: {}, error: firstLine(error) })
    console.error(`[round ${round}] ${workload} ${contestant}: FAILED ${firstLine(error)}`)
  }
  console.error(`    (${((now() - t0) / 1000).toFixed(1)} s)`)
}

// ---------------------------------------------------------------------------------------------
// 1. Drain

type DrainVariant = "keyed" | "perPartition2" | "global50" | "plain"
const drainVariants: ReadonlyArray<DrainVariant> = ["keyed", "perPartition2", "global50", "plain"]
const drainLabels: Record<DrainVariant, string> = {
  keyed: "keys, no limits (reference)",
  perPartition2: "keys, `perPartition: 2`",
  global50: "keys, `global: 50`",
  plain: "no keys, no limits"
}

const drainOnce = (engine: Engine, kind: FlowKind) =>
  withOwner(engine, async (owner, spawn) => {
    const { jobs: n, processes } = settings.drain
    const concurrency =
      engine === "memory" ? settings.drain.concurrency * processes : settings.drain.concurrency
    const enqueueMs = await ask<number>(
      owner,
      { cmd: "enqueue", kind, from: 0, n, tenant: "mod1000" },
      600_000
    )
    const workers = await spawn(processes)
    await ask(owner, { cmd: "startSampler", everyMs: settings.sampleEveryMs })
    const t0 = now()
    await Promise.all(workers.map((w) => ask(w, { cmd: "startWorker", kind, concurrency, n })))
    const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
    const done =
      (await until(() => handled() >= n, settings.drain.timeoutMs)) &&
      (await until(async () => (await ask<number>(owner, { cmd: "committed" })) >= n, 30_000))
    const drainMs = done ? now() - t0 : Number.NaN
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
        cpuUsPerJob: (cpuMs * 1000) / n
      },
      integrity: duplicatesOf(reports, 0, n)
    }
  })

const drainRound = async (
  engine: Engine,
  round: number,
  order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>
) => {
  if (!enabled("drain")) return
  for (const variant of order(drainVariants))
    await measure(`drain:${engine}`, variant, round, () => drainOnce(engine, variant))
}

// ---------------------------------------------------------------------------------------------
// 2. Fairness

type FairVariant = "keyed" | "plain"
const fairVariants: ReadonlyArray<FairVariant> = ["keyed", "plain"]
const fairLabels: Record<FairVariant, string> = {
  keyed: "keys A and B (fair claiming)",
  plain: "the same jobs without keys"
}

const fairOnce = (engine: Engine, kind: FlowKind) =>
  withOwner(engine, async (owner, spawn) => {
    const { backlog, bJobs, warm, concurrency } = settings.fair
    const total = backlog + bJobs
    await ask(owner, { cmd: "enqueue", kind, from: 0, n: backlog, tenant: "A" }, 600_000)
    const [worker] = await spawn(1)
    // Enqueue times are read on the owner's clock, start times on the worker's.
    const skew = worker === owner ? 0 : (await clockOffset(worker!)) - (await clockOffset(owner))
    await ask(worker!, { cmd: "startWorker", kind, concurrency, n: total })
    if (!(await until(() => worker!.progress() >= warm, 60_000)))
      throw new Error("the worker did not start A")
    const aBefore = worker!.progress()
    // In one process (memory), a drain can starve the IPC channel until it ends: B must arrive while A waits.
    if (aBefore >= backlog) throw new Error("A's backlog was drained before B's first enqueue")
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
    let lastStart = 0
    for (let i = backlog; i < total; i++) {
      if ((report.counts[i] ?? 0) === 0) continue
      waits.push(report.starts[i]! - report.enqueued[i]! - skew)
      lastStart = Math.max(lastStart, report.starts[i]!)
    }
    // A's jobs started before B's last start (after the warm-up): how far into A's backlog B waited.
    let aStarted = 0
    for (let i = 0; i < backlog; i++)
      if ((report.counts[i] ?? 0) > 0 && report.starts[i]! <= lastStart) aStarted++
    const b = duplicatesOf([report], backlog, total)
    const all = duplicatesOf([report], 0, total)
    return {
      values: {
        p50: percentile(waits, 50),
        p99: percentile(waits, 99),
        max: percentile(waits, 100),
        aMeanwhile: aStarted - aBefore
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
    await measure(`fair:${engine}`, variant, round, () => fairOnce(engine, variant))
}

// ---------------------------------------------------------------------------------------------
// 3. Rate limit accuracy

const rateOnce = (engine: Engine) =>
  withOwner(engine, async (owner, spawn) => {
    const { backlog, seconds, limit, windowMs, processes, concurrency } = settings.rate
    await ask(owner, { cmd: "enqueue", kind: "rate100", from: 0, n: backlog, tenant: "A" }, 600_000)
    const workers = await spawn(processes)
    const offsets = await Promise.all(workers.map((w) => clockOffset(w)))
    await Promise.all(
      workers.map((w) => ask(w, { cmd: "startWorker", kind: "rate100", concurrency, n: backlog }))
    )
    const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
    if (!(await until(() => handled() >= 1, 60_000))) throw new Error("no job started")
    await sleep(seconds * 1000 + 500)
    const reports = await Promise.all(workers.map((w) => ask<FlowReport>(w, { cmd: "stopWorker" })))
    const claims = await ask<Array<number>>(owner, { cmd: "claimTimes", kind: "rate100" }, 120_000)
    const first = Math.min(...claims)
    const inSpan = claims.filter((t) => t < first + seconds * 1000).length
    // Handler starts, on the harness's clock.
    const starts = reports.flatMap((r, k) =>
      r.starts.flatMap((t, i) => ((r.counts[i] ?? 0) > 0 ? [t - offsets[k]!] : []))
    )
    const seen = duplicatesOf(reports, 0, backlog)
    return {
      values: {
        maxClaims: maxInWindow(claims, windowMs) / limit,
        meanClaims: inSpan / (seconds * (1000 / windowMs)) / limit,
        maxHandlerStarts: maxInWindow(starts, windowMs) / limit,
        claims: claims.length
      },
      // Not every job is meant to run within the 30 s: only duplicates count.
      integrity: { duplicates: seen.duplicates, lost: 0 }
    }
  })

const rateRound = async (engine: Engine, round: number) => {
  if (!enabled("rate")) return
  await measure(`rate:${engine}`, "rate100", round, () => rateOnce(engine))
}

// ---------------------------------------------------------------------------------------------
// Report

const targets = (engine: Engine): ReadonlyArray<Target> => [
  {
    name: `${engineNames[engine]} · drain, \`perPartition: 2\` ÷ no limits`,
    a: { workload: `drain:${engine}`, contestant: "perPartition2", key: "drain" },
    b: { workload: `drain:${engine}`, contestant: "keyed", key: "drain" },
    goal: 0.8
  },
  {
    name: `${engineNames[engine]} · drain, \`global: 50\` ÷ no limits`,
    a: { workload: `drain:${engine}`, contestant: "global50", key: "drain" },
    b: { workload: `drain:${engine}`, contestant: "keyed", key: "drain" },
    goal: 0.8
  },
  {
    name: `${engineNames[engine]} · rate limit, most claims in any 1 s ÷ 100`,
    a: { workload: `rate:${engine}`, contestant: "rate100", key: "maxClaims" },
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

const measuredEngines = (scenario: string) =>
  settings.engines.filter((e) => results.contestants(`${scenario}:${e}`).length > 0)

const drainTable = () =>
  table(
    [
      "store",
      "variant",
      "drain jobs/s",
      "÷ keys, no limits (paired)",
      "most running (sampled)",
      "most running, one key (sampled)",
      "worker CPU µs/job",
      "duplicates / lost"
    ],
    measuredEngines("drain").flatMap((engine) =>
      drainVariants.map((v) => {
        const w = `drain:${engine}`
        const s = (key: string) => results.summary(w, v, key)
        const ratio = results.ratio(
          { workload: w, contestant: v, key: "drain" },
          { workload: w, contestant: "keyed", key: "drain" }
        )
        return [
          engineNames[engine],
          drainLabels[v],
          cell(s("drain"), int),
          v === "keyed" ? "1" : cell(ratio, fixed(2)),
          cell(s("maxRunning"), int),
          v === "plain" ? "–" : cell(s("maxPerPartition"), int),
          cell(s("cpuUsPerJob"), int),
          faults(w, v)
        ]
      })
    )
  )

const fairTable = () =>
  table(
    [
      "store",
      "claiming",
      "B wait p50 ms",
      "p99 ms",
      "max ms",
      "A jobs started while B waited",
      "duplicates / B lost"
    ],
    measuredEngines("fair").flatMap((engine) =>
      fairVariants.map((v) => {
        const s = (key: string) => results.summary(`fair:${engine}`, v, key)
        return [
          engineNames[engine],
          fairLabels[v],
          cell(s("p50"), fixed(1)),
          cell(s("p99"), fixed(1)),
          cell(s("max"), fixed(1)),
          cell(s("aMeanwhile"), int),
          faults(`fair:${engine}`, v)
        ]
      })
    )
  )

const rateTable = () =>
  table(
    [
      "store",
      "most claims in any 1 s ÷ 100",
      "mean claims per 1 s ÷ 100",
      "most handler starts in any 1 s ÷ 100",
      "claims",
      "duplicates"
    ],
    measuredEngines("rate").map((engine) => {
      const s = (key: string) => results.summary(`rate:${engine}`, "rate100", key)
      return [
        engineNames[engine],
        cell(s("maxClaims"), fixed(2)),
        cell(s("meanClaims"), fixed(3)),
        cell(s("maxHandlerStarts"), fixed(2)),
        cell(s("claims"), int),
        faults(`rate:${engine}`, "rate100").split(" / ")[0]!
      ]
    })
  )

const k = (n: number) => n.toLocaleString("en-US")

/** Replace the "Flow control" section of BENCHMARKS.md, or add it at the end. */
const writeSection = (file: string, section: string) => {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n"
  const start = text.search(/^## Flow control\b.*$/m)
  if (start < 0) {
    writeFileSync(file, `${text.trimEnd()}\n\n${section}\n`)
    return
  }
  const rest = text.slice(start + 1)
  const end = rest.search(/^## /m)
  const after = end < 0 ? "" : `\n\n${text.slice(start + 1 + end).trimEnd()}`
  writeFileSync(file, `${text.slice(0, start)}${section}${after}\n`)
}

const main = async () => {
  const started = now()
  const startedAt = new Date()
  const machineAtStart = machine()
  entry = bundleFlowChild(rootDir, benchDir)
  console.error(
    `bench:flow: ${settings.rounds} round(s) on ${settings.engines.join(", ")}; PostgreSQL ${databaseUrl()}; load average ${machineAtStart.loadAverage.join(" ")}`
  )
  for (let round = 1; round <= settings.rounds; round++) {
    const order = <A>(xs: ReadonlyArray<A>): ReadonlyArray<A> => (round % 2 === 1 ? xs : [...xs].reverse())
    for (const engine of order(settings.engines)) {
      await drainRound(engine, round, order)
      await fairRound(engine, round, order)
      await rateRound(engine, round)
    }
  }
  rmSync(tmpDir, { recursive: true, force: true })

  const outcomes = settings.engines.flatMap((e) =>
    targets(e)
      .filter((t) => results.contestants(t.a.workload).length > 0)
      .map((t) => evaluate(results, t))
  )
  const minutes = (now() - started) / 60_000
  const machineAtEnd = machine()
  const v = versions(rootDir, benchDir)
  const { drain, fair, rate } = settings
  const parts = [
    "## Flow control",
    `Latest \`npm run bench:flow\` (bench/flowcontrol.ts; \`npm run bench\` keeps this section as it is): ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, ${settings.rounds} round(s), ${minutes.toFixed(1)} minutes, on ${settings.engines.map((e) => engineNames[e]).join(" and ")}. ${machineAtStart.cores} shared cores, load average ${machineAtStart.loadAverage.join(" / ")} at the start, ${machineAtEnd.loadAverage.join(" / ")} at the end; Nightshift ${v.nightshift}, PostgreSQL ${v.postgresql}. Method: [docs/benchmarks.md](docs/benchmarks.md#flow-control).`,
    'Every run is a producer process that sets up a fresh schema or file and enqueues, and fresh worker processes running `JobRunner.layer` at its defaults apart from `concurrency` (so `prefetch` is `"auto"`). Rounds alternate the order of the variants; ratios are paired round by round; cells are medians with the min–max over rounds.',
    `### Targets (issue 14)\n\n${targetsTable(outcomes)}`,
    `### Drain: ${k(drain.jobs)} no-op jobs over ${k(drain.partitions)} partition keys\n\nKeys \`p<i % ${drain.partitions}>\`, interleaved in enqueue order; ${drain.processes} worker processes at concurrency ${drain.concurrency} (${drain.processes * drain.concurrency} slots, so \`global: 50\` binds; the memory store, which cannot be shared, runs one process at ${drain.processes * drain.concurrency}). Timed from starting the workers until every completion is committed. "Most running" is sampled every ${settings.sampleEveryMs} ms from the producer process through \`JobStore.flowState\` (jobs claimed, including those held ahead by prefetch).\n\n${drainTable()}`,
    `### Fairness: B's wait behind A's backlog of ${k(fair.backlog)}\n\nOne worker process at concurrency ${fair.concurrency}. Once it has started ${k(fair.warm)} of A's jobs, the producer enqueues B's ${fair.bJobs} jobs one at a time at ${fair.bPerSecond}/s. Wait: from just before B's enqueue call to its handler's start (clocks of the two processes corrected). The run stops once every B job has started.\n\n${fairTable()}`,
    `### Rate limit accuracy: \`rateLimit: { limit: ${rate.limit}, per: "1 second" }\`, ${rate.seconds} s\n\nA backlog of ${k(rate.backlog)} jobs, ${rate.processes} worker processes at concurrency ${rate.concurrency}, run for ${rate.seconds} s. Claims are the jobs' \`attemptedAt\` on the store's clock (what the limit counts); a window is any \`[t, t + 1 s)\`. The mean is the claims in the ${rate.seconds} s from the first claim ÷ ${rate.seconds}. Handler starts are read in the worker processes (clocks corrected) and lag their claims.\n\n${rateTable()}`
  ]
  const section = parts.join("\n\n")
  if (!flag("no-write")) writeSection(join(rootDir, "BENCHMARKS.md"), section)
  process.stdout.write(`${section}\n`)
  const summary = {
    date: startedAt.toISOString(),
    minutes: Math.round(minutes * 10) / 10,
    rounds: settings.rounds,
    engines: settings.engines,
    machine: { ...machineAtStart, loadAverageAtEnd: machineAtEnd.loadAverage },
    versions: v,
    targets: outcomes.map(targetJson),
    samples: results.samples
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
