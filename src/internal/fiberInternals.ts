/**
 * The parts of effect's fiber implementation (`FiberRuntime`, effect 3)
 * that running many short programs in one fiber needs beyond the public
 * `RuntimeFiber` interface: replace the fiber refs wholesale, tell whether
 * an interrupt arrived, and interrupt the fibers a program forked (what
 * `FiberRuntime` does itself when a fiber ends). A fiber per program costs
 * more than a trivial program (a fiber-ref copy and a fiber per fork), so
 * the job runner's lanes and the periodic workers' batches run programs
 * back to back with these. Without them (another effect version), callers
 * fall back to a fiber per program.
 */
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as FiberRefs from "effect/FiberRefs"

export interface FiberInternals {
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  isInterrupted(): boolean
  interruptAllChildren(): Effect.Effect<unknown> | null
}

/** The internals of `fiber`, or `undefined` when this effect version lacks them. */
export const internals = (fiber: Fiber.RuntimeFiber<unknown, unknown>): FiberInternals | undefined => {
  const f = fiber as unknown as Partial<FiberInternals>
  return typeof f.setFiberRefs === "function" &&
    typeof f.isInterrupted === "function" &&
    typeof f.interruptAllChildren === "function"
    ? (f as FiberInternals)
    : undefined
}
