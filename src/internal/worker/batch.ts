import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as FiberRefs from "effect/FiberRefs"
import * as Runtime from "effect/Runtime"
import { internals } from "../fiberInternals.js"
import type * as Ticker from "./ticker.js"

/**
 * The due ticks of one ticker pass, run in as few fibers as they allow.
 *
 * A fiber per tick costs more than a trivial tick itself (Effect copies the
 * fiber-ref map and builds a fiber for every fork), so the ticks that a pass
 * makes due run one after another in one batch fiber, each with its own
 * worker's fiber refs (services, log annotations) swapped in wholesale. A
 * tick that suspends (sleeps, waits on I/O, yields) keeps the fiber it is
 * in: the batch stops waiting for it and the ticks after it start at once in
 * a fresh batch fiber, so a tick never waits for another worker's tick. What
 * a tick forks is interrupted when it ends, as when the tick's fiber ends.
 */
export interface Item {
  /** The runtime the item's tick runs in: its flags, and the fiber refs of the first item of a fiber. */
  readonly runtime: Runtime.Runtime<any>
  /** The fiber refs of the tick: `runtime`'s, with `runtime.context` as the current context. */
  readonly refs: FiberRefs.FiberRefs
  /** Take the item in `fiber`: the program to run, or `undefined` when it no longer runs (its worker stopped). */
  claim(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<unknown, unknown> | undefined
  /**
   * The program failed with `cause`, or (no cause) succeeded with `value`,
   * and what it forked was interrupted: called in the batch fiber, or by its
   * observer when the fiber was interrupted while running the program. No
   * `Exit` is built for a success.
   */
  done(cause: Cause.Cause<unknown> | undefined, value: unknown): void
}

export interface Batch {
  /** Queue `item` for the end of the ticker's current pass. */
  readonly push: (item: Item) => void
  /**
   * While the pass's ticks run on the spot: call `task` once they have all
   * ended (or suspended), with one clock reading taken then, and return
   * `true`; otherwise return `false`. Ticks that were due together re-arm
   * from that one instant, so they stay due together: a tick is never due
   * earlier than an interval after it ended, and the workers of a pass keep
   * sharing one wake-up of the ticker instead of drifting apart by the
   * microseconds between their ends.
   */
  readonly afterRun: (task: Later) => boolean
}

/** Work left for the end of a batch run. */
export interface Later {
  later(now: number): void
}

/** The shared state of one batch fiber and the pass that started it. */
interface Cursor {
  /** The pass's items: the first `count` entries of `items`. */
  readonly items: ReadonlyArray<Item | undefined>
  readonly count: number
  /** The first item not taken by the fiber. */
  next: number
  /** The item whose program the fiber is running. */
  current: Item | undefined
  /** The pass moved on: the fiber finishes the item it holds and ends. */
  detached: boolean
}

/**
 * The program of one batch fiber: items from `cursor.next` while they run to
 * the end without suspending. Each item costs one `matchCauseEffect` around
 * its program; the fiber stays interruptible, so an item interrupted in it
 * (only a detached one can be: the pass never waits) ends the fiber, whose
 * observer reports that exit (`run`).
 */
const program = (cursor: Cursor): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    const { items, count } = cursor
    const first = cursor.next
    const flags = items[first]!.runtime.runtimeFlags
    const access = internals(fiber)

    const take = (): Effect.Effect<void> => {
      for (;;) {
        const i = cursor.next
        if (i >= count) return Effect.void
        const item = items[i]!
        // The fiber was made for the first item; later ones need the same flags and a way to swap refs.
        if (i > first && (access === undefined || item.runtime.runtimeFlags !== flags)) return Effect.void
        cursor.next = i + 1
        const run = item.claim(fiber)
        if (run === undefined) continue
        if (i > first) access!.setFiberRefs(item.refs)
        cursor.current = item
        return Effect.matchCauseEffect(run, handlers)
      }
    }

    const after = (cause: Cause.Cause<unknown> | undefined, value: unknown): Effect.Effect<void> => {
      const children = access?.interruptAllChildren() ?? null
      return children === null ? finish(cause, value) : Effect.flatMap(children, () => finish(cause, value))
    }

    const finish = (cause: Cause.Cause<unknown> | undefined, value: unknown): Effect.Effect<void> => {
      const item = cursor.current!
      cursor.current = undefined
      item.done(cause, value)
      return cursor.detached || access === undefined || access.isInterrupted() ? Effect.void : take()
    }

    const handlers = {
      onFailure: (cause: Cause.Cause<unknown>) => after(cause, undefined),
      onSuccess: (value: unknown) => after(undefined, value)
    }

    return Effect.suspend(take)
  })

/**
 * Run the first `count` of `items` in batch fibers, each started on the spot
 * and run until it ends or suspends. A fiber reads `items` only until it is
 * detached, before this returns, so the caller may reuse the array.
 */
const run = (items: ReadonlyArray<Item | undefined>, count: number): void => {
  let from = 0
  while (from < count) {
    const cursor: Cursor = { items, count, next: from, current: undefined, detached: false }
    const fiber = Runtime.runFork(items[from]!.runtime, program(cursor))
    cursor.detached = true
    from = cursor.next
    const item = cursor.current
    if (item !== undefined) {
      // The fiber holds `item` (suspended in it, or interrupted): an interruption ends the fiber without the handlers.
      fiber.addObserver((exit) => {
        if (cursor.current !== item) return
        cursor.current = undefined
        if (Exit.isSuccess(exit)) item.done(undefined, exit.value)
        else item.done(exit.cause, undefined)
      })
    }
  }
}

/**
 * An array reused from pass to pass: its first `count` entries are live, the
 * rest `undefined`. Ten thousand ticks a second would otherwise grow (and
 * drop) a fresh array of ten thousand entries, twice, every pass.
 */
class Reused<A> {
  items: Array<A | undefined> = []
  count = 0
  push(a: A): void {
    this.items[this.count++] = a
  }
  clear(): void {
    const { items, count } = this
    for (let i = 0; i < count; i++) items[i] = undefined
    this.count = 0
  }
}

/** The batch of `ticker`: items pushed during a pass run when the pass ends. */
export const make = (ticker: Ticker.Ticker): Batch => {
  // A finished pass's arrays are kept for the next one; a pass that starts inside another (the ticker's fiber, under
  // a test clock, can run one while a tick arms it) finds none spare and makes its own.
  let pending = new Reused<Item>()
  let spare: Reused<Item> | undefined = new Reused<Item>()
  let tasks = new Reused<Later>()
  let spareTasks: Reused<Later> | undefined = new Reused<Later>()
  let running = false
  ticker.afterPass(() => {
    if (pending.count === 0) return
    const items = pending
    pending = spare ?? new Reused<Item>()
    spare = undefined
    running = true
    try {
      run(items.items, items.count)
    } finally {
      running = false
      items.clear()
      spare = items
    }
    if (tasks.count === 0) return
    const now = ticker.now()
    const due = tasks
    tasks = spareTasks ?? new Reused<Later>()
    spareTasks = undefined
    try {
      for (let i = 0; i < due.count; i++) due.items[i]!.later(now)
    } finally {
      due.clear()
      spareTasks = due
    }
  })
  return {
    push: (item) => {
      pending.push(item)
    },
    afterRun: (task) => {
      if (!running) return false
      tasks.push(task)
      return true
    }
  }
}
