/**
 * Benchmark: 10,000 periodic workers ticking every second, beside 10,000
 * plain `setInterval` timers, each contestant in its own child process,
 * several rounds, medians reported.
 *
 *   npx tsx bench/workers.ts [--workers 10000] [--seconds 20] [--rounds 3] [--schedule] [--naive] [--tsx]
 *
 * The children run an esbuild bundle of this file on plain `node` (what a
 * deployed app runs), so the figures do not include the TypeScript loader;
 * `--tsx` runs them under tsx instead. The `nightshift` contestant declares
 * its workers with `schedule: "1 second"` (a plain interval, computed without
 * stepping a `Schedule`); `--schedule` adds `nightshift-schedule`, the same
 * with `schedule: Schedule.spaced("1 second")`. `--naive` adds one
 * `Effect.repeat(tick, Schedule.spaced("1 second"))` fiber per worker.
 *
 * Per child: CPU share = (user + system CPU time) / wall time over the
 * measured window (after a warm-up); RSS = median and max of one sample per
 * second; ticks = ticks counted in the window (should be workers x seconds).
 */
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Crew from "../src/Crew.js"
import * as Worker from "../src/Worker.js"

type Contestant = "nightshift" | "nightshift-schedule" | "setInterval" | "naive"

interface Result {
  readonly contestant: Contestant
  readonly cpu: number
  readonly rssMedian: number
  readonly rssMax: number
  readonly heapUsed: number
  readonly ticks: number
  readonly startupMs: number
}

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
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
  const schedule = contestant === "nightshift" ? "1 second" : Schedule.spaced("1 second")
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

const child = async (contestant: Contestant, n: number, seconds: number) => {
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
    startupMs
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

const bundle = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "nightshift-bench-"))
  const out = join(dir, "workers.mjs")
  const self = fileURLToPath(import.meta.url)
  execFileSync(
    join(dirname(dirname(fileURLToPath(import.meta.url))), "node_modules/esbuild/bin/esbuild"),
    [self, "--bundle", "--platform=node", "--format=esm", `--outfile=${out}`, "--log-level=warning"],
    { stdio: "inherit" }
  )
  return out
}

const run = (command: ReadonlyArray<string>, contestant: Contestant, n: number, seconds: number) =>
  new Promise<Result>((resolve, reject) => {
    const p = spawn(command[0]!, [...command.slice(1), "child", contestant, String(n), String(seconds)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
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
  const command = process.argv.includes("--tsx")
    ? [process.execPath, "--import", "tsx", fileURLToPath(import.meta.url)]
    : [process.execPath, bundle()]
  console.log(
    `workers: ${n} ticking every 1 s; ${seconds} s measured per round after 3 s warm-up; ${rounds} rounds`
  )
  const results: Array<Result> = []
  for (let r = 1; r <= rounds; r++) {
    for (const c of contestants) {
      const result = await run(command, c, n, seconds)
      results.push(result)
      console.log(
        `round ${r} ${c.padEnd(11)} cpu ${pct(result.cpu).padStart(6)}  rss median ${mb(result.rssMedian)} max ${mb(result.rssMax)}  heap ${mb(result.heapUsed)}  ticks ${result.ticks}  startup ${result.startupMs.toFixed(0)} ms`
      )
    }
  }
  console.log("\nmedians")
  console.log("| contestant | CPU (share of one core) | RSS median | RSS max | heap used | ticks/s |")
  console.log("| --- | --- | --- | --- | --- | --- |")
  for (const c of contestants) {
    const rs = results.filter((x) => x.contestant === c)
    console.log(
      `| ${c} | ${pct(median(rs.map((x) => x.cpu)))} | ${mb(median(rs.map((x) => x.rssMedian)))} | ${mb(median(rs.map((x) => x.rssMax)))} | ${mb(median(rs.map((x) => x.heapUsed)))} | ${(median(rs.map((x) => x.ticks)) / seconds).toFixed(0)} |`
    )
  }
}

if (process.argv[2] === "child") {
  await child(process.argv[3] as Contestant, Number(process.argv[4]), Number(process.argv[5]))
} else {
  await parent()
}
