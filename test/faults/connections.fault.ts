/**
 * Connections cut under a runner process with `pg_terminate_backend`: its
 * LISTEN connection, then random connections of its pool mid-drain. Wake-ups
 * must come back within 3 s, polling must cover the gap, and nothing may be
 * lost.
 *
 * A runner's backends are found by what they last ran: its listener's last
 * statement is a `LISTEN` of a channel named `<schema>_wakeup…` (the
 * store's, then its own for heartbeats), and every store statement names
 * the test's own schema.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../src/JobStore.js"
import {
  awaitDrained,
  enqueueJobs,
  eventually,
  ledger,
  ledgerFigures,
  probeListeners,
  report,
  run,
  scenario
} from "./harness.js"

const pollMs = 5_000

/** One probe job; resolves with its id and when it was enqueued. */
const probe = (store: JobStore.Service) =>
  Effect.map(
    store.enqueue([{ kind: "work", queue: "default", payload: { ms: 1 }, priority: 0, maxAttempts: 5 }]),
    ([result]) => ({ id: result!.id, sentAt: Date.now() })
  )

/** Start delay of each job (ms from enqueue to its first run), by id. */
const latencies = (sql: SqlClient.SqlClient, schema: string, ids: ReadonlyArray<string>) =>
  Effect.map(
    sql<{ id: string; ms: number }>`
      SELECT j.id::text AS id, (extract(epoch from min(r.at) - j.created_at) * 1000)::float8 AS ms
      FROM ${sql(`${schema}.jobs_all`)} j JOIN ${sql(`${schema}.results`)} r ON r.job_id = j.id
      WHERE j.id = ANY(${ids}::bigint[]) GROUP BY j.id, j.created_at`,
    (rows) => new Map(rows.map((r) => [r.id, r.ms]))
  )

const listenerBackends = (sql: SqlClient.SqlClient, schema: string) =>
  sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE query LIKE ${`LISTEN "${schema}_wakeup%`}`

/**
 * One runner process polling every 5 s; its LISTEN backend is killed. A job
 * enqueued right then can only be found by polling; then the listener is
 * probed until it hears five probes in a row.
 */
const listenerKilled = (scenario: string, env: Record<string, number>) =>
  run("listen", ({ sql, schema, store, spawnUp }) =>
    Effect.gen(function* () {
      const node = (yield* spawnUp(["l1"], { NS_POLL_MS: pollMs, ...env }))[0]!
      yield* eventually(
        "the listener is connected",
        Effect.map(listenerBackends(sql, schema), (rows) => rows.length === 1)
      )
      const [killed] = yield* sql<{ n: number }>`
        SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE query LIKE ${`LISTEN "${schema}_wakeup%`}`
      const killAt = Date.now()
      // Work enqueued while the listener is down: only polling can find it.
      const missed = yield* probe(store)
      const listenerAt = yield* probeListeners(store, [node])
      yield* awaitDrained(sql, schema, "60 seconds")
      const gapMs = Math.round((yield* latencies(sql, schema, [missed.id])).get(missed.id) ?? Number.NaN)
      const recoverMs = listenerAt === null ? null : listenerAt - killAt
      const book = yield* ledger(sql, schema)
      yield* report(scenario, {
        ...ledgerFigures(book),
        inFlightAtFault: 0,
        recoverMs,
        pollIntervalMs: pollMs,
        missedWakeupStartedAfterMs: gapMs,
        ...env
      })
      expect(killed!.n).toBe(1)
      expect(book.completed).toBe(book.enqueued)
      expect(book.twice).toEqual([])
      // Polling picks up what the dead listener missed.
      expect(gapMs).toBeLessThan(pollMs + 2_000)
      expect(recoverMs).not.toBeNull()
      return recoverMs!
    })
  )

describe("fault: connections cut with pg_terminate_backend", () => {
  it.live(
    "the listener's backend is killed: with a 250 ms listener heartbeat, wake-ups recover within 3 s; polling covers the gap",
    () =>
      Effect.map(listenerKilled("listener-backend-killed", { NS_LISTENER_HEARTBEAT_MS: 250 }), (recoverMs) =>
        expect(recoverMs).toBeLessThan(3_000)
      ),
    { timeout: 300_000 }
  )

  // The defaults (1 s heartbeat, reconnect after two silent heartbeats, 250 ms
  // retry delay) notice a dead LISTEN connection within about 2.5 s. They
  // used to be 5 s, three heartbeats and 1 s: about 16 s.
  it.live(
    "the listener's backend is killed: with the default listener heartbeat, wake-ups recover within 3 s",
    () =>
      Effect.map(listenerKilled("listener-backend-killed-defaults", {}), (recoverMs) =>
        expect(recoverMs).toBeLessThan(3_000)
      ),
    { timeout: 300_000 }
  )

  scenario(
    "random pool connections are killed mid-drain: nothing lost, at most one job per killed connection runs twice",
    { label: "pool" },
    ({ sql, schema, store, spawnUp }) =>
      Effect.gen(function* () {
        yield* enqueueJobs(store, 3_000, "work", (i) => ({ ms: 5 + (i % 11) }))
        const nodes = yield* spawnUp(["p1", "p2"])
        yield* eventually(
          "the drain is under way",
          Effect.map(
            sql<{
              n: number
            }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.jobs_all`)} WHERE state = 'completed'`,
            (rows) => rows[0]!.n >= 300
          )
        )
        const victims: Array<{ pid: number; state: string; query: string }> = []
        for (let i = 0; i < 20; i++) {
          const killed = yield* sql<{ pid: number; state: string; query: string }>`
          SELECT pid, state, left(query, 60) AS query FROM pg_stat_activity
          WHERE application_name <> 'nightshift-faults-test' AND query LIKE ${`%${schema}%`}
            AND query NOT LIKE 'LISTEN%' AND pid <> pg_backend_pid()
          ORDER BY state = 'active' DESC, random() LIMIT 1`.pipe(
            Effect.tap((rows) => Effect.forEach(rows, (row) => sql`SELECT pg_terminate_backend(${row.pid})`))
          )
          victims.push(...killed)
          yield* Effect.sleep("300 millis")
        }
        yield* awaitDrained(sql, schema)
        const book = yield* ledger(sql, schema)
        const active = victims.filter((v) => v.state === "active").length
        yield* report("pool-connections-killed", {
          ...ledgerFigures(book),
          inFlightAtFault: victims.length,
          recoverMs: null,
          connectionsKilled: victims.length,
          killedWhileActive: active,
          killedStatements: victims.map((v) => `${v.state}: ${v.query.replace(/\s+/g, " ").trim()}`)
        })
        expect(victims.length).toBeGreaterThan(10)
        expect(book.completed).toBe(3_000)
        expect(book.completedUnrun).toBe(0)
        expect(book.twice.length).toBeLessThanOrEqual(victims.length)
        expect(nodes.every((node) => node.running())).toBe(true)
      })
  )
})
