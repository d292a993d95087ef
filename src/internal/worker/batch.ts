import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as FiberRefs from "effect/FiberRefs"
import * as Runtime from "effect/Runtime"
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
  /** The program ended with `exit` (and what it forked was interrupted); called in the batch fiber. */
  done(exit: Exit.Exit<unknown, unknown>): void
}

export interface Batch {
  /** Queue `item` for the end of the ticker's current pass. */
  readonly push: (item: Item) => void
}

/**
 * What a batch fiber needs of the fiber it runs in, beyond the public
 * `RuntimeFiber` interface: the `FiberRuntime` methods that replace its fiber
 * refs, tell whether it was interrupted, and interrupt its children (what
 * `FiberRuntime` does itself when a fiber ends). Without them (another
 * Effect version), each tick gets a fiber of its own.
 */
interface Internals {
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  isInterrupted(): boolean
  interruptAllChildren(): Effect.Effect<unknown> | null
}

const internals = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Internals | undefined => {
  const f = fiber as unknown as Partial<Internals>
  return typeof f.setFiberRefs === "function" &&
    typeof f.isInterrupted === "function" &&
    typeof f.interruptAllChildren === "function"
    ? (f as Internals)
    : undefined
}

/** The shared state of one batch fiber and the pass that started it. */
interface Cursor {
  readonly items: ReadonlyArray<Item>
  /** The first item not taken by the fiber. */
  next: number
  /** The pass moved on: the fiber finishes the item it holds and ends. */
  detached: boolean
}

/** The program of one batch fiber: items from `cursor.next` while they run to the end without suspending. */
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
        return Effect.flatMap(Effect.exit(Effect.interruptible(run)), (exit) => end(item, exit))
      }
    }

    const end = (item: Item, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      const children = access?.interruptAllChildren() ?? null
      if (children !== null) {
        return Effect.flatMap(children, () => {
          item.done(exit)
          return proceed()
        })
      }
      item.done(exit)
      return proceed()
    }

    const proceed = (): Effect.Effect<void> =>
      cursor.detached || access === undefined || access.isInterrupted() ? Effect.void : take()

    return Effect.uninterruptible(Effect.suspend(take))
  })

/** Run `items` in batch fibers, each started on the spot and run until it ends or suspends. */
const run = (items: ReadonlyArray<Item>): void => {
  let from = 0
  while (from < items.length) {
    const cursor: Cursor = { items, next: from, detached: false }
    Runtime.runFork(items[from]!.runtime, program(cursor))
    cursor.detached = true
    from = cursor.next
  }
}

/** The batch of `ticker`: items pushed during a pass run when the pass ends. */
export const make = (ticker: Ticker.Ticker): Batch => {
  let pending: Array<Item> = []
  ticker.afterPass(() => {
    if (pending.length === 0) return
    const items = pending
    pending = []
    run(items)
  })
  return {
    push: (item) => {
      pending.push(item)
    }
  }
}
