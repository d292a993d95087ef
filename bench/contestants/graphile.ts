/**
 * graphile-worker as a contestant: `addJobs` for bulk enqueue, `addJob` for
 * single jobs, `run` for the worker. Two configurations: its defaults, and the
 * batching settings of its own perfTest (`localQueue` of 500 jobs, completion
 * and failure batches flushed with `0` delay).
 */
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from "graphile-worker"
import pg from "pg"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver } from "./driver.js"

/** Warnings and errors only; successes are not logged at all (`NO_LOG_SUCCESS`, set by the harness). */
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker] ${level}: ${message}`)
})

const batching = {
  worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const options = { connectionString: spec.databaseUrl, schema: spec.namespace, logger }
  const pool = new pg.Pool({ connectionString: spec.databaseUrl, max: 2 })
  let utils: WorkerUtils | undefined
  let runner: Runner | undefined
  const getUtils = async () => (utils ??= await makeWorkerUtils(options))

  return {
    setup: async () => {
      await (await getUtils()).migrate()
    },
    enqueueBulk: async (n) => {
      await (await getUtils()).addJobs(
        Array.from({ length: n }, (_, i) => ({ identifier: "bench_noop", payload: { i, t: 0 } }))
      )
    },
    enqueueOne: async (i, t) => {
      await (await getUtils()).addJob("bench_noop", { i, t })
    },
    startWorker: async (concurrency, onJob) => {
      runner = await run({
        ...options,
        concurrency,
        noHandleSignals: true,
        taskList: {
          bench_noop: async (payload) => {
            const { i, t } = payload as { i: number; t: number }
            onJob(i, t)
          }
        },
        ...(spec.driver === "graphile-batched" ? { preset: batching } : {})
      })
    },
    stopWorker: async () => {
      await runner?.stop()
    },
    committed: async (total) => {
      // graphile-worker deletes a job when it completes.
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${spec.namespace}"._private_jobs`)
      return total - rows[0].n
    },
    teardown: async () => {
      await utils?.release()
      await pool.query(`DROP SCHEMA IF EXISTS "${spec.namespace}" CASCADE`)
      await pool.end()
    }
  }
}
