/**
 * The `nightshift` command run in-process (`Cli.run` with a captured
 * console and a config provider standing in for the environment) against
 * temporary SQLite files and the test PostgreSQL server. The child-process
 * tests, which go through the compiled dist/bin.js, are in Cli.process.test.ts.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as FlowControl from "../src/FlowControl.js"
import * as JobStore from "../src/JobStore.js"
import * as Leader from "../src/Leader.js"
import * as Lock from "../src/Lock.js"
import * as Store from "../src/Store.js"
import { cli, cliTo } from "./fixtures/cli-harness.js"
import { clientLayer, databaseUrl, dropSchema, freshSchema } from "./setup/pg.js"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "nightshift-cli-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

let files = 0
/** A database file no other test uses. */
const freshDb = () => Path.join(dir, `t${++files}.db`)

const fixtureApp = Path.join(import.meta.dirname, "fixtures", "cli-app.ts")

/** Run a command that must succeed and print JSON; returns the parsed JSON. */
const cliJson = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.map(cli([...args, "--json"], env), (r) => {
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    return JSON.parse(r.stdout)
  })

/** Enqueue a raw job and return its id. */
const enqueue = (db: string, kind: string, payload: unknown, ...flags: Array<string>) =>
  Effect.map(cliJson(["enqueue", kind, JSON.stringify(payload), "-d", db, ...flags]), (r) => r.id as string)

describe("Store.parse", () => {
  const sqlite = (filename: string) => Either.right({ _tag: "Sqlite", filename })

  it("selects SQLite for paths and sqlite:/file: URLs, and the default file when empty", () => {
    expect(Store.parse("")).toEqual(sqlite("./nightshift.db"))
    expect(Store.parse("jobs.db")).toEqual(sqlite("jobs.db"))
    expect(Store.parse("./data/jobs.db")).toEqual(sqlite("./data/jobs.db"))
    expect(Store.parse("/var/lib/jobs.db")).toEqual(sqlite("/var/lib/jobs.db"))
    expect(Store.parse("C:\\data\\jobs.db")).toEqual(sqlite("C:\\data\\jobs.db"))
    expect(Store.parse("sqlite:jobs.db")).toEqual(sqlite("jobs.db"))
    expect(Store.parse("sqlite:///var/lib/jobs.db")).toEqual(sqlite("/var/lib/jobs.db"))
    expect(Store.parse("file:./jobs.db")).toEqual(sqlite("./jobs.db"))
    expect(Store.parse("sqlite::memory:")).toEqual(sqlite(":memory:"))
  })

  it("selects memory and PostgreSQL, with the schema taken out of the URL", () => {
    expect(Store.parse("memory:")).toEqual(Either.right({ _tag: "Memory" }))
    const pg = Either.getOrThrow(
      Store.parse("postgres://app:secret@db.internal:5433/jobs?schema=work&sslmode=disable")
    )
    expect(pg).toMatchObject({
      _tag: "Postgres",
      host: "db.internal",
      port: 5433,
      database: "jobs",
      schema: "work"
    })
    if (pg._tag !== "Postgres") throw new Error("not postgres")
    expect(Redacted.value(pg.url)).toBe("postgres://app:secret@db.internal:5433/jobs?sslmode=disable")
    expect(Store.describe(pg)).toBe("postgres jobs@db.internal:5433 (schema work)")
    expect(Store.parse("postgresql://localhost/app")).toEqual(
      Either.right(expect.objectContaining({ port: 5432, database: "app", schema: undefined }))
    )
  })

  it("selects a store sharded over PostgreSQL servers for a comma-separated list of postgres:// URLs", () => {
    const target = Either.getOrThrow(
      Store.parse(
        "postgres://app:secret@db-a:5432/jobs?schema=work, postgresql://app:secret@db-b/jobs?schema=work"
      )
    )
    expect(target).toMatchObject({
      _tag: "ShardedPostgres",
      shards: [
        { _tag: "Postgres", host: "db-a", port: 5432, database: "jobs", schema: "work" },
        { _tag: "Postgres", host: "db-b", port: 5432, database: "jobs", schema: "work" }
      ]
    })
    expect(Store.describe(target)).toBe(
      "postgres sharded over 2: jobs@db-a:5432, jobs@db-b:5432 (schema work)"
    )
    const mixed = Either.flip(Store.parse("postgres://app:hunter2@db-a/jobs,./jobs.db")).pipe(
      Either.getOrThrow
    )
    expect(mixed.message).toContain("every item must be a postgres:// URL")
    expect(mixed.message).not.toContain("hunter2")
    expect(Either.isLeft(Store.parse("postgres://db-a/jobs?schema=a,postgres://db-b/jobs?schema=b"))).toBe(
      true
    )
  })

  it("rejects unknown schemes and malformed URLs with what is accepted, never echoing a password", () => {
    const error = Either.flip(Store.parse("mysql://root:hunter2@db/app")).pipe(Either.getOrThrow)
    expect(error.message).toContain('unknown scheme "mysql:"')
    expect(error.message).toContain("postgres://")
    expect(error.message).not.toContain("hunter2")
    expect(Either.isLeft(Store.parse("memory:later"))).toBe(true)
    expect(Either.isLeft(Store.parse("sqlite:"))).toBe(true)
    expect(Either.isLeft(Store.parse("postgres://[::1"))).toBe(true)
  })

  it.effect("reads NIGHTSHIFT_DATABASE_URL through Config, defaulting to ./nightshift.db", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) =>
        Effect.either(Store.config).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      expect(yield* read({})).toEqual(sqlite("./nightshift.db"))
      expect(yield* read({ NIGHTSHIFT_DATABASE_URL: "memory:" })).toEqual(Either.right({ _tag: "Memory" }))
      const bad = yield* read({ NIGHTSHIFT_DATABASE_URL: "redis://cache" })
      expect(Either.isLeft(bad) && String(bad.left)).toContain("NIGHTSHIFT_DATABASE_URL")
    })
  )

  it.effect("memory: provides a store with an in-process lock and leader", () =>
    Effect.gen(function* () {
      const store = yield* JobStore.JobStore
      expect(store.engine).toBe("memory")
      expect(yield* Effect.flatMap(Lock.Lock, (l) => l.tryWith("x", Effect.succeed(1)))).toEqual(
        expect.objectContaining({ _tag: "Some" })
      )
      expect(yield* Effect.flatMap(Leader.Leader, (l) => l.isLeader)).toBe(true)
    }).pipe(Effect.provide(Store.layer({ _tag: "Memory" })))
  )
})

describe("nightshift (in-process)", () => {
  it.live("migrate creates the tables once and reports what ran", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const first = yield* cli(["migrate", "-d", db])
      expect(first).toMatchObject({ code: 0, stderr: "" })
      expect(first.stdout).toMatch(
        /^migrated sqlite .*t\d+\.db: 1 create_jobs, 2 index_unfinalized(, \d+ \w+)*$/
      )
      expect(yield* cliJson(["migrate", "-d", db])).toMatchObject({ ran: [] })
      expect((yield* cli(["migrate", "-d", db])).stdout).toContain("is up to date")
    })
  )

  it.live("enqueue stores the JSON payload for the kind and prints the id", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const printed = yield* cli(["enqueue", "send_email", '{"to":"ada@example.com"}', "-d", db])
      expect(printed).toMatchObject({ code: 0, stdout: "enqueued job 1 (send_email on queue default)" })
      const job = yield* cliJson(["jobs", "show", "1", "-d", db])
      expect(job).toMatchObject({
        kind: "send_email",
        queue: "default",
        state: "available",
        payload: { to: "ada@example.com" },
        maxAttempts: 20
      })
    })
  )

  it.live("enqueue options: delay, run-at, priority, queue, max attempts", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const delayed = yield* enqueue(
        db,
        "report",
        {},
        "--delay",
        "5m",
        "--queue",
        "reports",
        "--priority",
        "-3"
      )
      const at = yield* enqueue(db, "report", {}, "--run-at", "2099-01-01T00:00:00Z", "--max-attempts", "2")
      const first = yield* cliJson(["jobs", "show", delayed, "-d", db])
      expect(first).toMatchObject({ state: "scheduled", queue: "reports", priority: -3 })
      const second = yield* cliJson(["jobs", "show", at, "-d", db])
      expect(second).toMatchObject({
        state: "scheduled",
        runAt: Date.parse("2099-01-01T00:00:00Z"),
        maxAttempts: 2
      })
    })
  )

  it.live("enqueue with a dedupe key folds a repeat into the live job", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const args = ["enqueue", "welcome", '{"user":7}', "-d", db, "--dedupe-key", "welcome:7"]
      const first = yield* cliJson(args)
      const again = yield* cliJson(args)
      expect(first).toEqual({ id: "1", deduped: false })
      expect(again).toEqual({ id: "1", deduped: true })
      expect((yield* cli(args)).stdout).toContain('job 1 with dedupe key "welcome:7" is still live')
      expect((yield* cliJson(["jobs", "list", "-d", db])).jobs).toHaveLength(1)
    })
  )

  it.live("enqueue refuses bad JSON, bad names and bad durations with exit code 2 and writes nothing", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const badJson = yield* cli(["enqueue", "k", "{to: 1}", "-d", db])
      expect(badJson.code).toBe(2)
      expect(badJson.stderr).toContain("the payload is not valid JSON")
      const badKind = yield* cli(["enqueue", "no spaces", "{}", "-d", db])
      expect(badKind.code).toBe(2)
      expect(badKind.stderr).toContain('invalid kind name "no spaces"')
      const badQueue = yield* cli(["enqueue", "k", "{}", "--queue", "a/b", "-d", db])
      expect(badQueue.stderr).toContain('invalid queue name "a/b"')
      const badDelay = yield* cli(["enqueue", "k", "{}", "--delay", "soon", "-d", db])
      expect(badDelay).toMatchObject({ code: 2 })
      expect(badDelay.stderr).toContain('--delay: "soon" is not a duration')
      expect((yield* cliJson(["jobs", "list", "-d", db])).jobs).toEqual([])
    })
  )

  it.live(
    "enqueue refuses JSON nested 100,000 deep and run times out of range with a message, never a stack trace",
    () =>
      Effect.gen(function* () {
        const db = freshDb()
        const deep = `{"ms":${"[".repeat(100_000)}${"]".repeat(100_000)}}`
        for (const args of [
          ["enqueue", "k", deep, "-d", db],
          ["enqueue", "slow", deep, "--app", fixtureApp, "-d", db]
        ]) {
          const result = yield* cli(args)
          expect(result.code, args.join(" ").slice(0, 40)).toBe(2)
          expect(result.stderr).toContain("more than 64 levels deep")
          expect(result.stderr).not.toMatch(/\bat .*\(.*:\d+:\d+\)/)
        }
        const far = yield* cli(["enqueue", "k", "{}", "--delay", "99999999999 weeks", "-d", db])
        expect(far.code).toBe(2)
        expect(far.stderr).toContain("delay must not reach past 9999-12-31T23:59:59.999Z")
        expect((yield* cliJson(["jobs", "list", "-d", db])).jobs).toEqual([])
      })
  )

  it.live("enqueue --app checks the kind and its payload schema and uses the kind's queue", () =>
    Effect.gen(function* () {
      const db = freshDb()
      const unknownKind = yield* cli(["enqueue", "nope", "{}", "--app", fixtureApp, "-d", db])
      expect(unknownKind.code).toBe(2)
      expect(unknownKind.stderr).toContain('declares no job kind "nope" (it declares: greet, slow)')
      const badPayload = yield* cli(["enqueue", "slow", '{"ms":"long"}', "--app", fixtureApp, "-d", db])
      expect(badPayload.code).toBe(2)
      expect(badPayload.stderr).toContain('the payload does not match kind "slow"')
      const id = yield* Effect.map(
        cliJson(["enqueue", "slow", '{"ms":5}', "-d", db], { NIGHTSHIFT_APP: fixtureApp }),
        (r) => r.id
      )
      expect(yield* cliJson(["jobs", "show", id, "-d", db])).toMatchObject({ kind: "slow", queue: "slow" })
      const notApp = yield* cli(["enqueue", "greet", "{}", "--app", Path.join(dir, "missing.ts"), "-d", db])
      expect(notApp.code).toBe(2)
      expect(notApp.stderr).toContain("not found")
    })
  )

  it.live("jobs list filters by state, kind and queue, pages with a cursor, and prints a table", () =>
    Effect.gen(function* () {
      const db = freshDb()
      for (const kind of ["a", "b", "a", "b", "a"]) yield* enqueue(db, kind, {})
      yield* enqueue(db, "a", {}, "--queue", "other")
      yield* cli(["jobs", "cancel", "1", "-d", db])
      const ids = (page: { jobs: ReadonlyArray<{ id: string }> }) => page.jobs.map((j) => j.id)
      expect(ids(yield* cliJson(["jobs", "list", "-d", db, "--kind", "a"]))).toEqual(["6", "5", "3", "1"])
      expect(ids(yield* cliJson(["jobs", "list", "-d", db, "--state", "cancelled"]))).toEqual(["1"])
      expect(ids(yield* cliJson(["jobs", "list", "-d", db, "--queue", "other"]))).toEqual(["6"])
      const page1 = yield* cliJson(["jobs", "list", "-d", db, "--limit", "4"])
      expect(ids(page1)).toEqual(["6", "5", "4", "3"])
      const page2 = yield* cliJson(["jobs", "list", "-d", db, "--limit", "4", "--cursor", page1.nextCursor])
      expect(ids(page2)).toEqual(["2", "1"])
      expect(page2.nextCursor).toBeNull()
      const table = (yield* cli(["jobs", "list", "-d", db, "--limit", "2"])).stdout.split("\n")
      expect(table[0]).toMatch(
        /^ID\s+KIND\s+QUEUE\s+PARTITION\s+STATE\s+WAITING\s+ATTEMPT\s+RUN AT\s+LAST ERROR$/
      )
      expect(table[1]).toMatch(/^6\s+a\s+other\s+-\s+available\s+-\s+0\/20\s/)
      expect(table.at(-1)).toBe(`more: add --cursor ${page1.jobs[1].id}`)
      const badState = yield* cli(["jobs", "list", "-d", db, "--state", "done"])
      expect(badState.code).toBe(2)
    })
  )

  it.live("jobs show prints a job's fields and errors; an unknown id exits 1", () =>
    Effect.gen(function* () {
      const db = freshDb()
      yield* enqueue(db, "mail", { to: "x" }, "--dedupe-key", "k")
      const shown = yield* cli(["jobs", "show", "1", "-d", db])
      expect(shown.code).toBe(0)
      expect(shown.stdout).toMatch(/^id\s+1$/m)
      expect(shown.stdout).toMatch(/^state\s+available$/m)
      expect(shown.stdout).toMatch(/^dedupe key\s+k$/m)
      expect(shown.stdout).toMatch(/^payload\s+\{"to":"x"\}$/m)
      expect(shown.stdout).toMatch(/^errors\s+none$/m)
      const missing = yield* cli(["jobs", "show", "999", "-d", db])
      expect(missing).toMatchObject({ code: 1, stderr: "error: no job with id 999" })
    })
  )

  it.live("jobs cancel and retry move a job and refuse what cannot be done", () =>
    Effect.gen(function* () {
      const db = freshDb()
      yield* enqueue(db, "mail", {})
      expect(yield* cli(["jobs", "cancel", "1", "-d", db])).toMatchObject({
        code: 0,
        stdout: "job 1 cancelled"
      })
      const again = yield* cli(["jobs", "cancel", "1", "-d", db])
      expect(again).toMatchObject({
        code: 1,
        stderr: "error: job 1 already finished (cancelled); nothing to cancel"
      })
      expect(yield* cliJson(["jobs", "retry", "1", "-d", db])).toEqual({ _tag: "retried" })
      expect(yield* cliJson(["jobs", "show", "1", "-d", db])).toMatchObject({ state: "available" })
      const notRetryable = yield* cli(["jobs", "retry", "1", "-d", db])
      expect(notRetryable.code).toBe(1)
      expect(notRetryable.stderr).toContain("job 1 is available; only completed, discarded or cancelled")
      expect((yield* cli(["jobs", "cancel", "42", "-d", db])).code).toBe(1)
    })
  )

  it.live("queues pause, list and resume", () =>
    Effect.gen(function* () {
      const db = freshDb()
      yield* enqueue(db, "mail", {}, "--queue", "mail")
      expect(yield* cli(["queues", "pause", "mail", "-d", db])).toMatchObject({
        code: 0,
        stdout: "queue mail paused"
      })
      expect(yield* cliJson(["queues", "pause", "idle", "-d", db])).toEqual({ queue: "idle", paused: true })
      const queues = yield* cliJson(["queues", "list", "-d", db])
      expect(queues).toEqual([
        {
          queue: "idle",
          paused: true,
          counts: expect.objectContaining({ available: 0 }),
          flow: { rules: [], running: 0, due: 0, throttled: 0, keys: 0, partitions: [] }
        },
        {
          queue: "mail",
          paused: true,
          counts: expect.objectContaining({ available: 1, completed: 0 }),
          flow: expect.objectContaining({ due: 1, throttled: 1 })
        }
      ])
      yield* cli(["queues", "resume", "mail", "-d", db])
      const table = (yield* cli(["queues", "list", "-d", db])).stdout.split("\n")
      expect(table[0]).toMatch(/^QUEUE\s+PAUSED\s+SCHEDULED\s+AVAILABLE\s+RUNNING/)
      expect(table[2]).toMatch(/^mail\s+no\s+0\s+1\s+0/)
      const bad = yield* cli(["queues", "pause", "no spaces", "-d", db])
      expect(bad.code).toBe(2)
    })
  )

  it.live("queues list shows limits, throttled jobs and the busiest partitions; jobs say why they wait", () =>
    Effect.gen(function* () {
      const db = freshDb()
      for (const tenant of ["acme", "acme", "acme", "zeta"])
        yield* enqueue(db, "sync", {}, "--partition", tenant)
      // Another node declared the kind's limit and runs one job per key.
      yield* Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        yield* store.declareLimits([FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 1 } })])
        const claimed = yield* store.claim({
          queues: ["default"],
          kinds: ["sync"],
          limit: 10,
          leaseMs: 600_000,
          owner: "elsewhere"
        })
        expect(claimed.map((j) => j.partition).sort()).toEqual(["acme", "zeta"])
      }).pipe(Effect.provide(Store.layerJobStore({ _tag: "Sqlite", filename: db })))

      const text = (yield* cli(["queues", "list", "-d", db])).stdout
      const lines = text.split("\n")
      expect(lines[0]).toMatch(/^QUEUE\s+PAUSED\s+SCHEDULED\s+AVAILABLE\s+RUNNING\s+.*\s+THROTTLED$/)
      expect(lines[1]).toMatch(/^default\s+no\s+0\s+2\s+2\s+0\s+0\s+0\s+0\s+2$/)
      expect(text).toContain("limits\n  default\n    kind sync: 1 per partition")
      expect(text).toMatch(/^QUEUE\s+PARTITION\s+RUNNING\s+DUE\s+THROTTLED\s+WAITING$/m)
      expect(text).toMatch(/^default\s+acme\s+1\s+2\s+2\s+partition at limit$/m)
      expect(text).toMatch(/^default\s+zeta\s+1\s+0\s+0\s+-$/m)
      const one = (yield* cli(["queues", "list", "-d", db, "--partitions", "1"])).stdout
      expect(one).not.toMatch(/zeta/)
      expect(one).toContain("default: 1 more keys")
      const [queue] = yield* cliJson(["queues", "list", "-d", db])
      expect(queue.flow).toMatchObject({ running: 2, due: 2, throttled: 2, keys: 2 })
      expect(queue.flow.partitions[0]).toEqual({
        partition: "acme",
        running: 1,
        due: 2,
        throttled: 2,
        waiting: "partition at limit"
      })
      expect((yield* cli(["queues", "list", "-d", db, "--partitions", "-1"])).code).toBe(2)

      const page = yield* cliJson(["jobs", "list", "-d", db])
      const waiting = page.jobs.map((j: any) => [j.partition, j.state, j.waiting]).sort()
      expect(waiting).toEqual(
        [
          ["acme", "available", "partition at limit"],
          ["acme", "available", "partition at limit"],
          ["acme", "running", null],
          ["zeta", "running", null]
        ].sort()
      )
      const table = (yield* cli(["jobs", "list", "-d", db])).stdout
      expect(table).toMatch(/^\d+\s+sync\s+default\s+acme\s+available\s+partition at limit\s+0\/20\s/m)
      const held = page.jobs.find((j: any) => j.state === "available").id
      const shown = (yield* cli(["jobs", "show", held, "-d", db])).stdout
      expect(shown).toMatch(/^waiting\s+partition at limit$/m)
      expect(shown).toMatch(/^partition\s+acme$/m)
    })
  )

  it.live("the database comes from the flag, else NIGHTSHIFT_DATABASE_URL; bad values exit 2", () =>
    Effect.gen(function* () {
      const envDb = freshDb()
      const flagDb = freshDb()
      yield* enqueue(envDb, "from_env", {})
      yield* enqueue(flagDb, "from_flag", {})
      const env = { NIGHTSHIFT_DATABASE_URL: `sqlite:${envDb}` }
      expect((yield* cliJson(["jobs", "list"], env)).jobs[0].kind).toBe("from_env")
      expect((yield* cliJson(["jobs", "list", "-d", flagDb], env)).jobs[0].kind).toBe("from_flag")
      const badEnv = yield* cli(["jobs", "list"], { NIGHTSHIFT_DATABASE_URL: "mongodb://x/y" })
      expect(badEnv.code).toBe(2)
      expect(badEnv.stderr).toContain(
        'NIGHTSHIFT_DATABASE_URL: invalid database URL "mongodb://x/y": unknown scheme'
      )
      const badFlag = yield* cli(["queues", "list", "--database", "redis://cache"])
      expect(badFlag.code).toBe(2)
      expect(badFlag.stderr).toContain("--database: invalid database URL")
    })
  )

  it.live("an unusable SQLite path or an unreachable PostgreSQL server exits 1 saying what to fix", () =>
    Effect.gen(function* () {
      const noDir = yield* cli(["jobs", "list", "-d", Path.join(dir, "missing", "jobs.db")])
      expect(noDir.code).toBe(1)
      expect(noDir.stderr).toContain(`the directory ${Path.join(dir, "missing")} does not exist`)
      const isDir = yield* cli(["migrate", "-d", dir])
      expect(isDir).toMatchObject({ code: 1 })
      expect(isDir.stderr).toContain("it is not a file")
      const pg = yield* cli(["jobs", "list", "-d", "postgres://nobody:pw@127.0.0.1:1/none"])
      expect(pg.code).toBe(1)
      expect(pg.stderr).toContain('cannot reach PostgreSQL at 127.0.0.1:1 (database "none")')
      expect(pg.stderr).not.toContain("pw@")
    })
  )

  it.live("bad arguments exit 2 with a usage message, never a stack trace", () =>
    Effect.gen(function* () {
      for (const args of [
        ["frobnicate"],
        ["jobs", "list", "--limit", "many"],
        ["enqueue", "only-kind"],
        ["jobs", "show"]
      ]) {
        const result = yield* cli(args)
        expect(result.code).toBe(2)
        expect(result.stderr).not.toBe("")
        expect(result.stderr).not.toMatch(/\n\s+at /)
      }
    })
  )

  it.live("workers explains how to reach a node when no admin API answers", () =>
    Effect.gen(function* () {
      const result = yield* cli(["workers", "--admin-url", "http://127.0.0.1:1"])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain("cannot reach the admin API at http://127.0.0.1:1")
      expect(result.stderr).toContain("--admin-url")
    })
  )

  it.live("run serves an app until interrupted; workers prints its status table from the admin API", () =>
    Effect.gen(function* () {
      const stdout: Array<string> = []
      const stderr: Array<string> = []
      const node = yield* Effect.fork(
        cliTo(stdout, stderr, ["run", fixtureApp, "-d", "memory:", "--admin-port", "0"])
      )
      const url = yield* Effect.sync(() => stdout.join("\n").match(/dashboard (\S+)/)?.[1]).pipe(
        Effect.flatMap((found) => (found === undefined ? Effect.fail("not yet") : Effect.succeed(found))),
        Effect.retry(Schedule.spaced("50 millis")),
        Effect.timeout("60 seconds")
      )
      expect(stdout[0]).toBe(
        `nightshift: running cli-app from ${fixtureApp} on memory (jobs are lost when the process exits)`
      )
      const workers = yield* cli(["workers", "--admin-url", url])
      expect(workers.code).toBe(0)
      const lines = workers.stdout.split("\n")
      expect(lines[0]).toMatch(
        /^NAME\s+KIND\s+STATE\s+SCHEDULE\s+NEXT TICK\s+LAST SUCCESS\s+RUNS\s+FAILS\s+RESTARTS\s+LAST ERROR$/
      )
      expect(workers.stdout).toMatch(/^cli-app\/heartbeat\s+periodic\s+(idle|running)\s+every 1s\s/m)
      expect(lines.at(-1)).toMatch(/^runner \S+: \d+\/10 jobs running, \d+ prefetched, healthy$/)
      const one = yield* cli(["workers", "cli-app/heartbeat", "--admin-url", url]).pipe(
        Effect.filterOrFail((r) => r.stdout.includes("ticks (the last")),
        Effect.retry(Schedule.spaced("200 millis")),
        Effect.timeout("30 seconds")
      )
      expect(one.code).toBe(0)
      expect(one.stdout).toMatch(/^name\s+cli-app\/heartbeat$/m)
      expect(one.stdout).toMatch(/^\s+STARTED\s+DURATION\s+FORCED\s+OUTCOME$/m)
      expect(one.stdout).toMatch(/^\s+\S+Z\s+[\d.]+ ms\s+success$/m)
      expect(one.stdout).toContain("restarts: none")
      const asJson = yield* cli(["workers", "cli-app/heartbeat", "--admin-url", url, "--json"])
      const parsed = JSON.parse(asJson.stdout)
      expect(parsed.status).toMatchObject({ name: "cli-app/heartbeat", kind: "periodic" })
      expect(parsed.history).toMatchObject({ name: "cli-app/heartbeat", ticksKept: 16, restarts: [] })
      expect(parsed.history.ticks.length).toBeGreaterThan(0)
      const unknown = yield* cli(["workers", "cli-app/nope", "--admin-url", url])
      expect(unknown.code).not.toBe(0)
      expect(unknown.stderr).toContain('no worker named "cli-app/nope"')
      yield* Fiber.interrupt(node)
      expect(stdout.slice(-2)).toEqual([
        "nightshift: stopping (running jobs get their shutdown timeout to finish)",
        "nightshift: stopped"
      ])
    })
  )

  it.live("workers sends the admin token, and says how to pass it when the node refuses the request", () =>
    Effect.gen(function* () {
      const stdout: Array<string> = []
      const stderr: Array<string> = []
      const node = yield* Effect.fork(
        cliTo(stdout, stderr, [
          "run",
          fixtureApp,
          "-d",
          "memory:",
          "--admin-port",
          "0",
          "--admin-token",
          "s3cret"
        ])
      )
      const url = yield* Effect.sync(() => stdout.join("\n").match(/dashboard (\S+)/)?.[1]).pipe(
        Effect.flatMap((found) => (found === undefined ? Effect.fail("not yet") : Effect.succeed(found))),
        Effect.retry(Schedule.spaced("50 millis")),
        Effect.timeout("60 seconds")
      )
      const refused = yield* cli(["workers", "--admin-url", url])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain("refused the request (401)")
      expect(refused.stderr).toContain("--admin-token")
      const wrong = yield* cli(["workers", "--admin-url", url, "--admin-token", "nope"])
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain("refused the request (401)")
      const workers = yield* cli(["workers", "--admin-url", url, "--json"], {
        NIGHTSHIFT_ADMIN_TOKEN: "s3cret"
      })
      expect(workers.code).toBe(0)
      const status = JSON.parse(workers.stdout) as { workers: ReadonlyArray<{ name: string }> }
      expect(status.workers.map((w) => w.name)).toContain("cli-app/heartbeat")
      yield* Fiber.interrupt(node)
    })
  )

  it.live(
    "run checks its whole configuration before anything starts: a refused admin setup runs no job",
    () =>
      Effect.gen(function* () {
        const db = freshDb()
        const ids: Array<string> = []
        for (let n = 0; n < 10; n++) ids.push(yield* enqueue(db, "greet", { name: `n${n}` }))
        const busy = yield* Effect.acquireRelease(
          Effect.async<Net.Server>((resume) => {
            const server = Net.createServer()
            server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
        )
        const busyPort = String((busy.address() as Net.AddressInfo).port)
        const attempts: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, string]> = [
          [["--admin-host", "0.0.0.0", "--admin-port", "0"], {}, "without a token"],
          [["--admin-port", "0"], { NIGHTSHIFT_ADMIN_HOST: "::" }, "without a token"],
          [["--admin-port", "0"], { NIGHTSHIFT_ADMIN_MAX_BODY_BYTES: "10" }, "maxBodyBytes"],
          [["--admin-port", busyPort], {}, `cannot listen on 127.0.0.1:${busyPort}`]
        ]
        for (const [flags, env, says] of attempts) {
          const result = yield* cli(["run", fixtureApp, "-d", db, ...flags], env)
          expect(result.code, says).toBe(2)
          expect(result.stderr, says).toContain(says)
          expect(result.stdout, says).toBe("")
        }
        const page = yield* cliJson(["jobs", "list", "-d", db])
        expect(page.jobs.map((j: JobStore.JobRecord) => [j.state, j.attempt])).toEqual(
          ids.map(() => ["available", 0])
        )
      }).pipe(Effect.scoped)
  )

  it.live(
    "run refuses a module that is not an app, a bad telemetry endpoint and an unreachable store, and exits 1 when its crew gives up",
    () =>
      Effect.gen(function* () {
        const notApp = yield* cli(["run", Path.join(import.meta.dirname, "fixtures", "cli-not-app.ts")])
        expect(notApp.code).toBe(2)
        expect(notApp.stderr).toContain("is not a Nightshift app: `workers` is not an array")
        const missing = yield* cli(["run", "nowhere/app.ts"])
        expect(missing).toMatchObject({ code: 2 })
        expect(missing.stderr).toContain("app module nowhere/app.ts not found")
        const otlp = yield* cli([
          "run",
          fixtureApp,
          "-d",
          "memory:",
          "--no-admin",
          "--otlp-endpoint",
          "grpc://collector"
        ])
        expect(otlp.code).toBe(2)
        expect(otlp.stderr).toContain("must be http:// or https://")
        const doomed = yield* cli([
          "run",
          Path.join(import.meta.dirname, "fixtures", "cli-failing-app.ts"),
          "-d",
          "memory:",
          "--no-admin"
        ])
        expect(doomed.code).toBe(1)
        expect(doomed.stderr).toContain('error: the app stopped: worker "doomed-app/doomed"')
        expect(doomed.stderr).toContain("out of coffee")
        const store = yield* cli(["run", fixtureApp, "-d", Path.join(dir, "no", "such", "dir.db")])
        expect(store.code).toBe(1)
        expect(store.stderr).toContain("does not exist")
        expect(store.stdout).toBe("")
      })
  )
})

describe("nightshift on PostgreSQL", () => {
  it.live("a comma-separated list of postgres:// URLs runs the commands on a store sharded over them", () =>
    Effect.gen(function* () {
      const schema = freshSchema("clish")
      const second = `nscli_${Date.now().toString(36)}_${process.pid}`
      const admin = Layer.orDie(clientLayer())
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE DATABASE ${second}`)).pipe(
        Effect.provide(admin)
      )
      const urlOf = (database?: string) => {
        const url = new URL(databaseUrl())
        if (database !== undefined) url.pathname = `/${database}`
        url.searchParams.set("schema", schema)
        return url.toString()
      }
      const db = `${urlOf()},${urlOf(second)}`
      yield* Effect.gen(function* () {
        const migrated = yield* cliJson(["migrate", "-d", db])
        expect(migrated.store).toContain("postgres sharded over 2")
        expect(migrated.ran.length).toBeGreaterThan(0)
        const ids: Array<string> = []
        for (let i = 0; i < 8; i++)
          ids.push(yield* enqueue(db, "sharded_job", { i }, "--partition", `tenant-${i}`))
        // Ids carry their shard: both shards hold jobs, and every job reads back from the list.
        expect(new Set(ids.map((id) => Number(id) % 256))).toEqual(new Set([0, 1]))
        const page = yield* cliJson(["jobs", "list", "-d", db])
        expect(page.jobs.map((j: JobStore.JobRecord) => j.id).sort()).toEqual([...ids].sort())
        const shown = yield* cliJson(["jobs", "show", ids[5]!, "-d", db])
        expect(shown.partition).toBe("tenant-5")
      }).pipe(
        Effect.ensuring(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.zipRight(
              sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
              sql.unsafe(`DROP DATABASE IF EXISTS ${second} WITH (FORCE)`)
            )
          ).pipe(Effect.provide(admin), Effect.ignore)
        )
      )
    })
  )

  it.live("a postgres:// URL with ?schema= selects PgStore in that schema", () =>
    Effect.gen(function* () {
      const schema = freshSchema("cli")
      const url = new URL(databaseUrl())
      url.searchParams.set("schema", schema)
      const db = url.toString()
      const migrated = yield* cliJson(["migrate", "-d", db])
      expect(migrated.store).toContain(`(schema ${schema})`)
      expect(migrated.ran.length).toBeGreaterThan(0)
      yield* enqueue(db, "pg_job", { n: 1 }, "--dedupe-key", "one")
      expect(yield* cliJson(["enqueue", "pg_job", "{}", "-d", db, "--dedupe-key", "one"])).toEqual({
        id: expect.any(String),
        deduped: true
      })
      const page = yield* cliJson(["jobs", "list", "-d", db])
      expect(page.jobs.map((j: JobStore.JobRecord) => j.kind)).toEqual(["pg_job"])
      yield* dropSchema(schema).pipe(Effect.provide(Layer.orDie(clientLayer())))
    })
  )

  it.live(
    "jobs list refuses filters no name can hold; list and show render odd rows, naming their problems",
    () =>
      Effect.gen(function* () {
        const schema = freshSchema("cliodd")
        const url = new URL(databaseUrl())
        url.searchParams.set("schema", schema)
        const db = url.toString()
        yield* cliJson(["migrate", "-d", db])
        const nul = yield* cli(["jobs", "list", "-d", db, "--kind", "x\u0000y"])
        expect(nul.code).toBe(2)
        expect(nul.stderr).toContain("NUL character")
        const a = yield* enqueue(db, "odd", { n: 1 })
        const b = yield* enqueue(db, "odd", { n: 2 })
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql.unsafe(
            `UPDATE ${schema}.jobs SET errors = '"boom"'::jsonb, run_at = 'infinity' WHERE id = ${a}`
          )
          // Finished, it moves to jobs_done (stamped with a finish time), where the edit goes on.
          yield* sql.unsafe(`UPDATE ${schema}.jobs SET state = 'completed' WHERE id = ${b}`)
          yield* sql.unsafe(
            `UPDATE ${schema}.jobs_done SET lease_owner = 'n1', finalized_at = NULL, fence = -1 WHERE id = ${b}`
          )
        }).pipe(Effect.provide(Layer.orDie(clientLayer())))
        const listed = yield* cli(["jobs", "list", "-d", db])
        expect(listed.code, listed.stderr).toBe(0)
        expect(listed.stdout).toContain(`job ${a}: errors is the text "boom", not a list`)
        expect(listed.stdout).toContain(`job ${b}: it is completed but has no finish time`)
        const json = yield* cliJson(["jobs", "list", "-d", db])
        expect(json.jobs.map((j: { id: string }) => j.id).sort()).toEqual([a, b].sort())
        const shown = yield* cli(["jobs", "show", b, "-d", db])
        expect(shown.code, shown.stderr).toBe(0)
        expect(shown.stdout).toContain("its fence is negative (-1)")
        const shownA = yield* cli(["jobs", "show", a, "-d", db])
        expect(shownA.code, shownA.stderr).toBe(0)
        expect(shownA.stdout).toContain("runAt is number Infinity, not a time")
        yield* dropSchema(schema).pipe(Effect.provide(Layer.orDie(clientLayer())))
      })
  )
})
