/**
 * BullMQ on Redis as a contestant: `addBulk` for bulk enqueue, `add` for
 * single jobs, a `Worker` with the concurrency. Each run has its own key
 * prefix, obliterated afterwards.
 */
import { Queue, Worker } from "bullmq"
import type { ChildSpec } from "../lib/protocol.js"
import type { Driver } from "./driver.js"

const name = "bench_noop"

interface Payload {
  readonly i: number
  readonly t: number
}

export const make = async (spec: ChildSpec): Promise<Driver> => {
  const url = new URL(spec.redisUrl)
  const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null }
  const queue = new Queue<Payload>(name, { connection, prefix: spec.namespace })
  let worker: Worker<Payload> | undefined

  return {
    setup: async () => {
      await queue.waitUntilReady()
    },
    enqueueBulk: async (n) => {
      await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name, data: { i, t: 0 } })))
    },
    enqueueOne: async (i, t) => {
      await queue.add(name, { i, t })
    },
    startWorker: async (concurrency, onJob) => {
      worker = new Worker<Payload>(
        name,
        async (job) => {
          onJob(job.data.i, job.data.t)
        },
        { connection, prefix: spec.namespace, concurrency }
      )
      worker.on("error", (error) => console.error("[bullmq]", error))
      await worker.waitUntilReady()
    },
    stopWorker: async () => {
      await worker?.close()
    },
    committed: () => queue.getCompletedCount(),
    teardown: async () => {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  }
}
