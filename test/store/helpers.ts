/**
 * Shared fixtures for the JobStore conformance suite. Nothing here knows
 * which engine runs: time is read from `store.now` and moved with the
 * harness's `advance`, so an engine whose clock also moves on its own (a
 * database clock) passes as long as a test takes well under a second.
 */
import { expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as JobStore from "../../src/JobStore.js"

/**
 * Columns a test writes straight into a job's row, as a hand edit or an
 * older version of the store could have left them (times in epoch ms).
 */
export interface RowEdit {
  readonly leaseExpiresAt?: number
  readonly finalizedAt?: null
}

/** Writes rows behind the store's back; engines with a database provide it. */
export class RowEditor extends Context.Tag("nightshift/test/RowEditor")<
  RowEditor,
  { readonly edit: (id: string, row: RowEdit) => Effect.Effect<void, unknown> }
>() {}

/** How the suite builds and drives one engine. */
export interface Harness {
  /** A FRESH, empty store each time it is built. */
  readonly layer: Layer.Layer<JobStore.JobStore, unknown>
  /** Move the store's clock forward; default `TestClock.adjust`. */
  readonly advance?: (ms: number) => Effect.Effect<void>
  /** Move the store's clock back; default `TestClock.setTime` to an earlier time. */
  readonly rewind?: (ms: number) => Effect.Effect<void>
  /** Does the engine publish `wakeups`? Default true. */
  readonly hints?: boolean
  /**
   * Does `layer` also provide a `RowEditor`? Default false: tests of rows
   * only a hand edit makes are then not registered (the memory engine has
   * no rows but its own).
   */
  readonly editable?: boolean
  /** Does the engine have `settleAndClaim`? Default true. */
  readonly settleAndClaim?: boolean
  /**
   * Does a limit over a whole kind or queue count every running job of it,
   * also those placed before the rule was known? Default true; false for a
   * sharded store, whose limits hold per shard.
   */
  readonly wholeScopeLimits?: boolean
}

/** What each test body gets. */
export interface Ctx {
  readonly store: JobStore.Service
  readonly advance: (ms: number) => Effect.Effect<void>
  readonly rewind: (ms: number) => Effect.Effect<void>
  readonly hints: boolean
  /** Write a row behind the store's back (only in tests registered with `test.editable`). */
  readonly edit: (id: string, row: RowEdit) => Effect.Effect<void, unknown>
}

const rewindTestClock = (ms: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.setTime(now - ms))

/** Register one test that runs against a freshly built store. */
export const storeTest = (harness: Harness) => {
  const register = (name: string, body: (ctx: Ctx) => Effect.Effect<void, unknown>): void =>
    it.effect(name, () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        const editor = yield* Effect.serviceOption(RowEditor)
        return yield* body({
          store,
          advance: harness.advance ?? ((ms) => TestClock.adjust(ms)),
          rewind: harness.rewind ?? rewindTestClock,
          hints: harness.hints ?? true,
          edit: (id, row) =>
            editor._tag === "Some"
              ? editor.value.edit(id, row)
              : Effect.dieMessage("this engine's harness provides no RowEditor")
        })
      }).pipe(Effect.provide(harness.layer))
    )
  return Object.assign(register, {
    /** Register a test that writes rows by hand, when the engine's harness can. */
    editable: (name: string, body: (ctx: Ctx) => Effect.Effect<void, unknown>): void => {
      if (harness.editable === true) register(name, body)
    },
    /** Register a test of `settleAndClaim`, when the engine has it. */
    settleAndClaim: (name: string, body: (ctx: Ctx) => Effect.Effect<void, unknown>): void => {
      if (harness.settleAndClaim !== false) register(name, body)
    },
    /** Register a test of limits counting a whole scope, when the engine's limits do. */
    wholeScopeLimits: (name: string, body: (ctx: Ctx) => Effect.Effect<void, unknown>): void => {
      if (harness.wholeScopeLimits !== false) register(name, body)
    }
  })
}

/** The test registrar a section receives. */
export type StoreTest = ReturnType<typeof storeTest>

let kindCounter = 0

/** A kind name no other test job uses. */
export const freshKind = (): string => `kind_${++kindCounter}`

/** An enqueue input with sensible defaults. */
export const input = (overrides: Partial<JobStore.EnqueueInput> = {}): JobStore.EnqueueInput => ({
  kind: "k",
  queue: "q",
  payload: { n: 1 },
  priority: 0,
  maxAttempts: 3,
  ...overrides
})

/** A claim request with sensible defaults. */
export const request = (overrides: Partial<JobStore.ClaimRequest> = {}): JobStore.ClaimRequest => ({
  queues: ["q"],
  kinds: ["k"],
  limit: 10,
  leaseMs: 30_000,
  owner: "runner-a",
  ...overrides
})

/** Enqueue one job; returns its id. */
export const enqueueOne = (store: JobStore.Service, overrides: Partial<JobStore.EnqueueInput> = {}) =>
  Effect.map(store.enqueue([input(overrides)]), (results) => {
    expect(results).toHaveLength(1)
    return results[0]!
  })

/** Read a job that must exist. */
export const getJob = (store: JobStore.Service, id: string) =>
  Effect.map(store.get(id), (job) => {
    expect(job, `job ${id} should exist`).toBeDefined()
    return job!
  })

/**
 * Enqueue a job of its own kind (unless one is given) and claim exactly it.
 * Returns the claimed record.
 */
export const started = (
  store: JobStore.Service,
  overrides: Partial<JobStore.EnqueueInput> = {},
  claim: Partial<JobStore.ClaimRequest> = {}
) =>
  Effect.gen(function* () {
    const job = input({ kind: freshKind(), ...overrides })
    const { id } = yield* enqueueOne(store, job)
    const claimed = yield* store.claim(
      request({ queues: [job.queue], kinds: [job.kind], limit: 1, ...claim })
    )
    expect(claimed.map((j) => j.id)).toEqual([id])
    return claimed[0]!
  })

/** Settle one job and return the result. */
export const settleOne = (store: JobStore.Service, job: JobStore.Lease, outcome: JobStore.Outcome) =>
  Effect.map(store.settle([{ id: job.id, fence: job.fence, outcome }]), (results) => {
    expect(results).toHaveLength(1)
    return results[0]!
  })

/** Run `effect` and report the store's time just before and just after it. */
export const timed = <A, E, R>(store: JobStore.Service, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = yield* store.now
    const result = yield* effect
    const after = yield* store.now
    return { result, before, after }
  })

/** Assert `lo <= value <= hi`. */
export const between = (value: number | null, lo: number, hi: number): void => {
  expect(value).not.toBeNull()
  expect(value!).toBeGreaterThanOrEqual(lo)
  expect(value!).toBeLessThanOrEqual(hi)
}

/** Claim until a claim comes back empty; returns the ids in claim order. */
export const drain = (store: JobStore.Service, req: Partial<JobStore.ClaimRequest> = {}) =>
  Effect.gen(function* () {
    const ids: Array<string> = []
    for (;;) {
      const jobs = yield* store.claim(request(req))
      if (jobs.length === 0) return ids
      for (const job of jobs) ids.push(job.id)
      yield* Effect.yieldNow()
    }
  })

/** Ids sorted numerically (ids are decimal strings). */
export const sortIds = (ids: ReadonlyArray<string>): Array<string> =>
  [...ids].sort((a, b) => Number(a) - Number(b))

/**
 * Subscribe to `wakeups` and repeat `trigger` until a hint matching `match`
 * arrives. An engine that subscribes synchronously is done on the first try;
 * one that subscribes over the network (LISTEN) gets short real pauses.
 */
export const awaitWakeup = <E, R>(
  store: JobStore.Service,
  match: (wakeup: JobStore.Wakeup) => boolean,
  trigger: Effect.Effect<unknown, E, R>
) =>
  Effect.gen(function* () {
    const fiber = yield* store.wakeups.pipe(Stream.filter(match), Stream.runHead, Effect.fork)
    for (let attempt = 0; attempt < 100; attempt++) {
      yield* yieldTimes(5)
      yield* trigger
      yield* yieldTimes(5)
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) return yield* exit.value
      yield* TestServices.provideLive(Effect.sleep("20 millis"))
    }
    yield* Fiber.interrupt(fiber)
    return Option.none()
  })

const yieldTimes = (n: number) => Effect.repeatN(Effect.yieldNow(), n - 1)

/**
 * `effect`, slowed: it records the clock's time when it starts in `starts`,
 * then takes `took` (of the test clock, under `TestClock`) before running.
 * For a store read that is slow, such as a count of a deep backlog.
 */
export const slowed = <A, E, R>(
  starts: Array<number>,
  took: Duration.DurationInput,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Clock.currentTimeMillis.pipe(
    Effect.tap((now) => starts.push(now)),
    Effect.zipRight(Effect.sleep(took)),
    Effect.zipRight(effect)
  )
