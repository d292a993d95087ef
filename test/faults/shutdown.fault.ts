/**
 * SIGTERM with 100 jobs running and a 3-second shutdown timeout: half the
 * jobs finish within it, half do not and are handed back. Every job has
 * either finished or is back in the queue, the process exits in time, and a
 * second runner finishes the rest.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Events from "../../src/Events.js"
import * as Job from "../../src/Job.js"
import * as JobQueue from "../../src/JobQueue.js"
import * as JobRunner from "../../src/JobRunner.js"
import * as JobStore from "../../src/JobStore.js"
import * as SqliteStore from "../../src/SqliteStore.js"
import {
  awaitDrained,
  awaitEvent,
  enqueueJobs,
  eventually,
  ledger,
  ledgerFigures,
  report,
  scenario,
  signal
} from "./harness.js"

const shutdownMs = 3_000

describe("fault: SIGTERM with jobs running", () => {
  scenario(
    "100 running jobs: each finishes or goes back to the queue, and the process exits in time",
    { label: "term" },
    ({ sql, schema, store, spawn }) =>
      Effect.gen(function* () {
        const jobs = sql(`${schema}.jobs_all`)
        // 50 that finish within the shutdown timeout, 50 that do not, 50 more waiting behind them.
        const quick = yield* enqueueJobs(store, 50, "work", () => ({ ms: 1_000 }))
        const slow = yield* enqueueJobs(store, 50, "work", () => ({ ms: 8_000 }))
        const waiting = yield* enqueueJobs(store, 50, "work", () => ({ ms: 10 }), { priority: 1 })
        const env = {
          NS_CONCURRENCY: 100,
          NS_SHUTDOWN_MS: shutdownMs,
          NS_LEASE_MS: 15_000,
          NS_HEARTBEAT_MS: 3_000
        }
        const first = yield* spawn("first", env)
        const started = (ids: ReadonlyArray<string>) =>
          Effect.map(
            sql<{ n: number }>`SELECT count(DISTINCT job_id)::int AS n FROM ${sql(`${schema}.results`)}
            WHERE job_id = ANY(${ids}::bigint[])`,
            (rows) => rows[0]!.n
          )
        yield* eventually(
          "the 100 jobs are running",
          Effect.map(started([...quick, ...slow]), (n) => n === 100)
        )
        const [running] = yield* sql<{
          n: number
        }>`SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'running'`
        const { code, tookMs } = yield* signal(first, "SIGTERM")

        const stateOf = (ids: ReadonlyArray<string>) =>
          sql<{ state: string; attempt: number; n: number }>`
          SELECT state, attempt, count(*)::int AS n FROM ${jobs} WHERE id = ANY(${ids}::bigint[])
          GROUP BY state, attempt ORDER BY state, attempt`
        const quickStates = yield* stateOf(quick)
        const slowStates = yield* stateOf(slow)
        // Jobs the exited process still holds: claimed while it shut down, never started, never handed back.
        const [orphaned] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM ${jobs} WHERE state = 'running' AND id = ANY(${waiting}::bigint[])`

        const second = yield* spawn("second", env)
        yield* awaitEvent(second, "up")
        yield* awaitDrained(sql, schema)
        const book = yield* ledger(sql, schema)
        yield* report("sigterm-shutdown", {
          ...ledgerFigures(book),
          inFlightAtFault: running!.n,
          recoverMs: null,
          exitCode: code,
          exitMs: tookMs,
          shutdownTimeoutMs: shutdownMs,
          orphanedAtExit: orphaned!.n
        })

        expect(code).toBe(0)
        expect(tookMs).toBeLessThan(shutdownMs + 7_000)
        // The quick ones finished; the slow ones were handed back without using up an attempt.
        expect(quickStates).toEqual([{ state: "completed", attempt: 1, n: 50 }])
        expect(slowStates).toEqual([{ state: "available", attempt: 0, n: 50 }])
        expect(book.completed).toBe(150)
        expect(book.twice.length).toBeLessThanOrEqual(running!.n)
        for (const job of book.twice) expect(job.nodes).toEqual(["first", "second"])
        expect(book.twice.filter((job) => slow.includes(job.id)).length).toBe(50)
      })
  )

  // A claim that has committed in the store but whose answer has not been
  // processed yet is shielded from interruption: shutdown waits for the
  // answer and starts its jobs, which then drain like any running job: here
  // the job never finishes, so after the shutdown timeout it is handed back
  // at once instead of staying `running` until its lease expires. The store
  // answers a claim one (TestClock) second after committing it, and shutdown
  // begins inside that window.
  it.scoped("a claim cut short by shutdown hands its jobs back", () =>
    Effect.gen(function* () {
      const Task = Job.make("task", { payload: Schema.Struct({}) })
      const claimed = yield* Deferred.make<void>()
      const SlowAnswers = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store) => ({
          ...store,
          claim: (request: JobStore.ClaimRequest) =>
            store.claim(request).pipe(
              Effect.tap((jobs) => (jobs.length > 0 ? Deferred.succeed(claimed, undefined) : Effect.void)),
              Effect.zipLeft(Effect.sleep("1 second"))
            )
        }))
      ).pipe(Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" })))
      const base = yield* Layer.build(Layer.merge(SlowAnswers, Events.layer))
      const { id } = yield* JobQueue.enqueue(Task, {}).pipe(
        Effect.provide(JobQueue.layer),
        Effect.provide(base)
      )
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        JobRunner.layer(Job.handlers(Job.handle(Task, () => Effect.never)), { shutdownTimeout: "1 second" }),
        scope
      ).pipe(Effect.provide(base))
      yield* Deferred.await(claimed)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second") // the claim answers; its job starts
      yield* TestClock.adjust("1 second") // the shutdown timeout passes; the job is handed back
      yield* Fiber.join(closing)
      const job = yield* Effect.flatMap(JobStore.JobStore, (store) => store.get(id)).pipe(
        Effect.provide(base)
      )
      expect([job?.state, job?.attempt]).toEqual(["available", 0])
    })
  )
})
