/**
 * PostgreSQL helpers for test files: the server URL chosen by the global
 * setup, a client layer, and a fresh schema per store so that test files (and
 * each conformance build) never see each other's rows.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { afterAll, inject } from "vitest"
import { migrations } from "../../src/internal/pg/schema.js"
import * as JobStore from "../../src/JobStore.js"
import * as PgStore from "../../src/PgStore.js"
import { RowEditor } from "../store/helpers.js"

/** The URL of the test server; fails the test with a fix-it message when there is none. */
export const databaseUrl = (): string => {
  const target = inject("nightshiftPg")
  if (target === undefined) {
    throw new Error(
      "No PostgreSQL target was provided: run the tests through vitest (test/setup/globalSetup.ts)."
    )
  }
  if (target._tag === "unavailable") throw new Error(target.reason)
  return target.url
}

/**
 * A `PgClient` on the test server: `PgStore.layerPgClient`'s, on which the
 * store sends its hot statements on the pool directly, or with `plain`,
 * `PgClient.layer`'s, on which every statement goes through the client.
 */
export const clientLayer = (
  options: {
    readonly maxConnections?: number
    readonly applicationName?: string
    /** Default the test server's; a function is read when the layer is built. */
    readonly url?: string | (() => string)
    readonly plain?: boolean
  } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown> =>
  Layer.unwrapEffect(
    Effect.sync(() =>
      (options.plain === true ? PgClient.layer : PgStore.layerPgClient)({
        url: Redacted.make(
          typeof options.url === "function" ? options.url() : (options.url ?? databaseUrl())
        ),
        maxConnections: options.maxConnections ?? 20,
        applicationName: options.applicationName ?? "nightshift-test"
      })
    )
  )

let counter = 0

/** A schema name no other test, file or process uses. */
export const freshSchema = (label = "t"): string =>
  `${label}_${process.pid}_${Date.now().toString(36)}_${++counter}`.toLowerCase().slice(0, 48)

/** Drop a test schema and everything in it. */
export const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(
    Effect.ignore
  )

/**
 * A store in a schema of its own, dropped when the layer is released. The
 * name is picked at build time, so every build of the same layer is empty.
 */
export const storeIn = (
  options: PgStore.Options & { readonly label?: string } = {}
): Layer.Layer<JobStore.JobStore, JobStore.JobStoreError, PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.scoped(
    JobStore.JobStore,
    Effect.gen(function* () {
      const schema = options.schema ?? freshSchema(options.label)
      yield* Effect.addFinalizer(() => dropSchema(schema))
      return yield* PgStore.make({ ...options, schema })
    })
  )

/** A store in a fresh schema on a client of its own. */
export const storeLayer = (
  options: PgStore.Options & { readonly label?: string; readonly maxConnections?: number } = {}
): Layer.Layer<JobStore.JobStore | PgClient.PgClient | SqlClient.SqlClient, unknown> =>
  storeIn(options).pipe(Layer.provideMerge(clientLayer(options)))

/**
 * One client and one migrated schema for a whole test file; every build of the
 * returned layer empties the tables first, so each build is a fresh store.
 * Built outside the test's clock, released after the file's tests. It also
 * provides a `RowEditor` on that schema, for tests of hand-edited rows.
 */
export const sharedStore = (
  options: PgStore.Options & {
    readonly label?: string
    readonly maxConnections?: number
    readonly url?: string | (() => string)
    readonly plain?: boolean
  } = {}
): Layer.Layer<JobStore.JobStore | RowEditor> => {
  const runtime = ManagedRuntime.make(clientLayer(options))
  const schema = freshSchema(options.label)
  // Migrated, and the client's LISTEN connection kept open between builds (so that each
  // build's listener does not pay for a new connection), from the first build on.
  let keepListening: Fiber.RuntimeFiber<void, unknown> | undefined
  let migrated: Promise<unknown> | undefined
  const prepare = () => {
    keepListening ??= runtime.runFork(
      Effect.flatMap(PgClient.PgClient, (client) => Stream.runDrain(client.listen(`${schema}_keepalive`)))
    )
    migrated ??= runtime.runPromise(PgStore.migrate({ schema }))
    return migrated
  }
  afterAll(async () => {
    if (migrated === undefined) return runtime.dispose()
    if (keepListening !== undefined) await runtime.runPromise(Fiber.interrupt(keepListening))
    await runtime.runPromise(dropSchema(schema)).catch(() => undefined)
    await runtime.dispose()
  })
  const context = Layer.effectContext(
    Effect.flatMap(Effect.promise(prepare), () => Effect.map(runtime.runtimeEffect, (rt) => rt.context))
  )
  const store = Layer.scoped(
    JobStore.JobStore,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(
        ["jobs", "jobs_done", "paused_queues", "cron_slots", "leaders", "flow_rules", "flow_starts"]
          .map((t) => `DELETE FROM ${schema}.${t};`)
          .join("\n")
      )
      // The finished jobs' time partitions a test's pruner made go too (each test's clock starts anew).
      yield* sql.unsafe(`DO $$ DECLARE p text; BEGIN
        FOR p IN SELECT name FROM ${schema}.done_partitions LOOP
          EXECUTE format('DROP TABLE ${schema}.%I', p);
        END LOOP;
        DELETE FROM ${schema}.done_partitions;
      END $$`)
      return yield* PgStore.make({ ...options, schema, migrate: false })
    })
  )
  const editor = Layer.effect(
    RowEditor,
    Effect.map(SqlClient.SqlClient, (client) => {
      const sql = client.withoutTransforms()
      const jobs = sql(`${schema}.jobs`)
      return {
        edit: (id, row) =>
          Effect.gen(function* () {
            if (row.leaseExpiresAt !== undefined)
              yield* sql`UPDATE ${jobs} SET lease_expires_at = to_timestamp(${row.leaseExpiresAt}::float8 / 1000) WHERE id = ${id}::bigint`
            if (row.finalizedAt === null) {
              yield* sql`UPDATE ${jobs} SET finalized_at = NULL WHERE id = ${id}::bigint`
              yield* sql`UPDATE ${sql(`${schema}.jobs_done`)} SET finalized_at = NULL WHERE id = ${id}::bigint`
            }
          })
      }
    })
  )
  return Layer.orDie(Layer.merge(store, editor).pipe(Layer.provide(context)))
}

/**
 * Poll `check` in real time until it holds; fail with `what` after `within`.
 * For behaviour that depends on the database clock or a real connection, which
 * `TestClock` cannot move. Waits for an outcome; never measures a duration.
 */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  within: Duration.DurationInput = "20 seconds"
): Effect.Effect<void, E | Error, R> =>
  check.pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting until ${what}`) }),
    Effect.asVoid
  )

/** Bring a fresh schema up to migration `last` only, as an older release left it. */
export const migrateUpTo = (sql: SqlClient.SqlClient, schema: string, last: number) =>
  Effect.gen(function* () {
    yield* sql`CREATE SCHEMA ${sql(schema)}`
    return yield* migrateFurther(sql, schema, last)
  })

/** Bring a schema made by `migrateUpTo` on to migration `last`. */
export const migrateFurther = (sql: SqlClient.SqlClient, schema: string, last: number) =>
  Migrator.make({})({
    loader: Effect.map(migrations(schema), (all) => all.filter(([id]) => id <= last)),
    table: `${schema}.migrations`
  }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
