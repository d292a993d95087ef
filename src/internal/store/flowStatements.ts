/**
 * Flow control statements written once for both SQL engines: storing the
 * rules and reading the flow state. Each engine's claim enforces the rules
 * in its own dialect (SQLite in its write transaction through `Budget`,
 * PostgreSQL in its claim function).
 *
 * Tables (created by each engine's migration; the jobs table has a nullable
 * `partition_key` column):
 *
 * - `flow_rules (scope, name, global_limit, per_partition, rate_limit,
 *   rate_window_ms, rate_by_partition, rate_burst)`, primary key
 *   `(scope, name)`; `rate_burst` is null for the default pace.
 * - `flow_starts (scope, name, partition_key, started_at)`: one row per start
 *   counted against a rate limit; `partition_key` is `''` for a rate counted
 *   over the whole scope (a partition key is never empty). Rows older than
 *   their rule's window are deleted by the claims that write them and by
 *   `prune`.
 *
 * @internal
 */
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as FlowControl from "../../FlowControl.js"
import type * as JobStore from "../../JobStore.js"
import { keepStartsMs } from "./flow.js"
import type { Tables } from "./statements.js"

/** The flow tables of an engine. */
export interface FlowTables extends Tables {
  readonly flowRules: Statement.Fragment
  readonly flowStarts: Statement.Fragment
}

interface RuleRow {
  readonly scope: "kind" | "queue"
  readonly name: string
  readonly global_limit: number | null
  readonly per_partition: number | null
  readonly rate_limit: number | null
  readonly rate_window_ms: number | null
  readonly rate_by_partition: boolean | number
  readonly rate_burst: number | null
}

const toRule = (row: RuleRow): FlowControl.Rule => ({
  scope: row.scope,
  name: row.name,
  global: row.global_limit === null ? null : Number(row.global_limit),
  perPartition: row.per_partition === null ? null : Number(row.per_partition),
  rateLimit: row.rate_limit === null ? null : Number(row.rate_limit),
  rateWindowMs: row.rate_window_ms === null ? null : Number(row.rate_window_ms),
  rateByPartition: row.rate_by_partition === true || row.rate_by_partition === 1,
  rateBurst: row.rate_burst === null ? null : Number(row.rate_burst)
})

/** A flag as the engine stores one: a boolean, or 0/1 on SQLite (whose driver binds no booleans). */
const flag = (t: FlowTables, value: boolean) =>
  t.sql.onDialectOrElse({ sqlite: () => (value ? 1 : 0), orElse: () => value })

/**
 * `JobStore.declareLimits`: one `DELETE` for every kind and queue without
 * limits, then an upsert per rule with some; to run in a transaction unless
 * it is that one statement (`declaresInOneStatement`).
 */
export const declareLimits = (t: FlowTables, rules: ReadonlyArray<FlowControl.Rule>) => {
  const cleared = rules.filter(FlowControl.isEmpty)
  const clear =
    cleared.length === 0
      ? Effect.void
      : t.sql`DELETE FROM ${t.flowRules} WHERE ${t.sql.or(
          cleared.map((rule) => t.sql`(scope = ${rule.scope} AND name = ${rule.name})`)
        )}`
  return Effect.zipRight(
    clear,
    Effect.forEach(
      rules.filter((rule) => !FlowControl.isEmpty(rule)),
      (rule) =>
        t.sql`INSERT INTO ${t.flowRules}
            (scope, name, global_limit, per_partition, rate_limit, rate_window_ms, rate_by_partition, rate_burst)
          VALUES (${rule.scope}, ${rule.name}, ${rule.global}, ${rule.perPartition}, ${rule.rateLimit},
            ${rule.rateWindowMs}, ${flag(t, rule.rateByPartition)}, ${rule.rateBurst})
          ON CONFLICT (scope, name) DO UPDATE SET global_limit = excluded.global_limit,
            per_partition = excluded.per_partition, rate_limit = excluded.rate_limit,
            rate_window_ms = excluded.rate_window_ms, rate_by_partition = excluded.rate_by_partition,
            rate_burst = excluded.rate_burst`,
      { discard: true }
    )
  )
}

/**
 * `declareLimits` is a single statement (no rule sets a limit: a runner
 * without flow control, declaring that its kinds and queues have none), so
 * it needs no transaction of its own: on PostgreSQL that saves two round
 * trips at every runner's start.
 */
export const declaresInOneStatement = (rules: ReadonlyArray<FlowControl.Rule>) =>
  rules.every(FlowControl.isEmpty)

/** Every stored rule. */
export const rules = (t: FlowTables) =>
  Effect.map(
    t.sql<RuleRow>`SELECT scope, name, global_limit, per_partition, rate_limit, rate_window_ms, rate_by_partition,
        rate_burst
      FROM ${t.flowRules} ORDER BY scope, name`,
    (rows) => rows.map(toRule)
  )

/** `now` minus a number of milliseconds held in a column, as the engine stores a time. */
const before = (t: FlowTables, now: Statement.Fragment, msColumn: string) =>
  t.sql.onDialectOrElse({
    pg: () => t.sql`${now}::timestamptz - (${t.sql.literal(msColumn)}) * interval '1 millisecond'`,
    orElse: () => t.sql`${now} - (${t.sql.literal(msColumn)})`
  })

/**
 * A rule's pace span in milliseconds, as `paceOf` computes it (its burst,
 * by default a tenth of the limit rounded up, over as much of the window),
 * for a rule row `r`.
 */
const paceSpanMs =
  "CAST(r.rate_window_ms AS DOUBLE PRECISION) * coalesce(r.rate_burst, (r.rate_limit + 9) / 10) / r.rate_limit"

interface GroupRow {
  readonly queue: string
  readonly kind: string
  readonly partition: string | null
  readonly n: number
}

/**
 * `JobStore.flowState`, to run in a transaction (one snapshot): a running
 * job counts while its lease holds, as the claims count it.
 */
export const flowState = (
  t: FlowTables,
  options: { readonly due: boolean },
  paused: Effect.Effect<ReadonlyArray<string>, unknown>,
  nowMs: Effect.Effect<number, unknown>
) => {
  const { sql } = t
  return Effect.gen(function* () {
    const now = yield* t.now
    const ms = yield* nowMs
    const rulesNow = yield* rules(t)
    const pausedNow = yield* paused
    const running = yield* sql<GroupRow>`SELECT queue, kind, partition_key AS partition,
        CAST(count(*) AS integer) AS n
      FROM ${t.jobs} WHERE state = 'running' AND lease_expires_at > ${now}
      GROUP BY queue, kind, partition_key`
    const rate = yield* sql<{
      scope: "kind" | "queue"
      name: string
      partition: string
      n: number
      recent: number
    }>`
      SELECT s.scope, s.name, s.partition_key AS partition, CAST(count(*) AS integer) AS n,
        CAST(count(*) FILTER (WHERE s.started_at > ${before(t, now, paceSpanMs)}) AS integer) AS recent
      FROM ${t.flowStarts} s JOIN ${t.flowRules} r ON r.scope = s.scope AND r.name = s.name
      WHERE r.rate_limit IS NOT NULL AND s.started_at > ${before(t, now, "r.rate_window_ms")}
      GROUP BY s.scope, s.name, s.partition_key`
    const due = options.due
      ? yield* sql<GroupRow>`SELECT queue, kind, partition_key AS partition,
            CAST(count(*) AS integer) AS n
          FROM ${t.jobs} WHERE state IN ('available', 'scheduled', 'retryable') AND run_at <= ${now}
          GROUP BY queue, kind, partition_key`
      : []
    const state: JobStore.FlowState = {
      now: ms,
      rules: rulesNow,
      paused: pausedNow,
      running: running.map((g) => ({
        queue: g.queue,
        kind: g.kind,
        partition: g.partition,
        running: Number(g.n)
      })),
      rate: rate.map((r) => ({
        scope: r.scope,
        name: r.name,
        partition: r.partition === "" ? null : r.partition,
        starts: Number(r.n),
        recent: Number(r.recent)
      })),
      due: due.map((g) => ({ queue: g.queue, kind: g.kind, partition: g.partition, due: Number(g.n) }))
    }
    return state
  })
}

/**
 * Delete rate-limit starts that no window counts any more: older than their
 * rule's window (and `keepStartsMs`), or left by a rule that is gone. Part
 * of `prune`.
 */
export const pruneStarts = (t: FlowTables) => {
  const { sql } = t
  return Effect.flatMap(
    t.now,
    (now) =>
      sql`DELETE FROM ${t.flowStarts} WHERE NOT EXISTS (
        SELECT 1 FROM ${t.flowRules} r WHERE r.scope = ${t.flowStarts}.scope AND r.name = ${t.flowStarts}.name
          AND r.rate_limit IS NOT NULL
          AND ${t.flowStarts}.started_at > ${before(t, now, `r.rate_window_ms + ${keepStartsMs}`)})`
  )
}
