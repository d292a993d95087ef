/**
 * Engine-independent rules of `list`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"

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
