/**
 * `npm run bench`: Nightshift side by side with graphile-worker, pg-boss and
 * BullMQ, plus raw baselines, on this machine, in one run.
 *
 *   npm run bench [-- --rounds 3] [--only W1,W1L,W3,W7] [--quick] [--no-write] [--skip-workers]
 *
 * Every measurement runs in fresh child processes on a fresh PostgreSQL
 * schema, Redis key prefix or SQLite file, dropped afterwards. Rounds
 * alternate the contestants' order; figures are medians with min–max, and
 * targets are ratios paired round by round. Prints the Markdown report, then
 * one JSON summary as the last line, and writes BENCHMARKS.md. The method is
 * described in docs/benchmarks.md.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { bundleChild, ensurePeers } from "./lib/build.js"
import { vacuumCatalogs } from "./lib/catalogs.js"
import { databaseUrl, machine, option, redisUrl, versions } from "./lib/env.js"
import type { DriverName } from "./lib/protocol.js"
import { now } from "./lib/protocol.js"
import {
  evaluate,
  labels,
  summaryJson,
  type Target,
  targetJson,
  targetsTable,
  workloadTable
} from "./lib/report.js"
import { Results } from "./lib/results.js"
import { pairedRatio, type Summary } from "./lib/stats.js"
import { runWorkers, type WorkersOutcome } from "./lib/workers.js"
import { backlog, baseline, type Context, drain, type Integrity, latency } from "./lib/workloads.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)

const flag = (name: string) => process.argv.includes(`--${name}`)

const quick = flag("quick")
const settings = {
  rounds: Number(option("rounds") ?? (quick ? 1 : 3)),
  only: option("only")?.split(","),
  /** W1/W2 jobs. */
  jobs: quick ? 2_000 : 20_000,
  /** W1/W2 jobs for Sidequest, which drains about 30 jobs/s here (20,000 would take over 10 minutes). */
  slowJobs: 2_000,
  /** W1L/W2L: the W1 and W2 drains of a backlog large enough that a worker's start and warm-up weigh little. */
  longJobs: quick ? 10_000 : 100_000,
  concurrency: 10,
  latencyJobs: quick ? 100 : 500,
  latencyWarmup: 20,
  latencyPerSecond: 100,
  /** W7 jobs, each enqueued once the previous one started. */
  serialJobs: quick ? 50 : 200,
  /** W7 jobs for the peers that find work by polling (plainjob's 1 s, Sidequest's 100 ms): 200 serial jobs would take plainjob over 3 minutes a round. */
  slowSerialJobs: quick ? 30 : 50,
  ceilingRows: { 1: quick ? 1_000 : 5_000, 50: quick ? 5_000 : 20_000 } as Record<number, number>,
  backlog: { small: 10_000, large: quick ? 100_000 : 1_000_000, measure: 5_000 },
  scaleJobs: quick ? 10_000 : 100_000,
  workersSeconds: quick ? 3 : 10,
  drainTimeoutMs: 180_000
}

const enabled = (workload: string) => settings.only === undefined || settings.only.includes(workload)

const drainers: ReadonlyArray<DriverName> = [
  "nightshift-pg",
  "nightshift-pg-prefetch",
  "nightshift-sqlite",
  "nightshift-memory",
  "graphile",
  "graphile-batched",
  "pg-boss",
  "bullmq",
  "plainjob",
  "sidequest"
]

/** W1L/W2L: Nightshift beside the peer of the W1 target. */
const longDrainers: ReadonlyArray<DriverName> = ["nightshift-pg", "graphile-batched"]

/** A line of the latency tables: a driver, and whether its producer and worker share one process. */
interface LatencyContestant {
  readonly name: string
  readonly driver: DriverName
  readonly sameProcess: boolean
}

/**
 * W3 and W7 run every drainer with the producer in one process and the
 * worker in another, except the memory store (it cannot be shared) and
 * Nightshift · SQLite, which is measured both ways: in one process (its
 * in-process hint) and between two processes sharing the file (its file
 * watch).
 */
const latencyContestants: ReadonlyArray<LatencyContestant> = drainers.flatMap(
  (driver): Array<LatencyContestant> =>
    driver === "nightshift-memory"
      ? [{ name: driver, driver, sameProcess: true }]
      : driver === "nightshift-sqlite"
        ? [
            { name: driver, driver, sameProcess: true },
            { name: "nightshift-sqlite-2p", driver, sameProcess: false }
          ]
        : [{ name: driver, driver, sameProcess: false }]
)

/** `--contestants a,b`: run only these contestants (by their result name). */
const onlyContestants = option("contestants")?.split(",")
const included = (name: string) => onlyContestants === undefined || onlyContestants.includes(name)

// Catalogs vacuumed before each measurement on a server without autovacuum (see `vacuumCatalogs`).
const results = new Results(() => vacuumCatalogs(databaseUrl()))
const tmpDir = mkdtempSync(join(tmpdir(), "nightshift-bench-"))
const runId = Date.now().toString(36)
let sequence = 0
/** The child entry is filled in once the bundle is built. */
const ctx: { entry: string; readonly spec: Context["spec"] } = {
  entry: "",
  spec: (driver) => ({
    driver,
    namespace: `nsbench_${runId}_${sequence++}`,
    databaseUrl: databaseUrl(),
    redisUrl: redisUrl(),
    tmpDir
  })
}

const measure = results.measure.bind(results)

const perSecond = (n: number, ms: number) => (n / ms) * 1000

const jobsFor = (driver: DriverName) =>
  driver === "sidequest" ? Math.min(settings.jobs, settings.slowJobs) : settings.jobs

const w1w2 = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  for (const [workload, processes, contestants, jobs] of [
    ["W1", 1, drainers, jobsFor],
    ["W2", 2, drainers, jobsFor],
    ["W1L", 1, longDrainers, () => settings.longJobs],
    ["W2L", 2, longDrainers, () => settings.longJobs]
  ] as const) {
    if (!enabled(workload)) continue
    for (const driver of order(contestants)) {
      if (!included(driver)) continue
      if (driver === "nightshift-memory" && processes > 1) continue
      await measure(workload, driver, round, async () => {
        const r = await drain(ctx, driver, {
          n: jobs(driver),
          processes: driver === "nightshift-memory" ? 0 : processes,
          concurrency: settings.concurrency,
          timeoutMs: settings.drainTimeoutMs
        })
        return {
          values: {
            enqueue: perSecond(r.n, r.enqueueMs),
            drain: perSecond(r.n, r.drainMs),
            ...(processes > 1 ? { busiestShare: r.busiestShare } : {})
          },
          integrity: r
        }
      })
    }
  }
}

const w3 = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  if (!enabled("W3")) return
  for (const { name, driver, sameProcess } of order(latencyContestants)) {
    if (!included(name)) continue
    await measure("W3", name, round, async () => {
      const r = await latency(ctx, driver, {
        n: settings.latencyJobs,
        warmup: settings.latencyWarmup,
        perSecond: settings.latencyPerSecond,
        concurrency: settings.concurrency,
        sameProcess
      })
      return { values: { p50: r.p50, p95: r.p95, p99: r.p99, max: r.max }, integrity: r }
    })
  }
}

const w7 = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  if (!enabled("W7")) return
  for (const { name, driver, sameProcess } of order(latencyContestants)) {
    if (!included(name)) continue
    await measure("W7", name, round, async () => {
      const r = await latency(ctx, driver, {
        n: driver === "plainjob" || driver === "sidequest" ? settings.slowSerialJobs : settings.serialJobs,
        warmup: settings.latencyWarmup,
        perSecond: 0,
        serial: true,
        concurrency: settings.concurrency,
        sameProcess
      })
      return { values: { mean: r.mean, p50: r.p50, p99: r.p99, enqueueCall: r.enqueueCallP50 }, integrity: r }
    })
  }
}

const w4 = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  if (!enabled("W4")) return
  for (const batch of order([1, 50])) {
    await measure("W4", `ceiling-b${batch}`, round, async () => {
      const r = await baseline(ctx, "ceiling-pg", { rows: settings.ceilingRows[batch]!, batch, loops: 10 })
      return { values: { rate: perSecond(r.rows, r.ms) } }
    })
  }
}

const w5 = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  if (!enabled("W5")) return
  const sizes = [
    ["backlog-10k", settings.backlog.small],
    ["backlog-1m", settings.backlog.large]
  ] as const
  for (const [name, waiting] of order(sizes)) {
    await measure("W5", name, round, async () => {
      const r = await backlog(ctx, "nightshift-pg", {
        waiting,
        measure: settings.backlog.measure,
        concurrency: settings.concurrency
      })
      return { values: { rate: perSecond(r.rows, r.ms) }, integrity: r }
    })
  }
}

const scale = async (round: number, order: <A>(xs: ReadonlyArray<A>) => ReadonlyArray<A>) => {
  if (!enabled("W6")) return
  const n = settings.scaleJobs
  const runs: ReadonlyArray<
    readonly [string, () => Promise<{ values: Record<string, number>; integrity?: Integrity }>]
  > = [
    ["scale-nightshift-memory", () => scaleDrain("nightshift-memory")],
    ["scale-raw-memory", () => scaleBaseline("raw-memory", { rows: n, concurrency: settings.concurrency })],
    ["scale-nightshift-sqlite", () => scaleDrain("nightshift-sqlite")],
    ["scale-raw-sqlite", () => scaleBaseline("raw-sqlite", { rows: n, batch: 50 })]
  ]
  for (const [name, body] of order(runs)) await measure("W6", name, round, body)
}

const scaleDrain = async (driver: DriverName) => {
  const r = await drain(ctx, driver, {
    n: settings.scaleJobs,
    processes: 0,
    concurrency: settings.concurrency,
    timeoutMs: settings.drainTimeoutMs
  })
  return { values: { rate: perSecond(r.n, r.drainMs) }, integrity: r }
}

const scaleBaseline = async (driver: DriverName, args: Record<string, number>) => {
  const r = await baseline(ctx, driver, args)
  return { values: { rate: perSecond(r.rows, r.ms) } }
}

/** The targets of issue 13 ("the fastest PostgreSQL job queue for Node, at its defaults"). */
const targets: ReadonlyArray<Target> = [
  {
    name: "W1 drain: Nightshift · PostgreSQL (defaults) ÷ graphile-worker · perfTest batching",
    a: { workload: "W1", contestant: "nightshift-pg", key: "drain" },
    b: { workload: "W1", contestant: "graphile-batched", key: "drain" },
    goal: 1.2
  },
  {
    name: "W1 drain: Nightshift · PostgreSQL (defaults) ÷ W4 raw ceiling, batch 50",
    a: { workload: "W1", contestant: "nightshift-pg", key: "drain" },
    b: { workload: "W4", contestant: "ceiling-b50", key: "rate" },
    goal: 0.7
  },
  {
    name: "W2 ÷ W1 drain, Nightshift · PostgreSQL",
    a: { workload: "W2", contestant: "nightshift-pg", key: "drain" },
    b: { workload: "W1", contestant: "nightshift-pg", key: "drain" },
    goal: 1
  },
  {
    name: "W2 per-process split, Nightshift · PostgreSQL: the busier worker's share of the jobs",
    a: { workload: "W2", contestant: "nightshift-pg", key: "busiestShare" },
    goal: 0.6,
    atMost: true,
    unit: "of the jobs"
  },
  {
    name: "W3 p50: Nightshift · PostgreSQL ÷ graphile-worker · defaults",
    a: { workload: "W3", contestant: "nightshift-pg", key: "p50" },
    b: { workload: "W3", contestant: "graphile", key: "p50" },
    goal: 0.8,
    atMost: true
  },
  {
    name: "W3 p99: Nightshift · PostgreSQL ÷ graphile-worker · defaults",
    a: { workload: "W3", contestant: "nightshift-pg", key: "p99" },
    b: { workload: "W3", contestant: "graphile", key: "p99" },
    goal: 1,
    atMost: true
  },
  {
    name: "W7 serial latency, mean: Nightshift · PostgreSQL ÷ graphile-worker · defaults",
    a: { workload: "W7", contestant: "nightshift-pg", key: "mean" },
    b: { workload: "W7", contestant: "graphile", key: "mean" },
    goal: 1,
    atMost: true
  },
  {
    name: "W7 single enqueue call, p50: Nightshift · PostgreSQL `JobQueue.enqueue` ÷ graphile-worker `addJob`",
    a: { workload: "W7", contestant: "nightshift-pg", key: "enqueueCall" },
    b: { workload: "W7", contestant: "graphile", key: "enqueueCall" },
    goal: 1,
    atMost: true
  },
  {
    name: "W1 bulk enqueue: Nightshift · PostgreSQL ÷ graphile-worker `addJobs`",
    a: { workload: "W1", contestant: "nightshift-pg", key: "enqueue" },
    b: { workload: "W1", contestant: "graphile", key: "enqueue" },
    goal: 1.5
  },
  {
    name: "W5 claim rate: 1,000,000 waiting ÷ 10,000 waiting",
    a: { workload: "W5", contestant: "backlog-1m", key: "rate" },
    b: { workload: "W5", contestant: "backlog-10k", key: "rate" },
    goal: 0.9
  },
  {
    name: "W1 drain: Nightshift · SQLite ÷ the fastest of plainjob and Sidequest (worker in its own process)",
    a: { workload: "W1", contestant: "nightshift-sqlite", key: "drain" },
    b: [
      { workload: "W1", contestant: "plainjob", key: "drain" },
      { workload: "W1", contestant: "sidequest", key: "drain" }
    ],
    goal: 2
  },
  {
    name: "W1 bulk enqueue: Nightshift · SQLite ÷ plainjob `addMany`",
    a: { workload: "W1", contestant: "nightshift-sqlite", key: "enqueue" },
    b: { workload: "W1", contestant: "plainjob", key: "enqueue" },
    goal: 1
  },
  {
    name: "W7 serial latency, p50: Nightshift · SQLite, one process",
    a: { workload: "W7", contestant: "nightshift-sqlite", key: "p50" },
    goal: 1,
    atMost: true,
    unit: "ms"
  },
  {
    name: "W7 serial latency, p50: Nightshift · SQLite, two processes sharing the file",
    a: { workload: "W7", contestant: "nightshift-sqlite-2p", key: "p50" },
    goal: 10,
    atMost: true,
    unit: "ms"
  },
  {
    name: "W7 serial latency, p50: Nightshift · memory, one process",
    a: { workload: "W7", contestant: "nightshift-memory", key: "p50" },
    goal: 0.1,
    atMost: true,
    unit: "ms"
  },
  {
    name: "W3 p50: Nightshift · memory, one process",
    a: { workload: "W3", contestant: "nightshift-memory", key: "p50" },
    goal: 0.2,
    atMost: true,
    unit: "ms"
  },
  {
    name: "W6 100k drain: Nightshift · SQLite ÷ better-sqlite3 baseline",
    a: { workload: "W6", contestant: "scale-nightshift-sqlite", key: "rate" },
    b: { workload: "W6", contestant: "scale-raw-sqlite", key: "rate" },
    goal: 0.6
  },
  {
    name: "W6 100k drain: Nightshift · memory ÷ Effect Queue baseline",
    a: { workload: "W6", contestant: "scale-nightshift-memory", key: "rate" },
    b: { workload: "W6", contestant: "scale-raw-memory", key: "rate" },
    goal: 0.9
  },
  {
    name: "10,000 periodic workers at 1 s: CPU ÷ as many `setInterval` timers (bench/workers.ts)",
    a: { workload: "W6P", contestant: "nightshift", key: "cpu" },
    b: { workload: "W6P", contestant: "setInterval", key: "cpu" },
    goal: 3,
    atMost: true
  },
  {
    name: "10,000 periodic workers at 1 s: RSS, median of the samples (bench/workers.ts)",
    a: { workload: "W6P", contestant: "nightshift", key: "rssMb" },
    goal: 100,
    atMost: true,
    unit: "MB"
  }
]

const k = (n: number) => n.toLocaleString("en-US")

/** A paired ratio as "1.23× (1.01–1.45)", or "not measured". */
const ratioText = (s: Summary) =>
  s.n === 0 ? "not measured" : `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`

const sections = (workers: WorkersOutcome | undefined) => {
  const rate = (key: string, title: string) => ({ key, title, format: "int" as const })
  const latencyCols = ["p50", "p95", "p99", "max"].map((key) => ({
    key,
    title: `${key} ms`,
    format: "ms" as const
  }))
  const out: Array<string> = []
  const add = (workload: string, title: string, body: () => string, note = "") => {
    if (results.contestants(workload).length === 0) return
    out.push(`## ${title}\n\n${note}${note ? "\n\n" : ""}${body()}`)
  }
  add(
    "W1",
    `W1 · bulk enqueue and drain, ${k(settings.jobs)} no-op jobs, one worker process, concurrency ${settings.concurrency}`,
    () => workloadTable(results, "W1", [rate("enqueue", "enqueue jobs/s"), rate("drain", "drain jobs/s")]),
    `Enqueue: one bulk call, timed (Sidequest has none: one \`enqueue\` per job, awaited in turn). Drain: from starting the worker (its start-up included) until every completion is committed. Nightshift · memory enqueues and works in one process; every other contestant enqueues in one process and works in another.${
      settings.jobs > settings.slowJobs
        ? ` Sidequest enqueues and drains ${k(settings.slowJobs)} jobs, not ${k(settings.jobs)}: at its rate here the full count would take over 10 minutes.`
        : ""
    }`
  )
  add("W2", `W2 · the same drain with two worker processes`, () =>
    workloadTable(results, "W2", [
      rate("drain", "drain jobs/s"),
      { key: "busiestShare", title: "the busier worker's share of the jobs", format: "ms" }
    ])
  )
  const long = (workload: "W1L" | "W2L") =>
    `${workloadTable(results, workload, [rate("drain", "drain jobs/s")])}\n\nNightshift · PostgreSQL ÷ graphile-worker · perfTest batching, paired per round: ${ratioText(
      pairedRatio(
        results.byRound(workload, "nightshift-pg", "drain"),
        results.byRound(workload, "graphile-batched", "drain")
      )
    )}.`
  add(
    "W1L",
    `W1L · the W1 drain of a ${k(settings.longJobs)}-job backlog`,
    () => long("W1L"),
    `Not a target of issue 13: the same drain as W1 with ${settings.longJobs / settings.jobs} times the jobs, so that a worker's start and warm-up (its first claims on cold connections, V8 compiling the hot path) weigh little beside its steady rate. Timed the same way; Nightshift · PostgreSQL and the peer of the W1 target only. This server runs with \`autovacuum = off\`; at the default \`autovacuum_naptime\` of one minute a drain of a few seconds would seldom meet a vacuum either.`
  )
  add("W2L", `W2L · the same with two worker processes`, () => long("W2L"))
  add(
    "W3",
    `W3 · latency, enqueue call to handler start, ${settings.latencyJobs} jobs one at a time at ${settings.latencyPerSecond}/s`,
    () => workloadTable(results, "W3", latencyCols),
    `An idle worker process runs while another process enqueues (the first ${settings.latencyWarmup} jobs are a warm-up, not counted). Nightshift · SQLite and · memory enqueue and work in one process; Nightshift · SQLite · two processes is the same store with the producer and the worker in two processes sharing the file.`
  )
  add(
    "W7",
    `W7 · serial latency, enqueue call to handler start, ${settings.serialJobs} jobs (${settings.slowSerialJobs} for plainjob and Sidequest, which find work by polling), each after the previous one started`,
    () =>
      workloadTable(results, "W7", [
        ...["mean", "p50", "p99"].map((key) => ({ key, title: `${key} ms`, format: "ms" as const })),
        { key: "enqueueCall", title: "the enqueue call itself, p50 ms", format: "ms" as const }
      ]),
    `graphile-worker's \`latencyTest\` method: the worker is idle whenever a job arrives (the first ${settings.latencyWarmup} jobs are a warm-up, not counted). Processes as in W3.`
  )
  add(
    "W4",
    "W4 · the PostgreSQL ceiling: a bare SKIP LOCKED claim + delete loop on 10 connections",
    () => workloadTable(results, "W4", [rate("rate", "rows/s")], false),
    `${k(settings.ceilingRows[1]!)} rows at batch 1, ${k(settings.ceilingRows[50]!)} at batch 50; raw \`pg\`, no library.`
  )
  add(
    "W5",
    "W5 · backlog growth: claim throughput with jobs waiting",
    () => workloadTable(results, "W5", [rate("rate", "jobs/s")]),
    `A fresh worker (concurrency ${settings.concurrency}) works the first ${k(settings.backlog.measure)} jobs of the backlog; timed from its start until those completions are committed. The backlog is written in one \`INSERT … SELECT\` cloning a job the library enqueued, then analysed and checkpointed (so that the checkpoint the fill's WAL calls for does not run during the larger backlog's drain only).`
  )
  add(
    "W6",
    `W6 · ${k(settings.scaleJobs)} no-op jobs drained at concurrency ${settings.concurrency} in one process, beside raw baselines`,
    () => workloadTable(results, "W6", [rate("rate", "jobs/s")])
  )
  if (workers !== undefined) {
    out.push(
      `## W6 · 10,000 periodic workers (bench/workers.ts)\n\n${
        workers.table ?? `Not measured: ${workers.note}.`
      }\n\nRun by this harness with \`--seconds ${settings.workersSeconds}\`; see the "Workers" section for that benchmark's own notes.`
    )
  }
  return out
}

/**
 * The sections of BENCHMARKS.md this harness does not write: kept verbatim when it rewrites the
 * file ("Flow control", "Sharding" and "Table size and churn" are written by `npm run bench:flow`,
 * `bench:sharded` and `bench:churn`).
 */
const handWritten = ["Workers", "Start-up", "Flow control", "Sharding", "Table size and churn"]

/** The hand-written sections of the existing BENCHMARKS.md, in their order there. */
const keptSections = (file: string): string | undefined => {
  if (!existsSync(file)) return undefined
  const text = readFileSync(file, "utf8")
  const kept = handWritten.flatMap((title) => {
    const start = text.search(new RegExp(`^## ${title}\\b.*$`, "m"))
    if (start < 0) return []
    const rest = text.slice(start + 1)
    const end = rest.search(/^## /m)
    return [{ start, text: (end < 0 ? text.slice(start) : text.slice(start, start + 1 + end)).trimEnd() }]
  })
  return kept.length === 0
    ? undefined
    : kept
        .sort((a, b) => a.start - b.start)
        .map((section) => section.text)
        .join("\n\n")
}

const main = async () => {
  const started = now()
  const startedAt = new Date()
  const machineAtStart = machine()
  ensurePeers(benchDir)
  ctx.entry = bundleChild(rootDir, benchDir)
  console.error(
    `bench: ${settings.rounds} round(s); PostgreSQL ${databaseUrl()}, Redis ${redisUrl()}; load average ${machineAtStart.loadAverage.join(" ")}`
  )
  for (let round = 1; round <= settings.rounds; round++) {
    const order = <A>(xs: ReadonlyArray<A>): ReadonlyArray<A> => (round % 2 === 1 ? xs : [...xs].reverse())
    await w4(round, order)
    await w1w2(round, order)
    await w3(round, order)
    await w7(round, order)
    await w5(round, order)
    await scale(round, order)
  }
  const workers =
    enabled("W6") && !flag("skip-workers")
      ? await runWorkers(rootDir, settings.rounds, settings.workersSeconds)
      : undefined
  rmSync(tmpDir, { recursive: true, force: true })
  // The periodic workers' rounds as samples, for their two targets.
  for (const r of workers?.rounds ?? [])
    results.add({
      workload: "W6P",
      contestant: r.contestant,
      round: r.round,
      values: { cpu: r.cpu, rssMb: r.rssMb }
    })

  const outcomes = targets.map((t) => evaluate(results, t))
  const minutes = (now() - started) / 60_000
  const machineAtEnd = machine()
  const v = versions(rootDir, benchDir)
  const header = [
    "# Benchmarks",
    "",
    `Latest \`npm run bench\`: ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, ${settings.rounds} round(s), ${minutes.toFixed(1)} minutes. Written by \`bench/run.ts\`; the "Workers" and "Start-up" sections are written by hand, and "Flow control", "Sharding" and "Table size and churn" by \`npm run bench:flow\`, \`bench:sharded\` and \`bench:churn\`. Method and analysis: [docs/benchmarks.md](docs/benchmarks.md).`,
    "",
    `**Machine:** ${machineAtStart.cpu}, ${machineAtStart.cores} shared cores, ${machineAtStart.memoryGb} GB, ${machineAtStart.os}, Node ${machineAtStart.node}. Load average ${machineAtStart.loadAverage.join(" / ")} at the start, ${machineAtEnd.loadAverage.join(" / ")} at the end: absolute figures drift between runs; compare within a run.`,
    "",
    `**Versions:** ${Object.entries(v)
      .map(([name, version]) => `${name} ${version}`)
      .join(", ")}.`,
    "",
    "Each cell is the median over rounds with the min–max range. Every run is a fresh process on a fresh schema, key prefix or file; rounds alternate the contestants' order. Targets are ratios paired round by round. A contestant that duplicated or lost a job, or failed a run, is marked and not ranked."
  ].join("\n")
  const body = [`## Targets\n\n${targetsTable(outcomes)}`, ...sections(workers)].join("\n\n")
  const report = `${header}\n\n${body}\n`

  if (!flag("no-write")) {
    const file = join(rootDir, "BENCHMARKS.md")
    const kept = keptSections(file)
    writeFileSync(file, kept === undefined ? report : `${report}\n${kept}\n`)
  }
  process.stdout.write(`${report}\n`)
  const summary = {
    date: startedAt.toISOString(),
    minutes: Math.round(minutes * 10) / 10,
    rounds: settings.rounds,
    machine: { ...machineAtStart, loadAverageAtEnd: machineAtEnd.loadAverage },
    versions: v,
    labels,
    targets: outcomes.map(targetJson),
    workloads: summaryJson(results),
    workers: workers?.rows ?? workers?.note ?? null
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
