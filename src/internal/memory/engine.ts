/**
 * The memory engine: every `JobStore` operation as a synchronous method that
 * takes the current time. One call is one atomic step; the public module
 * reads the `Clock` and publishes the wake-up hints an operation leaves.
 *
 * @internal
 */
import * as FlowControl from "../../FlowControl.js"
import * as JobStore from "../../JobStore.js"
import * as Bulk from "../store/bulk.js"
import * as Core from "../store/core.js"
import * as Flow from "../store/flow.js"
import { keepStartsMs } from "../store/flow.js"
import {
  claimableFence,
  fenceExhausted,
  latestLeaseEnd,
  nextAttempt,
  storableLease
} from "../store/leases.js"
import { byCodePoint, idBounds, listLimit, matchesPayload, scanWindow, windowCursor } from "../store/list.js"
import type { Heap } from "./heap.js"
import { Indexes } from "./indexes.js"
import { makeRow, type Row, snapshot } from "./row.js"

const noHints: Array<JobStore.Wakeup> = []

/** @internal */
export class Engine {
  private readonly rows = new Map<string, Row>()
  /** Every row in id order, including deleted ones until the next compaction. */
  private order: Array<Row> = []
  private deletedInOrder = 0
  private nextNum = 1
  private readonly index = new Indexes()
  private readonly dedupe = new Map<string, Row>()
  private readonly pausedQueues = new Set<string>()
  /** Per cron name: the slots taken (slot → when taken) and the latest. */
  private readonly cronSlots = new Map<string, { readonly taken: Map<number, number>; latest: number }>()
  private readonly hintQueues = new Set<string>()
  private hintCancels: Array<string> = []
  /** Reused by every claim for the heaps it draws from. */
  private readonly claimHeaps: Array<Heap<Row>> = []
  /** The latest lease end ever set: rescue looks past the lease heap only when it is beyond the bound. */
  private latestLease = Number.NEGATIVE_INFINITY
  /** Flow control rules, by scope and name. */
  private rules = new Flow.Rules([])
  /** Rate-limit starts per rule (and key), oldest first. */
  private readonly starts = new Map<
    string,
    {
      readonly scope: "kind" | "queue"
      readonly name: string
      readonly partition: string | null
      at: Array<number>
    }
  >()
  /** Hints are collected only while someone listens. */
  listening: () => boolean = () => false

  /** Take the hints the last operations left. */
  takeHints(): Array<JobStore.Wakeup> {
    if (this.hintQueues.size === 0 && this.hintCancels.length === 0) return noHints
    const hints: Array<JobStore.Wakeup> = []
    for (const queue of this.hintQueues) hints.push({ _tag: "enqueued", queue })
    for (const id of this.hintCancels) hints.push({ _tag: "cancel", id })
    this.hintQueues.clear()
    this.hintCancels = []
    return hints
  }

  enqueue(now: number, inputs: ReadonlyArray<JobStore.EnqueueInput>): Array<JobStore.EnqueueResult> {
    const results: Array<JobStore.EnqueueResult> = []
    for (const input of inputs) results.push(this.insert(now, input))
    return results
  }

  claim(now: number, request: JobStore.ClaimRequest): Array<JobStore.JobRecord> {
    if (request.limit <= 0) return []
    this.index.promote(now)
    const claim: Claim = {
      now,
      request,
      leaseEnd: now + storableLease(request.leaseMs),
      claimed: [],
      budget: this.rules.touches(request.queues, request.kinds) ? this.budget(now) : undefined
    }
    const heaps = this.claimHeaps
    heaps.length = 0
    let fair = claim.budget !== undefined
    for (const queue of request.queues) {
      if (!fair && !this.pausedQueues.has(queue)) fair = !this.index.readyHeaps(queue, request.kinds, heaps)
    }
    if (!fair) {
      // No rule holds and no queue spans partition keys: the best jobs across the queues.
      while (claim.claimed.length < request.limit) {
        const heap = bestHeap(heaps)
        if (heap === undefined) break
        this.take(claim, heap.pop()!)
      }
      return claim.claimed
    }
    for (const queue of request.queues) {
      if (claim.claimed.length >= request.limit) break
      if (!this.pausedQueues.has(queue)) this.claimFair(claim, queue)
    }
    return claim.claimed
  }

  /**
   * Claim from one queue, serving its partition keys in turn (least recently
   * served first), one job per key per round, each admitted by the budget.
   */
  private claimFair(claim: Claim, queue: string): void {
    const partitions = this.index.partitions(queue)
    if (partitions === undefined) return
    const { kinds, limit } = claim.request
    const { budget } = claim
    // A global limit or a rate over the whole scope that admits no more holds back every key:
    // the walk ends there instead of asking each of them (a claim freeing one place would
    // otherwise walk every key with due work for its one job).
    const full = () => budget !== undefined && kinds.every((kind) => budget.room(queue, kind) <= 0)
    if (full()) return
    const heaps: Array<Heap<Row>> = []
    let turn = [...partitions.keys()]
    while (claim.claimed.length < limit && turn.length > 0) {
      const next: Array<string | null> = []
      for (const partition of turn) {
        if (claim.claimed.length >= limit) break
        const byKind = partitions.get(partition)
        if (byKind === undefined) continue
        heaps.length = 0
        for (const kind of kinds) {
          const heap = byKind.get(kind)
          // Every job of one heap shares queue, kind and key, so one admits as all do.
          if (heap?.clean() && claim.budget?.blocked(queue, kind, partition) == null) heaps.push(heap)
        }
        const heap = bestHeap(heaps)
        if (heap === undefined) {
          this.index.dropIfEmpty(queue, partition)
          continue
        }
        this.take(claim, heap.pop()!)
        this.index.served(queue, partition)
        next.push(partition)
        if (full()) return
      }
      turn = next
    }
  }

  /** Claim one due row (or discard it when its fence cannot grow). */
  private take(claim: Claim, row: Row): void {
    const { now, request } = claim
    // As on PostgreSQL, whose integer column ends there: a fence that cannot
    // be incremented ends the job instead of claiming it.
    if (!claimableFence(row.fence)) {
      this.recordError(row, now, fenceExhausted)
      this.finish(row, now, "discarded")
      return
    }
    if (claim.budget !== undefined) {
      claim.budget.take(row.queue, row.kind, row.partition)
      this.recordStart(now, row)
    }
    this.index.move(row, "running")
    row.attempt = nextAttempt(row.attempt)
    row.fence++
    row.attemptedAt = now
    row.leaseOwner = request.owner
    row.leaseExpiresAt = claim.leaseEnd
    this.latestLease = Math.max(this.latestLease, claim.leaseEnd)
    this.index.place(row, now)
    claim.claimed.push(snapshot(row))
  }

  declareLimits(rules: ReadonlyArray<FlowControl.Rule>): void {
    const byScope = new Map(this.rules.all().map((rule) => [`${rule.scope}\u0001${rule.name}`, rule]))
    for (const rule of rules) {
      const key = `${rule.scope}\u0001${rule.name}`
      if (FlowControl.isEmpty(rule)) byScope.delete(key)
      else byScope.set(key, rule)
    }
    this.rules = new Flow.Rules([...byScope.values()])
  }

  flowState(now: number, options: { readonly due: boolean }): JobStore.FlowState {
    const due = new Map<string, { queue: string; kind: string; partition: string | null; due: number }>()
    if (options.due) {
      this.index.promote(now)
      this.index.forEachReady((row) => {
        const key = groupKey(row)
        const group = due.get(key)
        if (group === undefined)
          due.set(key, { queue: row.queue, kind: row.kind, partition: row.partition, due: 1 })
        else group.due++
      })
    }
    return {
      now,
      rules: this.rules.all(),
      paused: this.paused(),
      running: this.runningGroups(now),
      rate: this.rateUsage(now),
      due: [...due.values()]
    }
  }

  /** The budget of a claim at `now`. */
  private budget(now: number): Flow.Budget {
    return new Flow.Budget(this.rules, this.runningGroups(now), this.rateUsage(now), true)
  }

  /** Running jobs whose lease holds, grouped by queue, kind and key. */
  private runningGroups(now: number): Array<JobStore.RunningGroup> {
    const groups = new Map<
      string,
      { queue: string; kind: string; partition: string | null; running: number }
    >()
    for (const row of this.index.runningRows) {
      if (!(row.leaseExpiresAt !== null && row.leaseExpiresAt > now)) continue
      const key = groupKey(row)
      const group = groups.get(key)
      if (group === undefined)
        groups.set(key, { queue: row.queue, kind: row.kind, partition: row.partition, running: 1 })
      else group.running++
    }
    return [...groups.values()]
  }

  /** Starts in each rate window, dropping those no window counts any more. */
  private rateUsage(now: number): Array<JobStore.RateUsage> {
    const usage: Array<JobStore.RateUsage> = []
    for (const [key, entry] of this.starts) {
      const rule = this.rules.get(entry.scope, entry.name)
      if (rule === undefined || rule.rateLimit === null || rule.rateWindowMs === null) {
        this.starts.delete(key)
        continue
      }
      const from = now - rule.rateWindowMs
      // Kept past the window as the SQL engines keep them (see `keepStartsMs`).
      const drop = firstAfter(entry.at, from - keepStartsMs)
      if (drop > 0) entry.at.splice(0, drop)
      const starts = entry.at.length - firstAfter(entry.at, from)
      if (entry.at.length === 0) this.starts.delete(key)
      else if (starts > 0) {
        const recent =
          entry.at.length -
          firstAfter(entry.at, now - Flow.paceOf(rule.rateLimit, rule.rateWindowMs, rule.rateBurst).spanMs)
        usage.push({ scope: entry.scope, name: entry.name, partition: entry.partition, starts, recent })
      }
    }
    return usage
  }

  /** Record a start against every rate limit that holds for the row. */
  private recordStart(now: number, row: Row): void {
    for (const rule of this.rules.forJob(row.queue, row.kind)) {
      if (rule.rateLimit === null) continue
      const name = rule.scope === "queue" ? row.queue : row.kind
      const partition = Flow.ratePartition(rule, row.partition)
      const key = `${rule.scope}\u0001${name}\u0001${partition ?? ""}`
      const entry = this.starts.get(key)
      if (entry === undefined) this.starts.set(key, { scope: rule.scope, name, partition, at: [now] })
      else entry.at.splice(firstAfter(entry.at, now), 0, now) // in time order, even if the clock went back
    }
  }

  heartbeat(
    now: number,
    owner: string,
    leases: ReadonlyArray<JobStore.Lease>,
    leaseMs: number
  ): Array<JobStore.LeaseStatus> {
    return leases.map(({ fence, id }) => {
      const row = this.rows.get(id)
      if (row === undefined || row.fence !== fence) return { id, held: false, cancelRequested: false }
      const held = row.state === "running" && row.leaseOwner === owner
      if (held) {
        row.leaseExpiresAt = now + storableLease(leaseMs)
        this.latestLease = Math.max(this.latestLease, row.leaseExpiresAt)
        row.seq++
        this.index.place(row, now)
      }
      return { id, held, cancelRequested: row.cancelRequested }
    })
  }

  settle(now: number, settlements: ReadonlyArray<JobStore.Settlement>): Array<JobStore.SettleResult> {
    const applied = new Map<string, JobStore.JobState>()
    for (const { change, settlement } of Core.applicable(settlements)) {
      const row = this.rows.get(settlement.id)
      if (row === undefined || row.state !== "running" || row.fence !== settlement.fence) continue
      this.apply(row, now, change)
      applied.set(row.id, row.state)
    }
    return Core.settleResults(settlements, applied)
  }

  rescue(now: number, limit: number): Array<JobStore.Rescued> {
    const rescued: Array<JobStore.Rescued> = []
    const leases = this.index.leases
    while (rescued.length < limit && leases.clean() && leases.topKey() <= now) {
      const row = leases.pop()!
      this.recordError(row, now, { kind: Core.rescuedKind, message: Core.rescueMessage(row.leaseOwner) })
      rescued.push(this.takeBack(row, now))
    }
    // A lease that ends later than any runner could set by now: only when the
    // clock went back by more than the longest lease (leases are clamped), so
    // the walk over the rows is rare; it also lowers the bound to what is left.
    const latest = latestLeaseEnd(now)
    if (rescued.length < limit && this.latestLease > latest) {
      let left = Number.NEGATIVE_INFINITY
      for (const row of this.rows.values()) {
        if (row.state !== "running" || row.leaseExpiresAt === null) continue
        if (row.leaseExpiresAt <= latest || rescued.length >= limit) {
          left = Math.max(left, row.leaseExpiresAt)
          continue
        }
        this.recordError(row, now, {
          kind: Core.rescuedKind,
          message: Core.rescueMessage(row.leaseOwner, true)
        })
        rescued.push(this.takeBack(row, now))
      }
      this.latestLease = left
    }
    return rescued
  }

  /** End a lease the rescuer takes back: cancelled when asked, discarded when out of attempts, else retryable now. */
  private takeBack(row: Row, now: number): JobStore.Rescued {
    const next = Core.rescuedState(row)
    if (next === "retryable") this.wait(row, now, next, now)
    else this.finish(row, now, next)
    return { id: row.id, kind: row.kind, queue: row.queue, state: row.state }
  }

  prune(now: number, request: JobStore.PruneRequest): number {
    let pruned = 0
    pruned += this.pruneState(now, "completed", request.completedMs, request.limit - pruned)
    pruned += this.pruneState(now, "discarded", request.discardedMs, request.limit - pruned)
    pruned += this.pruneState(now, "cancelled", request.cancelledMs, request.limit - pruned)
    this.pruneCronSlots(now, request.completedMs)
    this.rateUsage(now)
    this.compactOrder()
    return pruned
  }

  get(id: string): JobStore.JobRecord | undefined {
    const row = this.rows.get(id)
    return row === undefined ? undefined : snapshot(row)
  }

  list(filter: JobStore.ListFilter): JobStore.ListPage {
    const limit = listLimit(filter.limit)
    const bounds = idBounds(filter)
    if (bounds === undefined) return { jobs: [], nextCursor: null }
    const match = filter.payload
    if (match !== undefined && !JobStore.isPayloadPath(match.path)) return { jobs: [], nextCursor: null }
    const states = filter.states === undefined ? undefined : new Set(filter.states)
    const kinds = filter.kinds === undefined ? undefined : new Set(filter.kinds)
    const queues = filter.queues === undefined ? undefined : new Set(filter.queues)
    let lo = bounds.from
    let below = bounds.below
    let more: string | null = null
    if (JobStore.isWindowed(filter)) {
      const window = scanWindow(bounds, this.nextNum - 1)
      if (window === undefined) return { jobs: [], nextCursor: null }
      lo = window.lo
      below = window.hi
      more = windowCursor(bounds, window.lo)
    }
    const jobs: Array<JobStore.JobRecord> = []
    for (let i = this.startBelow(below === undefined ? null : String(below)); i >= 0; i--) {
      const row = this.order[i]!
      if (row.num < lo) break
      if (row.deleted) continue
      if (states !== undefined && !states.has(row.state)) continue
      if (kinds !== undefined && !kinds.has(row.kind)) continue
      if (queues !== undefined && !queues.has(row.queue)) continue
      if (filter.dedupeKey !== undefined && row.dedupeKey !== filter.dedupeKey) continue
      if (filter.createdFrom !== undefined && !(row.createdAt >= filter.createdFrom)) continue
      if (filter.createdTo !== undefined && !(row.createdAt < filter.createdTo)) continue
      if (match !== undefined && !matchesPayload(row.payload, match)) continue
      if (jobs.length === limit) return { jobs, nextCursor: jobs[limit - 1]!.id }
      jobs.push(snapshot(row))
    }
    return { jobs, nextCursor: more }
  }

  counts(): Array<JobStore.QueueCount> {
    return this.index.countRows()
  }

  /** `JobStore.activity`: a scan of every row (the memory store holds what fits in the process). */
  activity(now: number, since: number): JobStore.Activity {
    let completed = 0
    let discarded = 0
    let cancelled = 0
    let retried = 0
    const latencies: Array<number> = []
    const depth = new Map<string, JobStore.QueueCount>()
    for (const row of this.rows.values()) {
      if (!Core.isFinal(row.state)) {
        const key = `${row.queue}\u0000${row.state}`
        const c = depth.get(key)
        depth.set(key, { queue: row.queue, state: row.state, count: (c?.count ?? 0) + 1 })
      }
      const finishedSince =
        row.finalizedAt !== null &&
        row.finalizedAt >= since &&
        row.finalizedAt < now &&
        Core.isFinal(row.state)
      if (finishedSince && row.state === "completed") completed++
      else if (finishedSince && row.state === "discarded") discarded++
      else if (finishedSince && row.state === "cancelled") cancelled++
      const lastError = row.errors[row.errors.length - 1]
      if (
        lastError !== undefined &&
        lastError.at >= since &&
        lastError.at < now &&
        (row.state === "retryable" || row.state === "running" || (finishedSince && row.state === "completed"))
      )
        retried++
      if (
        row.attemptedAt !== null &&
        row.attemptedAt >= since &&
        row.attemptedAt < now &&
        (row.state === "running" || finishedSince) &&
        latencies.length < JobStore.activityLatencyLimit
      )
        latencies.push(row.attemptedAt - row.runAt)
    }
    return { now, completed, discarded, cancelled, retried, latencies, depth: [...depth.values()] }
  }

  cancel(now: number, id: string): JobStore.CancelResult {
    const row = this.rows.get(id)
    if (row === undefined) return { _tag: "not-found" }
    if (Core.isFinal(row.state)) return { _tag: "final", state: row.state }
    if (row.state === "running") {
      row.cancelRequested = true
      if (this.listening()) this.hintCancels.push(id)
      return { _tag: "requested", owner: row.leaseOwner }
    }
    this.finish(row, now, "cancelled")
    return { _tag: "cancelled" }
  }

  retry(now: number, id: string): JobStore.RetryResult {
    const row = this.rows.get(id)
    if (row === undefined) return { _tag: "not-found" }
    if (!Core.isFinal(row.state)) return { _tag: "not-retryable", state: row.state }
    if (row.dedupeKey !== null && this.dedupe.has(Core.dedupeIdentity(row.kind, row.dedupeKey))) {
      return { _tag: "not-retryable", state: row.state }
    }
    if (row.attempt >= row.maxAttempts) row.maxAttempts = row.attempt + 1
    row.finalizedAt = null
    row.cancelRequested = false
    if (row.dedupeKey !== null) this.dedupe.set(Core.dedupeIdentity(row.kind, row.dedupeKey), row)
    this.wait(row, now, "available", now)
    return { _tag: "retried" }
  }

  /** A bulk operation over ids (see `Bulk.runSync`). */
  bulk(ids: ReadonlyArray<string>, batch: (ids: ReadonlyArray<Bulk.BulkId>) => JobStore.BulkResult) {
    return Bulk.runSync(ids, batch)
  }

  /** `retryMany` for one batch: as `retry`; of final jobs sharing a kind and dedupe key, the newest. */
  retryMany(now: number, batch: ReadonlyArray<Bulk.BulkId>): JobStore.BulkResult {
    const changed = new Set<string>()
    const states = new Map<string, JobStore.JobState>()
    const keyed = new Set<string>()
    for (const { id } of [...batch].sort((a, b) => b.num - a.num)) {
      const row = this.rows.get(id)
      if (row === undefined) continue
      states.set(id, row.state)
      if (row.dedupeKey !== null) keyed.add(id)
      if (this.retry(now, id)._tag === "retried") changed.add(id)
    }
    return Bulk.outcome(batch, changed, new Set(), states, (id, state) =>
      Core.isFinal(state) && keyed.has(id) ? "dedupe" : "state"
    )
  }

  /** `cancelMany` for one batch. */
  cancelMany(now: number, batch: ReadonlyArray<Bulk.BulkId>): JobStore.BulkResult {
    const changed = new Set<string>()
    const requested = new Set<string>()
    const states = new Map<string, JobStore.JobState>()
    const cancelled: Array<JobStore.CancelledJob> = []
    for (const { id } of batch) {
      const result = this.cancel(now, id)
      if (result._tag === "cancelled") {
        changed.add(id)
        const row = this.rows.get(id)!
        cancelled.push({ id, kind: row.kind, queue: row.queue, attempt: row.attempt })
      } else if (result._tag === "requested") requested.add(id)
      else if (result._tag === "final") states.set(id, result.state)
    }
    return { ...Bulk.outcome(batch, changed, requested, states), cancelled }
  }

  /** `deleteMany` for one batch: every job that is not running. */
  deleteMany(batch: ReadonlyArray<Bulk.BulkId>): JobStore.BulkResult {
    const changed = new Set<string>()
    const states = new Map<string, JobStore.JobState>()
    for (const { id } of batch) {
      const row = this.rows.get(id)
      if (row === undefined) continue
      if (row.state === "running") {
        states.set(id, row.state)
        continue
      }
      if (row.dedupeKey !== null) {
        const key = Core.dedupeIdentity(row.kind, row.dedupeKey)
        if (this.dedupe.get(key) === row) this.dedupe.delete(key)
      }
      // Its index slots go stale.
      row.seq++
      this.delete(row)
      changed.add(id)
    }
    this.compactOrder()
    return Bulk.outcome(batch, changed, new Set(), states)
  }

  runNow(now: number, id: string): JobStore.RunNowResult {
    const row = this.rows.get(id)
    if (row === undefined) return { _tag: "not-found" }
    if (row.state === "available") return { _tag: "due" }
    if (row.state !== "scheduled" && row.state !== "retryable")
      return { _tag: "not-waiting", state: row.state }
    this.wait(row, now, "available", now)
    return { _tag: "moved" }
  }

  pause(queue: string): void {
    this.pausedQueues.add(queue)
  }

  resume(queue: string): void {
    if (this.pausedQueues.delete(queue)) this.hint(queue)
  }

  paused(): Array<string> {
    return [...this.pausedQueues].sort(byCodePoint)
  }

  enqueueCronSlot(now: number, input: JobStore.CronSlotInput): JobStore.EnqueueResult | undefined {
    const slots = this.cronSlots.get(input.name)
    if (slots === undefined) {
      this.cronSlots.set(input.name, { taken: new Map([[input.slot, now]]), latest: input.slot })
    } else {
      if (slots.taken.has(input.slot)) return undefined
      slots.taken.set(input.slot, now)
      slots.latest = Math.max(slots.latest, input.slot)
    }
    return this.insert(now, input.job)
  }

  lastCronSlot(name: string): number | undefined {
    return this.cronSlots.get(name)?.latest
  }

  /** Forget slots taken longer than `ageMs` ago, except the latest of each name. */
  private pruneCronSlots(now: number, ageMs: number): void {
    for (const slots of this.cronSlots.values()) {
      // Taken in time order, so the first one young enough ends the scan.
      for (const [slot, at] of slots.taken) {
        if (!(now - at > ageMs)) break
        if (slot !== slots.latest) slots.taken.delete(slot)
      }
    }
  }

  private insert(now: number, input: JobStore.EnqueueInput): JobStore.EnqueueResult {
    const key = input.dedupeKey === undefined ? undefined : Core.dedupeIdentity(input.kind, input.dedupeKey)
    const holder = key === undefined ? undefined : this.dedupe.get(key)
    if (holder !== undefined) return { id: holder.id, deduped: true }
    const row = makeRow(this.nextNum++, input, now)
    this.rows.set(row.id, row)
    this.order.push(row)
    if (key !== undefined) this.dedupe.set(key, row)
    this.index.add(row)
    this.index.place(row, now)
    if (row.state === "available") this.hint(row.queue)
    return { id: row.id, deduped: false }
  }

  private apply(row: Row, now: number, change: Core.Change): void {
    if (change.error !== null) this.recordError(row, now, change.error)
    row.attempt -= change.uncount
    if (change.final) this.finish(row, now, change.state)
    else if (Core.cancelWins(change, row.cancelRequested)) this.finish(row, now, "cancelled")
    else this.wait(row, now, change.state, change.delayMs === null ? row.runAt : now + change.delayMs)
  }

  private wait(row: Row, now: number, state: JobStore.JobState, runAt: number): void {
    this.index.move(row, state)
    row.runAt = runAt
    row.leaseOwner = null
    row.leaseExpiresAt = null
    this.index.place(row, now)
    if (runAt <= now) this.hint(row.queue)
  }

  private finish(row: Row, now: number, state: JobStore.JobState): void {
    // A completed job keeps the runner that ran its last attempt.
    if (state !== "completed") row.leaseOwner = null
    this.index.move(row, state)
    row.finalizedAt = now
    row.leaseExpiresAt = null
    if (row.dedupeKey !== null) {
      const key = Core.dedupeIdentity(row.kind, row.dedupeKey)
      if (this.dedupe.get(key) === row) this.dedupe.delete(key)
    }
    this.index.place(row, now)
  }

  private recordError(row: Row, now: number, error: JobStore.AttemptErrorInput): void {
    row.errors = [
      ...row.errors,
      row.state === "running"
        ? {
            attempt: row.attempt,
            at: now,
            kind: error.kind,
            message: error.message,
            startedAt: row.attemptedAt,
            node: row.leaseOwner
          }
        : { attempt: row.attempt, at: now, kind: error.kind, message: error.message }
    ]
  }

  private hint(queue: string): void {
    if (this.listening() && !this.pausedQueues.has(queue)) this.hintQueues.add(queue)
  }

  private pruneState(
    now: number,
    state: "completed" | "discarded" | "cancelled",
    ageMs: number,
    limit: number
  ): number {
    const finals = this.index.finals[state]
    let pruned = 0
    // Every final row here has a finish time; the fallbacks are those of the SQL engines.
    while (pruned < limit && finals.clean() && now - finishedAt(finals.first()) > ageMs) {
      this.delete(finals.first())
      finals.shift()
      pruned++
    }
    return pruned
  }

  private delete(row: Row): void {
    this.rows.delete(row.id)
    this.index.remove(row)
    row.deleted = true
    this.deletedInOrder++
  }

  private compactOrder(): void {
    if (this.deletedInOrder > 1024 && this.deletedInOrder * 2 > this.order.length) {
      this.order = this.order.filter((row) => !row.deleted)
      this.deletedInOrder = 0
    }
  }

  /** The index of the newest row whose id is below `cursor` (all rows without one). */
  private startBelow(cursor: string | null | undefined): number {
    if (cursor == null) return this.order.length - 1
    const bound = Core.parseId(cursor)
    if (bound === undefined) return -1
    let lo = 0
    let hi = this.order.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.order[mid]!.num < bound) lo = mid + 1
      else hi = mid
    }
    return lo - 1
  }
}

/** One claim in progress. */
interface Claim {
  readonly now: number
  readonly request: JobStore.ClaimRequest
  readonly leaseEnd: number
  readonly claimed: Array<JobStore.JobRecord>
  /** Room under the flow rules; undefined when no rule holds for the request. */
  readonly budget: Flow.Budget | undefined
}

const groupKey = (row: Row) =>
  `${row.queue}\u0001${row.kind}\u0001${row.partition ?? ""}\u0001${row.partition === null}`

/** The index of the first time after `t` in ascending `times`. */
const firstAfter = (times: ReadonlyArray<number>, t: number): number => {
  let lo = 0
  let hi = times.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (times[mid]! > t) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** When a final row finished: its finish time, or else its latest attempt, or else its creation. */
const finishedAt = (row: Row): number => row.finalizedAt ?? row.attemptedAt ?? row.createdAt

/** The heap whose current top comes first in claim order. */
const bestHeap = (heaps: ReadonlyArray<Heap<Row>>): Heap<Row> | undefined => {
  let best: Heap<Row> | undefined
  for (const heap of heaps) {
    if (heap.clean() && (best === undefined || heap.topBefore(best))) best = heap
  }
  return best
}
