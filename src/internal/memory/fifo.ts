/**
 * A first-in first-out list of versioned values with lazy deletion, like
 * `Heap` but for values that arrive already in order.
 *
 * @internal
 */
import type { Versioned } from "./heap.js"

/** @internal */
export class Fifo<A extends Versioned> {
  private readonly values: Array<A> = []
  private readonly seqs: Array<number> = []
  private head = 0

  push(value: A): void {
    this.values.push(value)
    this.seqs.push(value.seq)
  }

  /** Drop stale values off the front; true when a current value is first. */
  clean(): boolean {
    while (this.head < this.values.length) {
      const first = this.values[this.head]!
      if (first.seq === this.seqs[this.head] && !first.deleted) return true
      this.shift()
    }
    return false
  }

  /** The first value; call `clean` first. */
  first(): A {
    return this.values[this.head]!
  }

  shift(): void {
    this.head++
    if (this.head > 4096 && this.head * 2 > this.values.length) {
      this.values.splice(0, this.head)
      this.seqs.splice(0, this.head)
      this.head = 0
    }
  }
}
