/**
 * A priority queue of values ordered by a numeric key triple, compared
 * lexicographically. Each slot also keeps the `seq` its value had when it was
 * pushed, so callers can recognise slots whose value has moved on since
 * (lazy deletion).
 *
 * Values pushed in non-decreasing key order (the common case: jobs enqueued
 * at the current time, leases of one length) go to a sorted run, a FIFO with
 * O(1) push and pop; the others go to a binary heap. The minimum is the
 * smaller of the two heads. Slots live in parallel arrays, so a push
 * allocates nothing.
 *
 * @internal
 */

/** A value with a version; a slot is current while the versions agree. @internal */
export interface Versioned {
  readonly seq: number
  readonly deleted: boolean
}

/** Parallel arrays of slots. */
class Slots<A extends Versioned> {
  k1: Array<number> = []
  k2: Array<number> = []
  k3: Array<number> = []
  values: Array<A> = []
  seqs: Array<number> = []

  get length(): number {
    return this.values.length
  }

  isCurrent(i: number): boolean {
    const value = this.values[i]!
    return value.seq === this.seqs[i] && !value.deleted
  }

  /** Do the keys of slot `i` come before `(k1, k2, k3)`? */
  before(i: number, k1: number, k2: number, k3: number): boolean {
    const a = this.k1[i]!
    if (a !== k1) return a < k1
    const b = this.k2[i]!
    if (b !== k2) return b < k2
    return this.k3[i]! < k3
  }

  /** Does `(k1, k2, k3)` come before slot `i`? */
  after(i: number, k1: number, k2: number, k3: number): boolean {
    const a = this.k1[i]!
    if (a !== k1) return k1 < a
    const b = this.k2[i]!
    if (b !== k2) return k2 < b
    return k3 < this.k3[i]!
  }

  /** Does slot `i` come before slot `j` of `other`? */
  beforeSlot(i: number, other: Slots<A>, j: number): boolean {
    return this.before(i, other.k1[j]!, other.k2[j]!, other.k3[j]!)
  }

  set(i: number, k1: number, k2: number, k3: number, value: A, seq: number): void {
    this.k1[i] = k1
    this.k2[i] = k2
    this.k3[i] = k3
    this.values[i] = value
    this.seqs[i] = seq
  }

  copy(from: number, to: number): void {
    this.set(to, this.k1[from]!, this.k2[from]!, this.k3[from]!, this.values[from]!, this.seqs[from]!)
  }

  popLast(): void {
    this.k1.pop()
    this.k2.pop()
    this.k3.pop()
    this.values.pop()
    this.seqs.pop()
  }

  /** Remove the first `n` slots. */
  dropFirst(n: number): void {
    this.k1.splice(0, n)
    this.k2.splice(0, n)
    this.k3.splice(0, n)
    this.values.splice(0, n)
    this.seqs.splice(0, n)
  }

  clear(): void {
    this.k1.length = 0
    this.k2.length = 0
    this.k3.length = 0
    this.values.length = 0
    this.seqs.length = 0
  }

  /** Keep only the slots from `start` on that are current. */
  retainCurrent(start: number): void {
    const kept: Array<number> = []
    for (let i = start; i < this.length; i++) if (this.isCurrent(i)) kept.push(i)
    this.k1 = kept.map((i) => this.k1[i]!)
    this.k2 = kept.map((i) => this.k2[i]!)
    this.k3 = kept.map((i) => this.k3[i]!)
    this.values = kept.map((i) => this.values[i]!)
    this.seqs = kept.map((i) => this.seqs[i]!)
  }
}

/** A min-priority queue on `(k1, k2, k3)`. @internal */
export class Heap<A extends Versioned> {
  private readonly heap = new Slots<A>()
  private readonly run = new Slots<A>()
  private runHead = 0

  get size(): number {
    return this.heap.length + this.run.length - this.runHead
  }

  push(k1: number, k2: number, k3: number, value: A): void {
    const run = this.run
    const last = run.length - 1
    if (last < this.runHead || !run.after(last, k1, k2, k3)) run.set(run.length, k1, k2, k3, value, value.seq)
    else this.heapPush(k1, k2, k3, value)
  }

  /** Drop stale slots off both heads; true when a current value is first. */
  clean(): boolean {
    while (this.heap.length > 0 && !this.heap.isCurrent(0)) this.heapPop()
    while (this.runHead < this.run.length && !this.run.isCurrent(this.runHead)) this.shiftRun()
    return this.size > 0
  }

  /** The first value; call `clean` first. */
  top(): A {
    return this.fromHeap() ? this.heap.values[0]! : this.run.values[this.runHead]!
  }

  /** The first key of the first value; call `clean` first. */
  topKey(): number {
    return this.fromHeap() ? this.heap.k1[0]! : this.run.k1[this.runHead]!
  }

  /** Does this queue's first value come before `other`'s? Call `clean` on both first. */
  topBefore(other: Heap<A>): boolean {
    const otherSlots = other.fromHeap() ? other.heap : other.run
    const j = other.fromHeap() ? 0 : other.runHead
    return this.fromHeap()
      ? this.heap.beforeSlot(0, otherSlots, j)
      : this.run.beforeSlot(this.runHead, otherSlots, j)
  }

  /** Remove and return the first value, current or not. */
  pop(): A | undefined {
    if (this.size === 0) return undefined
    if (this.fromHeap()) return this.heapPop()
    const value = this.run.values[this.runHead]!
    this.shiftRun()
    return value
  }

  /** Call `f` on every current value, in no particular order. */
  forEachCurrent(f: (value: A) => void): void {
    for (let i = 0; i < this.heap.length; i++) if (this.heap.isCurrent(i)) f(this.heap.values[i]!)
    for (let i = this.runHead; i < this.run.length; i++) if (this.run.isCurrent(i)) f(this.run.values[i]!)
  }

  /** Drop every slot that is no longer current, in O(n). */
  compact(): void {
    this.heap.retainCurrent(0)
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i)
    this.run.retainCurrent(this.runHead)
    this.runHead = 0
  }

  private fromHeap(): boolean {
    if (this.heap.length === 0) return false
    return this.runHead >= this.run.length || this.heap.beforeSlot(0, this.run, this.runHead)
  }

  private shiftRun(): void {
    this.runHead++
    if (this.runHead === this.run.length) {
      this.run.clear()
      this.runHead = 0
    } else if (this.runHead > 4096 && this.runHead * 2 > this.run.length) {
      this.run.dropFirst(this.runHead)
      this.runHead = 0
    }
  }

  private heapPush(k1: number, k2: number, k3: number, value: A): void {
    const heap = this.heap
    let i = heap.length
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap.before(parent, k1, k2, k3)) break
      heap.copy(parent, i)
      i = parent
    }
    heap.set(i, k1, k2, k3, value, value.seq)
  }

  private heapPop(): A {
    const heap = this.heap
    const top = heap.values[0]!
    const last = heap.length - 1
    heap.copy(last, 0)
    heap.popLast()
    if (last > 0) this.siftDown(0)
    return top
  }

  private siftDown(start: number): void {
    const heap = this.heap
    const n = heap.length
    const k1 = heap.k1[start]!
    const k2 = heap.k2[start]!
    const k3 = heap.k3[start]!
    const value = heap.values[start]!
    const seq = heap.seqs[start]!
    let i = start
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && heap.beforeSlot(right, heap, left) ? right : left
      if (!heap.before(child, k1, k2, k3)) break
      heap.copy(child, i)
      i = child
    }
    heap.set(i, k1, k2, k3, value, seq)
  }
}
