import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"

/**
 * One timer for many waiters. An entry is armed at an instant; the ticker
 * keeps armed entries in an indexed binary min-heap (no allocation per arm)
 * and one fiber that sleeps (on Effect's `Clock`, so `TestClock` drives it)
 * until the earliest, then fires every entry that is due.
 */
export interface Entry {
  /** Called once when the entry is due. */
  fire(): void
  at: number
  seq: number
  /** Position in the heap; -1 when not armed. */
  index: number
}

export interface Ticker {
  readonly entry: (fire: () => void) => Entry
  /** Arm (or re-arm) `entry` for epoch-ms instant `at`. */
  readonly arm: (entry: Entry, at: number) => void
  readonly disarm: (entry: Entry) => void
  readonly now: () => number
}

const before = (a: Entry, b: Entry) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

class Heap {
  readonly items: Array<Entry> = []
  private place(entry: Entry, i: number): void {
    this.items[i] = entry
    entry.index = i
  }
  private up(entry: Entry, i: number): void {
    const items = this.items
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent]!
      if (!before(entry, p)) break
      this.place(p, i)
      i = parent
    }
    this.place(entry, i)
  }
  private down(entry: Entry, i: number): void {
    const items = this.items
    const n = items.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && before(items[r]!, items[l]!) ? r : l
      const child = items[c]!
      if (!before(child, entry)) break
      this.place(child, i)
      i = c
    }
    this.place(entry, i)
  }
  push(entry: Entry): void {
    this.items.push(entry)
    this.up(entry, this.items.length - 1)
  }
  peek(): Entry | undefined {
    return this.items[0]
  }
  remove(entry: Entry): void {
    const i = entry.index
    if (i < 0) return
    entry.index = -1
    const last = this.items.pop()!
    if (last === entry) return
    this.place(last, i)
    if (i > 0 && before(last, this.items[(i - 1) >> 1]!)) this.up(last, i)
    else this.down(last, i)
  }
}

/** A ticker living in the current scope; its timer fiber stops when the scope closes. */
export const make: Effect.Effect<Ticker, never, Scope.Scope> = Effect.gen(function* () {
  const runtime = yield* Effect.runtime<never>()
  const clock = yield* Effect.clock
  const heap = new Heap()
  const fork = Runtime.runFork(runtime)
  let seq = 0
  let armedAt = Number.POSITIVE_INFINITY
  let timer: Fiber.RuntimeFiber<void> | undefined
  let generation = 0
  let closed = false

  /** Fire the entries due by `now` that were armed before this pass began. */
  const fireDue = (now: number) => {
    const last = seq
    for (let top = heap.peek(); top !== undefined && top.at <= now && top.seq <= last; top = heap.peek()) {
      heap.remove(top)
      top.fire()
    }
  }

  /** One pass; `target` is the instant the pass slept for (the clock may read a hair less in floating point). */
  const loop = (gen: number, target: number): Effect.Effect<void> =>
    Effect.suspend(() => (gen === generation ? step(gen, target) : Effect.void))

  const step = (gen: number, target: number): Effect.Effect<void> => {
    fireDue(Math.max(target, clock.unsafeCurrentTimeMillis()))
    const top = heap.peek()
    if (top === undefined) {
      armedAt = Number.POSITIVE_INFINITY
      timer = undefined
      return Effect.void
    }
    armedAt = top.at
    const at = top.at
    return Effect.zipRight(Clock.sleep(Math.max(0, at - clock.unsafeCurrentTimeMillis())), loop(gen, at))
  }

  const wake = (at: number) => {
    if (closed || at >= armedAt) return
    armedAt = at
    timer?.unsafeInterruptAsFork(FiberId.none)
    timer = fork(loop(++generation, Number.NEGATIVE_INFINITY))
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      generation++
      timer?.unsafeInterruptAsFork(FiberId.none)
      timer = undefined
    })
  )

  return {
    entry: (fire) => ({ fire, at: 0, seq: 0, index: -1 }),
    arm: (entry, at) => {
      heap.remove(entry)
      entry.at = at
      entry.seq = ++seq
      heap.push(entry)
      wake(at)
    },
    disarm: (entry) => heap.remove(entry),
    now: () => clock.unsafeCurrentTimeMillis()
  }
})
