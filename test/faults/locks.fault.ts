/**
 * Locks on PostgreSQL, with real processes.
 *
 * - Row-lock order: a runner's heartbeat and its settles touch the same
 *   running jobs at the same time, from two pool connections. Found by the
 *   SIGKILL scenario, where a heartbeat died with "deadlock detected" and the
 *   runner reported its store unreachable; fixed in the PostgreSQL store.
 * - The singleton lock (`PgLock`): when the connection holding a singleton
 *   worker's advisory lock is terminated mid-tick, PostgreSQL releases the
 *   lock and another replica takes it. Before the holder watched its
 *   connection's own failure, its tick kept running until the next periodic
 *   check (5 s): 3 kills gave 3 overlapping ticks of 1.75 to 3.8 s.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../src/JobStore.js"
import { databaseUrl } from "../setup/pg.js"
import { awaitEvent, eventually, explain, type Node, run, setup } from "./harness.js"

describe("fault: concurrent writes to the same jobs", () => {
  // Heartbeat and settle lock their rows in id order; before that, this
  // deadlocked in about 2 rounds of 3.
  it.live(
    "a heartbeat and a settle over the same 200 jobs, ten times: neither deadlocks",
    () =>
      Effect.gen(function* () {
        const { store } = yield* setup(databaseUrl(), "locks")
        const failures: Array<string> = []
        for (let round = 0; round < 10; round++) {
          yield* store.enqueue(
            Array.from(
              { length: 200 },
              (): JobStore.EnqueueInput => ({
                kind: "k",
                queue: "q",
                payload: {},
                priority: 0,
                maxAttempts: 3
              })
            )
          )
          const claimed = yield* store.claim({
            queues: ["q"],
            kinds: ["k"],
            limit: 200,
            leaseMs: 30_000,
            owner: "o"
          })
          const leases = claimed.map((job) => ({ id: job.id, fence: job.fence }))
          const outcomes = claimed.map((job) => ({
            id: job.id,
            fence: job.fence,
            outcome: { _tag: "completed" } as const
          }))
          const results = yield* Effect.all(
            [
              Effect.either(store.heartbeat("o", leases, 30_000)),
              Effect.either(store.settle(outcomes.reverse()))
            ],
            { concurrency: "unbounded" }
          )
          for (const result of results) if (result._tag === "Left") failures.push(result.left.message)
        }
        expect(failures).toEqual([])
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})

const lockNode = Path.join(import.meta.dirname, "..", "fixtures", "lock-node.ts")

/** A replica of test/fixtures/lock-node.ts; SIGKILLed when the scope closes if still running. */
const spawnReplica = (url: string, schema: string, name: string) =>
  Effect.acquireRelease(
    Effect.sync((): Node => {
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", lockNode], {
        env: { ...process.env, DATABASE_URL: url, NS_SCHEMA: schema, NS_NODE: name },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      for (const stream of [child.stdout, child.stderr]) {
        stream.setEncoding("utf8")
        stream.on("data", (chunk: string) => lines.push(...chunk.split("\n").filter((line) => line !== "")))
      }
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return {
        name,
        process: child,
        exited,
        lines,
        events: (tag) =>
          lines.flatMap((line) => {
            if (!line.startsWith("{")) return []
            try {
              const event = JSON.parse(line)
              return event.ns === tag ? [event] : []
            } catch {
              return []
            }
          }),
        running: () => child.exitCode === null && child.signalCode === null
      }
    }),
    (node) =>
      Effect.promise(async () => {
        if (node.running()) node.process.kill("SIGKILL")
        await node.exited
      })
  )

interface Tick {
  readonly id: number
  readonly node: string
  readonly started: number
  readonly ended: number | null
  readonly interrupted: boolean | null
}

describe("fault: the connection holding a singleton lock is terminated", () => {
  it.live(
    "three replicas, the holder's lock connection terminated mid-tick three times: the holder's tick is interrupted each time",
    () => {
      const nodes: Array<Node> = []
      return run("singleton", ({ url, sql, schema }) =>
        explain(
          () => nodes,
          Effect.gen(function* () {
            const ticks = sql(`${schema}.ticks`)
            yield* sql`CREATE TABLE ${ticks} (id serial PRIMARY KEY, node text NOT NULL, pid integer,
            started_at timestamptz NOT NULL, ended_at timestamptz, interrupted boolean)`
            for (const name of ["a", "b", "c"]) nodes.push(yield* spawnReplica(url, schema, name))
            yield* Effect.forEach(nodes, (node) => awaitEvent(node, "up"), { discard: true })
            const lockKey = `${schema}:worker:tick`
            // Each kill hits the tick open at that instant: its row is inserted
            // after the lock is taken and closed before it is released.
            const killed: Array<{ readonly tick: number; readonly node: string }> = []
            for (let attempt = 0; killed.length < 3 && attempt < 10; attempt++) {
              yield* eventually(
                "a tick is in progress",
                Effect.map(
                  sql<{ n: number }>`SELECT count(*)::int AS n FROM ${ticks} WHERE ended_at IS NULL`,
                  (rows) => rows[0]!.n > 0
                )
              )
              // Find the backend holding the lock and terminate it in one statement
              // (waiting until it has exited).
              const [kill] = yield* sql<{ at: string }>`
                SELECT clock_timestamp()::text AS at, pg_terminate_backend(pid, 20000) AS done FROM pg_locks
                WHERE locktype = 'advisory' AND granted AND objsubid = 1
                  AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(${lockKey}, 0)`
              if (kill === undefined) continue
              const [hit] = yield* sql<{ id: number; node: string }>`
                SELECT id, node FROM ${ticks}
                WHERE started_at <= ${kill.at}::timestamptz AND (ended_at IS NULL OR ended_at >= ${kill.at}::timestamptz)
                ORDER BY started_at DESC LIMIT 1`
              if (hit === undefined) continue
              killed.push({ tick: hit.id, node: hit.node })
              // Another tick (on any replica) has started since.
              yield* eventually(
                "a tick starts after the kill",
                Effect.map(
                  sql<{ n: number }>`SELECT count(*)::int AS n FROM ${ticks} WHERE id > ${hit.id}`,
                  (rows) => rows[0]!.n > 0
                )
              )
            }
            expect(killed.length, "three kills hit a tick in progress").toBe(3)
            // Every killed tick has recorded its end.
            yield* eventually(
              "the killed ticks have ended",
              Effect.map(
                sql<{ n: number }>`SELECT count(*)::int AS n FROM ${ticks}
                WHERE id = ANY(${killed.map((k) => k.tick)}::int[]) AND ended_at IS NOT NULL`,
                (rows) => rows[0]!.n === new Set(killed.map((k) => k.tick)).size
              )
            )
            const all = yield* sql<Tick>`
            SELECT id, node, (extract(epoch FROM started_at) * 1000)::float8 AS started,
              (extract(epoch FROM ended_at) * 1000)::float8 AS ended, interrupted
            FROM ${ticks} ORDER BY started_at`
            // Ticks interrupted by a kill: the ones hit, and any whose lock was
            // taken but whose row was not yet written when the kill came.
            const killedIds = new Set([
              ...killed.map((k) => k.tick),
              ...all.filter((t) => t.interrupted).map((t) => t.id)
            ])
            // From the end of each tick to the start of the next one, in start order (negative: an overlap).
            const handovers = all.slice(1).map((tick, i) => {
              const previous = all[i]!
              return {
                after: previous.id,
                killed: killedIds.has(previous.id),
                ms: previous.ended === null ? null : tick.started - previous.ended
              }
            })
            const afterKill = handovers.filter((h) => h.killed).map((h) => h.ms)
            console.log(
              JSON.stringify({
                fault: "singleton-lock-terminated",
                ticks: all.length,
                kills: killed.length,
                handoverAfterKillMs: afterKill.map((ms) => (ms === null ? null : Math.round(ms))),
                overlapsAfterKill: afterKill.filter((ms) => ms === null || ms < 0).length
              })
            )
            // Each killed tick was interrupted when its connection died (not left
            // to finish, as when only the periodic check could tell), and its
            // replica logged why.
            for (const { tick, node } of killed) {
              expect(all.find((t) => t.id === tick)?.interrupted, `tick ${tick} was interrupted`).toBe(true)
              const replica = nodes.find((n) => n.name === node)!
              expect(replica.lines.join("\n")).toMatch(/was lost, so the guarded effect was interrupted/)
            }
            // A tick released normally is over before the next one starts.
            expect(handovers.filter((h) => !h.killed && (h.ms === null || h.ms < 0))).toEqual([])
            // After a kill, the next tick may start while the killed one is still
            // being interrupted: PostgreSQL frees the lock as the session ends,
            // and the holder hears of it over the same socket. How long that
            // lasts is printed above, not asserted (see docs/postgres.md).
          })
        )
      )
    },
    { timeout: 300_000 }
  )
})
