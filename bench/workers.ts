/**
 * Benchmark: 10,000 periodic workers ticking every second, beside 10,000
 * plain `setInterval` timers, each contestant in its own child process,
 * several rounds, medians reported.
 *
 *   npx tsx bench/workers.ts [--workers 10000] [--seconds 20] [--rounds 3] [--schedule] [--naive] [--tsx]
 *     [--base <dir>] [--alloc]
 *
 * The children run an esbuild bundle of this file on plain `node` (what a
 * deployed app runs), so the figures do not include the TypeScript loader;
 * `--tsx` runs them under tsx instead. The `nightshift` contestant declares
 * its workers with `schedule: "1 second"` (a plain interval, computed without
 * stepping a `Schedule`); `--schedule` adds `nightshift-schedule`, the same
 * with `schedule: Schedule.spaced("1 second")`. `--naive` adds one
 * `Effect.repeat(tick, Schedule.spaced("1 second"))` fiber per worker.
 *
 * `--base <dir>` adds `base`: the `nightshift` contestant built from `<dir>`
 * (a checkout of another commit, with `node_modules` linked in; this file is
 * copied into it and bundled there), run in the same rounds, so the library
 * before and after a change is measured side by side on one loaded machine.
 * `--alloc` then measures, after the CPU and RSS window, the bytes allocated
 * per tick over 5 s with V8's sampling heap profiler (counting objects the
 * young and old collections freed); the profiler is off during the window.
 *
 * Per child: CPU share = (user + system CPU time) / wall time over the
 * measured window (after a warm-up); RSS = median and max of one sample per
 * second; ticks = ticks counted in the window (should be workers x seconds).
 */
import { execFileSync, spawn } from "node:child_process"
import { copyFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Crew from "../src/Crew.js"
import * as Worker from "../src/Worker.js"
import { option } from "./lib/env.js"

type Contestant = "nightshift" | "nightshift-schedule" | "setInterval" | "naive" | "base"

interface Result {
  readonly contestant: Contestant
  readonly cpu: number
  readonly rssMedian: number
  readonly rssMax: number
  readonly heapUsed: number
  readonly ticks: number
  readonly startupMs: number
  /** Bytes allocated per tick (`--alloc`), or null. */
  readonly bytesPerTick: number | null
}

const arg = (name: string, fallback: number) => {
  const value = option(name)
  return value === undefined ? fallback : Number(value)
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Start the workload; returns a tick counter. */
const startWorkload = async (contestant: Contestant, n: number): Promise<() => number> => {
  let ticks = 0
  const tick = () => {
    ticks++
  }
  if (contestant === "setInterval") {
    for (let i = 0; i < n; i++) setInterval(tick, 1000)
    return () => ticks
  }
  if (contestant === "naive") {
    for (let i = 0; i < n; i++) Effect.runFork(Effect.repeat(Effect.sync(tick), Schedule.spaced("1 second")))
    return () => ticks
  }
  const schedule = contestant === "nightshift-schedule" ? Schedule.spaced("1 second") : "1 second"
  const workers = Array.from({ length: n }, (_, i) =>
    Worker.periodic(`w${i}`, { schedule }, Effect.sync(tick))
  )
  await Effect.runPromise(
    Effect.asVoid(
      Effect.forkDaemon(Effect.scoped(Effect.zipRight(Crew.start(Crew.make("bench", workers)), Effect.never)))
    )
  )
  return () => ticks
}

/** Bytes allocated per tick over `seconds`, by V8's sampling heap profiler (collected objects included). */
const allocation = async (ticks: () => number, seconds: number): Promise<number> => {
  const { Session } = await import("node:inspector")
  const session = new Session()
  session.connect()
  const post = (method: string, params?: object) =>
    new Promise<any>((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result)))
    )
  await post("HeapProfiler.enable")
  const ticks0 = ticks()
  await post("HeapProfiler.startSampling", {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const { profile } = await post("HeapProfiler.stopSampling")
  const counted = ticks() - ticks0
  session.disconnect()
  // A node's selfSize is its estimate of the bytes allocated there (samples scaled by the interval).
  interface ProfileNode {
    readonly selfSize: number
    readonly children: ReadonlyArray<ProfileNode>
  }
  const total = (node: ProfileNode): number => node.children.reduce((sum, c) => sum + total(c), node.selfSize)
  return total(profile.head) / Math.max(1, counted)
}

const child = async (contestant: Contestant, n: number, seconds: number, alloc: boolean) => {
  const t0 = performance.now()
  const ticks = await startWorkload(contestant, n)
  const startupMs = performance.now() - t0
  await new Promise((r) => setTimeout(r, 3000))
  const rss: Array<number> = []
  const heap: Array<number> = []
  const ticks0 = ticks()
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000))
    const memory = process.memoryUsage()
    rss.push(memory.rss)
    heap.push(memory.heapUsed)
  }
  const cpu = process.cpuUsage(cpu0)
  const wall = performance.now() - wall0
  const result: Result = {
    contestant,
    cpu: (cpu.user + cpu.system) / 1000 / wall,
    rssMedian: median(rss),
    rssMax: Math.max(...rss),
    heapUsed: median(heap),
    ticks: ticks() - ticks0,
    startupMs,
    bytesPerTick: alloc ? await allocation(ticks, 5) : null
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

/** Bundle this file as it would sit in the checkout `root` (default: this one). */
const bundle = (root?: string): string => {
  const dir = mkdtempSync(join(tmpdir(), "nightshift-bench-"))
  const out = join(dir, "workers.mjs")
  let entry = fileURLToPath(import.meta.url)
  if (root !== undefined) {
    const copy = join(root, "bench", `workers-ab-${process.pid}.ts`)
    copyFileSync(entry, copy)
    entry = copy
  }
  try {
    execFileSync(
      join(dirname(dirname(fileURLToPath(import.meta.url))), "node_modules/esbuild/bin/esbuild"),
      [entry, "--bundle", "--platform=node", "--format=esm", `--outfile=${out}`, "--log-level=warning"],
      { stdio: "inherit" }
    )
  } finally {
    if (root !== undefined) rmSync(entry)
  }
  return out
}

const run = (
  command: ReadonlyArray<string>,
  contestant: Contestant,
  n: number,
  seconds: number,
  alloc: boolean
) =>
  new Promise<Result>((resolve, reject) => {
    const args = [...command.slice(1), "child", contestant, String(n), String(seconds), alloc ? "alloc" : "-"]
    const p = spawn(command[0]!, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    p.stdout.on("data", (d) => (out += d))
    p.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split("\n").pop()!))
        : reject(new Error(`${contestant} exited ${code}`))
    )
  })

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`
const pct = (share: number) => `${(share * 100).toFixed(1)}%`

const parent = async () => {
  const n = arg("workers", 10_000)
  const seconds = arg("seconds", 20)
  const rounds = arg("rounds", 3)
  const contestants: Array<Contestant> = ["nightshift", "setInterval"]
  if (process.argv.includes("--schedule")) contestants.push("nightshift-schedule")
  if (process.argv.includes("--naive")) contestants.push("naive")
  const alloc = process.argv.includes("--alloc")
  const baseIndex = process.argv.indexOf("--base")
  const baseDir = baseIndex >= 0 ? process.argv[baseIndex + 1] : undefined
  if (baseDir !== undefined) contestants.unshift("base")
  const command = process.argv.includes("--tsx")
    ? [process.execPath, "--import", "tsx", fileURLToPath(import.meta.url)]
    : [process.execPath, bundle()]
  const baseCommand = baseDir === undefined ? command : [process.execPath, bundle(baseDir)]
  console.log(
    `workers: ${n} ticking every 1 s; ${seconds} s measured per round after 3 s warm-up; ${rounds} rounds`
  )
  const results: Array<Result> = []
  /** Each child's figures with its round, for the harness (`bench/lib/workers.ts`): the last line printed. */
  const perRound: Array<{ round: number; contestant: Contestant; cpu: number; rssMb: number }> = []
  for (let r = 1; r <= rounds; r++) {
    // Every other round in reverse order, so that no contestant always runs first (or last) on a busy machine.
    for (const c of r % 2 === 1 ? contestants : [...contestants].reverse()) {
      const result = await run(c === "base" ? baseCommand : command, c, n, seconds, alloc)
      results.push(result)
      perRound.push({ round: r, contestant: c, cpu: result.cpu, rssMb: result.rssMedian / 1024 / 1024 })
      const bytes = result.bytesPerTick === null ? "" : `  ${result.bytesPerTick.toFixed(0)} B/tick`
      console.log(
        `round ${r} ${c.padEnd(11)} cpu ${pct(result.cpu).padStart(6)}  rss median ${mb(result.rssMedian)} max ${mb(result.rssMax)}  heap ${mb(result.heapUsed)}  ticks ${result.ticks}  startup ${result.startupMs.toFixed(0)} ms${bytes}`
      )
    }
  }
  console.log("\nmedians")
  console.log(
    "| contestant | CPU (share of one core) | ÷ setInterval (per round) | RSS median | RSS max | heap used | ticks/s | B/tick |"
  )
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |")
  const reference = results.filter((x) => x.contestant === "setInterval")
  for (const c of contestants) {
    const rs = results.filter((x) => x.contestant === c)
    const ratio = median(rs.map((x, i) => x.cpu / reference[i]!.cpu))
    const bytes = rs[0]!.bytesPerTick === null ? "-" : median(rs.map((x) => x.bytesPerTick!)).toFixed(0)
    console.log(
      `| ${c} | ${pct(median(rs.map((x) => x.cpu)))} | ${ratio.toFixed(2)}× | ${mb(median(rs.map((x) => x.rssMedian)))} | ${mb(median(rs.map((x) => x.rssMax)))} | ${mb(median(rs.map((x) => x.heapUsed)))} | ${(median(rs.map((x) => x.ticks)) / seconds).toFixed(0)} | ${bytes} |`
    )
  }
  console.log(JSON.stringify({ rounds: perRound }))
}

if (process.argv[2] === "child") {
  await child(
    process.argv[3] as Contestant,
    Number(process.argv[4]),
    Number(process.argv[5]),
    process.argv[6] === "alloc"
  )
} else {
  await parent()
}
