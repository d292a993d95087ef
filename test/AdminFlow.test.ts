/**
 * The flow report (src/internal/store/flowReport.ts): throttled counts per
 * queue, kind and reason, and each queue's busiest partition keys, from a
 * flow state. Pure; the state is written by hand, and once read from the
 * memory store.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FlowControl from "nightshift/FlowControl"
import type * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"
import * as FlowReport from "../src/internal/store/flowReport.js"
import { ruleWords } from "../src/internal/store/ruleWords.js"

const state = (overrides: Partial<JobStore.FlowState>): JobStore.FlowState => ({
  now: 1_000,
  rules: [],
  paused: [],
  running: [],
  rate: [],
  due: [],
  ...overrides
})

const running = (queue: string, kind: string, partition: string | null, n: number) => ({
  queue,
  kind,
  partition,
  running: n
})
const due = (queue: string, kind: string, partition: string | null, n: number) => ({
  queue,
  kind,
  partition,
  due: n
})

describe("flow report", () => {
  it("no rules and no paused queue: nothing is throttled, however much is due", () => {
    const s = state({
      due: [due("q", "a", "t1", 500), due("q", "a", null, 7)],
      running: [running("q", "a", "t1", 3)]
    })
    expect(FlowReport.throttled(s)).toEqual([])
    const [q] = FlowReport.report(s).queues
    expect(q).toMatchObject({ queue: "q", running: 3, due: 507, throttled: 0, keys: 1, rules: [] })
    expect(q!.partitions).toEqual([{ partition: "t1", running: 3, due: 500, throttled: 0, waiting: null }])
  })

  it("per partition: the due jobs beyond each key's room are throttled, keys without room entirely", () => {
    const s = state({
      rules: [FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 2 } })],
      running: [running("q", "sync", "full", 2), running("q", "sync", "half", 1)],
      due: [
        due("q", "sync", "full", 4),
        due("q", "sync", "half", 5),
        due("q", "sync", "idle", 1),
        due("q", "sync", null, 9)
      ]
    })
    // full: 0 room, 4 held; half: 1 room, 4 held; idle: 2 room, none held; no key: no per-partition limit.
    expect(FlowReport.throttled(s)).toEqual([
      { queue: "q", kind: "sync", reason: "partition at limit", count: 8 }
    ])
    const [q] = FlowReport.report(s).queues
    expect(q!.throttled).toBe(8)
    expect(q!.keys).toBe(3)
    expect(q!.partitions).toEqual([
      { partition: "full", running: 2, due: 4, throttled: 4, waiting: "partition at limit" },
      { partition: "half", running: 1, due: 5, throttled: 4, waiting: "partition at limit" },
      { partition: "idle", running: 0, due: 1, throttled: 0, waiting: null }
    ])
  })

  it("a global limit hands its room out to the keys in turn; the rest is throttled as global limit", () => {
    const s = state({
      rules: [FlowControl.toRule("queue", "q", { concurrency: { global: 5 } })],
      running: [running("q", "a", "k1", 2)],
      due: [due("q", "a", "k1", 10), due("q", "a", "k2", 10), due("q", "b", null, 1)]
    })
    // Room 3: one each to no key (b), k1, k2 in the first round; the remaining 19 wait.
    expect(FlowReport.throttled(s)).toEqual([{ queue: "q", kind: "a", reason: "global limit", count: 18 }])
    const [q] = FlowReport.report(s).queues
    expect(q!.rules).toEqual([FlowControl.toRule("queue", "q", { concurrency: { global: 5 } })])
    expect(q!.partitions.map((p) => [p.partition, p.throttled, p.waiting])).toEqual([
      ["k1", 9, "global limit"],
      ["k2", 9, "global limit"]
    ])
  })

  it("a rate limit counts the window's starts; a paused queue holds every due job", () => {
    const s = state({
      rules: [FlowControl.toRule("kind", "api", { rateLimit: { limit: 100, per: "1 minute" } })],
      rate: [{ scope: "kind", name: "api", partition: null, starts: 98, recent: 0 }],
      paused: ["frozen"],
      due: [due("q", "api", null, 5), due("frozen", "other", "t", 4)]
    })
    expect(FlowReport.throttled(s)).toEqual([
      { queue: "frozen", kind: "other", reason: "queue paused", count: 4 },
      { queue: "q", kind: "api", reason: "rate limited", count: 3 }
    ])
    const report = FlowReport.report(s)
    expect(report.queues.map((q) => [q.queue, q.paused, q.throttled])).toEqual([
      ["frozen", true, 4],
      ["q", false, 3]
    ])
    expect(report.queues[1]!.rules).toEqual([
      FlowControl.toRule("kind", "api", { rateLimit: { limit: 100, per: "1 minute" } })
    ])
  })

  it("a rate limit's pace holds back what its last tenth of the window has no room for", () => {
    // 100 a minute: at most 10 in any 6 s. 20 started in the window, 9 of them in the last 6 s.
    const s = state({
      rules: [FlowControl.toRule("kind", "api", { rateLimit: { limit: 100, per: "1 minute" } })],
      rate: [{ scope: "kind", name: "api", partition: null, starts: 20, recent: 9 }],
      due: [due("q", "api", null, 5)]
    })
    expect(FlowReport.throttled(s)).toEqual([{ queue: "q", kind: "api", reason: "rate limited", count: 4 }])
  })

  it("lists at most `top` keys, busiest first, and queues with only a rule", () => {
    const s = state({
      rules: [FlowControl.toRule("queue", "quiet", { concurrency: { global: 1 } })],
      running: [running("q", "a", "b", 1), running("q", "a", "c", 3)],
      due: [due("q", "a", "a", 9), due("q", "a", "b", 2), due("q", "a", "d", 2)]
    })
    const report = FlowReport.report(s, { top: 2 })
    expect(report.queues.map((q) => q.queue)).toEqual(["q", "quiet"])
    expect(report.queues[0]!.keys).toBe(4)
    expect(report.queues[0]!.partitions.map((p) => p.partition)).toEqual(["c", "b"])
    expect(report.queues[1]).toMatchObject({ running: 0, due: 0, keys: 0, partitions: [] })
  })

  it("describes rules in words, as the CLI and the dashboard show them", () => {
    expect(
      ruleWords(
        FlowControl.toRule("kind", "sync", {
          concurrency: { global: 10, perPartition: 2 },
          rateLimit: { limit: 100, per: "1 second", by: "partition" }
        })
      )
    ).toBe("kind sync: 2 per partition, 10 in all, 100 starts per 1s per partition")
    expect(ruleWords(FlowControl.toRule("queue", "q", { rateLimit: { limit: 5, per: "1500 millis" } }))).toBe(
      "queue q: 5 starts per 1500ms"
    )
    expect(
      ruleWords(FlowControl.toRule("kind", "import", { rateLimit: { limit: 3, per: "1 hour", burst: 3 } }))
    ).toBe("kind import: 3 starts per 1h in bursts of 3")
  })

  it.effect("from the memory store: held jobs of a key at its limit are throttled", () =>
    Effect.gen(function* () {
      const store = yield* MemoryStore.make
      yield* store.declareLimits([FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 1 } })])
      const job = (partition: string) => ({
        kind: "sync",
        queue: "default",
        payload: {},
        priority: 0,
        maxAttempts: 3,
        partition
      })
      yield* store.enqueue([job("acme"), job("acme"), job("acme"), job("zeta")])
      const claimed = yield* store.claim({
        queues: ["default"],
        kinds: ["sync"],
        limit: 10,
        leaseMs: 60_000,
        owner: "test"
      })
      expect(claimed.map((j) => j.partition).sort()).toEqual(["acme", "zeta"])
      const report = FlowReport.report(yield* store.flowState({ due: true }))
      expect(report.throttled).toEqual([
        { queue: "default", kind: "sync", reason: "partition at limit", count: 2 }
      ])
      expect(report.queues[0]!.partitions).toEqual([
        { partition: "acme", running: 1, due: 2, throttled: 2, waiting: "partition at limit" },
        { partition: "zeta", running: 1, due: 0, throttled: 0, waiting: null }
      ])
    })
  )
})
