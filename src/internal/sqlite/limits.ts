/**
 * Flow control off the claim path: storing the rules and reading the flow
 * state. The state is read by the statements shared with PostgreSQL, in one
 * read transaction; the rules are written here because better-sqlite3
 * binds no booleans (`rate_by_partition` is stored as 0 or 1).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FlowControl from "../../FlowControl.js"
import * as JobStore from "../../JobStore.js"
import * as FlowStatements from "../store/flowStatements.js"
import * as Statements from "../store/statements.js"

/** `JobStore.declareLimits`, to run in a transaction: an empty rule removes its scope's stored rule. */
export const declareLimits = (sql: SqlClient.SqlClient, rules: ReadonlyArray<FlowControl.Rule>) =>
  Effect.forEach(
    rules,
    (rule) =>
      FlowControl.isEmpty(rule)
        ? sql`DELETE FROM nightshift_flow_rules WHERE scope = ${rule.scope} AND name = ${rule.name}`
        : sql`INSERT INTO nightshift_flow_rules
            (scope, name, global_limit, per_partition, rate_limit, rate_window_ms, rate_by_partition)
          VALUES (${rule.scope}, ${rule.name}, ${rule.global}, ${rule.perPartition}, ${rule.rateLimit},
            ${rule.rateWindowMs}, ${rule.rateByPartition ? 1 : 0})
          ON CONFLICT (scope, name) DO UPDATE SET global_limit = excluded.global_limit,
            per_partition = excluded.per_partition, rate_limit = excluded.rate_limit,
            rate_window_ms = excluded.rate_window_ms, rate_by_partition = excluded.rate_by_partition`,
    { discard: true }
  )

/** `JobStore.flowState`, in one read transaction (one snapshot of the file). */
export const flowState = (tables: FlowStatements.FlowTables, options: { readonly due: boolean }) =>
  tables.sql
    .withTransaction(
      FlowStatements.flowState(tables, options, Statements.paused(tables), Clock.currentTimeMillis)
    )
    .pipe(
      Effect.mapError((cause) =>
        cause instanceof SqlError || cause instanceof JobStore.JobStoreError
          ? cause
          : new JobStore.JobStoreError({ message: `SqliteStore.flowState failed: ${String(cause)}`, cause })
      )
    )
