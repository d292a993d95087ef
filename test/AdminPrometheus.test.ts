import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as FlowControl from "nightshift/FlowControl"
import type * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"
import { hostName, isLoopback, tokenMatches } from "../src/internal/admin/auth.js"
import * as Prometheus from "../src/internal/admin/prometheus.js"
import { makeSampler } from "../src/internal/runner/maintenance.js"

/** Format only the metrics whose name starts with `prefix`. */
const render = (prefix: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    Prometheus.format(pairs.filter((p) => p.metricKey.name.startsWith(prefix)))
  )

describe("Prometheus text format", () => {
  it.effect("counters and gauges: one family per name, one sample per label set, labels escaped", () =>
    Effect.gen(function* () {
      const jobs = Metric.counter("t1_jobs_total", { description: "Jobs\nby kind" })
      yield* Metric.incrementBy(Metric.tagged(jobs, "kind", "email"), 2)
      yield* Metric.increment(Metric.tagged(jobs, "kind", 'we"ird\\kind'))
      yield* Metric.set(Metric.gauge("t1.depth-now"), 7)
      expect(yield* render("t1")).toBe(
        [
          "# TYPE t1_depth_now gauge",
          "t1_depth_now 7",
          "# HELP t1_jobs_total Jobs\\nby kind",
          "# TYPE t1_jobs_total counter",
          't1_jobs_total{kind="email"} 2',
          't1_jobs_total{kind="we\\"ird\\\\kind"} 1',
          ""
        ].join("\n")
      )
    })
  )

  it.effect("histograms: cumulative buckets ending in +Inf, with _sum and _count", () =>
    Effect.gen(function* () {
      const h = Metric.histogram("t2_seconds", MetricBoundaries.fromIterable([0.1, 1]), "Latency")
      const tagged = Metric.tagged(h, "kind", "a")
      for (const v of [0.05, 0.5, 0.7, 3]) yield* Metric.update(tagged, v)
      expect(yield* render("t2")).toBe(
        [
          "# HELP t2_seconds Latency",
          "# TYPE t2_seconds histogram",
          't2_seconds_bucket{kind="a",le="0.1"} 1',
          't2_seconds_bucket{kind="a",le="1"} 3',
          't2_seconds_bucket{kind="a",le="+Inf"} 4',
          't2_seconds_sum{kind="a"} 4.25',
          't2_seconds_count{kind="a"} 4',
          ""
        ].join("\n")
      )
    })
  )

  it.effect("summaries get quantiles, frequencies become counters by key", () =>
    Effect.gen(function* () {
      const s = Metric.summary({ name: "t3_size", maxAge: "1 hour", maxSize: 10, error: 0, quantiles: [0.5] })
      yield* Metric.update(s, 4)
      const f = Metric.frequency("t3_outcome")
      yield* Metric.update(f, "ok")
      yield* Metric.update(f, "ok")
      const text = yield* render("t3")
      expect(text).toContain('# TYPE t3_outcome counter\nt3_outcome{key="ok"} 2')
      expect(text).toContain(
        '# TYPE t3_size summary\nt3_size{quantile="0.5"} 4\nt3_size_sum 4\nt3_size_count 1'
      )
    })
  )

  it("formats special values and invalid names", () => {
    expect(Prometheus.formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf")
    expect(Prometheus.formatValue(Number.NaN)).toBe("NaN")
    expect(Prometheus.formatValue(10n)).toBe("10")
    expect(Prometheus.metricName("9lives.count")).toBe("_9lives_count")
  })
})

describe("throttled jobs gauge", () => {
  const job = (kind: string, queue: string, partition?: string): JobStore.EnqueueInput => ({
    kind,
    queue,
    payload: {},
    priority: 0,
    maxAttempts: 3,
    partition
  })
  const claimAll = (store: JobStore.Service, queue: string) =>
    store.claim({ queues: [queue], kinds: ["t9_sync", "t9_api"], limit: 100, leaseMs: 60_000, owner: "test" })
  /** The gauge's samples of one queue, as Prometheus serves them. */
  const samples = (queue: string) =>
    Effect.map(Metric.snapshot, (pairs) =>
      Prometheus.format(pairs.filter((p) => p.metricKey.name === "nightshift_jobs_throttled"))
        .split("\n")
        .filter((line) => line.startsWith("#") || line.includes(`queue="${queue}"`))
        .join("\n")
    )

  it.effect(
    "the runner's sampler sets it per queue, kind and reason, and back to 0 when the jobs start",
    () =>
      Effect.gen(function* () {
        const store = yield* MemoryStore.make
        yield* store.declareLimits([
          FlowControl.toRule("kind", "t9_sync", { concurrency: { perPartition: 1 } }),
          FlowControl.toRule("kind", "t9_api", { rateLimit: { limit: 20, per: "1 hour" } })
        ])
        yield* store.enqueue([
          job("t9_sync", "t9q", "acme"),
          job("t9_sync", "t9q", "acme"),
          job("t9_sync", "t9q", "acme"),
          job("t9_sync", "t9q", "zeta"),
          job("t9_api", "t9q"),
          job("t9_api", "t9q"),
          job("t9_api", "t9q"),
          job("t9_sync", "t9p", "acme")
        ])
        yield* store.pause("t9p")
        const claimed = yield* claimAll(store, "t9q")
        expect(claimed).toHaveLength(4) // one per key, and two starts of the rate (paced at 2 per 6 minutes)
        const sample = makeSampler(store, ["t9q"]).sample(true)
        yield* sample
        expect(yield* samples("t9q")).toBe(
          [
            "# HELP nightshift_jobs_throttled Due jobs held back by flow control (or a paused queue), by queue, kind and reason",
            "# TYPE nightshift_jobs_throttled gauge",
            'nightshift_jobs_throttled{queue="t9q",kind="t9_api",reason="rate limited"} 1',
            'nightshift_jobs_throttled{queue="t9q",kind="t9_sync",reason="partition at limit"} 2'
          ].join("\n")
        )
        expect(yield* samples("t9p")).toContain(
          'nightshift_jobs_throttled{queue="t9p",kind="t9_sync",reason="queue paused"} 1'
        )

        // The running acme job completes: one more acme job starts, one is still held.
        const acme = claimed.find((j) => j.partition === "acme")!
        yield* store.settle([{ id: acme.id, fence: acme.fence, outcome: { _tag: "completed" } }])
        expect(yield* claimAll(store, "t9q")).toHaveLength(1)
        yield* store.resume("t9p")
        yield* sample
        const after = yield* samples("t9q")
        expect(after).toContain(
          'nightshift_jobs_throttled{queue="t9q",kind="t9_sync",reason="partition at limit"} 1'
        )
        expect(after).toContain(
          'nightshift_jobs_throttled{queue="t9q",kind="t9_api",reason="rate limited"} 1'
        )
        expect(yield* samples("t9p")).toContain(
          'nightshift_jobs_throttled{queue="t9p",kind="t9_sync",reason="queue paused"} 0'
        )
      })
  )
})

describe("admin auth helpers", () => {
  it("knows loopback names and addresses", () => {
    for (const host of [
      "127.0.0.1",
      "127.1.2.3",
      "localhost",
      "app.localhost",
      "::1",
      "[::1]",
      "::ffff:127.0.0.1"
    ]) {
      expect([host, isLoopback(host)]).toEqual([host, true])
    }
    for (const host of [
      "0.0.0.0",
      "::",
      "10.0.0.1",
      "example.com",
      "127.0.0.1.nip.io",
      "localhost.evil.com"
    ]) {
      expect([host, isLoopback(host)]).toEqual([host, false])
    }
  })

  it("takes the port off Host headers", () => {
    expect(hostName("localhost:7700")).toBe("localhost")
    expect(hostName("[::1]:7700")).toBe("[::1]")
    expect(hostName("127.0.0.1")).toBe("127.0.0.1")
  })

  it("compares tokens of any length", () => {
    const expected = Buffer.from("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "hex") // sha256("test")
    expect(tokenMatches(expected, "test")).toBe(true)
    expect(tokenMatches(expected, "tes")).toBe(false)
    expect(tokenMatches(expected, "test-and-more")).toBe(false)
  })
})
