/**
 * Sidequest on SQLite as a contestant, set up as its README and the
 * `@sidequest/sqlite-backend` README set it up: `Sidequest.start` with the
 * `@sidequest/sqlite-backend` driver on a file and one queue whose
 * concurrency is the benchmark's, everything else at its defaults (the
 * engine forked into its own process, jobs run in a pool of worker threads,
 * a 100 ms dispatcher poll). Options set beyond that: the dashboard off (two
 * worker processes would fight over its port), the log level `warn`, and
 * `manualJobResolution` with a `jobsFilePath` (documented; the default finds
 * a job's module from the stack of the `enqueue` call, which here is the
 * bundled harness child). Sidequest has no bulk enqueue: the bulk enqueue is
 * `Sidequest.build(Job).enqueue(…)` awaited once per job.
 *
 * The job class lives in a small module written beside the database file: it
 * runs in a worker thread of the engine's process, so it reports each handler
 * start (index, enqueue time, start time) by appending a line to a file this
 * process follows, handing each line to the harness's tally.
 */
import { closeSync, openSync, readSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import Database from "better-sqlite3"
import { type JobClassType, Sidequest } from "sidequest"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver, OnJob } from "./driver.js"

const queue = "bench_noop"

/**
 * The job module: `BenchNoop.run(i, t)` appends `i t startedAt` to the
 * report file with one synchronous write (a write to a socket can be lost:
 * the engine may end a worker thread before the socket connects).
 */
const jobModule = (sidequestUrl: string, reportFile: string) => `
import { appendFileSync } from "node:fs"
import { Job } from ${JSON.stringify(sidequestUrl)}

export class BenchNoop extends Job {
  run(i, t) {
    appendFileSync(${JSON.stringify(reportFile)}, i + " " + t + " " + (performance.timeOrigin + performance.now()) + "\\n")
    return null
  }
}
`

/** Follow the report file every 2 ms, handing every reported start to the current `onJob`. */
const follow = (reportFile: string, onJob: () => OnJob | undefined) => {
  writeFileSync(reportFile, "")
  const fd = openSync(reportFile, "r")
  const buffer = Buffer.alloc(1 << 16)
  let offset = 0
  let rest = ""
  const read = () => {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, offset)
      if (n === 0) return
      offset += n
      const lines = (rest + buffer.toString("utf8", 0, n)).split("\n")
      rest = lines.pop() ?? ""
      const f = onJob()
      for (const line of lines) {
        const [i, t, at] = line.split(" ").map(Number)
        f?.(i!, t!, at)
      }
    }
  }
  const timer = setInterval(read, 2)
  return () => {
    clearInterval(timer)
    read()
    closeSync(fd)
  }
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const file = join(spec.tmpDir, `${spec.namespace}.sqlite`)
  const own = join(spec.tmpDir, `${spec.namespace}-${process.pid}`)
  const reportFile = `${own}.starts`
  const jobsFile = `${own}.jobs.mjs`
  writeFileSync(jobsFile, jobModule(import.meta.resolve("sidequest"), reportFile))
  const { BenchNoop } = (await import(pathToFileURL(jobsFile).href)) as { BenchNoop: JobClassType }

  let onJob: OnJob | undefined
  const stopFollowing = follow(reportFile, () => onJob)
  const reader = new Database(file)
  let configured: Promise<unknown> | undefined
  let started = false

  const engineConfig = (concurrency: number) => ({
    backend: { driver: "@sidequest/sqlite-backend" as const, config: file },
    queues: [{ name: queue, concurrency }],
    manualJobResolution: true,
    jobsFilePath: jobsFile,
    logger: { level: "warn", json: false }
  })
  const configure = () => (configured ??= Sidequest.configure(engineConfig(10)))

  return {
    setup: async () => {
      await configure()
    },
    enqueueBulk: async (n) => {
      await configure()
      for (let i = 0; i < n; i++) await Sidequest.build(BenchNoop).queue(queue).enqueue(i, 0)
    },
    enqueueOne: async (i, t) => {
      await configure()
      await Sidequest.build(BenchNoop).queue(queue).enqueue(i, t)
    },
    startWorker: async (concurrency, f) => {
      onJob = f
      started = true
      await Sidequest.start({ ...engineConfig(concurrency), dashboard: { enabled: false } })
    },
    stopWorker: async () => {
      if (started) await Sidequest.stop()
      started = false
      configured = undefined
    },
    committed: async () =>
      (
        reader
          .prepare("SELECT count(*) AS n FROM sidequest_jobs WHERE queue = ? AND state = 'completed'")
          .get(queue) as { n: number }
      ).n,
    teardown: async () => {
      if (configured !== undefined || started) await Sidequest.stop()
      reader.close()
      stopFollowing()
      for (const path of [file, `${file}-wal`, `${file}-shm`, jobsFile, reportFile])
        rmSync(path, { force: true })
    }
  }
}
