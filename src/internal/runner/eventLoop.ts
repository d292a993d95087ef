import * as Effect from "effect/Effect"

/** Wait for one turn of the event loop (its timers and I/O), not only for the microtasks. */
export const macrotask: Effect.Effect<void> = Effect.async<void>((resume) => {
  if (typeof setImmediate === "function") {
    const handle = setImmediate(() => resume(Effect.void))
    return Effect.sync(() => clearImmediate(handle))
  }
  const handle = setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => clearTimeout(handle))
})
