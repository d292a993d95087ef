/**
 * Engine-independent rules of `list`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import { parseId } from "./core.js"

/**
 * The page size a `list` filter asks for, as every engine applies it: a whole
 * number from 1 to `JobStore.maxListLimit`; `defaultListLimit` when absent or
 * not a number.
 */
export const listLimit = (limit: number | undefined): number =>
  limit === undefined || Number.isNaN(limit)
    ? JobStore.defaultListLimit
    : Math.max(1, Math.min(JobStore.maxListLimit, Math.floor(limit)))

/**
 * The order `paused` lists queues in, on every engine: by the queue name's
 * code points (PostgreSQL `COLLATE "C"`, SQLite `BINARY`).
 */
export const byCodePoint = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

/** Every job matching `filter`, newest first, read page by page. */
export const listAll = (
  store: JobStore.Service,
  filter: Omit<JobStore.ListFilter, "limit" | "cursor">
): Effect.Effect<Array<JobStore.JobRecord>, JobStore.JobStoreError> =>
  Effect.gen(function* () {
    const jobs: Array<JobStore.JobRecord> = []
    let cursor: string | null = null
    do {
      const page: JobStore.ListPage = yield* store.list({ ...filter, limit: JobStore.maxListLimit, cursor })
      jobs.push(...page.jobs)
      cursor = page.nextCursor
    } while (cursor !== null)
    return jobs
  })

/**
 * The ids a filter allows, before the page boundary: `from` and up, below
 * `below` (no upper bound when undefined). Undefined when no job can match:
 * a cursor or id bound that cannot name a job, or an empty range.
 */
export interface IdBounds {
  readonly from: number
  readonly below: number | undefined
}

/** The id bounds of `filter` and its cursor (see `IdBounds`). */
export const idBounds = (filter: JobStore.ListFilter): IdBounds | undefined => {
  let from = 1
  let below: number | undefined
  if (filter.cursor != null) {
    below = parseId(filter.cursor)
    if (below === undefined) return undefined
  }
  if (filter.idFrom !== undefined) {
    const n = parseId(filter.idFrom)
    if (n === undefined) return undefined
    from = n
  }
  if (filter.idTo !== undefined) {
    const n = parseId(filter.idTo)
    if (n === undefined) return undefined
    below = below === undefined ? n + 1 : Math.min(below, n + 1)
  }
  return below !== undefined && below <= from ? undefined : { from, below }
}

/**
 * The ids one page of a bounded list reads (`JobStore.listScanWindow` of
 * them, ending below the boundary), given the newest id stored (`newest`,
 * 0 when the store is empty); undefined when there are none.
 */
export const scanWindow = (
  bounds: IdBounds,
  newest: number
): { readonly lo: number; readonly hi: number } | undefined => {
  const hi = Math.min(bounds.below ?? newest + 1, newest + 1)
  if (hi <= bounds.from) return undefined
  return { lo: Math.max(bounds.from, hi - JobStore.listScanWindow), hi }
}

/** The cursor after a bounded page that did not fill: the window's start, unless nothing lies below it. */
export const windowCursor = (bounds: IdBounds, lo: number): string | null =>
  lo > bounds.from ? String(lo) : null

/** Does `payload` (an encoded payload) hold `match.value` at `match.path`? As the SQL engines compare. */
export const matchesPayload = (payload: unknown, match: JobStore.PayloadMatch): boolean => {
  let at: unknown = payload
  for (const key of match.path) {
    if (typeof at !== "object" || at === null || Array.isArray(at) || !Object.hasOwn(at, key)) return false
    at = (at as Record<string, unknown>)[key]
  }
  return at === match.value
}
