/**
 * Connections warmed before the hot path needs them.
 *
 * The first call of a store function on a new PostgreSQL connection
 * compiles the function, plans its statements and fills the backend's caches
 * for the tables and indexes they touch: measured here, about 20 ms for
 * `claim_flow`, 9 ms for `settle` and 35–65 ms for the three, beside the
 * 10–20 ms of opening the connection. Whichever job meets a fresh
 * connection waits for all of it, and the pool hands out the connection
 * released last, so a connection that some other statement opened (a
 * rescue, a heartbeat beside a claim and a settle) serves the next claim.
 * The store therefore opens a few connections when it starts and runs each
 * function once on each, with inputs that touch no row and send no
 * notification: a claim of 0 jobs from a queue and kind that cannot exist
 * (names are never empty), a settle and an enqueue of nothing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Ctx } from "./context.js"

/** Connections warmed at start: a claim, a settle and one more statement at once (a heartbeat, a rescue, an enqueue). */
export const warmConnections = 3

/** One statement per function, sent as one simple query: it runs on one connection. */
const text = (schema: string) => `/* nightshift: warm-up */
  SELECT count(*) FROM ${schema}.claim_flow(ARRAY['']::text[], ARRAY['']::text[], 0, '', 0::float8, now(), ARRAY[NULL]::text[]);
  SELECT count(*) FROM ${schema}.settle('{}'::bigint[], '{}'::int[], '{}'::text[], '{}'::float8[], '{}'::int[],
    '{}'::bool[], '{}'::text[], '{}'::text[], now());
  SELECT count(*) FROM ${schema}.enqueue('[]'::jsonb, now(), false)`

/**
 * Run each hot function once on `connections` connections at the same time
 * (so the pool opens that many). A failure is logged and otherwise ignored:
 * warming only moves a cost off the first jobs.
 */
export const warm = (ctx: Ctx, connections: number = warmConnections): Effect.Effect<void> => {
  const statement = ctx.sql.unsafe(text(ctx.schema))
  return Effect.all(
    Array.from({ length: connections }, () => statement),
    {
      concurrency: "unbounded",
      discard: true
    }
  ).pipe(
    Effect.catchAllCause((cause) =>
      Effect.logDebug("nightshift: warming PostgreSQL connections failed; the first jobs pay for it", cause)
    )
  )
}
