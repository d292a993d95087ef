import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as JobStore from "../../../src/JobStore.js"
import { between, getJob, request, type StoreTest, settleOne, started, timed } from "../helpers.js"

const year = 365 * 86_400_000

export const heartbeatSuite = (test: StoreTest) =>
  describe("heartbeat", () => {
    test("extends the lease so the job is not rescued", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "r1", leaseMs: 30_000 })
        yield* advance(20_000)
        const { result, before, after } = yield* timed(store, store.heartbeat("r1", [job], 30_000))
        expect(result).toEqual([{ id: job.id, held: true, cancelRequested: false }])
        between((yield* getJob(store, job.id)).leaseExpiresAt, before + 30_000, after + 30_000)
        yield* advance(20_000)
        expect(yield* store.rescue(100)).toEqual([])
        expect(yield* store.heartbeat("r1", [job], 30_000)).toEqual([
          { id: job.id, held: true, cancelRequested: false }
        ])
        yield* advance(31_000)
        expect((yield* store.rescue(100)).map((r) => r.id)).toEqual([job.id])
      }))

    test("a lease past its expiry but not yet rescued is still held", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "r1", leaseMs: 10_000 })
        yield* advance(15_000)
        expect(yield* store.heartbeat("r1", [job], 10_000)).toEqual([
          { id: job.id, held: true, cancelRequested: false }
        ])
        expect(yield* store.rescue(100)).toEqual([])
      }))

    test("reports leases that are lost: rescued, re-claimed, settled, unknown", ({ store, advance }) =>
      Effect.gen(function* () {
        const rescued = yield* started(store, {}, { owner: "r1", leaseMs: 10_000 })
        const settled = yield* started(store, {}, { owner: "r1", leaseMs: 60_000 })
        yield* settleOne(store, settled, { _tag: "completed" })
        yield* advance(11_000)
        yield* store.rescue(100)
        const leases = [rescued, settled, { id: "987654321", fence: 1 }]
        expect((yield* store.heartbeat("r1", leases, 10_000)).map((s) => [s.id, s.held])).toEqual([
          [rescued.id, false],
          [settled.id, false],
          ["987654321", false]
        ])
        const [reclaimed] = yield* store.claim(request({ kinds: [rescued.kind], owner: "r2" }))
        expect(reclaimed?.id).toBe(rescued.id)
        const [old] = yield* store.heartbeat("r1", [rescued], 10_000)
        expect(old?.held).toBe(false)
        const [current] = yield* store.heartbeat("r2", [reclaimed!], 10_000)
        expect(current?.held).toBe(true)
      }))

    test("another owner cannot extend a lease", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "r1", leaseMs: 10_000 })
        const [status] = yield* store.heartbeat("intruder", [job], 60_000)
        expect(status?.held).toBe(false)
        expect((yield* getJob(store, job.id)).leaseExpiresAt).toBe(job.leaseExpiresAt)
      }))

    test("claim and heartbeat set at most JobStore.maxLeaseMs, so a runner that dies is rescued after it", ({
      store,
      advance
    }) =>
      Effect.gen(function* () {
        const claimed = yield* timed(store, started(store, {}, { owner: "r1", leaseMs: 10 * year }))
        const job = claimed.result
        between(job.leaseExpiresAt, claimed.before + JobStore.maxLeaseMs, claimed.after + JobStore.maxLeaseMs)
        yield* advance(60_000)
        const beat = yield* timed(store, store.heartbeat("r1", [job], 10 * year))
        expect(beat.result).toEqual([{ id: job.id, held: true, cancelRequested: false }])
        between(
          (yield* getJob(store, job.id)).leaseExpiresAt,
          beat.before + JobStore.maxLeaseMs,
          beat.after + JobStore.maxLeaseMs
        )
        yield* advance(JobStore.maxLeaseMs - 60_000)
        expect(yield* store.rescue(100)).toEqual([])
        yield* advance(61_000)
        expect((yield* store.rescue(100)).map((r) => [r.id, r.state])).toEqual([[job.id, "retryable"]])
      }))

    test("reports a cancel request on a held lease", ({ store }) =>
      Effect.gen(function* () {
        const job = yield* started(store, {}, { owner: "r1" })
        const other = yield* started(store, {}, { owner: "r1" })
        yield* store.cancel(job.id)
        expect(yield* store.heartbeat("r1", [job, other], 30_000)).toEqual([
          { id: job.id, held: true, cancelRequested: true },
          { id: other.id, held: true, cancelRequested: false }
        ])
      }))
  })

export const rescueSuite = (test: StoreTest) =>
  describe("rescue", () => {
    test("a job is not rescued before its lease expires", ({ store, advance }) =>
      Effect.gen(function* () {
        yield* started(store, {}, { leaseMs: 30_000 })
        yield* advance(29_000)
        expect(yield* store.rescue(100)).toEqual([])
      }))

    test("an expired lease makes the job retryable now with a rescued error, the attempt counted", ({
      store,
      advance
    }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { queue: "q", maxAttempts: 3 }, { leaseMs: 30_000 })
        yield* advance(31_000)
        const { result, before, after } = yield* timed(store, store.rescue(100))
        expect(result).toEqual([{ id: job.id, kind: job.kind, queue: "q", state: "retryable" }])
        const rescued = yield* getJob(store, job.id)
        expect(rescued).toMatchObject({
          state: "retryable",
          attempt: 1,
          leaseOwner: null,
          leaseExpiresAt: null
        })
        expect(rescued.errors).toHaveLength(1)
        expect(rescued.errors[0]).toMatchObject({ attempt: 1, kind: "rescued" })
        between(rescued.errors[0]!.at, before, after)
        expect(rescued.runAt).toBeLessThanOrEqual(after)
        const [again] = yield* store.claim(request({ kinds: [job.kind] }))
        expect(again).toMatchObject({ id: job.id, attempt: 2 })
        expect(yield* store.rescue(100)).toEqual([])
      }))

    test("a rescued job with no attempts left is discarded", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 1 }, { leaseMs: 30_000 })
        yield* advance(31_000)
        expect((yield* store.rescue(100)).map((r) => r.state)).toEqual(["discarded"])
        const done = yield* getJob(store, job.id)
        expect(done).toMatchObject({ state: "discarded", attempt: 1 })
        expect(done.finalizedAt).not.toBeNull()
        expect(done.errors.map((e) => e.kind)).toEqual(["rescued"])
      }))

    test("a rescued job with a pending cancel ends cancelled", ({ store, advance }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 5 }, { leaseMs: 30_000 })
        yield* store.cancel(job.id)
        yield* advance(31_000)
        expect((yield* store.rescue(100)).map((r) => r.state)).toEqual(["cancelled"])
        const done = yield* getJob(store, job.id)
        expect(done.state).toBe("cancelled")
        expect(done.finalizedAt).not.toBeNull()
        expect(yield* store.claim(request({ kinds: [job.kind] }))).toEqual([])
      }))

    test("rescue takes at most limit jobs per call; repeated calls finish", ({ store, advance }) =>
      Effect.gen(function* () {
        const jobs = [yield* started(store), yield* started(store), yield* started(store)]
        yield* advance(31_000)
        const first = yield* store.rescue(2)
        expect(first).toHaveLength(2)
        const second = yield* store.rescue(2)
        expect(second).toHaveLength(1)
        expect(new Set([...first, ...second].map((r) => r.id))).toEqual(new Set(jobs.map((j) => j.id)))
        expect(yield* store.rescue(2)).toEqual([])
      }))

    test("a lease ending later than now + maxLeaseMs (the clock went back a day) is taken back", ({
      store,
      rewind
    }) =>
      Effect.gen(function* () {
        const job = yield* started(store, { maxAttempts: 3 }, { leaseMs: 30_000 })
        const fresh = yield* started(store, { maxAttempts: 3 }, { leaseMs: 30_000 })
        yield* rewind(JobStore.maxLeaseMs - 60_000)
        expect(yield* store.rescue(100)).toEqual([])
        yield* rewind(2 * 60_000)
        // The lease of `fresh` is re-set at the new time: it is within bounds again.
        expect(yield* store.heartbeat("runner-a", [fresh], 30_000)).toEqual([
          { id: fresh.id, held: true, cancelRequested: false }
        ])
        expect(yield* store.rescue(100)).toEqual([
          { id: job.id, kind: job.kind, queue: job.queue, state: "retryable" }
        ])
        const rescued = yield* getJob(store, job.id)
        expect(rescued).toMatchObject({
          state: "retryable",
          attempt: 1,
          leaseOwner: null,
          leaseExpiresAt: null
        })
        expect(rescued.errors.map((e) => e.kind)).toEqual(["rescued"])
        expect((yield* getJob(store, fresh.id)).state).toBe("running")
      }))

    test.editable("a running job whose lease was written years ahead is taken back", ({ store, edit }) =>
      Effect.gen(function* () {
        const far = yield* started(store, { maxAttempts: 1 }, { leaseMs: 30_000 })
        const near = yield* started(store, {}, { leaseMs: 30_000 })
        const now = yield* store.now
        yield* edit(far.id, { leaseExpiresAt: now + 100 * year })
        yield* edit(near.id, { leaseExpiresAt: now + JobStore.maxLeaseMs - 60_000 })
        expect(yield* store.rescue(100)).toEqual([
          { id: far.id, kind: far.kind, queue: far.queue, state: "discarded" }
        ])
        const done = yield* getJob(store, far.id)
        expect(done.finalizedAt).not.toBeNull()
        expect(done.errors.map((e) => e.kind)).toEqual(["rescued"])
        expect(done.errors[0]!.message).toContain("later than any runner sets a lease")
        expect((yield* getJob(store, near.id)).state).toBe("running")
        expect(yield* store.rescue(100)).toEqual([])
      })
    )

    test("only expired leases are rescued", ({ store, advance }) =>
      Effect.gen(function* () {
        const short = yield* started(store, {}, { leaseMs: 10_000 })
        yield* started(store, {}, { leaseMs: 60_000 })
        yield* advance(11_000)
        expect((yield* store.rescue(100)).map((r) => r.id)).toEqual([short.id])
      }))
  })
