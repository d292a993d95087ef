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
   * The program ended with `exit` (and what it forked was interrupted):
   * called in the batch fiber, or by its observer when the fiber was
   * interrupted while running the program.
   */
  done(exit: Exit.Exit<unknown, unknown>): void
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
  readonly items: ReadonlyArray<Item>
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
    const { items } = cursor
    const first = cursor.next
    const flags = items[first]!.runtime.runtimeFlags
    const access = internals(fiber)

    const take = (): Effect.Effect<void> => {
      for (;;) {
        const i = cursor.next
        if (i >= items.length) return Effect.void
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

    const after = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      const children = access?.interruptAllChildren() ?? null
      return children === null ? finish(exit) : Effect.flatMap(children, () => finish(exit))
    }

    const finish = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      const item = cursor.current!
      cursor.current = undefined
      item.done(exit)
      return cursor.detached || access === undefined || access.isInterrupted() ? Effect.void : take()
    }

    const handlers = {
      onFailure: (cause: Cause.Cause<unknown>) => after(Exit.failCause(cause)),
      onSuccess: (value: unknown) => after(Exit.succeed(value))
    }

    return Effect.suspend(take)
  })

/** Run `items` in batch fibers, each started on the spot and run until it ends or suspends. */
const run = (items: ReadonlyArray<Item>): void => {
  let from = 0
  while (from < items.length) {
    const cursor: Cursor = { items, next: from, current: undefined, detached: false }
    const fiber = Runtime.runFork(items[from]!.runtime, program(cursor))
    cursor.detached = true
    from = cursor.next
    const item = cursor.current
    if (item !== undefined) {
      // The fiber holds `item` (suspended in it, or interrupted): an interruption ends the fiber without the handlers.
      fiber.addObserver((exit) => {
        if (cursor.current !== item) return
        cursor.current = undefined
        item.done(exit)
      })
    }
  }
}

/** The batch of `ticker`: items pushed during a pass run when the pass ends. */
export const make = (ticker: Ticker.Ticker): Batch => {
  let pending: Array<Item> = []
  let running = false
  let tasks: Array<Later> = []
  ticker.afterPass(() => {
    if (pending.length === 0) return
    const items = pending
    pending = []
    running = true
    try {
      run(items)
    } finally {
      running = false
    }
    if (tasks.length === 0) return
    const now = ticker.now()
    const due = tasks
    tasks = []
    for (const task of due) task.later(now)
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
