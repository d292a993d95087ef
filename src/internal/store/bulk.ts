/**
 * Engine-independent rules of the bulk operations (`retryMany`,
 * `cancelMany`, `deleteMany`): ids given twice count once, text that cannot
 * name a job is `not-found` without reaching the store, and a long list is
 * split into calls of at most `JobStore.maxBulkIds`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import { maxBulkIds } from "../../JobStore.js"
import { parseId } from "./core.js"

/** An id that can name a job, with its row number. */
export interface BulkId {
  readonly id: string
  readonly num: number
}

/** The empty result. */
export const noResult: JobStore.BulkResult = { changed: [], requested: [], skipped: [] }

/** Join results of several calls. */
export const merge = (results: ReadonlyArray<JobStore.BulkResult>): JobStore.BulkResult => {
  const merged = {
    changed: results.flatMap((r) => r.changed),
    requested: results.flatMap((r) => r.requested),
    skipped: results.flatMap((r) => r.skipped)
  }
  return results.some((r) => r.cancelled !== undefined)
    ? { ...merged, cancelled: results.flatMap((r) => r.cancelled ?? []) }
    : merged
}

/** Distinct ids that can name a job, in batches of at most `maxBulkIds`; the rest are `not-found`. */
const prepare = (ids: ReadonlyArray<string>) => {
  const seen = new Set<string>()
  const valid: Array<BulkId> = []
  const skipped: Array<JobStore.BulkSkip> = []
  for (const id of ids) {
    if (seen.has(id)) continue
    seen.add(id)
    const num = parseId(id)
    if (num === undefined) skipped.push({ id, reason: "not-found", state: null })
    else valid.push({ id, num })
  }
  const chunks: Array<ReadonlyArray<BulkId>> = []
  for (let i = 0; i < valid.length; i += maxBulkIds) chunks.push(valid.slice(i, i + maxBulkIds))
  return { chunks, unknown: { changed: [], requested: [], skipped } satisfies JobStore.BulkResult }
}

/**
 * Run a bulk operation: `batch` is called with at most `maxBulkIds` distinct
 * ids that can name a job, in the order given; the others are `not-found`.
 */
export const run = <E, R>(
  ids: ReadonlyArray<string>,
  batch: (ids: ReadonlyArray<BulkId>) => Effect.Effect<JobStore.BulkResult, E, R>
): Effect.Effect<JobStore.BulkResult, E, R> => {
  const { chunks, unknown } = prepare(ids)
  return Effect.map(Effect.forEach(chunks, batch), (results) => merge([...results, unknown]))
}

/** `run` for an engine whose operations are synchronous. */
export const runSync = (
  ids: ReadonlyArray<string>,
  batch: (ids: ReadonlyArray<BulkId>) => JobStore.BulkResult
): JobStore.BulkResult => {
  const { chunks, unknown } = prepare(ids)
  return merge([...chunks.map(batch), unknown])
}

/**
 * The result of one batch from what happened to its ids: `changed` and
 * `requested` by id, and the state of every other id still stored (an id
 * absent from `states` is `not-found`); `reasonOf` names why a stored job
 * was skipped.
 */
export const outcome = (
  batch: ReadonlyArray<BulkId>,
  changed: ReadonlySet<string>,
  requested: ReadonlySet<string>,
  states: ReadonlyMap<string, JobStore.JobState>,
  reasonOf: (id: string, state: JobStore.JobState) => "state" | "dedupe" = () => "state"
): JobStore.BulkResult => {
  const result = {
    changed: [] as Array<string>,
    requested: [] as Array<string>,
    skipped: [] as Array<JobStore.BulkSkip>
  }
  for (const { id } of batch) {
    if (changed.has(id)) result.changed.push(id)
    else if (requested.has(id)) result.requested.push(id)
    else {
      const state = states.get(id)
      result.skipped.push(
        state === undefined
          ? { id, reason: "not-found", state: null }
          : { id, reason: reasonOf(id, state), state }
      )
    }
  }
  return result
}

/** What a bulk action did, in counts: skipped jobs grouped by reason and state. */
export interface Summary {
  changed: number
  requested: number
  readonly skipped: Map<
    string,
    { readonly reason: JobStore.BulkSkip["reason"]; readonly state: JobStore.JobState | null; count: number }
  >
}

/** An empty summary. */
export const summary = (): Summary => ({ changed: 0, requested: 0, skipped: new Map() })

/** Add one result to a summary. */
export const count = (into: Summary, result: JobStore.BulkResult): Summary => {
  into.changed += result.changed.length
  into.requested += result.requested.length
  for (const skip of result.skipped) {
    const key = `${skip.reason}\u0000${skip.state ?? ""}`
    const group = into.skipped.get(key)
    if (group === undefined) into.skipped.set(key, { reason: skip.reason, state: skip.state, count: 1 })
    else group.count++
  }
  return into
}

/**
 * Apply a bulk operation to every job `filter` lists, newest first, a list
 * page (`JobStore.maxBulkIds` jobs) at a time, each page in its own
 * transaction: at most `max` jobs, from `cursor` on. `nextCursor` says
 * where to go on when `max` stopped it (null when every match was seen).
 */
export const matching = <E>(
  store: JobStore.Service,
  filter: Omit<JobStore.ListFilter, "limit" | "cursor">,
  options: { readonly max: number; readonly cursor?: string | null | undefined },
  op: (ids: ReadonlyArray<string>) => Effect.Effect<JobStore.BulkResult, E>
): Effect.Effect<
  { readonly summary: Summary; readonly seen: number; readonly nextCursor: string | null },
  E | JobStore.JobStoreError
> =>
  Effect.gen(function* () {
    const into = summary()
    let seen = 0
    let cursor = options.cursor ?? null
    do {
      const limit = Math.min(maxBulkIds, options.max - seen)
      const page: JobStore.ListPage = yield* store.list({ ...filter, limit, cursor })
      if (page.jobs.length > 0) {
        count(into, yield* op(page.jobs.map((job) => job.id)))
        seen += page.jobs.length
      }
      cursor = page.nextCursor
    } while (cursor !== null && seen < options.max)
    return { summary: into, seen, nextCursor: cursor }
  })
