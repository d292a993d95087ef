/**
 * PostgreSQL goes away under running runner processes: a restart mid-drain,
 * the database unreachable when the runners start, and unreachable for 30 s in
 * the middle of a drain. Runners (and their listeners) must recover without
 * being restarted, the admin readiness probe must say not ready while the
 * database is away, and nothing may be lost.
 *
 * Each test stops and starts a server of its own (test/faults/server.ts).
 * The test process and the server share a host, so the test's wall clock and
 * the database clock agree; times while the server is down come from the test.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  awaitDrained,
  awaitEvent,
  enqueueJobs,
  eventually,
  ledger,
  ledgerFigures,
  type Node,
  probeListeners,
  report,
  scenario,
  showTwice
} from "./harness.js"
import { dedicated, dedicatedWith, type Server } from "./server.js"

const count = (sql: SqlClient.SqlClient, query: string) =>
  Effect.map(sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${query}`), (rows) => rows[0]!.n)

/** When each node first started a job after `since` (epoch ms), as ms after `since`. */
const firstRunsAfter = (
  sql: SqlClient.SqlClient,
  schema: string,
  nodes: ReadonlyArray<string>,
  since: number
) =>
  Effect.map(
    sql<{ node: string; first: number }>`
      SELECT node, (extract(epoch from min(at)) * 1000)::float8 AS first FROM ${sql(`${schema}.results`)}
      WHERE at > to_timestamp(${since}::float8 / 1000) AND node = ANY(${nodes}::text[]) GROUP BY node`,
    (rows) => Object.fromEntries(rows.map((r) => [r.node, Math.round(r.first - since)]))
  )

/**
 * Jobs in flight during the fault: started before the server was down (`down`)
 * and completed after the fault began (`from`), or not at all.
 */
const inFlightAt = (sql: SqlClient.SqlClient, schema: string, from: number, down: number) =>
  Effect.map(
    sql<{ n: number }>`
      SELECT count(DISTINCT r.job_id)::int AS n FROM ${sql(`${schema}.results`)} r
      JOIN ${sql(`${schema}.jobs_all`)} j ON j.id = r.job_id
      WHERE r.at < to_timestamp(${down}::float8 / 1000)
        AND (j.finalized_at IS NULL OR j.finalized_at > to_timestamp(${from}::float8 / 1000))`,
    (rows) => rows[0]!.n
  )

/** The status of a node's admin readiness probe. */
const readiness = (base: string) =>
  Effect.promise(() =>
    fetch(new URL("/health/ready", base), { signal: AbortSignal.timeout(10_000) }).then(
      (response) => response.status,
      () => 0
    )
  )

/** How the server goes away mid-drain. */
const outages = [
  {
    title: "a restart mid-drain",
    label: "restart",
    report: "postgres-restart",
    server: dedicated,
    away: (server: Server) => server.stop,
    /** What the server's log says when it is back. */
    cameBack: "database system was shut down at"
  },
  {
    // Commits wait for the WAL here, as on a production server (test servers do not), so the
    // crash takes back no commit a runner saw succeed: only jobs in flight may run again.
    title: "a crash mid-drain (immediate shutdown, durable commits)",
    label: "crash",
    report: "postgres-crash",
    server: dedicatedWith({ durable: true }),
    away: (server: Server) => server.crash,
    cameBack: "automatic recovery in progress"
  }
] as const

describe("fault: PostgreSQL goes away", () => {
  for (const outage of outages)
    scenario(
      `${outage.title}: runners and listeners recover within 10 s without being restarted, nothing lost`,
      { label: outage.label, server: outage.server },
      ({ server, sql, schema, store, spawnUp }) =>
        Effect.gen(function* () {
          yield* enqueueJobs(store, 4_000, "work", (i) => ({ ms: 5 + (i % 11) }))
          // A 1 s listener heartbeat: the default (5 s) notices a dead listener only after about 16 s.
          const env = {
            NS_POLL_MS: 30_000,
            NS_LEASE_MS: 10_000,
            NS_RESCUE_MS: 1_000,
            NS_LISTENER_HEARTBEAT_MS: 1_000
          }
          const nodes = yield* spawnUp(["a", "b"], env)
          yield* eventually(
            "the drain is under way",
            Effect.map(count(sql, `${schema}.jobs_all WHERE state = 'completed'`), (n) => n >= 1_000)
          )
          const stopAt = Date.now()
          yield* outage.away(server)
          const downAt = Date.now()
          yield* Effect.sleep("3 seconds")
          yield* server.start
          const readyAt = Date.now()
          const listenersAt = yield* probeListeners(store, nodes)

          yield* eventually(
            "both runners run jobs again",
            Effect.map(
              firstRunsAfter(sql, schema, ["a", "b"], readyAt),
              (first) => Object.keys(first).length === 2
            ),
            "60 seconds"
          )
          const runners = yield* firstRunsAfter(sql, schema, ["a", "b"], readyAt)
          yield* awaitDrained(sql, schema)
          const book = yield* ledger(sql, schema)
          const inFlight = yield* inFlightAt(sql, schema, stopAt, downAt)
          const recoverMs = Math.max(...Object.values(runners))
          const listenerRecoverMs = listenersAt === null ? null : Math.round(listenersAt - readyAt)
          if (book.twice.length > inFlight) yield* showTwice(sql, schema, book)
          yield* report(outage.report, {
            ...ledgerFigures(book),
            inFlightAtFault: inFlight,
            recoverMs,
            downMs: readyAt - stopAt,
            runnerRecoverMs: runners,
            listenerRecoverMs
          })
          expect(server.log.join("")).toContain(outage.cameBack)
          expect(book.completed).toBe(book.enqueued)
          expect(book.completedUnrun).toBe(0)
          expect(book.twice.length).toBeLessThanOrEqual(inFlight)
          expect(nodes.every((node) => node.running())).toBe(true)
          expect(recoverMs).toBeLessThan(10_000)
          expect(listenerRecoverMs).not.toBeNull()
          expect(listenerRecoverMs!).toBeLessThan(10_000)
        })
    )

  scenario(
    "unreachable at start-up and for 30 s mid-drain: clear log lines, health not ready, then full recovery",
    { label: "outage", server: dedicated },
    ({ server, sql, schema, store, spawn }) =>
      Effect.gen(function* () {
        yield* enqueueJobs(store, 3_000, "work", (i) => ({ ms: 10 + (i % 11) }))
        yield* server.stop

        // Without a retry the process exits at once and says why; with one it waits for the database.
        const once = yield* spawn("once")
        const env = {
          NS_STARTUP_RETRY: 1,
          NS_STATUS_MS: 250,
          NS_ADMIN: 1,
          NS_LEASE_MS: 10_000,
          NS_RESCUE_MS: 1_000
        }
        const patient = yield* spawn("patient", env)
        const onceExit = yield* Effect.promise(() => once.exited)
        const notReady = (node: Node) =>
          node.lines.some((line) => line.includes("Could not connect to PostgreSQL"))
        yield* eventually(
          "the waiting runner says why it is not up",
          Effect.sync(() => notReady(patient))
        )
        expect(patient.events("up")).toEqual([])
        const startedAt = Date.now()
        yield* server.start
        yield* awaitEvent(patient, "up")
        const startupRecoverMs = patient.events("up")[0]!.at - startedAt
        yield* awaitEvent(patient, "admin")
        const ready = readiness(patient.events("admin")[0]!.url)
        expect(yield* ready).toBe(200)

        yield* eventually(
          "the drain is under way",
          Effect.map(count(sql, `${schema}.jobs_all WHERE state = 'completed'`), (n) => n >= 500)
        )
        const stopAt = Date.now()
        yield* server.stop
        const downAt = Date.now()
        yield* eventually(
          "the runner reports the store unhealthy",
          Effect.sync(() => patient.events("status").some((s) => s.at > stopAt && s.healthy === false)),
          "30 seconds"
        )
        const logged = patient.lines.some((line) => line.includes("the job store is unreachable"))
        const readyWhileDown = yield* ready
        yield* Effect.sleep(Math.max(0, 30_000 - (Date.now() - stopAt)))
        yield* server.start
        const readyAt = Date.now()
        yield* eventually(
          "the runner runs jobs again",
          Effect.map(firstRunsAfter(sql, schema, ["patient"], readyAt), (first) => "patient" in first),
          "60 seconds"
        )
        const recoverMs = (yield* firstRunsAfter(sql, schema, ["patient"], readyAt)).patient!
        yield* awaitDrained(sql, schema)
        const healthyAgain = patient.events("status").some((s) => s.at > readyAt && s.healthy === true)
        const readyAgain = yield* ready
        const book = yield* ledger(sql, schema)
        const inFlight = yield* inFlightAt(sql, schema, stopAt, downAt)
        if (book.twice.length > inFlight) yield* showTwice(sql, schema, book)
        yield* report("postgres-unreachable", {
          ...ledgerFigures(book),
          inFlightAtFault: inFlight,
          recoverMs,
          downMs: readyAt - stopAt,
          startupRecoverMs,
          exitWithoutRetry: onceExit,
          readinessWhileDown: readyWhileDown,
          readinessAfter: readyAgain
        })
        expect(onceExit).toBe(1)
        expect(notReady(once)).toBe(true)
        expect(logged).toBe(true)
        expect(healthyAgain).toBe(true)
        expect(readyWhileDown).toBe(503)
        expect(readyAgain).toBe(200)
        expect(book.completed).toBe(book.enqueued)
        expect(book.completedUnrun).toBe(0)
        expect(book.twice.length).toBeLessThanOrEqual(inFlight)
        expect(patient.running()).toBe(true)
        // The runner backs off up to 30 s between attempts while the store is down.
        expect(recoverMs).toBeLessThan(35_000)
      })
  )
})
