/**
 * The hot path of the PostgreSQL store: enqueue, claim, heartbeat, settle
 * and rescue, each one statement for a whole batch (prune: `finished.ts`).
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import { claimedErrors, storableLease, validFence } from "../store/leases.js"
import { storableText } from "../store/outcome.js"
import { type Ctx, millis, type Now, run } from "./context.js"
import * as Direct from "./direct.js"
import { type JobRow, toRecord } from "./rows.js"
import { messageOf } from "./schema.js"
import { enqueuedPayloads, notify } from "./wakeups.js"

/** JSON has no NaN or infinity: those travel as the strings float8 reads. */
const float = (n: number | undefined) => (n === undefined || Number.isFinite(n) ? n : String(n))

/**
 * A job as one row of the `enqueue` function's document (positions: see
 * `functions.ts`). The document is these arrays through `JSON.stringify`,
 * which is several times faster than writing the text piece by piece
 * (1.5 MB for 20,000 jobs: 11 ms against 60–170 ms).
 */
const encodeInput = (job: JobStore.EnqueueInput) => [
  job.kind,
  job.queue,
  job.payload,
  job.priority,
  job.maxAttempts,
  float(job.runAt),
  float(job.delayMs),
  job.dedupeKey,
  job.traceId,
  job.spanId,
  job.partition
]

/**
 * A batch whose jobs share everything but their payload and partition key,
 * with no dedupe key, in the shorter form of migration 14's `enqueue`:
 * `{"s": [kind, queue, priority, max_attempts, run_at_ms, delay_ms,
 * trace_id, span_id], "p": [payload, …], "k": [key or null, …]}` ("k" only
 * when some job has a key); undefined for any other batch, which goes as
 * one row per job (`encodeInput`).
 */
const sharedDocument = (batch: ReadonlyArray<JobStore.EnqueueInput>): string | undefined => {
  const first = batch[0]!
  const payloads = new Array<unknown>(batch.length)
  let partitioned = false
  for (let i = 0; i < batch.length; i++) {
    const job = batch[i]!
    if (
      job.dedupeKey !== undefined ||
      job.kind !== first.kind ||
      job.queue !== first.queue ||
      job.priority !== first.priority ||
      job.maxAttempts !== first.maxAttempts ||
      job.runAt !== first.runAt ||
      job.delayMs !== first.delayMs ||
      job.traceId !== first.traceId ||
      job.spanId !== first.spanId
    )
      return undefined
    payloads[i] = job.payload
    if (job.partition !== undefined) partitioned = true
  }
  const shared = [
    first.kind,
    first.queue,
    first.priority,
    first.maxAttempts,
    float(first.runAt),
    float(first.delayMs),
    first.traceId,
    first.spanId
  ]
  return JSON.stringify(
    partitioned
      ? { s: shared, p: payloads, k: batch.map((job) => job.partition ?? null) }
      : { s: shared, p: payloads }
  )
}

/** The enqueue statement: a call of the schema's `enqueue` function with the batch as JSON. */
export const enqueueStatement = (ctx: Ctx, json: string, now: Now, keyed: boolean) =>
  ctx.sql<{ ids: string; deduped: ReadonlyArray<number> }>`
    SELECT ids, deduped FROM ${ctx.table("enqueue")}(${json}::jsonb, ${now.ts}, ${keyed})`

/** `enqueueStatement`'s parameters, in its order (on the database clock "now" is not one). */
export const enqueueParams = (json: string, keyed: boolean): ReadonlyArray<unknown> => [json, keyed]

/** "Now" on the database clock, the store's default: `now()`, no parameter. */
const databaseNow = (ctx: Ctx): Now => Effect.runSync(ctx.now)

/**
 * The texts of the enqueue, claim and settle statements on the database clock,
 * compiled once per store: the hot path sends them with their parameters
 * as prepared statements (`Direct.runPrepared`) instead of building and
 * compiling the statement each time.
 */
const texts = new WeakMap<
  Ctx,
  { readonly enqueue: Direct.Prepared; readonly claim: Direct.Prepared; readonly settle: Direct.Prepared }
>()

/** `texts` of `ctx`, compiled on first use; the store's clock must be the database's. */
export const textsOf = (ctx: Ctx) => {
  const known = texts.get(ctx)
  if (known !== undefined) return known
  const now = databaseNow(ctx)
  const sample: JobStore.ClaimRequest = { kinds: [], queues: [], limit: 0, owner: "", leaseMs: 0 }
  const compiled = {
    enqueue: Direct.prepared(enqueueStatement(ctx, "[]", now, false).compile()[0], ctx.prepared),
    claim: Direct.prepared(claimStatement(ctx, sample, now).compile()[0], ctx.prepared),
    settle: Direct.prepared(settleSql(ctx, [], now).compile()[0], ctx.prepared)
  }
  texts.set(ctx, compiled)
  return compiled
}

/**
 * `JobStore.enqueue`: one call of the schema's `enqueue` function, which
 * inserts the batch, folds dedupe conflicts into the live jobs and sends one
 * wake-up, all in one statement. On its own that statement is its own
 * transaction; in the caller's transaction it runs under a savepoint, so a
 * failed enqueue leaves the caller's transaction usable, and the wake-up
 * fires when the caller commits.
 */
export const enqueue = (
  ctx: Ctx,
  jobs: ReadonlyArray<JobStore.EnqueueInput>
): Effect.Effect<Array<JobStore.EnqueueResult>, SqlError> => {
  if (jobs.length === 0) return Effect.succeed([])
  const keyed = jobs.some((job) => job.dedupeKey !== undefined)
  // Without dedupe keys nothing folds: skip the bookkeeping.
  const folded = keyed ? Core.foldDuplicates(jobs) : undefined
  const batch = folded === undefined ? jobs : folded.unique
  const json = sharedDocument(batch) ?? JSON.stringify(batch.map(encodeInput))
  const statement =
    ctx.clock === "database"
      ? Direct.runPrepared(ctx.pool, textsOf(ctx).enqueue, enqueueParams(json, keyed), () =>
          enqueueStatement(ctx, json, databaseNow(ctx), keyed)
        )
      : Effect.flatMap(ctx.now, (now) => run(ctx, enqueueStatement(ctx, json, now, keyed)))
  return Effect.serviceOption(SqlClient.TransactionConnection).pipe(
    Effect.flatMap((transaction) =>
      transaction._tag === "Some" ? ctx.sql.withTransaction(statement) : statement
    ),
    Effect.map(([row]) => {
      const ids = row!.ids.split(",")
      const deduped = row!.deduped.length === 0 ? undefined : new Set(row!.deduped)
      const stored = new Array<JobStore.EnqueueResult>(ids.length)
      for (let n = 0; n < ids.length; n++) stored[n] = { id: ids[n]!, deduped: deduped?.has(n + 1) ?? false }
      return folded === undefined ? stored : Core.unfold(folded, stored)
    })
  )
}

/**
 * The last partition key a store instance served in each queue (`''` for
 * the jobs without a key): where its next fair claim starts. Kept in memory,
 * per instance, never shared (see `claim_flow` in `functions.ts`).
 */
export type Cursors = Map<string, string>

/** A row of `claim_flow`: a job row and its key's place in the claim's ring (0 outside the fair path). */
interface ClaimRow extends JobRow {
  readonly flow_ord: number
}

/**
 * The claim statement: a call of the schema's `claim_flow` function
 * (migration 6), which enforces the stored flow rules, serves partition keys
 * in turn from each queue's cursor, and otherwise runs migration 5's
 * `UPDATE … FROM (SELECT … ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED)`
 * with a plan that does not depend on table statistics (see `functions.ts`).
 * It returns the rows in the shape of `rows.ts`'s `columns` plus `flow_ord`:
 * the statement sent is a bare call, cheap to parse and plan on every call.
 * The lease is clamped to `JobStore.maxLeaseMs`; a due row whose fence is at
 * the maximum is discarded by the function and not returned (migration 4).
 * `queues` must not repeat a queue.
 */
export const claimStatement = (
  ctx: Ctx,
  request: JobStore.ClaimRequest,
  now: Now,
  queues: ReadonlyArray<string> = request.queues,
  cursors: ReadonlyArray<string | null> = queues.map(() => null)
) =>
  ctx.sql<ClaimRow>`
    SELECT * FROM ${ctx.table("claim_flow")}(
      ${request.kinds}::text[], ${queues}::text[], ${request.limit}::int, ${request.owner}::text,
      ${storableLease(request.leaseMs)}::float8, ${now.ts}, ${cursors}::text[])`

/** A claimed row as a record; an errors column that is not a list is read as one (see `claimedErrors`). */
const claimedRecord = (row: JobRow): JobStore.JobRecord => {
  // `toRecord` picks the job's columns: `flow_ord` stays behind without a copy of the row.
  const record = toRecord(row)
  return Array.isArray(record.errors)
    ? record
    : { ...record, errors: claimedErrors(record.errors, record.attempt) }
}

/**
 * `JobStore.claim`: passes each queue's cursor and moves it to the key of
 * the highest ring position served in that queue.
 */
export const claim = (ctx: Ctx, request: JobStore.ClaimRequest, cursors: Cursors) => {
  if (request.limit <= 0 || request.queues.length === 0 || request.kinds.length === 0)
    return Effect.succeed([])
  const rows =
    ctx.clock === "database"
      ? Effect.suspend(() => {
          const { queues, from } = queuesFrom(request, cursors)
          return Direct.runPrepared(ctx.pool, textsOf(ctx).claim, claimParams(request, queues, from), () =>
            claimStatement(ctx, request, databaseNow(ctx), queues, from)
          )
        })
      : Effect.flatMap(ctx.now, (now) => run(ctx, claimFromCursors(ctx, request, now, cursors)))
  return Effect.map(rows, (rows) => claimed(rows, cursors))
}

/** `request`'s queues, each once, and the cursor each is claimed from. */
const queuesFrom = (request: JobStore.ClaimRequest, cursors: Cursors) => {
  const queues = [...new Set(request.queues)]
  return { queues, from: queues.map((queue) => cursors.get(queue) ?? null) }
}

/** The claim statement for `request`'s queues (each once), each from its cursor. */
const claimFromCursors = (ctx: Ctx, request: JobStore.ClaimRequest, now: Now, cursors: Cursors) => {
  const { queues, from } = queuesFrom(request, cursors)
  return claimStatement(ctx, request, now, queues, from)
}

/** `claimStatement`'s parameters, in its order (on the database clock "now" is not one). */
export const claimParams = (
  request: JobStore.ClaimRequest,
  queues: ReadonlyArray<string>,
  cursors: ReadonlyArray<string | null>
): ReadonlyArray<unknown> => [
  request.kinds,
  queues,
  request.limit,
  request.owner,
  storableLease(request.leaseMs),
  cursors
]

/** The claimed rows as records in claim order; each queue's cursor moves to the key of the highest ring position served. */
const claimed = (rows: ReadonlyArray<ClaimRow>, cursors: Cursors) => {
  const last = new Map<string, ClaimRow>()
  for (const row of rows) {
    const best = last.get(row.queue)
    if (row.flow_ord > 0 && (best === undefined || row.flow_ord > best.flow_ord)) last.set(row.queue, row)
  }
  for (const [queue, row] of last) cursors.set(queue, row.partition_key ?? "")
  return rows.map(claimedRecord).sort(Core.claimOrder)
}

/**
 * `JobStore.heartbeat`: extend every lease still held under its fence, to
 * now + `leaseMs` clamped to `JobStore.maxLeaseMs`. A lease whose id or
 * fence no row can have is reported lost without reaching the database.
 *
 * The rows are locked in id order, as the `settle` function locks them, so
 * heartbeats and settles over the same jobs wait for each other instead of
 * deadlocking. The update does not test state and owner again: the lock was
 * taken on rows that passed those tests on their latest version, and nothing
 * else can change them before this transaction ends.
 */
export const heartbeat = (
  ctx: Ctx,
  owner: string,
  leases: ReadonlyArray<JobStore.Lease>,
  leaseMs: number
) => {
  const valid = leases.filter((l) => Core.isJobId(l.id) && validFence(l.fence))
  if (valid.length === 0)
    return Effect.succeed(leases.map((l) => ({ id: l.id, held: false, cancelRequested: false })))
  const { sql } = ctx
  return Effect.flatMap(ctx.now, (now) =>
    run(
      ctx,
      sql<{ id: string; cancel_requested: boolean }>`
      WITH l AS (
        SELECT * FROM unnest(${arrayText(valid.map((l) => l.id))}::bigint[], ${arrayText(valid.map((l) => l.fence))}::int[]) AS l(id, fence)
      ),
      locked AS (
        SELECT j.id FROM ${ctx.table("jobs")} j JOIN l ON j.id = l.id
        WHERE j.fence = l.fence AND j.state = 'running' AND j.lease_owner = ${owner}
        ORDER BY j.id
        FOR UPDATE OF j
      )
      UPDATE ${ctx.table("jobs")} AS j SET lease_expires_at = ${now.ts} + ${millis(ctx, storableLease(leaseMs))}
      FROM locked
      WHERE j.id = locked.id
      RETURNING j.id::text AS id, j.cancel_requested`
    ).pipe(
      Effect.map((rows) => {
        const held = new Map(rows.map((r) => [r.id, r.cancel_requested]))
        return leases.map(
          (lease): JobStore.LeaseStatus => ({
            id: lease.id,
            held: held.has(lease.id),
            cancelRequested: held.get(lease.id) ?? false
          })
        )
      })
    )
  )
}

/**
 * The settle statement: a call of the schema's `settle` function (migration
 * 10), which writes all outcomes under their fences, files the jobs that
 * ended into `jobs_done` and wakes runners for the jobs it made due now, in
 * one statement with a plan made once per connection (see `functions.ts`).
 */
const settleStatement = (ctx: Ctx, valid: ReadonlyArray<Core.Applicable>) =>
  ctx.clock === "database"
    ? Direct.runPrepared(ctx.pool, textsOf(ctx).settle, settleParams(valid), () =>
        settleSql(ctx, valid, databaseNow(ctx))
      )
    : Effect.flatMap(ctx.now, (now) => run(ctx, settleSql(ctx, valid, now)))

/** The settle statement's parameters, in its order (on the database clock "now" is not one): eight arrays. */
export const settleParams = (valid: ReadonlyArray<Core.Applicable>) => {
  const col = (f: (c: Core.Change) => unknown) => arrayText(valid.map((s) => f(s.change)))
  return [
    arrayText(valid.map((s) => s.settlement.id)),
    arrayText(valid.map((s) => s.settlement.fence)),
    col((c) => c.state),
    col((c) => c.delayMs),
    col((c) => c.uncount),
    col((c) => c.final),
    col((c) => c.error?.kind ?? null),
    col((c) => c.error?.message ?? null)
  ] as const
}

/** The settle statement at `now`. */
export const settleSql = (ctx: Ctx, valid: ReadonlyArray<Core.Applicable>, now: Now) => {
  const [ids, fences, states, delays, uncounts, finals, kinds, messages] = settleParams(valid)
  return ctx.sql<{ id: string; state: JobStore.JobState }>`
    SELECT job_id AS id, job_state AS state FROM ${ctx.table("settle")}(
      ${ids}::bigint[], ${fences}::int[], ${states}::text[], ${delays}::float8[], ${uncounts}::int[],
      ${finals}::bool[], ${kinds}::text[], ${messages}::text[], ${now.ts})`
}

/**
 * An array as the text of PostgreSQL's array literal, sent as one text
 * parameter: what pg's own serialisation of an array sends, for less work.
 * Numbers and booleans go bare; strings are quoted, and escaped only when
 * they hold a quote or a backslash (anything else is written as its
 * `String`, as pg does). A settle sends eight arrays a batch, and pg's
 * version ran every element through two regular expressions.
 */
const arrayText = (values: ReadonlyArray<unknown>): string => {
  let text = "{"
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) text += ","
    if (v === null || v === undefined) text += "NULL"
    else if (typeof v === "number") text += String(v)
    else if (typeof v === "boolean") text += v ? "t" : "f"
    else {
      const s = String(v)
      text +=
        s.includes('"') || s.includes("\\")
          ? `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`
          : `"${s}"`
    }
  }
  return `${text}}`
}

/**
 * Did PostgreSQL refuse the data of a statement (a data exception, a broken
 * constraint, a value past a limit), as opposed to failing to run it (a lost
 * connection, a timeout), which a retry may cure?
 */
const refusedData = (error: SqlError): boolean => {
  const code = (error.cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23") || code.startsWith("54"))
}

/** What replaces a settlement whose outcome the database refused: discard, saying why. */
const refusedOutcome = (refused: Core.Applicable, error: SqlError): Core.Applicable => ({
  ...refused,
  change: Core.change({
    _tag: "discard",
    error: {
      kind: "unstorable",
      message: storableText(
        `PostgreSQL refused to store this attempt's ${refused.settlement.outcome._tag} outcome (${messageOf(error)}), so the job is discarded instead`,
        2_000
      )
    }
  })
})

/**
 * Settle one job on its own; when PostgreSQL refuses its outcome, discard the
 * job with an error that says why instead. When it refuses that too (the
 * settlement itself is malformed, say a fence out of range), the settlement
 * is not applied, and the warning says why.
 */
const settleAlone = (ctx: Ctx, one: Core.Applicable) => {
  const { fence, id, outcome } = one.settlement
  return settleStatement(ctx, [one]).pipe(
    Effect.catchIf(refusedData, (error) =>
      Effect.logWarning(
        `nightshift: PostgreSQL refused the ${outcome._tag} outcome of job ${id} (fence ${fence}): ${messageOf(error)}; discarding the job instead`
      ).pipe(
        Effect.zipRight(settleStatement(ctx, [refusedOutcome(one, error)])),
        Effect.catchIf(refusedData, (again) =>
          Effect.as(
            Effect.logWarning(
              `nightshift: PostgreSQL refused to settle job ${id} (fence ${fence}) at all: ${messageOf(again)}; the settlement is not applied`
            ),
            []
          )
        )
      )
    )
  )
}

/**
 * Write settlements (see `Core.applicable`): in one statement, or, when
 * PostgreSQL refuses the batch's data, each on its own (see `settleAlone`),
 * so that the rest settle as they are.
 */
export const settleIsolated = (ctx: Ctx, valid: ReadonlyArray<Core.Applicable>) =>
  valid.length === 1
    ? settleAlone(ctx, valid[0]!)
    : settleStatement(ctx, valid).pipe(
        Effect.catchIf(refusedData, () =>
          Effect.map(
            Effect.forEach(valid, (s) => settleAlone(ctx, s)),
            (rows) => rows.flat()
          )
        )
      )

/**
 * `JobStore.settle`: the settlements `Core.applicable` keeps, written by
 * `settleIsolated`: a row PostgreSQL refuses fails alone, never its batch.
 */
export const settle = (ctx: Ctx, settlements: ReadonlyArray<JobStore.Settlement>) => {
  const valid = Core.applicable(settlements)
  if (valid.length === 0) return Effect.succeed(Core.settleResults(settlements, new Map()))
  return settleIsolated(ctx, valid).pipe(
    Effect.map((rows) => Core.settleResults(settlements, new Map(rows.map((r) => [r.id, r.state]))))
  )
}

/**
 * A value as the SQL literal PostgreSQL reads as that value sent as a
 * parameter: pg sends every parameter as text of unknown type (arrays as
 * array literals), so a quoted literal of unknown type, in the same place,
 * is read the same way.
 */
const literal = (value: unknown): string => {
  if (value === null || value === undefined) return "NULL"
  const quote = (text: string) =>
    text.includes("\\")
      ? ` E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`
      : `'${text.replaceAll("'", "''")}'`
  if (Array.isArray(value)) return quote(arrayText(value))
  if (value instanceof Date) return quote(value.toISOString())
  if (typeof value === "object") return quote(JSON.stringify(value))
  return quote(String(value))
}

/** A statement's text with its parameters written in as literals (see `literal`). */
const inline = (statement: { readonly compile: () => readonly [string, ReadonlyArray<unknown>] }) => {
  const [text, params] = statement.compile()
  return text.replace(/\$(\d+)/g, (_, n: string) => literal(params[Number(n) - 1]))
}

/**
 * `JobStore.settleAndClaim`: the settle statement, then the claim, sent as
 * one simple query (one round trip; parameters written in as literals, as
 * the simple protocol takes none). PostgreSQL runs the two in one implicit
 * transaction, each statement with a snapshot of its own, so the claim
 * counts the places the settle freed, and either both commit or neither
 * does. A settle PostgreSQL refuses (the whole transaction then rolls back)
 * is written as `settle` writes it, and the claim is left out.
 */
export const settleAndClaim = (
  ctx: Ctx,
  settlements: ReadonlyArray<JobStore.Settlement>,
  request: JobStore.ClaimRequest,
  cursors: Cursors
): Effect.Effect<JobStore.SettledAndClaimed, SqlError> => {
  const valid = Core.applicable(settlements)
  if (valid.length === 0 || request.limit <= 0 || request.queues.length === 0 || request.kinds.length === 0)
    return Effect.zipWith(settle(ctx, settlements), claim(ctx, request, cursors), (settled, claimed) => ({
      settled,
      claimed
    }))
  return Effect.flatMap(ctx.now, (now) => {
    const text = `${inline(settleSql(ctx, valid, now))};\n${inline(claimFromCursors(ctx, request, now, cursors))}`
    return run(ctx, ctx.sql.unsafe<object>(text)).pipe(
      Effect.map((results) => {
        const [settledRows, claimRows] = results as unknown as [
          ReadonlyArray<{ id: string; state: JobStore.JobState }>,
          ReadonlyArray<ClaimRow>
        ]
        return {
          settled: Core.settleResults(settlements, new Map(settledRows.map((r) => [r.id, r.state]))),
          claimed: claimed(claimRows, cursors)
        }
      }),
      Effect.catchIf(refusedData, () =>
        Effect.map(settle(ctx, settlements), (settled) => ({ settled, claimed: [] }))
      )
    )
  })
}

const rescued = Core.rescueMessageParts
const far = Core.farLeaseMessageParts

/**
 * `JobStore.rescue`: end expired leases, oldest first, skipping rows being
 * settled right now; wake runners for the jobs made due. A running job
 * without a lease, or whose lease ends later than now + `JobStore.maxLeaseMs`
 * (no runner sets that), counts as expired. Each condition is a range of
 * `jobs_lease_idx`, which holds only running rows.
 */
export const rescue = (ctx: Ctx, limit: number) => {
  if (limit <= 0) return Effect.succeed([])
  return Effect.flatMap(ctx.now, (now) => {
    const latest = ctx.sql`(${now.ts} + ${millis(ctx, JobStore.maxLeaseMs)})`
    return ctx.sql<JobStore.Rescued>`
      WITH expired AS (
        SELECT id FROM ${ctx.table("jobs")}
        WHERE state = 'running'
          AND (lease_expires_at <= ${now.ts} OR lease_expires_at IS NULL OR lease_expires_at > ${latest})
        ORDER BY lease_expires_at NULLS FIRST
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ),
      decided AS (
        SELECT j.id, CASE WHEN j.cancel_requested THEN 'cancelled'
                          WHEN j.attempt >= j.max_attempts THEN 'discarded'
                          ELSE 'retryable' END AS next
        FROM ${ctx.table("jobs")} j JOIN expired USING (id)
      )
      UPDATE ${ctx.table("jobs")} AS j SET
        state = d.next,
        run_at = CASE WHEN d.next = 'retryable' THEN ${now.ts} ELSE j.run_at END,
        finalized_at = CASE WHEN d.next = 'retryable' THEN NULL ELSE ${now.ts} END,
        lease_owner = NULL, lease_expires_at = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
          'attempt', j.attempt, 'at', ${now.ms}, 'kind', ${Core.rescuedKind}::text,
          'startedAt', floor(extract(epoch from j.attempted_at) * 1000), 'node', j.lease_owner,
          'message', CASE WHEN j.lease_expires_at > ${latest}
            THEN ${far.before}::text || coalesce(j.lease_owner, ${far.unknownOwner}::text) || ${far.after}::text
            ELSE ${rescued.before}::text || coalesce(j.lease_owner, ${rescued.unknownOwner}::text) || ${rescued.after}::text
          END))
      FROM decided d WHERE j.id = d.id
      RETURNING j.id::text AS id, j.kind, j.queue, j.state`.pipe(
      Effect.tap((rescued) =>
        notify(ctx, enqueuedPayloads(rescued.filter((r) => r.state === "retryable").map((r) => r.queue)))
      )
    )
  })
}
