/**
 * The `nightshift` command as users run it: `node dist/bin.js …` (the compiled command, built by `npm test`) child
 * processes on temporary SQLite files. Starting a process costs seconds on a
 * small machine, so there are few: one-off commands, `run` of a fixture app
 * (a job, the admin API, graceful SIGTERM), and a smoke run of the demo.
 * Waits are for outcomes, with generous deadlines; no duration is asserted.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { cli } from "./fixtures/cli-harness.js"

const root = Path.join(import.meta.dirname, "..")
const bin = Path.join(root, "dist", "bin.js")
const fixtureApp = Path.join(import.meta.dirname, "fixtures", "cli-app.ts")
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "nightshift-cli-process-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

/** The environment of a child: this one's, minus anything that would pick another store or admin port. */
const childEnv = (extra: Record<string, string> = {}) => {
  const env: Record<string, string | undefined> = { ...process.env, ...extra }
  for (const key of ["NIGHTSHIFT_ADMIN_PORT", "NIGHTSHIFT_ADMIN_TOKEN", "NIGHTSHIFT_APP"]) delete env[key]
  if (extra.NIGHTSHIFT_DATABASE_URL === undefined) delete env.NIGHTSHIFT_DATABASE_URL
  return env
}

interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Run `nightshift <args>` to completion. */
const exec = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<Exited>((resume) => {
    ChildProcess.execFile(
      process.execPath,
      [bin, ...args],
      { env: childEnv(env), cwd: dir },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({
            code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
            signal: error?.signal ?? null,
            stdout: stdout.trimEnd(),
            stderr: stderr.trimEnd()
          })
        )
    )
  })

interface Node {
  readonly child: ChildProcess.ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

/** Start a long-running `nightshift <args>`; SIGKILLed when the scope closes if still running. */
const start = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync((): Node => {
      const child = ChildProcess.spawn(process.execPath, [bin, ...args], {
        env: childEnv(),
        cwd: dir,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout?.on("data", (chunk) => {
        stdout += String(chunk)
      })
      child.stderr?.on("data", (chunk) => {
        stderr = (stderr + String(chunk)).slice(-20_000)
      })
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return { child, stdout: () => stdout, stderr: () => stderr, exited }
    }),
    (node) =>
      Effect.promise(async () => {
        if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL")
        await node.exited
      })
  )

const notYet = Symbol("not yet")

/** Poll in real time until `check` holds; fail with `what` (and the node's output) after `within`. */
const eventually = <A, E, R>(
  what: string,
  check: Effect.Effect<A | undefined, E, R>,
  node?: Node,
  within: Duration.DurationInput = "60 seconds"
) =>
  check.pipe(
    Effect.flatMap((a) => (a === undefined ? Effect.fail(notYet) : Effect.succeed(a))),
    Effect.retry({ while: (e) => e === notYet, schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutFail({
      duration: within,
      onTimeout: () =>
        new Error(
          `timed out waiting until ${what}${node === undefined ? "" : `\nstdout:\n${node.stdout()}\nstderr:\n${node.stderr()}`}`
        )
    })
  )

/** Send a signal and wait for the exit code. */
const stop = (node: Node, signal: NodeJS.Signals) =>
  Effect.promise(() => {
    node.child.kill(signal)
    return node.exited
  })

/** The in-process CLI with `--json`, for reading the store a child writes (cheaper than another process). */
const cliJson = (args: ReadonlyArray<string>) =>
  Effect.flatMap(cli([...args, "--json"]), (r) =>
    r.code === 0
      ? Effect.succeed(JSON.parse(r.stdout))
      : Effect.die(new Error(`nightshift ${args.join(" ")}: ${r.stderr}`))
  )

const jobState = (db: string, id: string) =>
  Effect.map(cliJson(["jobs", "show", id, "-d", db]), (j) => j.state as string)

// Processes spend most of their time starting up; overlapping them saves wall time.
describe.concurrent("dist/bin.js", () => {
  it.live(
    "one-off commands: enqueue and list through the real executable; bad environment exits 2",
    () =>
      Effect.gen(function* () {
        const db = Path.join(dir, "oneoff.db")
        const [enqueued, bad] = yield* Effect.all(
          [
            exec(["enqueue", "hello", '{"n":1}', "--json"], { NIGHTSHIFT_DATABASE_URL: db }),
            exec(["jobs", "list"], { NIGHTSHIFT_DATABASE_URL: "mysql://root:pw@db/app" })
          ],
          { concurrency: "unbounded" }
        )
        expect(enqueued).toMatchObject({ code: 0, stdout: '{"id":"1","deduped":false}' })
        expect(yield* cliJson(["jobs", "list", "-d", db])).toMatchObject({
          jobs: [{ id: "1", kind: "hello", payload: { n: 1 } }]
        })
        expect(bad.code).toBe(2)
        expect(bad.stderr).toBe(
          'error: NIGHTSHIFT_DATABASE_URL: invalid database URL "mysql://root:***@db/app": unknown scheme "mysql:"; use postgres://user:password@host:5432/db, sqlite:<path>, a file path, or memory:'
        )
      }),
    { timeout: 180_000 }
  )

  it.scopedLive(
    "run <module>: serves the admin API, processes jobs, and on SIGTERM drains a running job and exits 0",
    () =>
      Effect.gen(function* () {
        const db = Path.join(dir, "run.db")
        const node = yield* start(["run", fixtureApp, "-d", db, "--admin-port", "0"])
        const url = yield* eventually(
          "the node prints its dashboard URL",
          Effect.sync(() => /dashboard (http:\/\/\S+)/.exec(node.stdout())?.[1]),
          node
        )
        expect(node.stdout()).toContain(`running cli-app from ${fixtureApp} on sqlite ${db}`)
        const greet = (yield* cliJson(["enqueue", "greet", '{"name":"ada"}', "-d", db])).id as string
        yield* eventually(
          "the greet job completes",
          Effect.map(jobState(db, greet), (s) => (s === "completed" ? s : undefined)),
          node
        )
        // the handler's log line was written before the job completed, but may still be in the pipe
        yield* eventually(
          "the handler's log line arrives",
          Effect.sync(() => (node.stderr().includes("hello, ada") ? true : undefined)),
          node,
          "10 seconds"
        )

        const workers = yield* cliJson(["workers", "--admin-url", url])
        expect(workers.workers.map((w: { name: string }) => w.name)).toContain("cli-app/heartbeat")

        const slow = (yield* cliJson(["enqueue", "slow", '{"ms":3000}', "--queue", "slow", "-d", db]))
          .id as string
        yield* eventually(
          "the slow job runs",
          Effect.map(jobState(db, slow), (s) => (s === "running" ? s : undefined)),
          node
        )
        expect(yield* stop(node, "SIGTERM")).toBe(0)
        expect(node.stdout()).toContain("nightshift: stopping")
        expect(node.stdout()).toMatch(/nightshift: stopped\n$/)
        expect(yield* jobState(db, slow)).toBe("completed")
      }),
    { timeout: 180_000 }
  )

  it.scopedLive(
    "demo: prints the dashboard URL, processes jobs, and exits 0 on SIGINT",
    () =>
      Effect.gen(function* () {
        const db = Path.join(dir, "demo.db")
        const node = yield* start(["demo", "-d", db, "--admin-port", "0"])
        yield* eventually(
          "the demo prints its dashboard URL",
          Effect.sync(() => /dashboard (http:\/\/\S+)/.exec(node.stdout())?.[1]),
          node
        )
        yield* eventually(
          "the demo completes some jobs",
          Effect.map(cliJson(["jobs", "list", "-d", db, "--state", "completed"]), (page) =>
            page.jobs.length > 0 ? page : undefined
          ),
          node
        )
        expect(yield* stop(node, "SIGINT")).toBe(0)
        expect(node.stdout()).toMatch(/nightshift: stopped\n$/)
      }),
    { timeout: 180_000 }
  )
})
