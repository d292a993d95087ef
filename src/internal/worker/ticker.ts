import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"

/**
 * One timer for many waiters. An entry is armed at a whole epoch millisecond;
 * the ticker keeps one bucket per armed millisecond (entries in arm order)
 * and a binary min-heap of the buckets, and one fiber that sleeps (on
 * Effect's `Clock`, so `TestClock` drives it) until the earliest bucket, then
 * fires every entry that is due, in (instant, arm order).
 *
 * Periodic workers re-arm at about the same instants, so 10,000 entries fall
 * into a few hundred buckets: arming is a map lookup and an array push, and a
 * pass takes whole buckets off the heap instead of sifting the heap once per
 * entry.
 */
export interface Entry {
  /** Called once when the entry is due. */
  fire(): void
  /** The bucket the entry is armed in; `undefined` when not armed. */
  bucket: Bucket | undefined
  /** Position in its bucket. */
  slot: number
}

/** The entries armed for one instant, in arm order; a disarmed entry leaves a hole. */
export interface Bucket {
  readonly at: number
  readonly entries: Array<Entry | undefined>
  live: number
  /** Position in the heap; -1 once taken off it. */
  index: number
}

export interface Ticker {
  readonly entry: (fire: () => void) => Entry
  /** Arm (or re-arm) `entry` for epoch-ms instant `at` (rounded up to a whole millisecond). */
  readonly arm: (entry: Entry, at: number) => void
  readonly disarm: (entry: Entry) => void
  readonly now: () => number
  /**
   * Run `hook` after every pass that fired at least one entry, once the pass
   * has fired them all (periodic workers start their due ticks there, in
   * batches).
   */
  readonly afterPass: (hook: () => void) => void
}

class Heap {
  readonly items: Array<Bucket> = []
  private place(bucket: Bucket, i: number): void {
    this.items[i] = bucket
    bucket.index = i
  }
  private up(bucket: Bucket, i: number): void {
    const items = this.items
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent]!
      if (p.at <= bucket.at) break
      this.place(p, i)
      i = parent
    }
    this.place(bucket, i)
  }
  private down(bucket: Bucket, i: number): void {
    const items = this.items
    const n = items.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && items[r]!.at < items[l]!.at ? r : l
      const child = items[c]!
      if (child.at >= bucket.at) break
      this.place(child, i)
      i = c
    }
    this.place(bucket, i)
  }
  push(bucket: Bucket): void {
    this.items.push(bucket)
    this.up(bucket, this.items.length - 1)
  }
  peek(): Bucket | undefined {
    return this.items[0]
  }
  remove(bucket: Bucket): void {
    const i = bucket.index
    if (i < 0) return
    bucket.index = -1
    const last = this.items.pop()!
    if (last === bucket) return
    this.place(last, i)
    if (i > 0 && last.at < this.items[(i - 1) >> 1]!.at) this.up(last, i)
    else this.down(last, i)
  }
}

/** Effect's live clock (the default services' one). */
const liveClock = Effect.runSync(Effect.clock)

/** The longest delay a Node timer takes; a longer sleep wakes early and sleeps again. */
const maxTimer = 2 ** 31 - 1

/** A ticker living in the current scope; its timer stops when the scope closes. */
export const make: Effect.Effect<Ticker, never, Scope.Scope> = Effect.gen(function* () {
  const runtime = yield* Effect.runtime<never>()
  const clock = yield* Effect.clock
  const heap = new Heap()
  const buckets = new Map<number, Bucket>()
  const hooks: Array<() => void> = []
  const fork = Runtime.runFork(runtime)
  let armedAt = Number.POSITIVE_INFINITY
  let timer: Fiber.RuntimeFiber<void> | undefined
  let generation = 0
  let closed = false

  const disarm = (entry: Entry): void => {
    const bucket = entry.bucket
    if (bucket === undefined) return
    entry.bucket = undefined
    bucket.entries[entry.slot] = undefined
    if (--bucket.live === 0 && bucket.index >= 0) {
      heap.remove(bucket)
      buckets.delete(bucket.at)
    }
  }

  /**
   * Fire the entries due by `now` that were armed before this pass began:
   * the due buckets are taken off the heap first, so an entry armed while
   * they fire lands in a fresh bucket and waits for the next pass.
   */
  const fireDue = (now: number) => {
    let top = heap.peek()
    if (top === undefined || top.at > now) return
    const due: Array<Bucket> = []
    for (; top !== undefined && top.at <= now; top = heap.peek()) {
      heap.remove(top)
      buckets.delete(top.at)
      due.push(top)
    }
    for (const bucket of due) {
      const entries = bucket.entries
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]
        if (entry === undefined) continue
        entries[i] = undefined
        entry.bucket = undefined
        entry.fire()
      }
    }
    for (const hook of hooks) hook()
  }

  /** Fire what is due by `target` (or by the clock, if later), then say when to wake next; `undefined`: nothing armed. */
  const pass = (target: number): number | undefined => {
    fireDue(Math.max(target, clock.unsafeCurrentTimeMillis()))
    const top = heap.peek()
    armedAt = top === undefined ? Number.POSITIVE_INFINITY : top.at
    return top?.at
  }

  /**
   * On Effect's live clock the ticker sleeps on a plain Node timer: a wake-up
   * then costs one timer callback, where a sleeping fiber costs an `async`
   * resume, a scheduler turn and a few run-loop steps (about 0.1 ms a
   * wake-up, cold, on the benchmark machine). Any other clock (`TestClock`)
   * is slept on through a fiber, so virtual time drives the ticks.
   */
  const live = clock === liveClock
  let handle: ReturnType<typeof setTimeout> | undefined

  const liveWake = (at: number): void => {
    if (handle !== undefined) clearTimeout(handle)
    const delay = Math.max(0, at - clock.unsafeCurrentTimeMillis())
    // A capped sleep wakes before `at`: it then fires only what the clock says is due.
    const target = delay > maxTimer ? Number.NEGATIVE_INFINITY : at
    handle = setTimeout(
      () => {
        handle = undefined
        const next = pass(target)
        if (next !== undefined && !closed) liveWake(next)
      },
      Math.min(maxTimer, delay)
    )
  }

  /** One pass; `target` is the instant the pass slept for (the clock may read a hair less in floating point). */
  const loop = (gen: number, target: number): Effect.Effect<void> =>
    Effect.suspend(() => (gen === generation ? step(gen, target) : Effect.void))

  const step = (gen: number, target: number): Effect.Effect<void> => {
    const at = pass(target)
    if (at === undefined) {
      timer = undefined
      return Effect.void
    }
    return Effect.zipRight(Clock.sleep(Math.max(0, at - clock.unsafeCurrentTimeMillis())), loop(gen, at))
  }

  const wake = (at: number) => {
    if (closed || at >= armedAt) return
    armedAt = at
    if (live) return liveWake(at)
    timer?.unsafeInterruptAsFork(FiberId.none)
    timer = fork(loop(++generation, Number.NEGATIVE_INFINITY))
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      generation++
      timer?.unsafeInterruptAsFork(FiberId.none)
      timer = undefined
      if (handle !== undefined) clearTimeout(handle)
      handle = undefined
    })
  )

  return {
    entry: (fire) => ({ fire, bucket: undefined, slot: 0 }),
    arm: (entry, instant) => {
      disarm(entry)
      const at = Math.ceil(instant)
      let bucket = buckets.get(at)
      if (bucket === undefined) {
        bucket = { at, entries: [], live: 0, index: -1 }
        buckets.set(at, bucket)
        heap.push(bucket)
      }
      entry.bucket = bucket
      entry.slot = bucket.entries.length
      bucket.entries.push(entry)
      bucket.live++
      wake(at)
    },
    disarm,
    now: () => clock.unsafeCurrentTimeMillis(),
    afterPass: (hook) => {
      hooks.push(hook)
    }
  }
})
