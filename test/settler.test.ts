/**
 * The runner's settler: outcomes of attempts that end in one turn of the
 * event loop go in one batch under flow control; outcomes a store defers (a
 * sharded store whose shard is unreachable) are held while deferred, offered
 * again after a pause, and written by the flush at shutdown instead of being
 * left to their lease.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { makeSettler } from "../src/internal/runner/settler.js"
import * as JobStore from "../src/JobStore.js"
import * as MemoryStore from "../src/MemoryStore.js"

/** A memory store whose settles are deferred while `down` says so; counts settle calls. */
const flaky = (memory: JobStore.Service) => {
  const state = { down: true, calls: 0 }
  const store: JobStore.Service = {
    ...memory,
    settle: (settlements) =>
      Effect.suspend(() => {
        state.calls++
        return state.down
          ? Effect.succeed(
              settlements.map((s) => ({ id: s.id, applied: false, state: null, deferred: true }))
            )
          : memory.settle(settlements)
      })
  }
  return { store, state }
}

const started = (memory: JobStore.Service) =>
  Effect.gen(function* () {
    yield* memory.enqueue([{ kind: "k", queue: "q", payload: {}, priority: 0, maxAttempts: 3 }])
    const [job] = yield* memory.claim({ queues: ["q"], kinds: ["k"], limit: 1, leaseMs: 60_000, owner: "r" })
    return job!
  })

/** Let the settler's fibers run until `test` holds. */
const until = (test: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000 && !test(); i++) yield* Effect.yieldNow()
    expect(test()).toBe(true)
  })

describe("settler and deferred outcomes", () => {
  it.effect("a deferred outcome stays held and is offered again after a pause", () =>
    Effect.gen(function* () {
      const memory = yield* JobStore.JobStore
      const { store, state } = flaky(memory)
      const job = yield* started(memory)
      const settler = yield* makeSettler(store, 100)
      const run = yield* Effect.fork(settler.run)
      yield* settler.offer({ job, outcome: { _tag: "completed" }, durationMs: 1 })
      yield* until(() => state.calls === 1)
      expect(settler.held()).toEqual([{ id: job.id, fence: job.fence }])
      state.down = false
      yield* TestClock.adjust(Duration.seconds(1))
      yield* until(() => state.calls === 2)
      yield* until(() => settler.held().length === 0)
      expect((yield* memory.get(job.id))?.state).toBe("completed")
      yield* Fiber.interrupt(run)
    }).pipe(Effect.provide(MemoryStore.layer))
  )

  it.effect(
    "a flush at shutdown offers deferred outcomes at once, and reports those the store still defers",
    () =>
      Effect.gen(function* () {
        const memory = yield* JobStore.JobStore
        const { store, state } = flaky(memory)
        const [a, b] = [yield* started(memory), yield* started(memory)]
        const settler = yield* makeSettler(store, 100)
        const run = yield* Effect.fork(settler.run)
        yield* settler.offer({ job: a, outcome: { _tag: "completed" }, durationMs: 1 })
        yield* until(() => state.calls === 1)
        yield* Fiber.interrupt(run)
        // Still down: the flush tries, waits its pause, tries again, and gives up at its budget.
        const flushing = yield* Effect.fork(settler.flush(Duration.millis(1_500)))
        yield* TestClock.adjust(Duration.seconds(2))
        expect(yield* Fiber.join(flushing)).toBe(1)
        expect(state.calls).toBeGreaterThanOrEqual(2)
        // Back (the pause not yet over): the next flush writes it without waiting, and the new one too.
        state.down = false
        yield* settler.offer({ job: b, outcome: { _tag: "completed" }, durationMs: 1 })
        expect(yield* settler.flush(Duration.seconds(5))).toBe(0)
        expect((yield* memory.get(a.id))?.state).toBe("completed")
        expect((yield* memory.get(b.id))?.state).toBe("completed")
        expect(settler.held()).toEqual([])
      }).pipe(Effect.provide(MemoryStore.layer))
  )
})

describe("settler batches under flow control", () => {
  it.live(
    "outcomes of attempts that end in separate timer callbacks of one turn of the event loop go in one batch",
    () =>
      Effect.gen(function* () {
        const memory = yield* JobStore.JobStore
        const batches: Array<number> = []
        const allWritten = yield* Deferred.make<void>()
        const store: JobStore.Service = {
          ...memory,
          settle: (settlements) =>
            Effect.suspend(() => {
              batches.push(settlements.length)
              return Effect.zipLeft(
                memory.settle(settlements),
                batches.reduce((a, b) => a + b, 0) === 5
                  ? Deferred.succeed(allWritten, undefined)
                  : Effect.void
              )
            })
        }
        const jobs: Array<JobStore.JobRecord> = []
        for (let i = 0; i < 5; i++) jobs.push(yield* started(memory))
        const settler = yield* makeSettler(store, 100)
        // A flow-limited runner registers a claim to ride its batches (here: none to send).
        settler.claimWith(() => undefined)
        const run = yield* Effect.fork(settler.run)
        yield* Effect.yieldNow()
        // Five attempts ending on timers due together, as sleeping handlers do: Node runs the
        // callbacks one by one, with the microtasks (the settler's own turns) between them.
        for (const job of jobs)
          setTimeout(() => settler.unsafeOffer({ job, outcome: { _tag: "completed" }, durationMs: 1 }), 1)
        yield* Deferred.await(allWritten)
        expect(batches).toEqual([5])
        for (const job of jobs) expect((yield* memory.get(job.id))?.state).toBe("completed")
        yield* Fiber.interrupt(run)
      }).pipe(Effect.provide(MemoryStore.layer))
  )
})
