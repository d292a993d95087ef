import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Leases from "../src/internal/sqlite/leases.js"
import * as Job from "../src/Job.js"
import * as JobRunner from "../src/JobRunner.js"
import * as JobStore from "../src/JobStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { srcDir, startChild as startSqliteChild } from "./fixtures/sqliteChild.js"
import { conformance } from "./store/conformance.js"
import { input, type RowEdit, RowEditor } from "./store/helpers.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nightshift-sqlite-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempFile = () => path.join(dir, `jobs-${++files}.db`)

/** Hand edits of rows, on the store's own connection. */
const editor = Layer.effect(
  RowEditor,
  Effect.map(SqlClient.SqlClient, (sql) => ({
    edit: (id: string, row: RowEdit) =>
      Effect.gen(function* () {
        if (row.leaseExpiresAt !== undefined)
          yield* sql`UPDATE nightshift_jobs SET lease_expires_at = ${row.leaseExpiresAt} WHERE id = ${Number(id)}`
        if (row.finalizedAt === null)
          yield* sql`UPDATE nightshift_jobs SET finalized_at = NULL WHERE id = ${Number(id)}`
      })
  }))
)
const editable = <E>(store: Layer.Layer<JobStore.JobStore | SqlClient.SqlClient, E>) =>
  Layer.provideMerge(editor, store)

conformance("sqlite :memory:", {
  layer: editable(SqliteStore.layer({ filename: ":memory:" })),
  editable: true
})
conformance("sqlite file", {
  layer: editable(Layer.unwrapEffect(Effect.sync(() => SqliteStore.layer({ filename: tempFile() })))),
  editable: true
})

const job = (overrides: Partial<JobStore.EnqueueInput> = {}): JobStore.EnqueueInput => ({
  kind: "k",
  queue: "q",
  payload: { n: 1 },
  priority: 0,
  maxAttempts: 3,
  ...overrides
})

const claimReq = (overrides: Partial<JobStore.ClaimRequest> = {}): JobStore.ClaimRequest => ({
  queues: ["q"],
  kinds: ["k"],
  limit: 10,
  leaseMs: 30_000,
  owner: "runner-a",
  ...overrides
})

/** Run `f` against a store on `filename`, built for this call and closed after it. */
const withStore = <A, E>(filename: string, f: (store: JobStore.Service) => Effect.Effect<A, E>) =>
  Effect.flatMap(JobStore.JobStore, f).pipe(Effect.provide(SqliteStore.layer({ filename })))

const completed: JobStore.Outcome = { _tag: "completed" }

describe("SqliteStore", () => {
  it.effect("a store on its own file runs in WAL mode with the documented pragmas", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const read = (pragma: string) =>
        Effect.map(sql.unsafe(`PRAGMA ${pragma}`).values, (rows) => rows[0]?.[0])
      expect(yield* read("journal_mode")).toBe("wal")
      expect(yield* read("synchronous")).toBe(1) // NORMAL
      expect(yield* read("busy_timeout")).toBe(5_000)
    }).pipe(Effect.provide(SqliteStore.layer({ filename: tempFile() })))
  )

  it.effect(
    "after an ANALYZE taken with few jobs running, a batch settle still finds each job by its id",
    () => {
      const filename = tempFile()
      return Effect.gen(function* () {
        yield* withStore(filename, (store) =>
          Effect.gen(function* () {
            yield* store.enqueue(Array.from({ length: 2_000 }, () => job()))
            const claimed = yield* store.claim(claimReq({ limit: 1_500 }))
            yield* store.settle(
              claimed.slice(0, 1_490).map((j) => ({ id: j.id, fence: j.fence, outcome: completed }))
            )
          })
        )
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe("ANALYZE")
        const plan = (text: string, params: ReadonlyArray<unknown>) =>
          Effect.map(sql.unsafe<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, params), (rows) =>
            rows.map((r) => r.detail)
          )
        // The batch outer, each job by rowid; not the running jobs' index with the batch probed per row.
        for (const [text, params] of [
          [Leases.completeText, [1, "[[1,1]]"]],
          [Leases.settleText, [1, 1, "[]"]]
        ] as const) {
          const steps = yield* plan(text, params)
          expect(steps.some((s) => s.includes("SEARCH j USING INTEGER PRIMARY KEY"))).toBe(true)
          expect(steps.some((s) => s.includes("nightshift_jobs_lease"))).toBe(false)
        }
      }).pipe(Effect.provide(SqliteClient.layer({ filename })))
    }
  )

  it.effect("migrations run once: a second build on the same file runs none and keeps the jobs", () =>
    Effect.gen(function* () {
      const filename = tempFile()
      const client = SqliteClient.layer({ filename })
      const first = yield* Effect.provide(SqliteStore.migrate, client)
      expect(first.map(([id]) => id)).toEqual([1, 2, 3, 4, 5])
      const [enqueued] = yield* withStore(filename, (store) => store.enqueue([job()]))
      expect(yield* Effect.provide(SqliteStore.migrate, client)).toEqual([])
      const again = yield* withStore(filename, (store) => store.get(enqueued!.id))
      expect(again?.state).toBe("available")
    })
  )

  it.effect("a job survives a rebuild of the layer on the same file, and ids are never reused", () =>
    Effect.gen(function* () {
      const filename = tempFile()
      const first = yield* withStore(filename, (store) =>
        Effect.gen(function* () {
          const [a, b] = yield* store.enqueue([job({ payload: { to: "x@y.z" } }), job({ queue: "other" })])
          const [claimed] = yield* store.claim(claimReq({ limit: 1 }))
          yield* store.settle([{ id: claimed!.id, fence: claimed!.fence, outcome: completed }])
          yield* TestClock.adjust(1)
          expect(yield* store.prune({ completedMs: 0, discardedMs: 0, cancelledMs: 0, limit: 10 })).toBe(1)
          return { a: a!.id, b: b!.id }
        })
      )
      yield* withStore(filename, (store) =>
        Effect.gen(function* () {
          expect(yield* store.get(first.a)).toBeUndefined()
          const b = yield* store.get(first.b)
          expect(b).toMatchObject({ state: "available", queue: "other", payload: { n: 1 } })
          const [c] = yield* store.enqueue([job()])
          expect(Number(c!.id)).toBeGreaterThan(Number(first.b))
        })
      )
    })
  )

  it.effect("concurrent claimers never get the same job", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        yield* store.enqueue(Array.from({ length: 300 }, (_, i) => job({ priority: i % 7 })))
        const claimer = (owner: string) =>
          Effect.gen(function* () {
            const ids: Array<string> = []
            for (;;) {
              const jobs = yield* store.claim(claimReq({ owner, limit: 7 }))
              if (jobs.length === 0) return ids
              ids.push(...jobs.map((j) => j.id))
              yield* Effect.yieldNow()
            }
          })
        const all = (yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => claimer(`r${i}`)),
          { concurrency: "unbounded" }
        )).flat()
        expect(all).toHaveLength(300)
        expect(new Set(all).size).toBe(300)
      })
    )
  )

  it.effect("dedupe folds duplicates within one enqueue call and into the stored active job", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        const [a, plain, a2, b, otherKind] = yield* store.enqueue([
          job({ dedupeKey: "x", payload: 1 }),
          job({ payload: 2 }),
          job({ dedupeKey: "x", payload: 3 }),
          job({ dedupeKey: "y", payload: 4 }),
          job({ kind: "other", dedupeKey: "x", payload: 5 })
        ])
        expect([a!.deduped, plain!.deduped, a2!.deduped, b!.deduped, otherKind!.deduped]).toEqual([
          false,
          false,
          true,
          false,
          false
        ])
        expect(a2!.id).toBe(a!.id)
        expect(new Set([a!.id, plain!.id, b!.id, otherKind!.id]).size).toBe(4)
        const [again, fresh] = yield* store.enqueue([job({ dedupeKey: "y" }), job({ dedupeKey: "z" })])
        expect(again).toEqual({ id: b!.id, deduped: true })
        expect(fresh!.deduped).toBe(false)
        expect((yield* store.get(a!.id))?.payload).toBe(1)
      })
    )
  )

  it.effect("concurrent enqueues of one dedupe key create exactly one job", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        const results = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) =>
            store.enqueue([job({ payload: i }), job({ dedupeKey: "same", payload: i })])
          ),
          { concurrency: "unbounded" }
        )
        const keyed = results.map((r) => r[1]!)
        expect(keyed.filter((r) => !r.deduped)).toHaveLength(1)
        expect(new Set(keyed.map((r) => r.id)).size).toBe(1)
        const page = yield* store.list({ limit: 100 })
        expect(page.jobs).toHaveLength(21)
      })
    )
  )

  it.effect("a key is free again once its job is final", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        const [first] = yield* store.enqueue([job({ dedupeKey: "k1" })])
        const [claimed] = yield* store.claim(claimReq())
        yield* store.settle([{ id: claimed!.id, fence: claimed!.fence, outcome: completed }])
        const [second] = yield* store.enqueue([job({ dedupeKey: "k1" })])
        expect(second!.deduped).toBe(false)
        expect(second!.id).not.toBe(first!.id)
        expect(yield* store.retry(first!.id)).toEqual({ _tag: "not-retryable", state: "completed" })
      })
    )
  )

  it.effect("one settle call applies each outcome only under the claim's fence", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        yield* store.enqueue([job(), job(), job(), job()])
        const [a, b, c, d] = yield* store.claim(claimReq())
        const results = yield* store.settle([
          { id: a!.id, fence: a!.fence, outcome: completed },
          { id: b!.id, fence: b!.fence + 1, outcome: completed },
          {
            id: c!.id,
            fence: c!.fence,
            outcome: { _tag: "retry", delayMs: 5_000, error: { kind: "failure", message: "boom" } }
          },
          { id: "999999", fence: 1, outcome: completed },
          { id: "not-an-id", fence: 1, outcome: completed },
          {
            id: a!.id,
            fence: a!.fence,
            outcome: { _tag: "discard", error: { kind: "failure", message: "late" } }
          },
          { id: d!.id, fence: d!.fence, outcome: { _tag: "snooze", delayMs: 1_000 } }
        ])
        expect(results.map((r) => [r.applied, r.state])).toEqual([
          [true, "completed"],
          [false, null],
          [true, "retryable"],
          [false, null],
          [false, null],
          [false, null],
          [true, "scheduled"]
        ])
        expect(yield* store.get(a!.id)).toMatchObject({ state: "completed", errors: [] })
        expect(yield* store.get(b!.id)).toMatchObject({ state: "running", leaseOwner: "runner-a" })
        const retried = yield* store.get(c!.id)
        expect(retried).toMatchObject({ state: "retryable", runAt: 5_000, attempt: 1, leaseOwner: null })
        expect(retried!.errors).toEqual([
          { attempt: 1, at: 0, kind: "failure", message: "boom", startedAt: 0, node: "runner-a" }
        ])
        expect(yield* store.get(d!.id)).toMatchObject({ state: "scheduled", attempt: 0, runAt: 1_000 })
        const stale = yield* store.settle([{ id: c!.id, fence: c!.fence, outcome: completed }])
        expect(stale).toEqual([{ id: c!.id, applied: false, state: null }])
      })
    )
  )

  it.effect("TestClock drives run-at: a delayed job is claimable only once the clock passes it", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        yield* store.enqueue([job({ delayMs: 60_000 })])
        expect(yield* store.claim(claimReq())).toEqual([])
        yield* TestClock.adjust("59 seconds")
        expect(yield* store.claim(claimReq())).toEqual([])
        yield* TestClock.adjust("1 second")
        const [claimed] = yield* store.claim(claimReq())
        expect(claimed).toMatchObject({ state: "running", attemptedAt: 60_000, leaseExpiresAt: 90_000 })
      })
    )
  )

  it.effect(
    "an enqueue inside the app's transaction on the store's client commits or rolls back with it",
    () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        const sql = yield* SqlClient.SqlClient
        const failed = yield* sql
          .withTransaction(
            Effect.zipRight(store.enqueue([job({ payload: "rolled back" })]), Effect.fail("app failed"))
          )
          .pipe(Effect.exit)
        expect(Exit.isFailure(failed)).toBe(true)
        expect((yield* store.list({})).jobs).toEqual([])
        yield* sql.withTransaction(store.enqueue([job({ payload: "kept" })]))
        expect((yield* store.list({})).jobs.map((j) => j.payload)).toEqual(["kept"])
      }).pipe(Effect.provide(SqliteStore.layer({ filename: tempFile() })))
  )

  it.effect(
    "an enqueue on another fiber waits for the app's open transaction instead of joining it, and survives its rollback",
    () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        const sql = yield* SqlClient.SqlClient
        const opened = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const app = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* store.enqueue([job({ payload: "the app's, rolled back" })])
              yield* Deferred.succeed(opened, undefined)
              yield* Deferred.await(release)
              return yield* Effect.fail("app failed")
            })
          )
          .pipe(Effect.exit, Effect.fork)
        yield* Deferred.await(opened)
        const other = yield* Effect.fork(store.enqueue([job({ payload: "another fiber's" })]))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        expect(Option.isNone(yield* Fiber.poll(other))).toBe(true)
        yield* Deferred.succeed(release, undefined)
        expect(Exit.isFailure(yield* Fiber.join(app))).toBe(true)
        yield* Fiber.join(other)
        expect((yield* store.list({})).jobs.map((j) => j.payload)).toEqual(["another fiber's"])
      }).pipe(Effect.provide(SqliteStore.layer({ filename: tempFile() })))
  )

  it.effect(
    "a batch that fails after its first statement leaves no row and no id taken, and the next one goes in",
    () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        const sql = yield* SqlClient.SqlClient
        const cyclic: Record<string, unknown> = {}
        cyclic.self = cyclic
        const failed = yield* store.enqueue([job(), job({ payload: cyclic })]).pipe(Effect.exit)
        expect(Exit.isFailure(failed)).toBe(true)
        expect((yield* store.list({})).jobs).toEqual([])
        const [counter] = yield* sql<{
          value: number
        }>`SELECT value FROM nightshift_counters WHERE name = 'job_id'`
        expect(counter!.value).toBe(0)
        const [stored] = yield* store.enqueue([job()])
        expect(stored).toEqual({ id: "1", deduped: false })
      }).pipe(Effect.provide(SqliteStore.layer({ filename: tempFile() })))
  )

  it.effect(
    "layerClient shares an app's SqliteClient; another client's transaction does not capture the store",
    () =>
      Effect.gen(function* () {
        const appFile = tempFile()
        const other = yield* Layer.build(SqliteClient.layer({ filename: tempFile() }))
        const otherSql = SqlClient.SqlClient.pipe(Effect.provide(Layer.succeedContext(other)))
        yield* Effect.gen(function* () {
          const store = yield* JobStore.JobStore
          const sql = yield* otherSql
          const outcome = yield* sql
            .withTransaction(Effect.zipRight(store.enqueue([job()]), Effect.fail("other db failed")))
            .pipe(Effect.exit)
          expect(Exit.isFailure(outcome)).toBe(true)
          expect((yield* store.list({})).jobs).toHaveLength(1)
          const appSql = yield* SqlClient.SqlClient
          const tables = yield* appSql<{
            name: string
          }>`SELECT name FROM sqlite_master WHERE name = 'nightshift_jobs'`
          expect(tables).toHaveLength(1)
        }).pipe(
          Effect.provide(
            SqliteStore.layerClient.pipe(Layer.provideMerge(SqliteClient.layer({ filename: appFile })))
          )
        )
      }).pipe(Effect.scoped)
  )

  it.effect("layerConfig reads its options from Config", () =>
    Effect.gen(function* () {
      const filename = tempFile()
      yield* Effect.flatMap(JobStore.JobStore, (store) => store.enqueue([job()])).pipe(
        Effect.provide(SqliteStore.layerConfig({ filename: Config.string("NIGHTSHIFT_SQLITE_FILE") })),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["NIGHTSHIFT_SQLITE_FILE", filename]])))
      )
      const jobs = yield* withStore(filename, (store) => store.list({}))
      expect(jobs.jobs).toHaveLength(1)
    })
  )

  it.scoped("a job released or snoozed without delay wakes this process's runners", () =>
    withStore(tempFile(), (store) =>
      Effect.gen(function* () {
        const wakeups = yield* store.wakeups.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
        yield* Effect.yieldNow()
        yield* store.enqueue([job({ queue: "a", delayMs: 1_000 }), job({ queue: "b", delayMs: 1_000 })])
        yield* TestClock.adjust(1_000)
        const [a, b] = yield* store.claim(claimReq({ queues: ["a", "b"] }))
        yield* store.settle([
          { id: a!.id, fence: a!.fence, outcome: { _tag: "release" } },
          { id: b!.id, fence: b!.fence, outcome: { _tag: "snooze", delayMs: 0 } }
        ])
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        expect(Option.isSome(yield* Fiber.poll(wakeups)), "two hints arrived").toBe(true)
        const hints = Chunk.toReadonlyArray(yield* Fiber.join(wakeups))
        expect([...hints].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([
          { _tag: "enqueued", queue: "a" },
          { _tag: "enqueued", queue: "b" }
        ])
      })
    )
  )

  it.effect("a file in a missing directory fails the layer with a JobStoreError naming the file", () =>
    Effect.gen(function* () {
      const filename = path.join(dir, "missing", "jobs.db")
      const error = yield* Effect.flip(withStore(filename, (store) => store.ping))
      expect(error).toBeInstanceOf(JobStore.JobStoreError)
      expect(error.message).toContain(filename)
    })
  )
})

/** A child process that seeds keyed jobs and drains `q`, printing what it got. */
const childScript = `
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as JobStore from ${JSON.stringify(path.join(srcDir, "JobStore.ts"))}
import * as SqliteStore from ${JSON.stringify(path.join(srcDir, "SqliteStore.ts"))}
import { once } from "node:events"
const program = Effect.gen(function* () {
  const store = yield* JobStore.JobStore
  console.log("ready")
  yield* Effect.promise(() => once(process.stdin, "data"))
  const keyed = []
  for (let i = 0; i < 100; i += 10) {
    const batch = Array.from({ length: 10 }, (_, j) => ({ kind: "keyed", queue: "keyed", payload: null, priority: 0, maxAttempts: 1, dedupeKey: "key-" + (i + j) }))
    keyed.push(...(yield* store.enqueue(batch)).map((r) => r.id))
  }
  const claimed = []
  for (;;) {
    const jobs = yield* store.claim({ queues: ["q"], kinds: ["k"], limit: 10, leaseMs: 60000, owner: String(process.pid) })
    if (jobs.length === 0) break
    claimed.push(...jobs.map((j) => j.id))
    yield* store.settle(jobs.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } })))
  }
  console.log(JSON.stringify({ keyed, claimed }))
})
Effect.runPromise(Effect.provide(program, SqliteStore.layer({ filename: process.env.NIGHTSHIFT_FILE }))).then(
  () => process.exit(0),
  (e) => { console.error(e); process.exit(1) }
)
`

interface ChildResult {
  readonly keyed: ReadonlyArray<string>
  readonly claimed: ReadonlyArray<string>
}

const startChild = (filename: string) => startSqliteChild<ChildResult>(childScript, filename)

/** better-sqlite3 itself: another connection to a store's file. */
const Database = createRequire(import.meta.url)("better-sqlite3") as new (
  filename: string
) => { exec: (sql: string) => void; close: () => void }

describe("SqliteStore and another connection's write lock", () => {
  it.live(
    "a write that finds the lock held waits without stopping the process: the holder, in the same process, commits meanwhile",
    () => {
      const filename = tempFile()
      return Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        // Another connection to the file (another process, or another client in this one) holds
        // the write lock and lets it go from a timer in this process.
        const other = new Database(filename)
        yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
        other.exec("BEGIN IMMEDIATE")
        let committed = false
        setTimeout(() => {
          other.exec("COMMIT")
          committed = true
        }, 200)
        // SQLite's own wait would sleep the thread, so the timer could not run before the
        // busy timeout ran out and the enqueue failed.
        const [result] = yield* store.enqueue([input({ payload: { n: 1 } })])
        expect(committed).toBe(true)
        expect(result?.id).toBeDefined()
        expect((yield* store.get(result!.id))?.state).toBe("available")
      }).pipe(Effect.provide(SqliteStore.layer({ filename, busyTimeout: "3 seconds" })), Effect.scoped)
    }
  )
})

describe("SqliteStore across processes", () => {
  it.live(
    "three processes on one new file: migrations once, every job claimed once, one job per dedupe key",
    () =>
      Effect.gen(function* () {
        const filename = tempFile()
        // The children create the tables together, then wait while the parent seeds.
        const children = [startChild(filename), startChild(filename), startChild(filename)]
        yield* Effect.promise(() => Promise.all(children.map((c) => c.ready)))
        const seeded = yield* withStore(filename, (store) =>
          store.enqueue(Array.from({ length: 600 }, (_, i) => job({ payload: i })))
        )
        for (const c of children) c.go()
        const results = yield* Effect.promise(() => Promise.all(children.map((c) => c.done)))
        const claimed = results.flatMap((r) => r.claimed)
        expect(claimed).toHaveLength(600)
        expect(new Set(claimed)).toEqual(new Set(seeded.map((r) => r.id)))
        expect(results[1]!.keyed).toEqual(results[0]!.keyed)
        expect(results[2]!.keyed).toEqual(results[0]!.keyed)
        const counts = yield* withStore(filename, (store) => store.counts)
        expect(counts).toEqual([
          { queue: "keyed", state: "available", count: 100 },
          { queue: "q", state: "completed", count: 600 }
        ])
      }),
    60_000
  )
})

describe("SqliteStore wake-ups from other connections", () => {
  /** How the tests wait for a condition: every 10 ms, at most 20 s. */
  const poll = Schedule.intersect(Schedule.spaced("10 millis"), Schedule.recurs(2_000))
  const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }) })

  it.live(
    "a commit by another connection to the file is a `changed` hint; the store's own writes are not",
    () =>
      Effect.gen(function* () {
        const filename = tempFile()
        yield* withStore(filename, (store) =>
          Effect.scoped(
            Effect.gen(function* () {
              const seen = yield* Ref.make<ReadonlyArray<JobStore.Wakeup>>([])
              yield* store.wakeups.pipe(
                Stream.runForEach((hint) => Ref.update(seen, (hints) => [...hints, hint])),
                Effect.forkScoped
              )
              // Our own enqueues (repeated until the subscription is up): `enqueued` hints only.
              yield* store
                .enqueue([job({ queue: "own" })])
                .pipe(
                  Effect.zipRight(Ref.get(seen)),
                  Effect.repeat({ until: (hints) => hints.length > 0, schedule: poll })
                )
              const isOwn = (hint: JobStore.Wakeup) => hint._tag === "enqueued" && hint.queue === "own"
              expect((yield* Ref.get(seen)).every(isOwn)).toBe(true)
              // Another connection's commit: one `changed` hint (late hints of our own may still come).
              yield* withStore(filename, (other) => other.enqueue([job({ queue: "theirs" })]))
              const changed = (hints: ReadonlyArray<JobStore.Wakeup>) => hints.filter((hint) => !isOwn(hint))
              yield* Ref.get(seen).pipe(
                Effect.repeat({ until: (hints) => changed(hints).length > 0, schedule: poll })
              )
              expect(changed(yield* Ref.get(seen))).toEqual([{ _tag: "changed" }])
            })
          )
        )
      })
  )

  it.live("an idle runner starts a job another process enqueued without waiting for its poll", () =>
    Effect.gen(function* () {
      const filename = tempFile()
      const started = yield* Deferred.make<number>()
      const handlers = Job.handlers(Job.handle(Ping, ({ n }) => Deferred.succeed(started, n)))
      const runner = JobRunner.layer(handlers, { pollInterval: "1 hour" }).pipe(
        Layer.provide(SqliteStore.layer({ filename }))
      )
      yield* Effect.gen(function* () {
        const runnerService = yield* JobRunner.JobRunner
        // Once the runner has made its first claim, it waits for a hint or the hourly poll.
        yield* runnerService.status.pipe(
          Effect.repeat({ until: (s) => s.lastClaimAt !== null, schedule: poll })
        )
        yield* withStore(filename, (other) =>
          other.enqueue([{ kind: "ping", queue: "default", payload: { n: 7 }, priority: 0, maxAttempts: 3 }])
        )
        expect(yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))).toBe(7)
      }).pipe(Effect.provide(runner), Effect.scoped)
    })
  )
})
