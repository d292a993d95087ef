import * as Cron from "effect/Cron"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as CronJob from "../../CronJob.js"
import * as Events from "../../Events.js"
import * as JobQueue from "../../JobQueue.js"
import * as JobStore from "../../JobStore.js"
import * as Metrics from "../../Metrics.js"
import * as FlowReport from "../store/flowReport.js"

/** Retention per final state and the batch bound of one delete. */
export interface Retention {
  readonly completedMs: number
  readonly discardedMs: number
  readonly cancelledMs: number
  readonly batchSize: number
}

/** One rescuer pass: end every expired lease, in bounded batches. */
export const rescuePass = (store: JobStore.Service, batchSize: number) =>
  Effect.gen(function* () {
    let total = 0
    while (true) {
      const rescued = yield* store.rescue(batchSize)
      const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
      for (const r of rescued) {
        yield* Metrics.rescued(r.kind, 1)
        yield* Events.publish({ _tag: "rescued", id: r.id, kind: r.kind, queue: r.queue, at: now })
      }
      total += rescued.length
      if (rescued.length < batchSize) break
    }
    if (total > 0) yield* Effect.logWarning(`nightshift: rescued ${total} job(s) whose lease expired`)
    return total
  })

/** One pruner pass: delete finished jobs past their retention, in bounded batches. */
export const prunePass = (store: JobStore.Service, retention: Retention) =>
  Effect.gen(function* () {
    let total = 0
    while (true) {
      const n = yield* store.prune({
        completedMs: retention.completedMs,
        discardedMs: retention.discardedMs,
        cancelledMs: retention.cancelledMs,
        limit: retention.batchSize
      })
      total += n
      if (n < retention.batchSize) break
      yield* Effect.yieldNow()
    }
    if (total > 0) yield* Effect.logDebug(`nightshift: pruned ${total} finished job(s)`)
    return total
  })

/** Table sizes of a process that no longer reports them. */
const noTables: JobStore.TableStats = {
  liveRows: 0,
  deadRows: 0,
  tableBytes: 0,
  indexBytes: 0,
  finishedBytes: 0
}

/** The runner's depth sampler (see `makeSampler`). */
export interface Sampler {
  /**
   * One pass: count the live jobs per queue and state and the jobs a limit
   * holds back; with `record`, write them (and the store's table sizes)
   * into the gauges. Returns the due depth of the served queues, less the
   * jobs held back.
   */
  readonly sample: (record: boolean) => Effect.Effect<number, JobStore.JobStoreError>
  /** Set every gauge this sampler wrote to 0: this process stopped reporting. */
  readonly clear: Effect.Effect<void>
}

/**
 * Sample queue depths (`JobStore.depth`: the live states only) into the
 * gauge, the store's table sizes into theirs where it has them, and
 * throttled jobs into theirs (a failure in either of those is logged and
 * does not fail the depths).
 * Counts leave out zeros, so every (queue, state) pair of the served queues,
 * and every pair reported before, that is missing now reads 0: a drained
 * queue's gauge goes back to 0 instead of keeping its last count.
 */
export const makeSampler = (store: JobStore.Service, queues: ReadonlyArray<string>): Sampler => {
  const key = (queue: string, state: string) => JSON.stringify([queue, state])
  const served = new Map<string, readonly [string, string]>()
  for (const queue of queues) {
    for (const state of JobStore.activeStates) served.set(key(queue, state), [queue, state])
  }
  let known = new Map(served)
  const throttledPass = makeThrottledSampler(store)
  let wroteTables = false
  const sample = (record: boolean) =>
    Effect.gen(function* () {
      const counts = yield* store.depth
      if (record && store.tableStats !== undefined) {
        yield* store.tableStats.pipe(
          Effect.flatMap(Metrics.tables),
          Effect.tap(() => {
            wroteTables = true
          }),
          Effect.catchAll((e) => Effect.logWarning("nightshift: sampling the store's table sizes failed", e))
        )
      }
      const ours = new Set(queues)
      let waiting = 0
      for (const c of counts) {
        if (ours.has(c.queue) && c.state === "available") waiting += c.count
      }
      if (record) {
        const seen = new Set<string>()
        for (const c of counts) {
          const k = key(c.queue, c.state)
          seen.add(k)
          if (!known.has(k)) known.set(k, [c.queue, c.state])
          yield* Metrics.depth(c.queue, c.state, c.count)
        }
        for (const [k, [queue, state]] of known) {
          if (!seen.has(k)) yield* Metrics.depth(queue, state, 0)
        }
        // Bounded: past 10,000 pairs, forget the queues this node neither serves nor saw just now.
        if (known.size > 10_000) known = new Map([...served, ...[...known].filter(([k]) => seen.has(k))])
      }
      const throttled = yield* throttledPass
        .sample(record)
        .pipe(
          Effect.catchAll((e) =>
            Effect.as(
              Effect.logWarning("nightshift: sampling throttled jobs failed", e),
              new Map<string, number>()
            )
          )
        )
      // Autoscale counts what could start: jobs a limit holds back need no more slots.
      for (const queue of ours) waiting -= throttled.get(queue) ?? 0
      return Math.max(0, waiting)
    })
  return {
    sample,
    clear: Effect.suspend(() =>
      Effect.forEach(known.values(), ([queue, state]) => Metrics.depth(queue, state, 0), { discard: true })
    ).pipe(
      Effect.zipRight(throttledPass.clear),
      Effect.zipRight(Effect.suspend(() => (wroteTables ? Metrics.tables(noTables) : Effect.void)))
    )
  }
}

/**
 * Sample the throttled-jobs gauge from the store's flow state (with due
 * groups), and return the throttled jobs per queue. As with depths, a
 * (queue, kind, reason) reported before and missing now reads 0, so a limit
 * that stops holding jobs back shows it. Without rules or paused queues
 * nothing can be throttled, and the due jobs are not counted.
 */
export const makeThrottledSampler = (store: JobStore.Service) => {
  let known = new Map<string, readonly [string, string, string]>()
  const sample = (record: boolean) =>
    Effect.gen(function* () {
      const light = yield* store.flowState({ due: false })
      const state =
        light.rules.length === 0 && light.paused.length === 0 ? light : yield* store.flowState({ due: true })
      const seen = new Set<string>()
      const perQueue = new Map<string, number>()
      for (const t of FlowReport.throttled(state)) {
        perQueue.set(t.queue, (perQueue.get(t.queue) ?? 0) + t.count)
        if (!record) continue
        const k = JSON.stringify([t.queue, t.kind, t.reason])
        seen.add(k)
        if (!known.has(k)) known.set(k, [t.queue, t.kind, t.reason])
        yield* Metrics.throttled(t.queue, t.kind, t.reason, t.count)
      }
      if (record) {
        for (const [k, [queue, kind, reason]] of known) {
          if (!seen.has(k)) yield* Metrics.throttled(queue, kind, reason, 0)
        }
        // Bounded: past 10,000 label sets, forget the ones at 0 (they were just set to 0).
        if (known.size > 10_000) known = new Map([...known].filter(([k]) => seen.has(k)))
      }
      return perQueue
    })
  const clear = Effect.suspend(() =>
    Effect.forEach(known.values(), ([queue, kind, reason]) => Metrics.throttled(queue, kind, reason, 0), {
      discard: true
    })
  )
  return { sample, clear }
}

const enqueueSlot = (store: JobStore.Service, job: CronJob.CronJob, slot: number) =>
  Effect.gen(function* () {
    const input = yield* JobQueue.toInput(job.kind, job.payload, job.options, Option.none())
    const result = yield* store.enqueueCronSlot({ name: job.name, slot, job: input })
    if (result !== undefined) {
      yield* Effect.logDebug(
        `nightshift: cron ${job.name} enqueued job ${result.id} for slot ${new Date(slot).toISOString()}`
      )
    }
  }).pipe(
    Effect.catchAll((e) => Effect.logError(`nightshift: cron ${job.name} could not enqueue its slot`, e)),
    Effect.annotateLogs("cron", job.name)
  )

/**
 * The cron enqueuer: sleeps until the earliest next slot of the declared
 * jobs and records that slot for each job due. Missed slots are skipped,
 * except the latest one at start-up for jobs declared with `backfill`.
 */
export const cronLoop = (store: JobStore.Service, jobs: ReadonlyArray<CronJob.CronJob>) =>
  Effect.gen(function* () {
    if (jobs.length === 0) return yield* Effect.never
    const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
    for (const job of jobs.filter((j) => j.backfill)) {
      const last = yield* Effect.orElseSucceed(store.lastCronSlot(job.name), () => undefined)
      if (last === undefined) continue
      // Walk back from now: bounded by the limit, however long the downtime.
      const missed: Array<number> = []
      for (let slot = Cron.prev(job.cron, now).getTime(); slot > last; ) {
        if (missed.length === job.backfillLimit) {
          yield* Effect.logWarning(
            `nightshift: cron ${job.name} missed more than ${job.backfillLimit} slots; backfilling the latest ${job.backfillLimit}`
          )
          break
        }
        missed.push(slot)
        slot = Cron.prev(job.cron, slot - 1).getTime()
      }
      for (const slot of missed.reverse()) yield* enqueueSlot(store, job, slot)
    }
    const next = jobs.map((j) => Cron.next(j.cron, now).getTime())
    while (true) {
      const due = Math.min(...next)
      const current = yield* Effect.clockWith((c) => c.currentTimeMillis)
      if (due > current) yield* Effect.sleep(due - current)
      const at = yield* Effect.clockWith((c) => c.currentTimeMillis)
      for (let i = 0; i < jobs.length; i++) {
        if (next[i]! > at) continue
        yield* enqueueSlot(store, jobs[i]!, next[i]!)
        next[i] = Cron.next(jobs[i]!.cron, Math.max(next[i]!, at - 1)).getTime()
      }
    }
  })
