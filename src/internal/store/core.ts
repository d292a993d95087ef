/**
 * The engine core: the rules of the job lifecycle that do not depend on a
 * dialect, written once and used by the memory, SQLite and PostgreSQL
 * engines. Engines keep only how they store and find rows.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import { withSpanIfTraced } from "../tracing.js"
import { storableOutcome } from "./outcome.js"

// ---------------------------------------------------------------------------
// States

/** States in which a job waits to be claimed. */
export const waitingStates: ReadonlyArray<JobStore.JobState> = ["available", "scheduled", "retryable"]

const waiting = new Set(waitingStates)
const final = new Set(JobStore.finalStates)

/** Does a job in `state` wait to be claimed? */
export const isWaiting = (state: JobStore.JobState): boolean => waiting.has(state)

/** Does a job in `state` only leave it by hand (retry) or by pruning? */
export const isFinal = (state: JobStore.JobState): boolean => final.has(state)

/** A list of states as an SQL list of literals, e.g. `('available', 'scheduled')`. */
export const sqlList = (states: ReadonlyArray<JobStore.JobState>): string =>
  `(${states.map((state) => `'${state}'`).join(", ")})`

/** The states whose jobs hold their dedupe key, as an SQL list. */
export const activeList = sqlList(JobStore.activeStates)

/** The waiting states, as an SQL list. */
export const waitingList = sqlList(waitingStates)

/** The final states, as an SQL list. */
export const finalList = sqlList(JobStore.finalStates)

// ---------------------------------------------------------------------------
// Ids and claim order

/**
 * The row number a job id names, or undefined when the text cannot name a
 * job on any engine: ids are positive whole numbers written without sign or
 * leading zeros, up to `Number.MAX_SAFE_INTEGER`.
 */
export const parseId = (id: string): number | undefined => {
  if (!/^[1-9][0-9]{0,15}$/.test(id)) return undefined
  const n = Number(id)
  return Number.isSafeInteger(n) ? n : undefined
}

/** Can `id` name a job? */
export const isJobId = (id: string): boolean => parseId(id) !== undefined

/** Two ids in numeric order (as written by `parseId`'s rule, shorter is smaller). */
export const compareIds = (a: string, b: string): number =>
  a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)

/** The order claims take due jobs in: priority, then run-at, then id. */
export const claimOrder = (a: JobStore.JobRecord, b: JobStore.JobRecord): number =>
  a.priority - b.priority || a.runAt - b.runAt || compareIds(a.id, b.id)

// ---------------------------------------------------------------------------
// Enqueue: duplicates within one call

/** The identity a dedupe key is unique under: the kind and the key. */
export const dedupeIdentity = (kind: string, key: string): string => `${kind}\u0000${key}`

/**
 * The jobs of one enqueue call with in-call duplicates folded: `unique` holds
 * the first job of each (kind, dedupe key); input `i` maps to
 * `unique[slot[i]]`, and `folded[i]` says it repeated an earlier input.
 */
export interface Folded {
  readonly unique: ReadonlyArray<JobStore.EnqueueInput>
  readonly slot: ReadonlyArray<number>
  readonly folded: ReadonlyArray<boolean>
}

/** Fold the inputs that repeat the kind and dedupe key of an earlier input of the call. */
export const foldDuplicates = (jobs: ReadonlyArray<JobStore.EnqueueInput>): Folded => {
  const unique: Array<JobStore.EnqueueInput> = []
  const slot: Array<number> = []
  const folded: Array<boolean> = []
  const seen = new Map<string, number>()
  for (const job of jobs) {
    const key = job.dedupeKey === undefined ? undefined : dedupeIdentity(job.kind, job.dedupeKey)
    const first = key === undefined ? undefined : seen.get(key)
    if (first !== undefined) {
      slot.push(first)
      folded.push(true)
      continue
    }
    if (key !== undefined) seen.set(key, unique.length)
    slot.push(unique.length)
    folded.push(false)
    unique.push(job)
  }
  return { unique, slot, folded }
}

/** The result of every input, from the results of the unique jobs the call stored. */
export const unfold = (
  folded: Folded,
  stored: ReadonlyArray<JobStore.EnqueueResult>
): Array<JobStore.EnqueueResult> =>
  folded.slot.map((s, i) => {
    const result = stored[s]!
    return folded.folded[i]! && !result.deduped ? { id: result.id, deduped: true } : result
  })

// ---------------------------------------------------------------------------
// Settle: outcome → next state

/** How an outcome changes its job. */
export interface Change {
  readonly state: JobStore.JobState
  /** New run-at, this long from now; null keeps the job's run-at. */
  readonly delayMs: number | null
  /** 1 when the attempt is handed back uncounted (snooze, release). */
  readonly uncount: 0 | 1
  /** Does the job end (a finish time is set)? */
  readonly final: boolean
  /** The error to append to the job's errors, if any. */
  readonly error: JobStore.AttemptErrorInput | null
}

/** The change an outcome makes (store it through `applicable`, which cleans it first). */
export const change = (stored: JobStore.Outcome): Change => {
  switch (stored._tag) {
    case "completed":
      return { state: "completed", delayMs: null, uncount: 0, final: true, error: null }
    case "retry":
      return { state: "retryable", delayMs: stored.delayMs, uncount: 0, final: false, error: stored.error }
    case "discard":
      return { state: "discarded", delayMs: null, uncount: 0, final: true, error: stored.error }
    case "snooze":
      return {
        state: stored.delayMs > 0 ? "scheduled" : "available",
        delayMs: stored.delayMs,
        uncount: 1,
        final: false,
        error: null
      }
    case "cancelled":
      return { state: "cancelled", delayMs: null, uncount: 0, final: true, error: stored.error ?? null }
    case "release":
      return { state: "available", delayMs: null, uncount: 1, final: false, error: null }
  }
}

/**
 * A pending cancel request wins over an outcome that would run the job again:
 * the job ends `cancelled` instead (its run-at kept).
 */
export const cancelWins = (next: Change, cancelRequested: boolean): boolean => cancelRequested && !next.final

/** A settlement with the row number its id names. */
export interface Applicable {
  readonly num: number
  readonly settlement: JobStore.Settlement
  readonly change: Change
}

/**
 * The settlements a store applies, each with its change from the outcome
 * made storable (`storableOutcome`): those whose id can name a job, and of
 * an id given twice in one batch only the first (the second is reported not
 * applied, on every engine).
 */
export const applicable = (settlements: ReadonlyArray<JobStore.Settlement>): Array<Applicable> => {
  const seen = new Set<number>()
  const out: Array<Applicable> = []
  for (const settlement of settlements) {
    const num = parseId(settlement.id)
    if (num === undefined || seen.has(num)) continue
    seen.add(num)
    out.push({ num, settlement, change: change(storableOutcome(settlement.outcome)) })
  }
  return out
}

/** The result of every settlement, given the state each applied id ended in. */
export const settleResults = (
  settlements: ReadonlyArray<JobStore.Settlement>,
  applied: ReadonlyMap<string, JobStore.JobState>
): Array<JobStore.SettleResult> => {
  const reported = new Set<string>()
  return settlements.map((s): JobStore.SettleResult => {
    const state = reported.has(s.id) ? undefined : applied.get(s.id)
    reported.add(s.id)
    return state === undefined
      ? { id: s.id, applied: false, state: null }
      : { id: s.id, applied: true, state }
  })
}

// ---------------------------------------------------------------------------
// Rescue

/** The error kind a rescued attempt records. */
export const rescuedKind = "rescued"

/**
 * The message a rescued attempt records, in parts so that SQL engines build
 * it in the statement: `before + (owner ?? unknownOwner) + after`.
 */
export const rescueMessageParts = {
  before: "the lease held by ",
  unknownOwner: "an unknown runner",
  after: " expired before the attempt was settled: the runner died or stopped sending heartbeats"
} as const

/**
 * The message of a job taken back because its lease ends later than any
 * runner sets one (`JobStore.maxLeaseMs` ahead): written by hand, or the
 * store's clock went back. Same parts as `rescueMessageParts`.
 */
export const farLeaseMessageParts = {
  before: rescueMessageParts.before,
  unknownOwner: rescueMessageParts.unknownOwner,
  after: ` ends later than any runner sets a lease (at most ${JobStore.maxLeaseMs / 3_600_000} hours ahead): taken back as expired`
} as const

/** The message a rescued attempt records (`farLease`: see `farLeaseMessageParts`). */
export const rescueMessage = (owner: string | null, farLease = false): string => {
  const parts = farLease ? farLeaseMessageParts : rescueMessageParts
  return parts.before + (owner ?? parts.unknownOwner) + parts.after
}

/** Where a job whose lease expired goes: cancelled when asked, discarded when out of attempts, else retryable now. */
export const rescuedState = (job: {
  readonly cancelRequested: boolean
  readonly attempt: number
  readonly maxAttempts: number
}): JobStore.JobState =>
  job.cancelRequested ? "cancelled" : job.attempt >= job.maxAttempts ? "discarded" : "retryable"

// ---------------------------------------------------------------------------
// Driver errors

/**
 * Run one store operation of a SQL engine: a driver error becomes a
 * `JobStoreError` whose message names the engine, the operation and what the
 * driver said (`describe`), and the operation is traced as `<engine>.<name>`
 * when a tracer is installed (with Effect's default tracer no span is made:
 * nothing would read it).
 */
export const operation =
  (engine: "PgStore" | "SqliteStore", name: string, describe: (error: SqlError) => string) =>
  <A, R>(
    effect: Effect.Effect<A, SqlError | JobStore.JobStoreError, R>
  ): Effect.Effect<A, JobStore.JobStoreError, R> =>
    effect.pipe(
      Effect.catchTag("SqlError", (error) =>
        Effect.fail(
          new JobStore.JobStoreError({
            message: `${engine}.${name} failed: ${describe(error)}`,
            cause: error
          })
        )
      ),
      withSpanIfTraced(`${engine}.${name}`, { captureStackTrace: false })
    )
