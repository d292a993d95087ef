/**
 * Flow control off the claim path: the flow state, read by the statements
 * shared with PostgreSQL in one read transaction.
 */
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as FlowStatements from "../store/flowStatements.js"
import * as Statements from "../store/statements.js"

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
