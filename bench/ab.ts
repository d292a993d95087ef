/**
 * `tsx bench/ab.ts`: a focused W1 drain comparison (bulk enqueue, then one
 * fresh worker process drains), contestants interleaved round by round, as
 * used for docs/benchmarks.md's runner sections. Prints each round, then the
 * median drain rate of every contestant and its per-round ratio to the last
 * contestant listed (the reference).
 *
 *   tsx bench/ab.ts [--rounds 5] [--jobs 20000] [--base <dir>] \
 *     --contestants 'label=driver[@base|@base2][?url query][+{json options}][!node flags]', …  (separated by ;)
 *
 * `@base` runs the child bundled from `<dir>` (a checkout of another commit,
 * with `node_modules` and `bench/node_modules` linked in), so the library
 * before and after a change can run side by side. `+{…}` passes runner
 * options to Nightshift workers (`BENCH_NIGHTSHIFT_OPTIONS`); `!…` passes
 * flags to that contestant's node processes (`BENCH_NODE_ARGS`, spaces as
 * commas), e.g. `!--max-semi-space-size=64`; `?…` is added to its
 * PostgreSQL URL, e.g. `?options=-c%20synchronous_commit%3Doff`.
 */
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { bundleChild, ensurePeers } from "./lib/build.js"
import { vacuumCatalogs } from "./lib/catalogs.js"
import { databaseUrl, option, redisUrl } from "./lib/env.js"
import type { DriverName } from "./lib/protocol.js"
import { serverCpuReader } from "./lib/servercpu.js"
import { pairedRatio, summarize } from "./lib/stats.js"
import { drain, latency } from "./lib/workloads.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)
const rounds = Number(option("rounds") ?? 3)
const jobs = Number(option("jobs") ?? 20_000)
const baseDir = option("base")
/** W1 (one worker process), W2 (two), W3 (latency at 100 jobs/s) or W7 (serial latency): p50 and p99 instead of rate and CPU. */
const workload = option("workload") ?? "W1"

interface Contestant {
  readonly label: string
  readonly driver: DriverName
  readonly base: string | undefined
  readonly options: string
  readonly nodeArgs: string
  readonly urlQuery: string
}

const contestants: ReadonlyArray<Contestant> = (option("contestants") ?? "nightshift-pg;graphile-batched")
  .split(";")
  .map((full) => {
    const [text, flags] = full.split("!") as [string, string | undefined]
    const [head, ...json] = text.split("+")
    const eq = head!.indexOf("=")
    const [label, target] = eq >= 0 ? [head!.slice(0, eq), head!.slice(eq + 1)] : [head!, head!]
    const [driverAndBase, urlQuery] = target!.split("?") as [string, string | undefined]
    const [driver, where] = driverAndBase.split("@")
    return {
      label: label!,
      driver: driver as DriverName,
      base: where,
      options: json.join("+"),
      nodeArgs: (flags ?? "").replaceAll(",", " "),
      urlQuery: urlQuery ?? ""
    }
  })

/** Flags for every contestant's processes, set by the caller. */
const globalNodeArgs = process.env.BENCH_NODE_ARGS ?? ""

/** Contestants whose jobs live in PostgreSQL. */
const usesPostgres = (driver: DriverName) =>
  driver.startsWith("nightshift-pg") ||
  driver.startsWith("graphile") ||
  driver === "pg-boss" ||
  driver === "ceiling-pg"
const runId = Date.now().toString(36)
let sequence = 0

const main = async () => {
  ensurePeers(benchDir)
  const entry = bundleChild(rootDir, benchDir)
  const baseEntry = baseDir === undefined ? undefined : bundleChild(baseDir, join(baseDir, "bench"))
  const base2Dir = option("base2")
  const base2Entry = base2Dir === undefined ? undefined : bundleChild(base2Dir, join(base2Dir, "bench"))
  const rates = new Map<string, Map<number, number>>(contestants.map((c) => [c.label, new Map()]))
  const cpu = new Map<string, Map<number, number>>(contestants.map((c) => [c.label, new Map()]))
  const serverCpu = new Map<string, Map<number, number>>(contestants.map((c) => [c.label, new Map()]))
  const readServerCpu = await serverCpuReader(databaseUrl())
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? contestants : [...contestants].reverse()
    for (const c of order) {
      const e = c.base === "base" ? baseEntry : c.base === "base2" ? base2Entry : entry
      if (e === undefined) throw new Error(`${c.label}: --base is needed`)
      process.env.BENCH_NIGHTSHIFT_OPTIONS = c.options
      process.env.BENCH_NODE_ARGS = `${globalNodeArgs} ${c.nodeArgs}`
      const ctx = {
        entry: e,
        spec: (driver: DriverName) => ({
          driver,
          namespace: `nsab_${runId}_${sequence++}`,
          databaseUrl:
            c.urlQuery === ""
              ? databaseUrl()
              : `${databaseUrl()}${databaseUrl().includes("?") ? "&" : "?"}${c.urlQuery}`,
          redisUrl: redisUrl(),
          tmpDir: "/tmp"
        })
      }
      // As bench/run.ts does before each measurement (see `vacuumCatalogs`).
      await vacuumCatalogs(databaseUrl())
      try {
        // As in bench/run.ts: memory and SQLite enqueue and work in one process.
        const sameProcess = c.driver === "nightshift-memory" || c.driver === "nightshift-sqlite"
        if (workload === "W3" || workload === "W7") {
          const l = await latency(ctx, c.driver, {
            n: workload === "W3" ? 500 : 200,
            warmup: 20,
            perSecond: workload === "W3" ? 100 : 0,
            serial: workload === "W7",
            concurrency: 10,
            sameProcess
          })
          rates.get(c.label)!.set(round, l.p50)
          cpu.get(c.label)!.set(round, l.p99)
          // W7: the producer's enqueue call itself, in the third column.
          if (workload === "W7") serverCpu.get(c.label)!.set(round, l.enqueueCallP50)
          console.error(
            `[round ${round}] ${c.label}: p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, mean ${l.mean.toFixed(2)} ms${workload === "W7" ? `, enqueue call p50 ${l.enqueueCallP50.toFixed(2)} ms` : ""} (dup ${l.duplicates}, lost ${l.lost})`
          )
          continue
        }
        const processes = sameProcess ? 0 : workload === "W2" ? 2 : 1
        const r = await drain(ctx, c.driver, {
          n: jobs,
          processes,
          concurrency: 10,
          timeoutMs: 180_000,
          // The database server's CPU means something only for the contestants that use it.
          serverCpu: usesPostgres(c.driver) ? readServerCpu : undefined
        })
        const rate = (r.n / r.drainMs) * 1000
        rates.get(c.label)!.set(round, rate)
        const us = (r.cpuMs * 1000) / r.n
        cpu.get(c.label)!.set(round, us)
        const serverUs = (r.serverCpuMs * 1000) / r.n
        serverCpu.get(c.label)!.set(round, serverUs)
        console.error(
          `[round ${round}] ${c.label}: enqueue ${Math.round((r.n / r.enqueueMs) * 1000)} jobs/s, drain ${Math.round(rate)} jobs/s, worker CPU ${us.toFixed(1)} µs/job, database server CPU ${serverUs.toFixed(1)} µs/job (dup ${r.duplicates}, lost ${r.lost})`
        )
      } catch (error) {
        console.error(`[round ${round}] ${c.label}: FAILED ${String(error).split("\n")[0]}`)
      }
    }
  }
  const reference = contestants[contestants.length - 1]!.label
  const latencyWorkload = workload === "W3" || workload === "W7"
  const fmt = (x: number) => (latencyWorkload ? x.toFixed(2) : String(Math.round(x)))
  const [first, second] = latencyWorkload
    ? ["p50 ms", "p99 ms"]
    : ["drain jobs/s", "worker CPU µs/job (all workers)"]
  // The database server's CPU is read from /proc when PostgreSQL runs on this machine (drains only).
  const third =
    workload === "W7"
      ? " enqueue call p50 ms (median, min–max) |"
      : latencyWorkload || readServerCpu === undefined
        ? ""
        : " database server CPU µs/job (median, min–max) |"
  console.log(
    `| contestant | ${workload} ${first} (median, min–max) | ÷ ${reference} (median of rounds, min–max) | ${second} (median, min–max) |${third}`
  )
  console.log(`| --- | --- | --- | --- |${third === "" ? "" : " --- |"}`)
  for (const c of contestants) {
    const s = summarize([...rates.get(c.label)!.values()])
    const r = pairedRatio(rates.get(c.label)!, rates.get(reference)!)
    const u = summarize([...cpu.get(c.label)!.values()])
    const v = summarize([...serverCpu.get(c.label)!.values()])
    const server =
      third === ""
        ? ""
        : Number.isNaN(v.median)
          ? " – |"
          : ` ${fmt(v.median)} (${fmt(v.min)}–${fmt(v.max)}) |`
    console.log(
      `| ${c.label} | ${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}) | ${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)}) | ${fmt(u.median)} (${fmt(u.min)}–${fmt(u.max)}) |${server}`
    )
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
