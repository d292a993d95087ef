/**
 * The admin overview's history: samples of what the store did (jobs
 * completed, retried, discarded, cancelled, start latencies) and how deep
 * each queue is, kept in two rings of fixed size, so its memory does not
 * grow with time, jobs or queues:
 *
 * - one row per sample (every `interval`, 5 s by default): `baseSlots` rows,
 *   one hour at the default interval;
 * - one row per minute, aggregated from the samples: `minuteSlots` rows,
 *   24 hours.
 *
 * A row is `width` float64s: its time, span, four counts, the number of
 * starts, three latency percentiles (NaN when nothing started) and the
 * depth in the four waiting and running states of up to `maxQueues` queues
 * plus one column for all others. The whole history is `bytes` bytes.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import { costSpaced } from "../sampling.js"

/** The states whose counts are a queue's depth. */
export const depthStates = ["scheduled", "available", "running", "retryable"] as const

/** Queues with their own depth columns; the rest share one. */
export const maxQueues = 8

/** The name of the column of the queues beyond `maxQueues`. */
export const otherQueues = "(other queues)"

/** Rows of the per-sample ring. */
export const baseSlots = 720

/** Rows of the per-minute ring: 24 hours. */
export const minuteSlots = 1440

/** The per-minute ring's resolution. */
export const minuteMs = 60_000

/** Latencies kept per minute to take its percentiles from (a uniform sample of the minute's). */
export const reservoirSize = 1024

const AT = 0
const SPAN = 1
const COMPLETED = 2
const RETRIED = 3
const DISCARDED = 4
const CANCELLED = 5
const STARTED = 6
const P50 = 7
const P90 = 8
const P99 = 9
const DEPTH = 10

/** Float64s per row. */
export const width = DEPTH + (maxQueues + 1) * depthStates.length

/** The memory of both rings' rows, in bytes (the reservoir adds `reservoirSize` × 8). */
export const bytes = (baseSlots + minuteSlots) * width * 8

/** A ring of `slots` rows of `width` float64s, allocated once; a push over a full ring replaces the oldest row. */
export class Ring {
  readonly data: Float64Array
  private next = 0
  private count = 0

  constructor(
    readonly slots: number,
    readonly rowWidth: number
  ) {
    this.data = new Float64Array(slots * rowWidth)
  }

  /** Rows held. */
  get size(): number {
    return this.count
  }

  push(row: ArrayLike<number>): void {
    this.data.set(row, this.next * this.rowWidth)
    this.next = (this.next + 1) % this.slots
    this.count = Math.min(this.count + 1, this.slots)
  }

  /** The rows whose first value (their time) is above `after`, oldest first; views into the ring. */
  after(after: number): Array<Float64Array> {
    const rows: Array<Float64Array> = []
    const first = (this.next - this.count + this.slots) % this.slots
    for (let i = 0; i < this.count; i++) {
      const at = ((first + i) % this.slots) * this.rowWidth
      if (this.data[at + AT]! > after) rows.push(this.data.subarray(at, at + this.rowWidth))
    }
    return rows
  }
}

/** The `q` quantile (0..1) of sorted values, by nearest rank; NaN for none. */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!

/** One point of a chart, as the API returns it: rates per second, depth per queue. */
export interface Point {
  readonly at: number
  readonly completed: number
  readonly retried: number
  readonly discarded: number
  readonly cancelled: number
  readonly started: number
  readonly p50: number | null
  readonly p90: number | null
  readonly p99: number | null
  readonly depth: Record<string, Record<(typeof depthStates)[number], number>>
}

interface Minute {
  bucket: number
  readonly row: Float64Array
  readonly reservoir: Array<number>
  seen: number
}

/** The history of one node's admin server. */
export class History {
  readonly base = new Ring(baseSlots, width)
  readonly minute = new Ring(minuteSlots, width)
  /** Queues with their own depth column, in column order. */
  readonly queues: Array<string> = []
  private others = false
  private current: Minute | undefined
  private lastAt: number | undefined

  constructor(
    /** The sampling interval, ms. */
    readonly intervalMs: number,
    private readonly random: () => number = Math.random
  ) {}

  /** The depth column of a queue (the shared one when all are taken). */
  private column(queue: string): number {
    let i = this.queues.indexOf(queue)
    if (i < 0 && this.queues.length < maxQueues) i = this.queues.push(queue) - 1
    if (i < 0) {
      this.others = true
      i = maxQueues
    }
    return DEPTH + i * depthStates.length
  }

  /** Record one sample: the store's activity over [since, activity.now) and the depth at its end. */
  record(since: number, activity: JobStore.Activity): void {
    const row = new Float64Array(width)
    row[AT] = activity.now
    row[SPAN] = Math.max(0, activity.now - since)
    row[COMPLETED] = activity.completed
    row[RETRIED] = activity.retried
    row[DISCARDED] = activity.discarded
    row[CANCELLED] = activity.cancelled
    row[STARTED] = activity.latencies.length
    const sorted = [...activity.latencies].sort((a, b) => a - b)
    row[P50] = quantile(sorted, 0.5)
    row[P90] = quantile(sorted, 0.9)
    row[P99] = quantile(sorted, 0.99)
    for (const c of [...activity.depth].sort((a, b) =>
      a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0
    )) {
      const s = depthStates.indexOf(c.state as (typeof depthStates)[number])
      if (s >= 0) row[this.column(c.queue) + s] = row[this.column(c.queue) + s]! + c.count
    }
    this.base.push(row)
    this.lastAt = activity.now
    this.aggregate(row, activity.latencies)
  }

  /** Add a sample to its minute; a sample of a later minute first closes the current one into the minute ring. */
  private aggregate(row: Float64Array, latencies: ReadonlyArray<number>): void {
    const bucket = Math.floor(row[AT]! / minuteMs)
    if (this.current !== undefined && this.current.bucket !== bucket) this.close()
    if (this.current === undefined) {
      this.current = { bucket, row: new Float64Array(width), reservoir: [], seen: 0 }
    }
    const m = this.current
    m.row[AT] = row[AT]!
    for (const i of [SPAN, COMPLETED, RETRIED, DISCARDED, CANCELLED, STARTED]) m.row[i] = m.row[i]! + row[i]!
    m.row.set(row.subarray(DEPTH), DEPTH)
    for (const ms of latencies) {
      m.seen++
      if (m.reservoir.length < reservoirSize) m.reservoir.push(ms)
      else {
        const j = Math.floor(this.random() * m.seen)
        if (j < reservoirSize) m.reservoir[j] = ms
      }
    }
  }

  private close(): void {
    const m = this.current!
    const sorted = m.reservoir.sort((a, b) => a - b)
    m.row[P50] = quantile(sorted, 0.5)
    m.row[P90] = quantile(sorted, 0.9)
    m.row[P99] = quantile(sorted, 0.99)
    this.minute.push(m.row)
    this.current = undefined
  }

  /** The time of the latest sample (store clock), if any. */
  get latest(): number | undefined {
    return this.lastAt
  }

  /** The per-sample ring covers this much time. */
  get baseMs(): number {
    return baseSlots * this.intervalMs
  }

  /**
   * The points of the last `windowMs` before `now` that are later than
   * `after`: the samples when the per-sample ring covers the window, else
   * the minutes, followed by the samples since the last minute closed.
   */
  points(windowMs: number, now: number, after = Number.NEGATIVE_INFINITY): Array<Point> {
    const from = Math.max(now - windowMs, after)
    let rows: Array<Float64Array>
    if (windowMs <= this.baseMs) rows = this.base.after(from)
    else {
      rows = this.minute.after(from)
      const last = rows.length > 0 ? rows[rows.length - 1]![AT]! : from
      rows = rows.concat(this.base.after(Math.max(last, from)))
    }
    return rows.map((row) => this.point(row))
  }

  /** Names of the depth columns in use. */
  get columns(): Array<string> {
    return this.others ? [...this.queues, otherQueues] : [...this.queues]
  }

  private point(row: Float64Array): Point {
    const perSecond = (i: number) => (row[SPAN]! > 0 ? (row[i]! * 1000) / row[SPAN]! : 0)
    const ms = (i: number) => (Number.isNaN(row[i]!) ? null : Math.round(row[i]!))
    const depth: Point["depth"] = {}
    this.columns.forEach((queue, q) => {
      const at = DEPTH + q * depthStates.length
      depth[queue] = {
        scheduled: row[at]!,
        available: row[at + 1]!,
        running: row[at + 2]!,
        retryable: row[at + 3]!
      }
    })
    return {
      at: row[AT]!,
      completed: perSecond(COMPLETED),
      retried: perSecond(RETRIED),
      discarded: perSecond(DISCARDED),
      cancelled: perSecond(CANCELLED),
      started: row[STARTED]!,
      p50: ms(P50),
      p90: ms(P90),
      p99: ms(P99),
      depth
    }
  }
}

/**
 * Sample the store into `history` every `interval` for as long as the
 * fiber lives: one `activity` read (since the previous sample) each time,
 * spaced further after a slow one (`costSpaced`: a read of a very deep
 * backlog takes a while). A failed sample is logged and leaves a gap; the
 * next one covers the time since the last one that succeeded.
 */
export const sample = (
  history: History,
  store: JobStore.Service,
  interval: Duration.Duration
): Effect.Effect<never> => {
  let since: number | undefined
  const once = Effect.gen(function* () {
    since ??= (yield* store.now) - history.intervalMs
    const activity = yield* store.activity(since)
    history.record(since, activity)
    since = activity.now
  }).pipe(
    Effect.catchAll((e) =>
      Effect.logWarning(`nightshift admin: overview sample failed: ${e.message.split("\n", 1)[0]}`)
    )
  )
  const spaced = costSpaced(once, interval)
  return Effect.zipRight(Effect.repeat(spaced.sample, spaced.schedule), Effect.never)
}
