/**
 * Security: hostile names reach SQL only as validated identifiers or as
 * parameters (SQLite and PostgreSQL); the admin API answers 401 on every
 * route it defines but liveness (and the data-free dashboard page), compares
 * tokens in constant time, refuses to bind beyond loopback without a token,
 * and answers random requests with 4xx, never 5xx; the CLI answers random
 * arguments with a message and exit code 1 or 2, never a crash; payloads and
 * attempt errors never reach the logs.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as HttpApi from "@effect/platform/HttpApi"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, beforeAll, describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Admin from "../src/Admin.js"
import * as Events from "../src/Events.js"
import { tokenMatches } from "../src/internal/admin/auth.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobRunner from "../src/JobRunner.js"
import * as JobStore from "../src/JobStore.js"
import * as Nightshift from "../src/Nightshift.js"
import * as PgLeader from "../src/PgLeader.js"
import * as PgStore from "../src/PgStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { cli } from "./fixtures/cli-harness.js"
import { clientLayer, freshSchema, storeLayer } from "./setup/pg.js"

/** Strings that would do damage if they were ever spliced into SQL. */
const hostile = [
  "'; DROP TABLE canary; --",
  '" OR 1=1 --',
  "x'); DELETE FROM canary; SELECT ('",
  "$1",
  "?",
  "%s",
  ":name",
  "@p",
  "*/ SELECT 1 /*",
  "\\",
  "''",
  "nightshift.jobs",
  "public.canary",
  "Robert'); DROP TABLE Students;--",
  "💥 \u2028 \t\n",
  "a".repeat(5_000)
]

const input = (kind: string, queue: string, dedupeKey?: string): JobStore.EnqueueInput => ({
  kind,
  queue,
  payload: { kind, queue },
  priority: 0,
  maxAttempts: 3,
  dedupeKey
})

/** Every store call that takes a name, with `name` in each role; everything comes back verbatim. */
const hostileRoundTrip = (name: string) =>
  Effect.gen(function* () {
    const store = yield* JobStore.JobStore
    const [job] = yield* store.enqueue([input(name, name, name)])
    const stored = yield* store.get(job!.id)
    expect([stored?.kind, stored?.queue, stored?.dedupeKey]).toStrictEqual([name, name, name])
    const [again] = yield* store.enqueue([input(name, name, name)])
    expect(again).toStrictEqual({ id: job!.id, deduped: true })
    const listed = yield* store.list({ kinds: [name], queues: [name], states: ["available"] })
    expect(listed.jobs.map((j) => j.id)).toContain(job!.id)
    yield* store.pause(name)
    expect(yield* store.paused).toContain(name)
    expect(
      yield* store.claim({ queues: [name], kinds: [name], limit: 5, leaseMs: 1_000, owner: name })
    ).toEqual([])
    yield* store.resume(name)
    // Other jobs of this name (a cron job of an earlier run) may be claimed too.
    const claimed = yield* store.claim({
      queues: [name],
      kinds: [name],
      limit: 100,
      leaseMs: 1_000,
      owner: name
    })
    const mine = claimed.find((j) => j.id === job!.id)
    expect(mine?.leaseOwner).toBe(name)
    const beat = yield* store.heartbeat(name, [{ id: job!.id, fence: mine!.fence }], 1_000)
    expect(beat[0]?.held).toBe(true)
    yield* store.settle(
      claimed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } as const }))
    )
    yield* store.enqueueCronSlot({ name, slot: 60_000, job: input(name, name) })
    expect(yield* store.lastCronSlot(name)).toBe(60_000)
  })

const canaryIntact = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)
  ).pipe(Effect.map((rows) => Number(rows[0]!.n)))

/** Strings every engine can hold as text: no NUL, no lone surrogate. */
const text = fc.fullUnicodeString({ minLength: 1, maxLength: 60 }).filter((s) => !s.includes("\u0000"))

describe("hostile names reach SQL only as parameters", () => {
  layer(SqliteStore.layer({ filename: ":memory:" }))("SQLite", (it) => {
    it.effect("kind, queue, dedupe key, owner and cron names are stored and matched verbatim", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE canary (n INTEGER)`
        yield* sql`INSERT INTO canary VALUES (1)`
        for (const name of hostile) yield* hostileRoundTrip(name)
        expect(yield* canaryIntact("canary")).toBe(1)
      })
    )
    it.effect.prop("random names round-trip", [text], ([name]) => hostileRoundTrip(name), {
      fastCheck: { numRuns: 200 }
    })
  })

  layer(storeLayer({ label: "sec", clock: "application", listen: false, maxConnections: 4 }))(
    "PostgreSQL",
    (it) => {
      it.effect("kind, queue, dedupe key, owner and cron names are stored and matched verbatim", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const canary = `${freshSchema("canary")}`
          yield* sql.unsafe(
            `CREATE SCHEMA ${canary}; CREATE TABLE ${canary}.canary (n int); INSERT INTO ${canary}.canary VALUES (1)`
          )
          for (const name of hostile) yield* hostileRoundTrip(name)
          expect(yield* canaryIntact(`${canary}.canary`)).toBe(1)
          yield* sql.unsafe(`DROP SCHEMA ${canary} CASCADE`)
        })
      )
      it.effect.prop("random names round-trip", [text], ([name]) => hostileRoundTrip(name), {
        fastCheck: { numRuns: 100 }
      })
    }
  )

  layer(clientLayer({ maxConnections: 2 }))("PostgreSQL schema names", (it) => {
    const schemas = [
      ...hostile,
      "Nightshift",
      "1abc",
      "with space",
      "a-b",
      "pg_catalog; select 1",
      "x".repeat(49),
      "",
      "ümlaut"
    ]
    it.effect("are refused before any SQL runs, by the store, its migrations and the leader", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const namespaces = sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace`
        const before = yield* namespaces
        for (const schema of schemas) {
          const attempts: ReadonlyArray<
            Effect.Effect<unknown, JobStore.JobStoreError, PgClient.PgClient | SqlClient.SqlClient>
          > = [
            Effect.scoped(PgStore.make({ schema, listen: false })),
            PgStore.migrate({ schema }),
            Effect.scoped(PgLeader.make({ schema }))
          ]
          for (const attempt of attempts) {
            const exit = yield* Effect.exit(attempt.pipe(Effect.provideService(SqlClient.SqlClient, sql)))
            expect(Exit.isFailure(exit), JSON.stringify(schema)).toBe(true)
            expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("Invalid PostgreSQL schema name")
          }
        }
        expect(yield* namespaces).toEqual(before)
      })
    )
  })
})

// ---- the admin API ----

const token = "correct horse battery staple"
const Email = Job.make("email", { payload: Schema.Struct({ to: Schema.String }) })
const app = Nightshift.define({
  workers: [],
  handlers: Job.handlers(Job.handle(Email, () => Effect.void)),
  runner: { pollInterval: "1 hour" }
})

/** Every route the API defines, with placeholder path parameters. */
const routes = (() => {
  const found: Array<{ method: string; path: string }> = []
  HttpApi.reflect(Admin.Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      found.push({ method: endpoint.method, path: endpoint.path.replace(/:(\w+)/g, "x") })
    }
  })
  return found
})()

const open = new Set(["GET /health/live", "GET /"])

const serve = (options: Admin.Options) =>
  Effect.map(
    Layer.build(
      Admin.layer({ port: 0, ...options }).pipe(
        Layer.provideMerge(Nightshift.layer(app)),
        Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" }))
      )
    ),
    (context) => Context.get(context, Admin.Server).url
  )

const request = (
  base: string,
  method: string,
  path: string,
  init: { token?: string; body?: string; type?: string } = {}
) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(new URL(path, base), {
      method,
      signal: controller.signal,
      headers: {
        ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
        ...(init.type === undefined ? {} : { "content-type": init.type })
      },
      ...(init.body === undefined ? {} : { body: init.body })
    })
    // Event streams never end: read only the start of any body.
    const reader = response.body?.getReader()
    const first = reader === undefined ? undefined : await reader.read()
    controller.abort()
    return {
      status: response.status,
      text: first?.value === undefined ? "" : new TextDecoder().decode(first.value)
    }
  })

describe("admin API", () => {
  it("defines routes, all of which this test knows to check", () => {
    expect(routes.length).toBeGreaterThan(10)
    expect(routes).toContainEqual({ method: "GET", path: "/health/live" })
  })

  it.scoped(
    "401 on every route but liveness and the dashboard page: no token, a wrong one, one of another length",
    () =>
      Effect.gen(function* () {
        const base = yield* serve({ token: Redacted.make(token) })
        for (const { method, path } of routes) {
          const body = method === "POST" ? "{}" : undefined
          for (const presented of [undefined, `${token.slice(0, -1)}!`, "x", token.repeat(50)]) {
            const reply = yield* request(base, method, path, {
              ...(presented === undefined ? {} : { token: presented }),
              ...(body === undefined ? {} : { body, type: "application/json" })
            })
            const expected = open.has(`${method} ${path}`) ? 200 : 401
            expect(`${method} ${path} ${reply.status}`).toBe(`${method} ${path} ${expected}`)
          }
          const right = yield* request(base, method, path, {
            token,
            ...(body === undefined ? {} : { body, type: "application/json" })
          })
          expect(right.status, `${method} ${path}`).not.toBe(401)
          expect(right.status, `${method} ${path}`).toBeLessThan(500)
        }
        // The open page is a shell: no job, worker or queue data.
        const page = yield* request(base, "GET", "/")
        expect(page.text).not.toContain("email")
      })
  )

  it("compares tokens through equal-length digests (no early exit, no length leak)", () => {
    const expected = Buffer.from("3a2d5e0f2b0f8c1d9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f", "hex")
    for (const presented of ["", "a", "x".repeat(10_000), "\u0000", "💥"]) {
      expect(() => tokenMatches(expected, presented)).not.toThrow()
      expect(tokenMatches(expected, presented)).toBe(false)
    }
  })

  it.scoped("refuses to bind beyond loopback without a token", () =>
    Effect.gen(function* () {
      for (const host of [
        "0.0.0.0",
        "::",
        "192.168.1.10",
        "10.0.0.1",
        "example.com",
        "127.0.0.1.nip.io",
        "localhost.evil.com"
      ]) {
        const exit = yield* Effect.exit(serve({ host }))
        expect(Exit.isFailure(exit), host).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : ""), host).toContain("without a token")
      }
    })
  )

  it.scoped(
    "random request bodies get 4xx with a message, random path parameters 4xx, never 5xx",
    () =>
      Effect.gen(function* () {
        const base = yield* serve({ token: Redacted.make(token) })
        const bodies = fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string(),
          fc
            .record(
              { kind: fc.oneof(fc.string(), fc.constant("email")), payload: fc.anything() },
              { requiredKeys: [] }
            )
            .map((v) => JSON.stringify(v)),
          fc
            .record(
              {
                kind: fc.constant("email"),
                payload: fc.jsonValue(),
                queue: fc.string(),
                priority: fc.double(),
                maxAttempts: fc.integer(),
                dedupeKey: fc.string(),
                runAt: fc.oneof(fc.string(), fc.double())
              },
              { requiredKeys: ["kind"] }
            )
            .map((v) => JSON.stringify(v))
        )
        const types = fc.constantFrom(
          "application/json",
          "text/plain",
          "application/x-www-form-urlencoded",
          undefined
        )
        const samples: ReadonlyArray<readonly [string, string | undefined]> = [
          ...fc.sample(fc.tuple(bodies, types), 150),
          ["{", "application/json"],
          ["", "application/json"],
          ["not json", "text/plain"],
          ['{"kind":"email","payload":{"to":1}}', "application/json"],
          ["[]", undefined]
        ]
        const silent: Array<string> = []
        for (const [body, type] of samples) {
          const reply = yield* request(base, "POST", "/jobs", {
            token,
            body,
            ...(type === undefined ? {} : { type })
          })
          expect(reply.status, body).toBeLessThan(500)
          if (reply.status >= 400 && !/"message":"[^"]+/.test(reply.text))
            silent.push(`${type} ${body} -> ${reply.status}`)
        }
        expect(silent).toEqual([])
        // Path segments: random text, encoded; and raw escapes that do not decode.
        const raw = ["%", "%zz", "%E0%A4%A", "%00", "%C0%AE%C0%AE", "..%2F..%2Fetc%2Fpasswd", "%ED%A0%80"]
        const params = [
          ...fc
            .sample(fc.oneof(fc.fullUnicodeString(), fc.constantFrom(...hostile)), 60)
            .map((param) => encodeURIComponent(param)),
          ...raw
        ]
        for (const p of params) {
          for (const [method, path] of [
            ["GET", `/jobs/${p}`],
            ["POST", `/jobs/${p}/retry`],
            ["POST", `/jobs/${p}/cancel`],
            ["POST", `/queues/${p}/pause`],
            ["POST", `/queues/${p}/resume`],
            ["POST", `/workers/${p}/tick`],
            ["GET", `/jobs?state=${p}&kind=${p}&queue=${p}&limit=${p}&cursor=${p}`]
          ] as const) {
            const reply = yield* request(base, method, path, { token })
            expect(reply.status, `${method} ${path}`).toBeLessThan(500)
          }
        }
      }),
    { timeout: 120_000 }
  )
})

// ---- the CLI ----

describe("CLI", () => {
  let dir = ""
  let cwd = ""
  beforeAll(() => {
    cwd = process.cwd()
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "nightshift-cli-fuzz-"))
    process.chdir(dir)
  })
  afterAll(() => {
    process.chdir(cwd)
    Fs.rmSync(dir, { recursive: true, force: true })
  })

  const words = fc.oneof(
    fc.constantFrom(
      "migrate",
      "enqueue",
      "jobs",
      "queues",
      "workers",
      "list",
      "show",
      "retry",
      "cancel",
      "pause",
      "resume",
      "help",
      "--help",
      "--version",
      "-h",
      "--json",
      "--queue",
      "--priority",
      "--delay",
      "--run-at",
      "--dedupe-key",
      "--max-attempts",
      "--state",
      "--kind",
      "--limit",
      "--cursor",
      "--",
      "-",
      "email",
      "{}",
      '{"to":1}',
      "1",
      "-1",
      "NaN",
      "1e999"
    ),
    fc.string(),
    fc.fullUnicodeString({ maxLength: 12 })
  )

  it.effect(
    "random arguments: a message and exit code 1 or 2, never an unexpected error",
    () =>
      Effect.gen(function* () {
        const env = {
          NIGHTSHIFT_DATABASE_URL: Path.join(dir, "fuzz.db"),
          NIGHTSHIFT_ADMIN_URL: "http://127.0.0.1:1"
        }
        const lines = fc.sample(
          fc.tuple(
            fc.constantFrom("migrate", "enqueue", "jobs", "queues", "workers", "bogus"),
            fc.array(words, { maxLength: 6 })
          ),
          150
        )
        for (const [command, rest] of lines) {
          const args = [command, ...rest]
          const result = yield* cli(args, env)
          const said = `${args.map((a) => JSON.stringify(a)).join(" ")} -> ${result.code}\n${result.stderr}`
          expect([0, 1, 2], said).toContain(result.code)
          expect(result.stderr, said).not.toContain("unexpected error")
          if (result.code !== 0)
            expect(`${result.stdout}${result.stderr}`.trim().length, said).toBeGreaterThan(0)
        }
      }),
    { timeout: 120_000 }
  )
})

// ---- logs ----

const secretPayload = "payload-secret-4f1c"
const secretError = "error-secret-93ab"
const Secret = Job.make("secret", {
  payload: Schema.Struct({ card: Schema.String, mode: Schema.String }),
  retry: { maxAttempts: 2, backoff: Schedule.spaced("1 second") }
})

describe("logs", () => {
  it.scoped("payloads and attempt errors never reach the logs", () =>
    Effect.gen(function* () {
      const logged: Array<string> = []
      const capture = Logger.make(({ message, cause, annotations }) => {
        logged.push(
          `${JSON.stringify(message)} ${String(cause)} ${JSON.stringify(Object.fromEntries(annotations))}`
        )
      })
      const handlers = Job.handlers(
        Job.handle(Secret, ({ card, mode }) =>
          mode === "fail"
            ? Effect.fail(new Error(`card ${card} declined: ${secretError}`))
            : mode === "die"
              ? Effect.die(new Error(`${secretError} for ${card}`))
              : Effect.logInfo("handled a job")
        )
      )
      const base = JobQueue.layer.pipe(
        Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" })),
        Layer.provideMerge(Events.layer)
      )
      yield* Effect.gen(function* () {
        yield* JobRunner.layer(handlers, { pollInterval: "100 millis" }).pipe(Layer.build)
        for (const mode of ["ok", "fail", "die"])
          yield* JobQueue.enqueue(Secret, { card: secretPayload, mode })
        for (let i = 0; i < 40; i++) yield* TestClock.adjust("250 millis")
        const counts = yield* Effect.flatMap(JobStore.JobStore, (s) => s.counts)
        expect(counts.find((c) => c.state === "discarded")?.count).toBe(2)
      }).pipe(
        Effect.scoped,
        Effect.provide(base),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(logged.some((line) => line.includes("handled a job"))).toBe(true)
      for (const line of logged) {
        expect(line).not.toContain(secretPayload)
        expect(line).not.toContain(secretError)
      }
    })
  )

  it.scoped(
    "the documented redaction hook: a `Schema.Redacted` field prints as <redacted> in logs and errors",
    () =>
      Effect.gen(function* () {
        const Charge = Job.make("charge", {
          payload: Schema.Struct({ card: Schema.Redacted(Schema.String), amount: Schema.Number }),
          retry: { maxAttempts: 1 }
        })
        const logged: Array<string> = []
        const capture = Logger.make(({ message }) => {
          logged.push(String(message))
        })
        const handlers = Job.handlers(
          Job.handle(Charge, (payload) =>
            Effect.zipRight(
              Effect.logInfo(`charging ${String(payload.card)}`, payload),
              Effect.fail(new Error(`card ${String(payload.card)} declined`))
            )
          )
        )
        const base = JobQueue.layer.pipe(
          Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" })),
          Layer.provideMerge(Events.layer)
        )
        const job = yield* Effect.gen(function* () {
          yield* JobRunner.layer(handlers, { pollInterval: "100 millis" }).pipe(Layer.build)
          const { id } = yield* JobQueue.enqueue(Charge, { card: Redacted.make(secretPayload), amount: 5 })
          for (let i = 0; i < 20; i++) yield* TestClock.adjust("250 millis")
          return yield* Effect.flatMap(JobStore.JobStore, (store) => store.get(id))
        }).pipe(
          Effect.scoped,
          Effect.provide(base),
          Effect.provide(Logger.replace(Logger.defaultLogger, capture))
        )
        expect(job?.state).toBe("discarded")
        expect(job?.errors[0]?.message).toContain("card <redacted> declined")
        expect(job?.errors[0]?.message).not.toContain(secretPayload)
        expect(logged.some((line) => line.includes("charging <redacted>"))).toBe(true)
        expect(logged.join("\n")).not.toContain(secretPayload)
        // The stored payload is the encoded form: the secret is in the database.
        expect(job?.payload).toEqual({ card: secretPayload, amount: 5 })
      })
  )
})
