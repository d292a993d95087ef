/**
 * plainjob on SQLite as a contestant, set up as its README sets it up for
 * Node: `defineQueue({ connection: better(new Database(file)) })` (the queue
 * itself turns on WAL, `synchronous = NORMAL` and a 5 s busy timeout), one
 * `defineWorker` per process with its default 1 s poll, `addMany` for bulk
 * enqueue and `add` for single jobs. plainjob has no concurrency setting: a
 * worker runs its jobs one at a time, and its README scales out with more
 * worker processes (W2). The only option set is a logger that drops debug
 * and info lines (the default logger is `console`, which prints several
 * debug lines per job).
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import { better, defineQueue, defineWorker, JobStatus, type Logger, type Worker } from "plainjob"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver } from "./driver.js"

const type = "bench_noop"

/** Warnings and errors only. */
const logger: Logger = {
  error: (message, ...meta) => console.error(`[plainjob] error: ${message}`, ...meta),
  warn: (message, ...meta) => console.error(`[plainjob] warning: ${message}`, ...meta),
  info: () => {},
  debug: () => {}
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const file = join(spec.tmpDir, `${spec.namespace}.db`)
  const database = new Database(file)
  const queue = defineQueue({ connection: better(database), logger })
  let worker: Worker | undefined
  let running: Promise<void> | undefined

  return {
    // defineQueue creates its tables in every process that opens the file.
    setup: async () => {},
    enqueueBulk: async (n) => {
      queue.addMany(
        type,
        Array.from({ length: n }, (_, i) => ({ i, t: 0 }))
      )
    },
    enqueueOne: async (i, t) => {
      queue.add(type, { i, t })
    },
    startWorker: async (_concurrency, onJob) => {
      const w = defineWorker(
        type,
        (job) => {
          const { i, t } = JSON.parse(job.data) as { i: number; t: number }
          onJob(i, t)
        },
        { queue, logger }
      )
      worker = w
      running = w.start().catch((error: unknown) => console.error("[plainjob] worker stopped:", error))
    },
    stopWorker: async () => {
      await worker?.stop()
      await running
    },
    committed: async () => queue.countJobs({ type, status: JobStatus.Done }),
    teardown: async () => {
      queue.close()
      if (database.open) database.close()
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true })
    }
  }
}
