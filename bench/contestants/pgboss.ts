/**
 * pg-boss as a contestant, with its low-latency settings: the LISTEN/NOTIFY
 * listener (`useListenNotify`, and `notify` on the queue), batches of 50, and
 * `burstWhenBatchFull` so a worker fetches again at once while batches come
 * back full (without it a worker waits out its polling interval after every
 * batch). `insert` for bulk enqueue, `send` for single jobs, `work` with
 * `localConcurrency` as the concurrency.
 */

import pg from "pg"
import { PgBoss } from "pg-boss"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver } from "./driver.js"

const queue = "bench_noop"

interface Payload {
  readonly i: number
  readonly t: number
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const boss = new PgBoss({
    connectionString: spec.databaseUrl,
    schema: spec.namespace,
    useListenNotify: true
  })
  boss.on("error", (error) => console.error("[pg-boss]", error))
  const pool = new pg.Pool({ connectionString: spec.databaseUrl, max: 2 })
  let started: Promise<unknown> | undefined
  const start = () => (started ??= boss.start())

  return {
    setup: async () => {
      await start()
      await boss.createQueue(queue, { notify: true })
    },
    enqueueBulk: async (n) => {
      await start()
      await boss.insert(
        queue,
        Array.from({ length: n }, (_, i) => ({ data: { i, t: 0 } }))
      )
    },
    enqueueOne: async (i, t) => {
      await boss.send(queue, { i, t })
    },
    startWorker: async (concurrency, onJob) => {
      await start()
      await boss.work<Payload>(
        queue,
        { batchSize: 50, localConcurrency: concurrency, burstWhenBatchFull: true },
        async (jobs) => {
          for (const job of jobs) onJob(job.data.i, job.data.t)
        }
      )
    },
    stopWorker: async () => {
      await boss.offWork(queue, { wait: true })
    },
    committed: async () => {
      const { rows } = await pool.query(
        `SELECT count(*)::int AS n FROM "${spec.namespace}".job WHERE name = $1 AND state = 'completed'`,
        [queue]
      )
      return rows[0].n
    },
    teardown: async () => {
      await boss.stop({ graceful: true, close: true })
      await pool.query(`DROP SCHEMA IF EXISTS "${spec.namespace}" CASCADE`)
      await pool.end()
    }
  }
}
