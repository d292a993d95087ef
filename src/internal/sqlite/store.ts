/**
 * The SQLite engine: every `JobStore` operation as a few prepared statements
 * on one `SqlClient`. Most batches travel as one JSON parameter read by
 * `json_each`, so a statement's text (and its prepared form) does not depend
 * on the batch size; enqueue binds rows in chunks of fixed sizes instead
 * (`enqueue.ts`). Time is read from Effect's `Clock` and bound as epoch ms.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as JobStore from "../../JobStore.js"
import * as Bulk from "../store/bulk.js"
import * as FlowStatements from "../store/flowStatements.js"
import * as Hints from "../store/hints.js"
import * as Statements from "../store/statements.js"
import * as Claim from "./claim.js"
import { connect } from "./db.js"
import * as Enqueue from "./enqueue.js"
import * as Inspect from "./inspect.js"
import * as Leases from "./leases.js"
import * as Limits from "./limits.js"
import { decode, jobColumns } from "./rows.js"
import { watchCommits } from "./watch.js"

/** Build the service on the `SqlClient` in context (migrations must have run). */
export const make: Effect.Effect<
  JobStore.Service,
  JobStore.JobStoreError,
  SqlClient.SqlClient | Scope.Scope
> = Effect.gen(function* () {
  const db = yield* connect
  const hints = yield* Hints.make()
  yield* Effect.addFinalizer(() => hints.shutdown)
  const hint = hints.publish
  const enqueued = (queues: Iterable<string>) =>
    hint(Array.from(new Set(queues), (queue): JobStore.Wakeup => ({ _tag: "enqueued", queue })))
  const { sql } = db
  yield* watchCommits(sql, db.exec, hint([{ _tag: "changed" }]))
  const tables: FlowStatements.FlowTables = {
    sql,
    jobs: sql.literal("nightshift_jobs"),
    all: sql.literal("nightshift_jobs"),
    pausedQueues: sql.literal("nightshift_paused_queues"),
    cronSlots: sql.literal("nightshift_cron_slots"),
    flowRules: sql.literal("nightshift_flow_rules"),
    flowStarts: sql.literal("nightshift_flow_starts"),
    now: Effect.map(Clock.currentTimeMillis, (now) => sql`${now}`),
    time: (ms) => sql`${ms}`,
    columns: sql.literal(jobColumns),
    read: (statement) => Effect.flatMap(statement.values, decode)
  }
  const claim = Claim.makeClaim(tables, db.exec)
  return hints.attach({
    engine: "sqlite",
    enqueue: (jobs) =>
      jobs.length === 0
        ? Effect.succeed([])
        : db.run(
            "enqueue",
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              db.exec.transaction(Enqueue.insert(db.exec, now, jobs))
            ).pipe(
              Effect.tap(({ queues }) => enqueued(queues)),
              Effect.map(({ results }) => results)
            )
          ),
    claim: (request) => db.run("claim", claim(request)),
    heartbeat: (owner, leases, leaseMs) => db.run("heartbeat", Leases.heartbeat(sql, owner, leases, leaseMs)),
    settle: (settlements) =>
      db.run(
        "settle",
        Effect.tap(Leases.settle(db.exec, settlements), ({ queues }) => enqueued(queues)).pipe(
          Effect.map(({ results }) => results)
        )
      ),
    // One write transaction: the claim counts the places the settle freed, and a process
    // sharing the file takes the write lock once per batch instead of twice. The lock is
    // taken first (the engine's own transactions begin IMMEDIATE; @effect/sql's, with a
    // tracer, do not), so no read in it comes before its first write.
    settleAndClaim: (settlements, request) =>
      db.run(
        "settleAndClaim",
        db.exec
          .transaction(
            Effect.zipRight(
              Claim.writeLock(db.exec),
              Effect.zip(Leases.settle(db.exec, settlements), claim(request, true))
            )
          )
          .pipe(
            Effect.tap(([{ queues }]) => enqueued(queues)),
            Effect.map(([{ results }, claimed]) => ({ settled: results, claimed }))
          )
      ),
    rescue: (limit) =>
      db.run(
        "rescue",
        Effect.tap(Leases.rescue(sql, limit), (rescued) =>
          enqueued(rescued.filter((r) => r.state === "retryable").map((r) => r.queue))
        )
      ),
    prune: (request) =>
      db.run(
        "prune",
        Effect.tap(Inspect.prune(sql, request), () => FlowStatements.pruneStarts(tables))
      ),
    get: (id) => db.run("get", Statements.get(tables, id)),
    list: (filter) => db.run("list", Statements.list(tables, filter)),
    counts: db.run("counts", Statements.counts(tables)),
    depth: db.run("depth", Statements.depth(tables)),
    activity: (since) =>
      db.run(
        "activity",
        Effect.flatMap(Clock.currentTimeMillis, (until) => Statements.activity(tables, since, until))
      ),
    cancel: (id) =>
      db.run(
        "cancel",
        Effect.tap(sql.withTransaction(Statements.cancel(tables, id)), (result) =>
          result._tag === "requested" ? hint([{ _tag: "cancel", id }]) : Effect.void
        )
      ),
    retry: (id) =>
      db.run(
        "retry",
        Effect.tap(sql.withTransaction(Statements.retry(tables, id)), ({ queue }) =>
          queue === undefined ? Effect.void : enqueued([queue])
        ).pipe(Effect.map(({ result }) => result))
      ),
    retryMany: (ids) =>
      db.run(
        "retryMany",
        Bulk.run(ids, (batch) =>
          Effect.tap(sql.withTransaction(Statements.retryBatch(tables, batch)), ({ queues }) =>
            enqueued(queues)
          ).pipe(Effect.map(({ result }) => result))
        )
      ),
    cancelMany: (ids) =>
      db.run(
        "cancelMany",
        Bulk.run(ids, (batch) =>
          Effect.tap(sql.withTransaction(Statements.cancelBatch(tables, batch)), (result) =>
            result.requested.length === 0
              ? Effect.void
              : hint(result.requested.map((id): JobStore.Wakeup => ({ _tag: "cancel", id })))
          )
        )
      ),
    deleteMany: (ids) =>
      db.run(
        "deleteMany",
        Bulk.run(ids, (batch) => sql.withTransaction(Statements.deleteBatch(tables, batch)))
      ),
    runNow: (id) =>
      db.run(
        "runNow",
        Effect.tap(sql.withTransaction(Statements.runNow(tables, id)), ({ queue }) =>
          queue === undefined ? Effect.void : enqueued([queue])
        ).pipe(Effect.map(({ result }) => result))
      ),
    pause: (queue) => db.run("pause", Statements.pause(tables, queue)),
    resume: (queue) =>
      db.run(
        "resume",
        Effect.tap(Statements.resume(tables, queue), (resumed) => (resumed ? enqueued([queue]) : Effect.void))
      ),
    paused: db.run("paused", Statements.paused(tables)),
    enqueueCronSlot: (input) =>
      db.run(
        "enqueueCronSlot",
        Effect.tap(db.exec.transaction(Enqueue.cronSlot(tables, db.exec, input)), ({ queues }) =>
          enqueued(queues)
        ).pipe(Effect.map(({ result }) => result))
      ),
    lastCronSlot: (name) => db.run("lastCronSlot", Statements.lastCronSlot(tables, name)),
    declareLimits: (rules) =>
      db.run("declareLimits", sql.withTransaction(FlowStatements.declareLimits(tables, rules))),
    flowState: (options) => db.run("flowState", Limits.flowState(tables, options)),
    now: Clock.currentTimeMillis,
    ping: db.run("ping", Effect.asVoid(sql`SELECT 1`)),
    wakeups: hints.stream
  } satisfies JobStore.Service)
})
