/**
 * The admin overview's history: fixed-size rings, the sampler reading the
 * store every interval (TestClock), window selection and percentiles.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as History from "../src/internal/admin/history.js"
import * as JobStore from "../src/JobStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import { input, request, slowed } from "./store/helpers.js"

const activity = (now: number, over: Partial<JobStore.Activity> = {}): JobStore.Activity => ({
  now,
  completed: 0,
  discarded: 0,
  cancelled: 0,
  retried: 0,
  latencies: [],
  depth: [],
  ...over
})

describe("the overview's ring", () => {
  it("keeps its slots and no more: pushing past them replaces the oldest rows, in order", () => {
    const ring = new History.Ring(4, 2)
    const memory = ring.data.byteLength
    for (let i = 1; i <= 11; i++) ring.push([i, i * 10])
    expect(ring.size).toBe(4)
    expect(ring.data.byteLength).toBe(memory)
    expect(ring.after(0).map((row) => Array.from(row))).toEqual([
      [8, 80],
      [9, 90],
      [10, 100],
      [11, 110]
    ])
    expect(ring.after(9).map((row) => row[0])).toEqual([10, 11])
  })

  it("rates per second over each sample's span, percentiles by nearest rank, queues beyond 8 shared", () => {
    const history = new History.History(5000)
    const counts: Array<JobStore.QueueCount> = []
    for (let q = 0; q < 10; q++) counts.push({ queue: `q${q}`, state: "available", count: q + 1 })
    counts.push({ queue: "q0", state: "completed", count: 1000 })
    const latencies = Array.from({ length: 100 }, (_, i) => 100 - i)
    history.record(0, activity(5000, { completed: 50, retried: 5, discarded: 1, latencies, depth: counts }))
    const [point] = history.points(300_000, 5000)
    expect(point).toMatchObject({
      at: 5000,
      completed: 10,
      retried: 1,
      discarded: 0.2,
      cancelled: 0,
      started: 100
    })
    expect([point!.p50, point!.p90, point!.p99]).toEqual([50, 90, 99])
    expect(history.columns).toEqual(["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", History.otherQueues])
    expect(point!.depth.q0).toEqual({ scheduled: 0, available: 1, running: 0, retryable: 0 })
    expect(point!.depth[History.otherQueues]!.available).toBe(9 + 10)
    history.record(5000, activity(10_000))
    expect(history.points(300_000, 10_000, 5000).map((p) => [p.at, p.p50])).toEqual([[10_000, null]])
  })
})

describe("the overview's sampler", () => {
  it.effect(
    "samples the store every interval; short windows read samples, long ones minutes, in fixed memory",
    () =>
      Effect.gen(function* () {
        const store = yield* MemoryStore.make
        const history = new History.History(1000)
        const memory = history.base.data.byteLength + history.minute.data.byteLength
        expect(memory).toBe(History.bytes)
        const fiber = yield* Effect.fork(History.sample(history, store, Duration.seconds(1)))
        yield* TestClock.adjust(0)
        // 15 minutes (900 samples, more than the 720 the per-sample ring keeps): every 10 s,
        // 3 jobs enqueued, started 1 s later and completed.
        for (let i = 0; i < 90; i++) {
          yield* store.enqueue([input(), input(), input()])
          yield* TestClock.adjust(1000)
          const claimed = yield* store.claim(request({ limit: 3 }))
          yield* store.settle(
            claimed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
          )
          yield* TestClock.adjust(9000)
        }
        const now = history.latest!
        expect(now).toBe(900_000)
        expect(history.base.size).toBe(History.baseSlots)
        expect(history.base.data.byteLength + history.minute.data.byteLength).toBe(memory)

        const recent = history.points(5 * 60_000, now)
        expect(recent).toHaveLength(300)
        expect(recent.every((p, i) => i === 0 || p.at - recent[i - 1]!.at === 1000)).toBe(true)
        // 3 completions per 10 s, each started 1 s after it was due.
        expect(recent.reduce((n, p) => n + p.completed, 0)).toBeCloseTo(90, 5)
        const started = recent.filter((p) => p.started > 0)
        expect(started).toHaveLength(30)
        expect(started.every((p) => p.p50 === 1000 && p.p99 === 1000)).toBe(true)

        // An hour is longer than the samples kept: the 15 closed minutes, then the samples since.
        const hour = history.points(3_600_000, now)
        const minutes = hour.filter((p) => p.at % 60_000 === 59_000)
        expect(minutes).toHaveLength(15)
        for (const p of minutes) {
          expect(p.completed).toBeCloseTo(18 / 60, 5)
          expect(p.p50).toBe(1000)
        }
        expect(hour.slice(15).map((p) => p.at)).toEqual([900_000])
        yield* Fiber.interrupt(fiber)
      })
  )

  it.effect("a slow sample puts the next one 20 times its duration later, covering the time between", () =>
    Effect.gen(function* () {
      const real = yield* MemoryStore.make
      const starts: Array<number> = []
      const store: JobStore.Service = {
        ...real,
        // A read of a deep backlog: 1 s of the test clock.
        activity: (since) => slowed(starts, "1 second", real.activity(since))
      }
      const history = new History.History(5000)
      const fiber = yield* Effect.fork(History.sample(history, store, Duration.seconds(5)))
      yield* TestClock.adjust(2_000)
      yield* real.enqueue([input()])
      const [job] = yield* real.claim(request())
      yield* real.settle([{ id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }])
      yield* TestClock.adjust(18_000)
      expect(starts).toEqual([0])
      yield* TestClock.adjust(2_000)
      expect(starts).toEqual([0, 21_000])
      yield* TestClock.adjust(1_000)
      // The second sample covers the 21 s since the first ended, with the job completed in it.
      const points = history.points(300_000, history.latest!)
      expect(points.map((p) => p.at)).toEqual([1_000, 22_000])
      expect(points[1]!.completed).toBeCloseTo(1 / 21, 5)
      yield* Fiber.interrupt(fiber)
    })
  )

  it.effect("a sample the store fails leaves a gap; the next covers the time since the last good one", () =>
    Effect.gen(function* () {
      const real = yield* MemoryStore.make
      let failing = false
      const store: JobStore.Service = {
        ...real,
        activity: (since) =>
          failing ? Effect.fail(new JobStore.JobStoreError({ message: "down" })) : real.activity(since)
      }
      const history = new History.History(5000)
      const fiber = yield* Effect.fork(History.sample(history, store, Duration.seconds(5)))
      yield* TestClock.adjust(0)
      failing = true
      yield* TestClock.adjust(10_000)
      failing = false
      yield* real.enqueue([input()])
      const [job] = yield* real.claim(request())
      yield* real.settle([{ id: job!.id, fence: job!.fence, outcome: { _tag: "completed" } }])
      yield* TestClock.adjust(5000)
      const points = history.points(300_000, history.latest!)
      expect(points.map((p) => p.at)).toEqual([0, 15_000])
      expect(points[1]!.completed).toBeCloseTo(1 / 15, 5)
      yield* Fiber.interrupt(fiber)
    })
  )
})
