/**
 * The memory engine's indexes over its rows: ready heaps per (queue,
 * partition key, kind) by (priority, run-at, id), the partitions of a queue
 * kept least recently served first, a timer heap of not-yet-due rows by run-at, a
 * lease heap of running rows by expiry, a finalization-ordered list per final
 * state, and counts per queue and state. Nothing is removed eagerly: a slot
 * whose row has moved on (its `seq` changed) is stale and skipped.
 *
 * @internal
 */
import type * as JobStore from "../../JobStore.js"
import { Fifo } from "./fifo.js"
import { Heap } from "./heap.js"
import type { Row } from "./row.js"

type Counts = Record<JobStore.JobState, number>

const emptyCounts = (): Counts => ({
  scheduled: 0,
  available: 0,
  running: 0,
  retryable: 0,
  completed: 0,
  discarded: 0,
  cancelled: 0
})

/** @internal */
export class Indexes {
  /** queue → partition key (null: none) → kind → heap; a queue's keys in least-recently-served order. */
  private readonly ready = new Map<string, Map<string | null, Map<string, Heap<Row>>>>()
  /** Rows in state `running`. */
  readonly runningRows = new Set<Row>()
  private readonly timers = new Heap<Row>()
  readonly leases = new Heap<Row>()
  readonly finals = {
    completed: new Fifo<Row>(),
    discarded: new Fifo<Row>(),
    cancelled: new Fifo<Row>()
  }
  private readonly counts = new Map<string, Counts>()
  private running = 0

  /** Record that `row` moves to `state`; callers then update fields and `place` it. */
  move(row: Row, state: JobStore.JobState): void {
    const counts = this.countsOf(row.queue)
    counts[row.state]--
    counts[state]++
    if (row.state === "running") {
      this.running--
      this.runningRows.delete(row)
    }
    if (state === "running") {
      this.running++
      this.runningRows.add(row)
    }
    row.state = state
    row.seq++
  }

  /** Count a new row. */
  add(row: Row): void {
    this.countsOf(row.queue)[row.state]++
  }

  /** Forget a deleted row's count. */
  remove(row: Row): void {
    this.countsOf(row.queue)[row.state]--
    this.runningRows.delete(row)
  }

  /** Index `row` under its current state and `seq`. */
  place(row: Row, now: number): void {
    switch (row.state) {
      case "running":
        this.leases.push(row.leaseExpiresAt!, row.num, 0, row)
        if (this.leases.size > 1024 && this.leases.size > 2 * this.running) this.leases.compact()
        break
      case "completed":
      case "discarded":
      case "cancelled":
        this.finals[row.state].push(row)
        break
      default:
        if (row.runAt <= now)
          this.readyHeap(row.queue, row.partition, row.kind).push(row.priority, row.runAt, row.num, row)
        else this.timers.push(row.runAt, row.num, 0, row)
    }
  }

  /** Move rows whose run-at has come from the timer heap to their ready heaps. */
  promote(now: number): void {
    while (this.timers.clean() && this.timers.topKey() <= now) this.place(this.timers.pop()!, now)
  }

  /**
   * Add to `into` the non-empty ready heaps for these queues and kinds;
   * false (and nothing added) when the queue's ready jobs span several
   * partition keys, which a claim must serve in turn (`partitions`).
   */
  readyHeaps(queue: string, kinds: ReadonlyArray<string>, into: Array<Heap<Row>>): boolean {
    const byPartition = this.ready.get(queue)
    if (byPartition === undefined) return true
    if (byPartition.size > 1) return false
    for (const byKind of byPartition.values()) {
      for (const kind of kinds) {
        const heap = byKind.get(kind)
        if (heap !== undefined && heap.size > 0) into.push(heap)
      }
    }
    return true
  }

  /** A queue's partition keys with ready heaps, least recently served first (a live view). */
  partitions(queue: string): Map<string | null, Map<string, Heap<Row>>> | undefined {
    return this.ready.get(queue)
  }

  /** Mark a partition key as just served: it goes to the back of its queue's turn. */
  served(queue: string, partition: string | null): void {
    const byPartition = this.ready.get(queue)
    const byKind = byPartition?.get(partition)
    if (byPartition === undefined || byKind === undefined) return
    byPartition.delete(partition)
    byPartition.set(partition, byKind)
  }

  /** Forget a partition key whose heaps hold no current row. */
  dropIfEmpty(queue: string, partition: string | null): void {
    const byPartition = this.ready.get(queue)
    const byKind = byPartition?.get(partition)
    if (byPartition === undefined || byKind === undefined) return
    for (const heap of byKind.values()) if (heap.clean()) return
    byPartition.delete(partition)
  }

  /** Every row that is due now: ready heaps hold them (and stale slots). */
  forEachReady(f: (row: Row) => void): void {
    for (const byPartition of this.ready.values())
      for (const byKind of byPartition.values()) for (const heap of byKind.values()) heap.forEachCurrent(f)
  }

  /** Non-zero counts per queue and state. */
  countRows(): Array<JobStore.QueueCount> {
    const out: Array<JobStore.QueueCount> = []
    for (const [queue, counts] of this.counts) {
      for (const state in counts) {
        const count = counts[state as JobStore.JobState]
        if (count > 0) out.push({ queue, state: state as JobStore.JobState, count })
      }
    }
    return out
  }

  private countsOf(queue: string): Counts {
    let counts = this.counts.get(queue)
    if (counts === undefined) this.counts.set(queue, (counts = emptyCounts()))
    return counts
  }

  private readyHeap(queue: string, partition: string | null, kind: string): Heap<Row> {
    let byPartition = this.ready.get(queue)
    if (byPartition === undefined) this.ready.set(queue, (byPartition = new Map()))
    let byKind = byPartition.get(partition)
    if (byKind === undefined) byPartition.set(partition, (byKind = new Map()))
    let heap = byKind.get(kind)
    if (heap === undefined) byKind.set(kind, (heap = new Heap()))
    return heap
  }
}
