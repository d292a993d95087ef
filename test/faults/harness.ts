/**
 * Shared machinery of the fault suite: runner processes
 * (test/fixtures/faults-node.ts), a schema with a `results` side table, the
 * ledger that counts what happened to every job, and the JSON figures each
 * scenario prints.
 *
 * Every handler run inserts `(job_id, attempt, node, pid, phase)` into
 * `results` in the same database, so losses and duplicates are measured, not
 * assumed. Times come from the database clock unless said otherwise.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { it } from "@effect/vitest"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { afterAll } from "vitest"
import type * as JobStore from "../../src/JobStore.js"
import * as PgStore from "../../src/PgStore.js"
import { databaseUrl, freshSchema } from "../setup/pg.js"

const fixture = Path.join(import.meta.dirname, "..", "fixtures", "faults-node.ts")

let bundled: Promise<ReadonlyArray<string>> | undefined
let bundleDir: string | undefined
afterAll(() => {
  if (bundleDir !== undefined) Fs.rmSync(bundleDir, { recursive: true, force: true })
})

/**
 * How to start the fixture: bundled once per test file with esbuild (a
 * process then starts in about 2 s instead of about 15 s through tsx on a
 * loaded machine), or through tsx when esbuild is not installed.
 */
const fixtureArgs = (): Promise<ReadonlyArray<string>> => {
  bundled ??= import("esbuild").then(
    async (esbuild) => {
      bundleDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "nightshift-faults-"))
      const outfile = Path.join(bundleDir, "faults-node.mjs")
      await esbuild.build({
        entryPoints: [fixture],
        bundle: true,
        platform: "node",
        format: "esm",
        outfile,
        external: ["pg-native", "better-sqlite3"],
        banner: {
          js: "import { createRequire as nightshiftCreateRequire } from 'node:module'; const require = nightshiftCreateRequire(import.meta.url);"
        },
        logLevel: "error"
      })
      return [outfile]
    },
    () => ["--import", "tsx", fixture]
  )
  return bundled
}

/** A runner process and what it printed. */
export interface Node {
  readonly name: string
  readonly process: ChildProcess.ChildProcess
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  /** Every line it printed, stdout and stderr, in order. */
  readonly lines: ReadonlyArray<string>
  /** The JSON events (`{"ns": …}` lines) it printed. */
  readonly events: (tag: string) => ReadonlyArray<Record<string, any>>
  readonly running: () => boolean
}

/** Options of one runner process, passed as NS_* variables. */
export interface NodeOptions {
  readonly url: string
  readonly schema: string
  readonly name: string
  readonly env?: Record<string, string | number> | undefined
}

const parse = (line: string): Record<string, any> | undefined => {
  if (!line.startsWith("{")) return undefined
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

/** Start a runner process; it is SIGKILLed when the scope closes if still running. */
export const spawnNode = (options: NodeOptions): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.map(Effect.promise(fixtureArgs), (args): Node => {
      const env: Record<string, string> = {}
      for (const [k, v] of Object.entries(options.env ?? {})) env[k] = String(v)
      const child = ChildProcess.spawn(process.execPath, args, {
        env: {
          ...process.env,
          ...env,
          DATABASE_URL: options.url,
          NS_SCHEMA: options.schema,
          NS_NODE: options.name
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      const collect = (stream: NodeJS.ReadableStream | null) => {
        let rest = ""
        stream?.setEncoding("utf8")
        stream?.on("data", (chunk: string) => {
          const parts = (rest + chunk).split("\n")
          rest = parts.pop() ?? ""
          lines.push(...parts)
        })
        stream?.on("end", () => {
          if (rest !== "") lines.push(rest)
        })
      }
      collect(child.stdout)
      collect(child.stderr)
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return {
        name: options.name,
        process: child,
        exited,
        lines,
        events: (tag) => lines.flatMap((line) => parse(line) ?? []).filter((e) => e.ns === tag),
        running: () => child.exitCode === null && child.signalCode === null
      }
    }),
    (node) =>
      Effect.promise(async () => {
        if (node.running()) node.process.kill("SIGKILL")
        await node.exited
      })
  )

/** Wait until the node has printed an event with this tag. */
export const awaitEvent = (node: Node, tag: string, within: Duration.DurationInput = "180 seconds") =>
  eventually(
    `${node.name} prints "${tag}"`,
    Effect.sync(() => node.events(tag).length > 0 || !node.running())
  ).pipe(
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`${node.name} never printed ${tag}`) }),
    Effect.flatMap(() =>
      node.events(tag).length > 0
        ? Effect.void
        : Effect.fail(new Error(`${node.name} exited before printing ${tag}:\n${node.lines.join("\n")}`))
    )
  )

/** Send a signal and wait for the exit; returns the exit code and how long it took (ms). */
export const signal = (node: Node, sig: NodeJS.Signals) =>
  Effect.promise(async () => {
    const started = performance.now()
    if (node.running()) node.process.kill(sig)
    const code = await node.exited
    return { code, tookMs: Math.round(performance.now() - started) }
  })

/** Poll `check` in real time until it holds; fail with `what` after `within`. */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  within: Duration.DurationInput = "120 seconds"
): Effect.Effect<void, E | Error, R> =>
  check.pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting until ${what}`) }),
    Effect.asVoid
  )

/** A migrated schema plus the side tables, dropped when the scope closes. */
export const prepare = (sql: SqlClient.SqlClient, label: string) =>
  Effect.gen(function* () {
    const schema = freshSchema(label)
    const provided = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
      Effect.provideService(effect, SqlClient.SqlClient, sql)
    yield* Effect.addFinalizer(() =>
      sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.timeout("10 seconds"), Effect.ignore)
    )
    yield* provided(PgStore.migrate({ schema }))
    yield* sql.unsafe(`
      CREATE TABLE ${schema}.results (id bigserial, job_id bigint NOT NULL, attempt integer, node text,
        pid integer, phase text NOT NULL DEFAULT 'start', at timestamptz NOT NULL DEFAULT clock_timestamp());
      CREATE INDEX ON ${schema}.results (job_id);`)
    return schema
  })

/** A client and a producer store for one scenario, plus a fresh schema. */
export const setup = (url: string, label: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      PgClient.layer({
        url: Redacted.make(url),
        maxConnections: 6,
        applicationName: "nightshift-faults-test"
      })
    )
    const sql = Context.get(context, SqlClient.SqlClient)
    const schema = yield* prepare(sql, label)
    const store = yield* PgStore.make({ schema, migrate: false, listen: false }).pipe(Effect.provide(context))
    return { sql, schema, store }
  })

/** `n` jobs of `kind` with `payload(i)`, inserted in batches of 2,000. */
export const enqueueJobs = (
  store: JobStore.Service,
  n: number,
  kind: string,
  payload: (i: number) => unknown,
  extra: Partial<JobStore.EnqueueInput> = {}
) =>
  Effect.gen(function* () {
    const ids: Array<string> = []
    for (let start = 0; start < n; start += 2_000) {
      const batch = Array.from(
        { length: Math.min(2_000, n - start) },
        (_, k): JobStore.EnqueueInput => ({
          kind,
          queue: "default",
          payload: payload(start + k),
          priority: 0,
          maxAttempts: 25,
          ...extra
        })
      )
      for (const r of yield* store.enqueue(batch)) ids.push(r.id)
    }
    return ids
  })

/** The database clock, epoch ms. */
export const dbNow = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ now: number }>`SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS now`,
    (rows) => rows[0]!.now
  )

/**
 * Probe the nodes' listeners: every 500 ms, enqueue a job on the `probe`
 * queue (which no runner claims) and see whether every node prints its
 * wake-up within a second. Returns when the first of five probes in a row
 * that all nodes saw was sent (epoch ms), or null when that never happened.
 */
export const probeListeners = (store: JobStore.Service, nodes: ReadonlyArray<Node>, attempts = 120) =>
  Effect.gen(function* () {
    let streak: Array<number> = []
    for (let i = 0; i < attempts && streak.length < 5; i++) {
      const seen = nodes.map((node) => node.events("wakeup").length)
      const sentAt = Date.now()
      yield* store.enqueue([{ kind: "probe", queue: "probe", payload: {}, priority: 0, maxAttempts: 1 }])
      const heard = yield* eventually(
        "every node hears the probe",
        Effect.sync(() => nodes.every((node, k) => node.events("wakeup").length > seen[k]!)),
        "1 second"
      ).pipe(Effect.isSuccess)
      streak = heard ? [...streak, sentAt] : []
      yield* Effect.sleep(Math.max(0, 500 - (Date.now() - sentAt)))
    }
    return streak.length === 5 ? streak[0]! : null
  })

/** What happened to every job of a scenario (probes aside), from the jobs table and `results`. */
export interface Ledger {
  readonly enqueued: number
  readonly completed: number
  /** Jobs not completed (any other state). */
  readonly notCompleted: number
  readonly states: Record<string, number>
  /** Jobs marked completed without a recorded run. */
  readonly completedUnrun: number
  /** Jobs whose handler started more than once, with their nodes in run order. */
  readonly twice: ReadonlyArray<{ readonly id: string; readonly nodes: ReadonlyArray<string> }>
}

export const ledger = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.gen(function* () {
    const jobs = sql(`${schema}.jobs_all`)
    const results = sql(`${schema}.results`)
    const states = yield* sql<{ state: string; n: number }>`
      SELECT state, count(*)::int AS n FROM ${jobs} WHERE queue <> 'probe' GROUP BY state`
    const byState = Object.fromEntries(states.map((s) => [s.state, s.n]))
    const enqueued = states.reduce((sum, s) => sum + s.n, 0)
    const completed = byState.completed ?? 0
    const [unrun] = yield* sql<{ n: number }>`
      SELECT count(*)::int AS n FROM ${jobs} j
      WHERE j.state = 'completed' AND NOT EXISTS (SELECT 1 FROM ${results} r WHERE r.job_id = j.id)`
    const twice = yield* sql<{ id: string; nodes: Array<string> }>`
      SELECT job_id::text AS id, array_agg(node ORDER BY id) AS nodes FROM ${results}
      WHERE phase = 'start' GROUP BY job_id HAVING count(*) > 1`
    return {
      enqueued,
      completed,
      notCompleted: enqueued - completed,
      states: byState,
      completedUnrun: unrun!.n,
      twice
    } satisfies Ledger
  })

/** Wait until every job of the schema is completed (or `within` passes). */
export const awaitDrained = (
  sql: SqlClient.SqlClient,
  schema: string,
  within: Duration.DurationInput = "240 seconds"
) =>
  eventually(
    "every job is completed",
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.jobs_all`)}
        WHERE state <> 'completed' AND queue <> 'probe'`,
      (rows) => rows[0]!.n === 0
    ),
    within
  )

/** Print the runs and errors of jobs that ran twice, to see why. */
export const showTwice = (sql: SqlClient.SqlClient, schema: string, book: Ledger) =>
  book.twice.length === 0
    ? Effect.void
    : Effect.flatMap(
        sql<{ id: string; runs: unknown; errors: unknown }>`
          SELECT j.id::text AS id, j.errors,
            (SELECT json_agg(json_build_object('node', r.node, 'attempt', r.attempt, 'at', r.at) ORDER BY r.id)
             FROM ${sql(`${schema}.results`)} r WHERE r.job_id = j.id) AS runs
          FROM ${sql(`${schema}.jobs_all`)} j WHERE j.id = ANY(${book.twice.map((t) => t.id)}::bigint[])`,
        (rows) => Effect.sync(() => console.error("jobs that ran twice:", JSON.stringify(rows, null, 1)))
      )

/** The ledger's part of a scenario's figures. */
export const ledgerFigures = (book: Ledger) => ({
  enqueued: book.enqueued,
  completed: book.completed,
  lost: book.notCompleted + book.completedUnrun,
  runTwice: book.twice.length
})

/** The figures one scenario reports. */
export interface Figures {
  readonly enqueued: number
  readonly completed: number
  readonly lost: number
  readonly runTwice: number
  readonly inFlightAtFault: number
  readonly recoverMs: number | null
  readonly [extra: string]: unknown
}

/**
 * Print a scenario's figures as one JSON line (and append it to the file
 * named by NIGHTSHIFT_FAULT_FIGURES, when set).
 */
export const report = (scenario: string, figures: Figures) =>
  Effect.sync(() => {
    const line = JSON.stringify({ fault: scenario, ...figures })
    console.log(line)
    const file = process.env.NIGHTSHIFT_FAULT_FIGURES
    if (file !== undefined && file !== "") Fs.appendFileSync(file, `${line}\n`)
  })

/** Attach the nodes' output to a failure, to see why a node misbehaved. */
export const explain = <A, E, R>(nodes: () => ReadonlyArray<Node>, effect: Effect.Effect<A, E, R>) =>
  Effect.tapErrorCause(effect, () =>
    Effect.sync(() => {
      for (const node of nodes()) {
        const lines = node.lines.filter((line) => !line.startsWith('{"ns":"status"'))
        console.error(`--- ${node.name} ---\n${lines.slice(-60).join("\n")}`)
      }
    })
  )

/** What a scenario's body works with. */
export interface Scenario<S extends { readonly url: string }> {
  /** The server the scenario runs on. */
  readonly server: S
  readonly url: string
  readonly sql: SqlClient.SqlClient
  /** A fresh, migrated schema with the `results` side table. */
  readonly schema: string
  /** A producer store on that schema (no listener). */
  readonly store: JobStore.Service
  /** The runner processes started so far. */
  readonly nodes: ReadonlyArray<Node>
  /** Start a runner process on the schema; its output is printed if the scenario fails. */
  readonly spawn: (name: string, env?: NodeOptions["env"]) => Effect.Effect<Node, never, Scope.Scope>
  /** Start runner processes and wait until every one is up. */
  readonly spawnUp: (
    names: ReadonlyArray<string>,
    env?: NodeOptions["env"]
  ) => Effect.Effect<Array<Node>, Error, Scope.Scope>
}

/** The shared test server. */
export const sharedServer: Effect.Effect<{ readonly url: string }> = Effect.sync(() => ({
  url: databaseUrl()
}))

/**
 * Run one scenario in a scope of its own: a schema on `server` (the shared
 * test server by default), a producer store, and runner processes that are
 * killed when it ends and whose output is printed when it fails.
 */
export const run = <A, E, S extends { readonly url: string } = { readonly url: string }>(
  label: string,
  body: (scenario: Scenario<S>) => Effect.Effect<A, E, Scope.Scope>,
  server: Effect.Effect<S, Error, Scope.Scope> = sharedServer as Effect.Effect<any>
): Effect.Effect<A, E | Error | unknown> => {
  const nodes: Array<Node> = []
  return explain(
    () => nodes,
    Effect.gen(function* () {
      const on = yield* server
      const { sql, schema, store } = yield* setup(on.url, label)
      const spawn = (name: string, env?: NodeOptions["env"]) =>
        Effect.tap(spawnNode({ url: on.url, schema, name, env }), (node) => nodes.push(node))
      const spawnUp = (names: ReadonlyArray<string>, env?: NodeOptions["env"]) =>
        Effect.gen(function* () {
          const started: Array<Node> = []
          for (const name of names) started.push(yield* spawn(name, env))
          yield* Effect.forEach(started, (node) => awaitEvent(node, "up"), { discard: true })
          return started
        })
      return yield* body({ server: on, url: on.url, sql, schema, store, nodes, spawn, spawnUp })
    })
  ).pipe(Effect.scoped)
}

/** Register a scenario as a live test (5 minutes unless `timeout` says otherwise). */
export const scenario = <E, S extends { readonly url: string } = { readonly url: string }>(
  name: string,
  options: {
    readonly label: string
    readonly timeout?: number
    readonly server?: Effect.Effect<S, Error, Scope.Scope>
  },
  body: (scenario: Scenario<S>) => Effect.Effect<void, E, Scope.Scope>
): void => {
  it.live(name, () => run(options.label, body, options.server), { timeout: options.timeout ?? 300_000 })
}
