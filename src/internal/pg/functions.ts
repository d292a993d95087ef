/**
 * Migration 2: the hot statements as PL/pgSQL functions.
 *
 * - `claim` runs the batch claim under planner settings of its own, so its
 *   plan is the same whatever the table statistics say: an in-order scan of
 *   `jobs_claim_idx` that stops after `p_limit` rows, then the job rows by
 *   primary key. Without them, a bulk enqueue into a table that has not been
 *   analysed yet makes the planner bitmap-scan and sort every due row on each
 *   claim (13 ms of server time instead of under 1 ms at 20,000 jobs). The
 *   plan is generic, so each connection plans it once, not on every call.
 * - `enqueue` takes a whole batch as one JSON document, inserts it, resolves
 *   dedupe conflicts and sends the wake-up in one statement: a single round
 *   trip, one implicit transaction when the caller has none, and the
 *   notification still fires on commit.
 *
 * Each function sets `search_path = pg_catalog, pg_temp` (its tables are
 * schema-qualified), so nothing on the caller's search path can stand in
 * for a built-in.
 *
 * Released text: never edit it, add a migration that replaces the functions.
 * Nodes prepare their `enqueue`, `claim_flow` and `settle` calls once per
 * connection (`direct.ts`), and a prepared call fails once its function's
 * result columns change: a later version keeps a released function's
 * result columns and gives different ones a new function name.
 *
 * @internal
 */

import { keepStartsMs } from "../store/flow.js"
import { jobColumns } from "./rows.js"

const activeStates = "('scheduled', 'available', 'running', 'retryable')"

/**
 * The rows of an `enqueue` document: a JSON array with one array per job,
 * `[kind, queue, payload, priority, max_attempts, run_at_ms, delay_ms,
 * dedupe_key, trace_id, span_id]`. Positions instead of keys: reading a
 * field of a jsonb array is cheap, and the document is a third smaller than
 * with keys; `json_to_recordset` took 1.7 times as long for 20,000 jobs.
 */
const inputRows = `
  SELECT e.ord, e.v->>0 AS kind, e.v->>1 AS queue, e.v->2 AS payload, (e.v->>3)::integer AS priority,
    (e.v->>4)::integer AS max_attempts,
    coalesce(to_timestamp((e.v->>5)::float8 / 1000),
             p_now + coalesce((e.v->>6)::float8, 0) * interval '1 millisecond') AS run_at,
    e.v->>7 AS dedupe_key, e.v->>8 AS trace_id, e.v->>9 AS span_id
  FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(v, ord)`

export const v2 = (schema: string) => `
  CREATE FUNCTION ${schema}.claim(
    p_kinds text[], p_queues text[], p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz
  ) RETURNS SETOF ${schema}.jobs
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- Each setting is scoped to the call. Sorting and bitmap scans are what a stale
  -- row estimate picks; without them the only ordered path left is jobs_claim_idx.
  -- Hash and merge joins are what a generic plan's LIMIT estimate picks for the
  -- update; without them it reads the claimed rows by primary key.
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off
  AS $fn$
  BEGIN
    RETURN QUERY
      WITH due AS (
        SELECT d.id FROM ${schema}.jobs d
        WHERE d.state IN ('available', 'scheduled', 'retryable') AND d.run_at <= p_now
          AND d.kind = ANY(p_kinds)
          -- Paused queues leave the requested list instead of being filtered row by row.
          AND d.queue = ANY(ARRAY(
            SELECT rq FROM unnest(p_queues) AS rq
            WHERE NOT EXISTS (SELECT 1 FROM ${schema}.paused_queues pq WHERE pq.queue = rq)))
        ORDER BY d.priority, d.run_at, d.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${schema}.jobs AS j SET
        state = 'running', attempt = j.attempt + 1, fence = j.fence + 1, attempted_at = p_now,
        lease_owner = p_owner, lease_expires_at = p_now + p_lease_ms * interval '1 millisecond'
      FROM due WHERE j.id = due.id
      RETURNING j.*;
  END
  $fn$;

  -- One wake-up per 7,000 bytes of distinct queue names (PostgreSQL refuses 8,000),
  -- in order of first appearance. Sent inside the transaction: delivered on commit.
  CREATE FUNCTION ${schema}.notify_enqueued(p_queues text[]) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $fn$
  DECLARE
    v_queue text;
    v_item text;
    v_batch text := '';
  BEGIN
    FOR v_queue IN
      SELECT u.queue FROM unnest(p_queues) WITH ORDINALITY AS u(queue, n) GROUP BY u.queue ORDER BY min(u.n)
    LOOP
      v_item := to_json(v_queue)::text;
      IF v_batch <> '' AND octet_length(v_batch) + octet_length(v_item) + 1 > 7000 THEN
        PERFORM pg_notify('${schema}_wakeup', '{"t":"e","q":[' || v_batch || ']}');
        v_batch := '';
      END IF;
      v_batch := CASE WHEN v_batch = '' THEN v_item ELSE v_batch || ',' || v_item END;
    END LOOP;
    IF v_batch <> '' THEN
      PERFORM pg_notify('${schema}_wakeup', '{"t":"e","q":[' || v_batch || ']}');
    END IF;
  END
  $fn$;

  -- A batch of jobs (see inputRows), inserted in input order. ids: the job id
  -- of every input, comma-separated in input order; deduped: the 1-based
  -- positions whose dedupe key was held by a live job, which is the id given.
  -- p_keyed false (no input has a dedupe key) takes a plain INSERT ... RETURNING.
  CREATE FUNCTION ${schema}.enqueue(
    p_jobs jsonb, p_now timestamptz, p_keyed boolean, OUT ids text, OUT deduped integer[]
  )
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- Planned once per connection: the row estimates of a JSON document do not
  -- depend on its contents anyway.
  SET plan_cache_mode = force_generic_plan
  SET jit = off
  AS $fn$
  DECLARE
    v_woken text[];
    v_pending integer[];
    v_missing integer[];
    v_ord integer[] := '{}';
    v_id bigint[] := '{}';
    v_round_ord integer[];
    v_round_id bigint[];
    v_round_woken text[];
    v_found_ord integer[];
    v_found_id bigint[];
    v_round integer := 0;
  BEGIN
    deduped := '{}';
    IF NOT p_keyed THEN
      WITH ins AS (
        INSERT INTO ${schema}.jobs AS j (kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, trace_id, span_id)
        SELECT i.kind, i.queue, i.payload, CASE WHEN i.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          i.priority, i.max_attempts, i.run_at, p_now, i.trace_id, i.span_id
        FROM (${inputRows}) i
        RETURNING j.id, j.queue, j.state
      )
      SELECT string_agg(ins.id::text, ',' ORDER BY ins.id),
             array_agg(ins.queue ORDER BY ins.id) FILTER (WHERE ins.state = 'available')
      INTO ids, v_woken
      FROM ins;
      PERFORM ${schema}.notify_enqueued(v_woken);
      RETURN;
    END IF;

    v_woken := '{}';
    LOOP
      -- Ids are taken up front, in input order, so that rows a live dedupe key
      -- leaves out are known by their id.
      WITH input AS MATERIALIZED (
        SELECT nextval('${schema}.jobs_id_seq') AS id, i.*
        FROM (${inputRows}) i
        WHERE v_pending IS NULL OR i.ord IN (SELECT unnest(v_pending))
      ),
      ins AS (
        INSERT INTO ${schema}.jobs AS j (id, kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, dedupe_key, trace_id, span_id)
        SELECT input.id, input.kind, input.queue, input.payload,
          CASE WHEN input.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          input.priority, input.max_attempts, input.run_at, p_now, input.dedupe_key, input.trace_id, input.span_id
        FROM input
        ORDER BY input.ord
        ON CONFLICT DO NOTHING
        RETURNING j.id, j.queue, j.state
      )
      SELECT coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.id) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NULL), '{}'),
             coalesce(array_agg(ins.queue ORDER BY input.ord) FILTER (WHERE ins.state = 'available'), '{}')
      INTO v_round_ord, v_round_id, v_missing, v_round_woken
      FROM input LEFT JOIN ins ON ins.id = input.id;

      v_ord := v_ord || v_round_ord;
      v_id := v_id || v_round_id;
      v_woken := v_woken || v_round_woken;
      EXIT WHEN cardinality(v_missing) = 0;

      -- A new statement, so a new snapshot: it sees the holders that committed
      -- while the insert waited on them.
      SELECT coalesce(array_agg(e.ord::integer), '{}'), coalesce(array_agg(j.id), '{}')
      INTO v_found_ord, v_found_id
      FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(v, ord)
      JOIN unnest(v_missing) AS m(ord) ON m.ord = e.ord
      JOIN ${schema}.jobs j ON j.kind = e.v->>0 AND j.dedupe_key = e.v->>7 AND j.state IN ${activeStates};

      v_ord := v_ord || v_found_ord;
      v_id := v_id || v_found_id;
      deduped := deduped || v_found_ord;
      -- A holder that finished in between freed its key: insert those again.
      v_pending := ARRAY(SELECT unnest(v_missing) EXCEPT SELECT unnest(v_found_ord));
      EXIT WHEN cardinality(v_pending) = 0;
      v_round := v_round + 1;
      IF v_round > 5 THEN
        RAISE EXCEPTION 'enqueue kept racing with jobs finishing under the same dedupe key; try again';
      END IF;
    END LOOP;

    SELECT string_agg(u.id::text, ',' ORDER BY u.ord) INTO ids FROM unnest(v_ord, v_id) AS u(ord, id);
    PERFORM ${schema}.notify_enqueued(v_woken);
  END
  $fn$;`

/**
 * Migration 3: claims walk only the requested queues. The claim index leads
 * with the queue, and `claim` takes each requested, unpaused queue's first
 * jobs in claim order from its own part of the index (one arm per queue),
 * then keeps the best `p_limit` of them; a single queue is one plain scan.
 * Before, one index in global claim order was filtered by queue, so a
 * backlog in another queue (a paused one, or one this runner does not
 * serve) was read through on every claim. Rows an arm locked but the final
 * cut left out stay locked only until the claim's transaction ends.
 *
 * The index is built inside the migration's transaction, which blocks writes
 * to the table while it builds (1.3 s for a million due jobs on the test machine).
 */
export const v3 = (schema: string) => {
  /** The due jobs of one queue (`queue`, an SQL expression), in claim order. */
  const arm = (queue: string, columns: string) => `
          SELECT ${columns} FROM ${schema}.jobs d
          WHERE d.queue = ${queue} AND d.state IN ('available', 'scheduled', 'retryable')
            AND d.run_at <= p_now AND d.kind = ANY(p_kinds)
          ORDER BY d.priority, d.run_at, d.id
          LIMIT p_limit
          FOR UPDATE SKIP LOCKED`
  /** Mark the jobs `due` selects as running under the caller's lease, and return them. */
  const claimDue = (due: string) => `
      RETURN QUERY
        WITH due AS (${due})
        UPDATE ${schema}.jobs AS j SET
          state = 'running', attempt = j.attempt + 1, fence = j.fence + 1, attempted_at = p_now,
          lease_owner = p_owner, lease_expires_at = p_now + p_lease_ms * interval '1 millisecond'
        FROM due WHERE j.id = due.id
        RETURNING j.*;`
  const paused = (queue: string) =>
    `EXISTS (SELECT 1 FROM ${schema}.paused_queues pq WHERE pq.queue = ${queue})`
  return `
  CREATE INDEX jobs_queue_claim_idx ON ${schema}.jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
  DROP INDEX ${schema}.jobs_claim_idx;

  CREATE OR REPLACE FUNCTION ${schema}.claim(
    p_kinds text[], p_queues text[], p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz
  ) RETURNS SETOF ${schema}.jobs
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- As in migration 2: the plan must not depend on statistics. Sorting stays
  -- possible for the final cut (it is the only way to merge the arms) but no
  -- arm can choose it over the index.
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off
  AS $fn$
  BEGIN
    IF cardinality(p_queues) = 1 THEN
      -- One queue (the usual case): one in-order index scan, no merge.
      IF NOT ${paused("p_queues[1]")} THEN
        ${claimDue(arm("p_queues[1]", "d.id"))}
      END IF;
      RETURN;
    END IF;
    ${claimDue(`
        SELECT c.id FROM (
          SELECT DISTINCT rq FROM unnest(p_queues) AS rq WHERE NOT ${paused("rq")}
        ) AS q(queue)
        CROSS JOIN LATERAL (${arm("q.queue", "d.id, d.priority, d.run_at")}) AS c
        ORDER BY c.priority, c.run_at, c.id
        LIMIT p_limit`)}
  END
  $fn$;`
}

/**
 * Migration 4: a row the claim cannot take no longer stops its queue.
 *
 * Before, a due row whose `fence` or `attempt` was at 2147483647 (the
 * integer maximum) made `fence + 1` fail with "integer out of range", and
 * with it every claim of its queue, for as long as the row was there. Now a
 * due row whose fence is at the maximum (it cannot be fenced again) is ended
 * `discarded` by the claim that picks it, with an error of kind `fence`
 * saying so, and is not returned; an attempt at the maximum stays there
 * (the runner discards the job when that is past its `max_attempts`). The
 * other rows of the batch are claimed as before.
 *
 * The scans, the planner settings and the plans are those of migration 3;
 * only the update's expressions change, and its result is filtered to the
 * rows it made `running`.
 */
export const v4 = (schema: string) => {
  const max = 2147483647
  const ok = `j.fence < ${max}`
  /** The due jobs of one queue (`queue`, an SQL expression), in claim order. */
  const arm = (queue: string, columns: string) => `
          SELECT ${columns} FROM ${schema}.jobs d
          WHERE d.queue = ${queue} AND d.state IN ('available', 'scheduled', 'retryable')
            AND d.run_at <= p_now AND d.kind = ANY(p_kinds)
          ORDER BY d.priority, d.run_at, d.id
          LIMIT p_limit
          FOR UPDATE SKIP LOCKED`
  /**
   * Mark the jobs `due` selects as running under the caller's lease and
   * return them; those whose fence is at the maximum are discarded instead.
   */
  const claimDue = (due: string) => `
      RETURN QUERY
        WITH due AS (${due}),
        taken AS (
          UPDATE ${schema}.jobs AS j SET
            state = CASE WHEN ${ok} THEN 'running' ELSE 'discarded' END,
            attempt = CASE WHEN ${ok} AND j.attempt < ${max} THEN j.attempt + 1 ELSE j.attempt END,
            fence = CASE WHEN ${ok} THEN j.fence + 1 ELSE j.fence END,
            attempted_at = CASE WHEN ${ok} THEN p_now ELSE j.attempted_at END,
            finalized_at = CASE WHEN ${ok} THEN j.finalized_at ELSE p_now END,
            lease_owner = CASE WHEN ${ok} THEN p_owner END,
            lease_expires_at = CASE WHEN ${ok} THEN p_now + p_lease_ms * interval '1 millisecond' END,
            errors = CASE WHEN ${ok} THEN j.errors ELSE
              (CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                ELSE jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', 0, 'kind', 'unreadable',
                  'message', 'the errors column held JSON that is not a list: ' || left(j.errors::text, 2000))) END)
              || jsonb_build_array(jsonb_build_object('attempt', j.attempt,
                'at', floor(extract(epoch from p_now) * 1000), 'kind', 'fence',
                'message', 'its fence counter is at ${max}, the most a job can hold, so it cannot be claimed again: it was discarded without running (enqueue it anew to run it)')) END
          FROM due WHERE j.id = due.id
          RETURNING j.*
        )
        SELECT * FROM taken WHERE taken.state = 'running';`
  const paused = (queue: string) =>
    `EXISTS (SELECT 1 FROM ${schema}.paused_queues pq WHERE pq.queue = ${queue})`
  return `
  CREATE OR REPLACE FUNCTION ${schema}.claim(
    p_kinds text[], p_queues text[], p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz
  ) RETURNS SETOF ${schema}.jobs
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- As in migrations 2 and 3: the plan must not depend on statistics. Sorting
  -- stays possible for the final cut (it is the only way to merge the arms)
  -- but no arm can choose it over the index.
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off
  AS $fn$
  BEGIN
    IF cardinality(p_queues) = 1 THEN
      -- One queue (the usual case): one in-order index scan, no merge.
      IF NOT ${paused("p_queues[1]")} THEN
        ${claimDue(arm("p_queues[1]", "d.id"))}
      END IF;
      RETURN;
    END IF;
    ${claimDue(`
        SELECT c.id FROM (
          SELECT DISTINCT rq FROM unnest(p_queues) AS rq WHERE NOT ${paused("rq")}
        ) AS q(queue)
        CROSS JOIN LATERAL (${arm("q.queue", "d.id, d.priority, d.run_at")}) AS c
        ORDER BY c.priority, c.run_at, c.id
        LIMIT p_limit`)}
  END
  $fn$;`
}

/**
 * Migration 5: fewer server-side steps on the serial path (enqueue one job,
 * claim it), measured per statement against graphile-worker's `add_job` and
 * `get_job` (docs/benchmarks.md, "PostgreSQL statement costs").
 *
 * - `claim_rows` is migration 4's `claim` (same scans, planner settings,
 *   plans and results) returning the store's row shape, times as epoch
 *   milliseconds. The store's statement was a select list of twenty
 *   expressions over `claim(…)`, parsed and planned again on every call
 *   (the driver sends unnamed statements): 0.16 ms of the 0.8 ms round trip
 *   of a one-job claim. A function's statements are planned once per
 *   connection, so the call is now `SELECT * FROM claim_rows(…)`. `claim`
 *   stays as it was, for nodes still running the previous version.
 * - `notify_enqueued` sends a batch of one queue name (every single enqueue)
 *   with one `pg_notify`, without the loop that splits long lists; a list is
 *   split as before.
 * - `enqueue` (no dedupe keys) hands `notify_enqueued` each queue once, in
 *   order of first appearance, instead of one name per job, and sorts the
 *   inserted rows once for both aggregates instead of twice. With dedupe keys
 *   it is unchanged.
 */
export const v5 = (schema: string) => {
  const max = 2147483647
  const ok = `j.fence < ${max}`
  /** The due jobs of one queue (`queue`, an SQL expression), in claim order. */
  const arm = (queue: string, columns: string) => `
          SELECT ${columns} FROM ${schema}.jobs d
          WHERE d.queue = ${queue} AND d.state IN ('available', 'scheduled', 'retryable')
            AND d.run_at <= p_now AND d.kind = ANY(p_kinds)
          ORDER BY d.priority, d.run_at, d.id
          LIMIT p_limit
          FOR UPDATE SKIP LOCKED`
  const ms = (column: string) => `floor(extract(epoch from t.${column}) * 1000)::float8`
  /** As migration 4's, returning the rows made `running` in the store's row shape. */
  const claimDue = (due: string) => `
      RETURN QUERY
        WITH due AS (${due}),
        taken AS (
          UPDATE ${schema}.jobs AS j SET
            state = CASE WHEN ${ok} THEN 'running' ELSE 'discarded' END,
            attempt = CASE WHEN ${ok} AND j.attempt < ${max} THEN j.attempt + 1 ELSE j.attempt END,
            fence = CASE WHEN ${ok} THEN j.fence + 1 ELSE j.fence END,
            attempted_at = CASE WHEN ${ok} THEN p_now ELSE j.attempted_at END,
            finalized_at = CASE WHEN ${ok} THEN j.finalized_at ELSE p_now END,
            lease_owner = CASE WHEN ${ok} THEN p_owner END,
            lease_expires_at = CASE WHEN ${ok} THEN p_now + p_lease_ms * interval '1 millisecond' END,
            errors = CASE WHEN ${ok} THEN j.errors ELSE
              (CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                ELSE jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', 0, 'kind', 'unreadable',
                  'message', 'the errors column held JSON that is not a list: ' || left(j.errors::text, 2000))) END)
              || jsonb_build_array(jsonb_build_object('attempt', j.attempt,
                'at', floor(extract(epoch from p_now) * 1000), 'kind', 'fence',
                'message', 'its fence counter is at ${max}, the most a job can hold, so it cannot be claimed again: it was discarded without running (enqueue it anew to run it)')) END
          FROM due WHERE j.id = due.id
          RETURNING j.*
        )
        SELECT t.id::text, t.kind, t.queue, t.payload, t.state, t.priority, t.attempt, t.max_attempts,
          ${ms("run_at")}, ${ms("created_at")}, ${ms("attempted_at")}, ${ms("finalized_at")},
          t.lease_owner, ${ms("lease_expires_at")}, t.fence, t.dedupe_key, t.cancel_requested, t.errors,
          t.trace_id, t.span_id
        FROM taken t WHERE t.state = 'running';`
  const paused = (queue: string) =>
    `EXISTS (SELECT 1 FROM ${schema}.paused_queues pq WHERE pq.queue = ${queue})`
  return `
  CREATE FUNCTION ${schema}.claim_rows(
    p_kinds text[], p_queues text[], p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz
  ) RETURNS TABLE (
    id text, kind text, queue text, payload jsonb, state text, priority integer, attempt integer,
    max_attempts integer, run_at float8, created_at float8, attempted_at float8, finalized_at float8,
    lease_owner text, lease_expires_at float8, fence integer, dedupe_key text, cancel_requested boolean,
    errors jsonb, trace_id text, span_id text
  )
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- As in migrations 2 to 4: the plan must not depend on statistics.
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off
  AS $fn$
  #variable_conflict use_column
  BEGIN
    IF cardinality(p_queues) = 1 THEN
      -- One queue (the usual case): one in-order index scan, no merge.
      IF NOT ${paused("p_queues[1]")} THEN
        ${claimDue(arm("p_queues[1]", "d.id"))}
      END IF;
      RETURN;
    END IF;
    ${claimDue(`
        SELECT c.id FROM (
          SELECT DISTINCT rq FROM unnest(p_queues) AS rq WHERE NOT ${paused("rq")}
        ) AS q(queue)
        CROSS JOIN LATERAL (${arm("q.queue", "d.id, d.priority, d.run_at")}) AS c
        ORDER BY c.priority, c.run_at, c.id
        LIMIT p_limit`)}
  END
  $fn$;

  -- A batch of jobs (see inputRows), inserted in input order. ids: the job id
  -- of every input, comma-separated in input order; deduped: the 1-based
  -- positions whose dedupe key was held by a live job, which is the id given.
  -- p_keyed false (no input has a dedupe key) takes a plain INSERT ... RETURNING.
  CREATE OR REPLACE FUNCTION ${schema}.enqueue(
    p_jobs jsonb, p_now timestamptz, p_keyed boolean, OUT ids text, OUT deduped integer[]
  )
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- Planned once per connection: the row estimates of a JSON document do not
  -- depend on its contents anyway.
  SET plan_cache_mode = force_generic_plan
  SET jit = off
  AS $fn$
  DECLARE
    v_woken text[];
    v_pending integer[];
    v_missing integer[];
    v_ord integer[] := '{}';
    v_id bigint[] := '{}';
    v_round_ord integer[];
    v_round_id bigint[];
    v_round_woken text[];
    v_found_ord integer[];
    v_found_id bigint[];
    v_round integer := 0;
  BEGIN
    deduped := '{}';
    IF NOT p_keyed THEN
      WITH ins AS (
        INSERT INTO ${schema}.jobs AS j (kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, trace_id, span_id)
        SELECT i.kind, i.queue, i.payload, CASE WHEN i.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          i.priority, i.max_attempts, i.run_at, p_now, i.trace_id, i.span_id
        FROM (${inputRows}) i
        RETURNING j.id, j.queue, j.state
      )
      -- One sort for the ids; the woken queues once each, in order of first appearance.
      SELECT (SELECT string_agg(ins.id::text, ',' ORDER BY ins.id) FROM ins),
             (SELECT array_agg(w.queue ORDER BY w.first)
              FROM (SELECT ins.queue, min(ins.id) AS first FROM ins WHERE ins.state = 'available'
                    GROUP BY ins.queue) w)
      INTO ids, v_woken;
      PERFORM ${schema}.notify_enqueued(v_woken);
      RETURN;
    END IF;

    v_woken := '{}';
    LOOP
      -- Ids are taken up front, in input order, so that rows a live dedupe key
      -- leaves out are known by their id.
      WITH input AS MATERIALIZED (
        SELECT nextval('${schema}.jobs_id_seq') AS id, i.*
        FROM (${inputRows}) i
        WHERE v_pending IS NULL OR i.ord IN (SELECT unnest(v_pending))
      ),
      ins AS (
        INSERT INTO ${schema}.jobs AS j (id, kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, dedupe_key, trace_id, span_id)
        SELECT input.id, input.kind, input.queue, input.payload,
          CASE WHEN input.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          input.priority, input.max_attempts, input.run_at, p_now, input.dedupe_key, input.trace_id, input.span_id
        FROM input
        ORDER BY input.ord
        ON CONFLICT DO NOTHING
        RETURNING j.id, j.queue, j.state
      )
      SELECT coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.id) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NULL), '{}'),
             coalesce(array_agg(ins.queue ORDER BY input.ord) FILTER (WHERE ins.state = 'available'), '{}')
      INTO v_round_ord, v_round_id, v_missing, v_round_woken
      FROM input LEFT JOIN ins ON ins.id = input.id;

      v_ord := v_ord || v_round_ord;
      v_id := v_id || v_round_id;
      v_woken := v_woken || v_round_woken;
      EXIT WHEN cardinality(v_missing) = 0;

      -- A new statement, so a new snapshot: it sees the holders that committed
      -- while the insert waited on them.
      SELECT coalesce(array_agg(e.ord::integer), '{}'), coalesce(array_agg(j.id), '{}')
      INTO v_found_ord, v_found_id
      FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(v, ord)
      JOIN unnest(v_missing) AS m(ord) ON m.ord = e.ord
      JOIN ${schema}.jobs j ON j.kind = e.v->>0 AND j.dedupe_key = e.v->>7 AND j.state IN ${activeStates};

      v_ord := v_ord || v_found_ord;
      v_id := v_id || v_found_id;
      deduped := deduped || v_found_ord;
      -- A holder that finished in between freed its key: insert those again.
      v_pending := ARRAY(SELECT unnest(v_missing) EXCEPT SELECT unnest(v_found_ord));
      EXIT WHEN cardinality(v_pending) = 0;
      v_round := v_round + 1;
      IF v_round > 5 THEN
        RAISE EXCEPTION 'enqueue kept racing with jobs finishing under the same dedupe key; try again';
      END IF;
    END LOOP;

    SELECT string_agg(u.id::text, ',' ORDER BY u.ord) INTO ids FROM unnest(v_ord, v_id) AS u(ord, id);
    PERFORM ${schema}.notify_enqueued(v_woken);
  END
  $fn$;

  CREATE OR REPLACE FUNCTION ${schema}.notify_enqueued(p_queues text[]) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $fn$
  DECLARE
    v_queue text;
    v_item text;
    v_batch text := '';
  BEGIN
    IF cardinality(p_queues) = 1 THEN
      -- One name goes alone in a payload, as the loop below would send it.
      PERFORM pg_notify('${schema}_wakeup', '{"t":"e","q":[' || to_json(p_queues[1])::text || ']}');
      RETURN;
    END IF;
    FOR v_queue IN
      SELECT u.queue FROM unnest(p_queues) WITH ORDINALITY AS u(queue, n) GROUP BY u.queue ORDER BY min(u.n)
    LOOP
      v_item := to_json(v_queue)::text;
      IF v_batch <> '' AND octet_length(v_batch) + octet_length(v_item) + 1 > 7000 THEN
        PERFORM pg_notify('${schema}_wakeup', '{"t":"e","q":[' || v_batch || ']}');
        v_batch := '';
      END IF;
      v_batch := CASE WHEN v_batch = '' THEN v_item ELSE v_batch || ',' || v_item END;
    END LOOP;
    IF v_batch <> '' THEN
      PERFORM pg_notify('${schema}_wakeup', '{"t":"e","q":[' || v_batch || ']}');
    END IF;
  END
  $fn$;`
}

/**
 * The rows of an `enqueue` document from migration 6 on: `inputRows` plus
 * the partition key at position 10 (absent, so null, in a document from a
 * node on the previous version).
 */
const inputRowsV6 = `
  SELECT e.ord, e.v->>0 AS kind, e.v->>1 AS queue, e.v->2 AS payload, (e.v->>3)::integer AS priority,
    (e.v->>4)::integer AS max_attempts,
    coalesce(to_timestamp((e.v->>5)::float8 / 1000),
             p_now + coalesce((e.v->>6)::float8, 0) * interval '1 millisecond') AS run_at,
    e.v->>7 AS dedupe_key, e.v->>8 AS trace_id, e.v->>9 AS span_id, e.v->>10 AS partition_key
  FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(v, ord)`

/**
 * Migration 6: flow control (per-partition and global concurrency limits,
 * rate limits, fair claiming across partition keys).
 *
 * Tables and indexes:
 *
 * - `jobs.partition_key` (nullable); `flow_rules` (one row per kind or
 *   queue with limits, written by `declareLimits`); `flow_starts` (one row
 *   per start counted against a rate limit, `partition_key = ''` for a rate
 *   over the whole scope).
 * - `jobs_partition_claim_idx (queue, coalesce(partition_key, ''), priority,
 *   run_at, id)` over due rows: the fair claim's walk over the keys with due
 *   work (one descent per key) and its per-key arms. Jobs without a key are
 *   the key `''` there, which no real key can be (keys are 1 to 1,000
 *   characters), so they take their turn as one more key, first in the ring.
 * - `jobs_running_queue_idx (queue, partition_key, lease_expires_at)` and
 *   `jobs_running_kind_idx (kind, partition_key, lease_expires_at)` over
 *   running rows: the counts of running jobs per queue or kind, and per key
 *   (migration 12 keeps only keyed rows in them; whole-scope counts then read
 *   `jobs_lease_idx`);
 *   `jobs_running_queue_shard_idx` and `jobs_running_kind_shard_idx` over
 *   running rows stamped with a global shard (`flow_shard`, below).
 *
 * `claim_flow` is the claim from this version on (`claim_rows` stays for
 * nodes on the previous version; it knows nothing of limits, so a cluster
 * enforces them once every node runs this version). Its contract:
 *
 * - Nothing to enforce (no rule for the requested queues and kinds) and no
 *   due job with a partition key in them (one probe of the new index): the
 *   statements of `claim_rows`, with the same plans.
 * - Otherwise queue by queue (in order of each queue's best due job), and
 *   within a queue, kind group by kind group (each requested kind with a rule
 *   alone, the kinds without one together), so that one set of rules holds
 *   for every job of a group: the queue's rule and the group's kind rule.
 * - Fairness: a recursive CTE walks the keys with due work in ring order
 *   after the caller's cursor (the last key that store instance served in
 *   that queue), one index descent per key (a loose index scan; `OFFSET 0`
 *   keeps its step from being inlined and run once per reference), at most
 *   as many keys as the batch has places. Each key gets `ceil(places /
 *   keys)` jobs in priority, run-at, id order; when that leaves the batch
 *   short, a second round fills it from the same keys in ring order.
 *   `flow_ord` returns each job's key's ring position, from which the caller
 *   takes its next cursor.
 * - Per-partition limits (and rates counted per key): a transaction-scoped
 *   try-lock per (scope, key) on the candidate keys; a key another claim
 *   holds is skipped for this claim, never waited for. The running rows (or
 *   starts) are counted in a later statement than the locks: a PL/pgSQL
 *   statement takes its snapshot when it starts, so a count in the statement
 *   that takes the lock could miss the jobs the previous holder claimed; in a
 *   later statement it sees every claim committed before the lock was
 *   granted, and a holder's lock goes only at its commit.
 * - Global limits: sharded try-locks, as the spike recommended. The limit L
 *   of a scope is split over S = L / 25 shards (1 to 10); shard s may run
 *   L / S jobs (one more for the first L % S). A claim tries the shards'
 *   locks from a random one, counts the chosen shard's running jobs in a
 *   fresh snapshot and takes at most its room, stamping the shard on the jobs
 *   (`flow_shard`, counted through two partial indexes that hold only stamped
 *   running rows). Claims of one scope run side by side, one per shard,
 *   instead of taking turns on one lock (the River #1145 effect). Measured
 *   with the single waited-for lock first, on a 20,000-job drain over 1,000
 *   keys with 10 claimers of 25 (docs/postgres.md, "Flow control"): global
 *   500, which never binds, went from x0.65 of the same drain without rules
 *   to x1.0 or more, and global 50, which binds, from x0.35 to x0.45. Running
 *   jobs of the scope outside the current shards (claimed before the rule
 *   existed, or under another shard count after the limit changed) are
 *   counted without a lock and charged in full to every shard (a share each
 *   would not do: a shard over its share cannot give its excess back), so a
 *   limit change never lets more run; such jobs exist only until the jobs
 *   running when the rule changed finish. Before any lock, a count without locks
 *   that already sees the scope full ends the claim at once (a count that can
 *   only miss claims in flight never admits too many). When every shard is
 *   held by claims in flight, the claim waits for one only if that count
 *   leaves room for them and for its own batch.
 * - Rate limits over the whole scope: the same waited-for lock on the rate
 *   key, then the starts within the window counted; the claim takes at most
 *   `limit - count` and writes one `flow_starts` row per start, and deletes
 *   its key's rows the window no longer counts.
 * - Deadlocks: a claim waits for a lock of a whole scope (a global shard, a
 *   rate key) only while it holds no such lock, and takes those of one group
 *   in key order; every other lock is only tried. Claims never wait for rows
 *   (SKIP LOCKED).
 * - Lock keys: the two-integer advisory lock form, whose key space is apart
 *   from the single-bigint keys of PgLock and the migrations, so the two can
 *   never collide: (hashtext(schema/scope/name), hashtext(what/key)).
 * - A job held back is not touched: no state, attempt or fence change.
 *
 * `enqueue` stores the partition key (position 10 of an input row).
 */
export const v6 = (schema: string) => {
  const dueState = "state IN ('available', 'scheduled', 'retryable')"
  return `
  ALTER TABLE ${schema}.jobs ADD COLUMN partition_key text, ADD COLUMN flow_shard smallint;
  CREATE INDEX jobs_partition_claim_idx ON ${schema}.jobs (queue, (coalesce(partition_key, '')), priority, run_at, id)
    WHERE ${dueState};
  CREATE INDEX jobs_running_queue_idx ON ${schema}.jobs (queue, partition_key, lease_expires_at)
    WHERE state = 'running';
  CREATE INDEX jobs_running_kind_idx ON ${schema}.jobs (kind, partition_key, lease_expires_at)
    WHERE state = 'running';
  CREATE INDEX jobs_running_queue_shard_idx ON ${schema}.jobs (queue, flow_shard, lease_expires_at)
    WHERE state = 'running' AND flow_shard IS NOT NULL;
  CREATE INDEX jobs_running_kind_shard_idx ON ${schema}.jobs (kind, flow_shard, lease_expires_at)
    WHERE state = 'running' AND flow_shard IS NOT NULL;
  CREATE TABLE ${schema}.flow_rules (
    scope text NOT NULL CHECK (scope IN ('kind', 'queue')),
    name text NOT NULL,
    global_limit integer,
    per_partition integer,
    rate_limit integer,
    rate_window_ms bigint,
    rate_by_partition boolean NOT NULL DEFAULT false,
    PRIMARY KEY (scope, name)
  );
  CREATE TABLE ${schema}.flow_starts (
    scope text NOT NULL,
    name text NOT NULL,
    partition_key text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL
  ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
  CREATE INDEX flow_starts_idx ON ${schema}.flow_starts (scope, name, partition_key, started_at);

${claimFlow(schema, "CREATE FUNCTION", v6KeyedDue(schema))}
${enqueueV6(schema)}`
}

/**
 * The text of `claim_flow` (migration 6), created with `create` (`CREATE
 * FUNCTION` or `CREATE OR REPLACE FUNCTION`); `keyedDue` is the query whose
 * rows say that some requested queue has a due job with a partition key
 * (the claim then takes keys in turn); `partitioned` is the boolean
 * expression saying that queue `v_queue` has one.
 */
const claimFlow = (
  schema: string,
  create: string,
  keyedDue: string,
  partitioned = `EXISTS (SELECT 1 FROM ${schema}.jobs d
        WHERE d.queue = v_queue AND d.state IN ('available', 'scheduled', 'retryable') AND coalesce(d.partition_key, '') > '')`,
  /** Count a global shard's room before trying its lock (migration 11; see `claimFlowV11`). */
  roomFirst = false,
  /** Read a whole scope's running jobs outside its shards once (migration 12; see `claimFlowV12`). */
  outsideOnce = false,
  /** Find due jobs without a key through the partition index only (migration 13; see `claimFlowV13`). */
  unkeyedApart = false,
  /** Hold rates to their pace as well as their window (migration 15; see `claimFlowV15`). */
  paced = false
) => {
  const max = 2147483647
  const ok = `j.fence < ${max}`
  const dueState = "state IN ('available', 'scheduled', 'retryable')"
  const due = (a: string) => `${a}.${dueState} AND ${a}.run_at <= p_now`
  const ms = (column: string) => `floor(extract(epoch from t.${column}) * 1000)::float8`
  /** The claim's update of the rows `pick` (id, ord) selects, as migration 5's. */
  const take = (pick: string, shard: string) => `
          UPDATE ${schema}.jobs AS j SET
            state = CASE WHEN ${ok} THEN 'running' ELSE 'discarded' END,
            flow_shard = ${shard},
            attempt = CASE WHEN ${ok} AND j.attempt < ${max} THEN j.attempt + 1 ELSE j.attempt END,
            fence = CASE WHEN ${ok} THEN j.fence + 1 ELSE j.fence END,
            attempted_at = CASE WHEN ${ok} THEN p_now ELSE j.attempted_at END,
            finalized_at = CASE WHEN ${ok} THEN j.finalized_at ELSE p_now END,
            lease_owner = CASE WHEN ${ok} THEN p_owner END,
            lease_expires_at = CASE WHEN ${ok} THEN p_now + p_lease_ms * interval '1 millisecond' END,
            errors = CASE WHEN ${ok} THEN j.errors ELSE
              (CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                ELSE jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', 0, 'kind', 'unreadable',
                  'message', 'the errors column held JSON that is not a list: ' || left(j.errors::text, 2000))) END)
              || jsonb_build_array(jsonb_build_object('attempt', j.attempt,
                'at', floor(extract(epoch from p_now) * 1000), 'kind', 'fence',
                'message', 'its fence counter is at ${max}, the most a job can hold, so it cannot be claimed again: it was discarded without running (enqueue it anew to run it)')) END
          FROM ${pick} WHERE j.id = ${pick}.id
          RETURNING j.*, ${pick}.ord`
  const rowsOf = (taken: string) => `
        SELECT t.id::text, t.kind, t.queue, t.payload, t.state, t.priority, t.attempt, t.max_attempts,
          ${ms("run_at")}, ${ms("created_at")}, ${ms("attempted_at")}, ${ms("finalized_at")},
          t.lease_owner, ${ms("lease_expires_at")}, t.fence, t.dedupe_key, t.cancel_requested, t.errors,
          t.trace_id, t.span_id, t.partition_key, t.ord::integer
        FROM ${taken} t WHERE t.state = 'running'`
  /** Migration 5's claim of `due` (a query of `id`), with the new columns (`flow_ord` 0). */
  const claimDue = (due: string) => `
      RETURN QUERY
        WITH due AS (${due}),
        pick AS (SELECT due.id, 0 AS ord FROM due),
        taken AS (${take("pick", "NULL")})
        ${rowsOf("taken")};`
  /** `arm`'s test of the partition key: any, none (the key `''`), or some. */
  const keyed = {
    any: "",
    none: " AND coalesce(d.partition_key, '') = ''",
    some: " AND d.partition_key IS NOT NULL"
  } as const
  /**
   * Migration 5's arm: the due jobs of one queue of kinds `kinds`, in claim
   * order; with `keys` only those without a partition key (`"none"`, read
   * from `jobs_partition_claim_idx`) or only those with one (`"some"`).
   */
  const arm = (
    queue: string,
    columns: string,
    kinds: string,
    limit: string,
    keys: keyof typeof keyed = "any"
  ) => `
          SELECT ${columns} FROM ${schema}.jobs d
          WHERE d.queue = ${queue}${keyed[keys]}
            AND ${due("d")} AND d.kind = ANY(${kinds})
          ORDER BY d.priority, d.run_at, d.id
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED`
  /** The arm of the fast path, where no due job of the queue has a key (migration 13: by the partition index). */
  const plainArm = (queue: string, columns: string, kinds: string, limit: string) =>
    arm(queue, columns, kinds, limit, unkeyedApart ? "none" : "any")
  /**
   * A queue's best due job of kinds `kinds` (its priority, run-at and id):
   * one arm of limit 1, or (migration 13) the better of the best without a
   * key and the best with one, each read from its own index.
   */
  const bestDue = (queue: string, kinds: string) => {
    const columns = "d.priority, d.run_at, d.id"
    return unkeyedApart
      ? `
          SELECT x.priority, x.run_at, x.id FROM (
            SELECT * FROM (${arm(queue, columns, kinds, "1", "none")}) AS plain
            UNION ALL
            SELECT * FROM (${arm(queue, columns, kinds, "1", "some")}) AS keyed
          ) AS x
          ORDER BY x.priority, x.run_at, x.id
          LIMIT 1`
      : arm(queue, columns, kinds, "1")
  }
  const paused = (queue: string) =>
    `EXISTS (SELECT 1 FROM ${schema}.paused_queues pq WHERE pq.queue = ${queue})`
  /** The first key `op` `bound` (in key order) with due work of the group's kinds: one index descent. */
  const nextKey = (op: ">" | ">=", bound: string) => `(
            SELECT coalesce(d.partition_key, '') FROM ${schema}.jobs d
            WHERE d.queue = v_queue AND coalesce(d.partition_key, '') ${op} ${bound} AND ${due("d")}
              AND d.kind = ANY(v_kinds)
            ORDER BY coalesce(d.partition_key, '') LIMIT 1)`
  /** Running jobs (lease held) matching `where`. */
  const running = (where: string) =>
    `(SELECT count(*) FROM ${schema}.jobs c WHERE ${where} AND c.state = 'running' AND c.lease_expires_at > p_now)::integer`
  /** Starts of a rule's key within its window. */
  const starts = (rule: string, scope: string, name: string, key: string) =>
    `(SELECT count(*) FROM ${schema}.flow_starts s WHERE s.scope = '${scope}' AND s.name = ${name}
       AND s.partition_key = ${key} AND s.started_at > p_now - ${rule}.rate_window_ms * interval '1 millisecond')::integer`
  /**
   * The starts a rule's key admits now: the room in its window, and (paced)
   * in its pace span too, `burst` starts' worth of the window (as `paceOf`
   * in src/internal/store/flow.ts), read in one range of `flow_starts_idx`.
   */
  /** A rule's burst: as declared, or a tenth of its limit rounded up. */
  const burst = (rule: string) => `coalesce(${rule}.rate_burst, (${rule}.rate_limit + 9) / 10)`
  const rateRoom = (rule: string, scope: string, name: string, key: string) =>
    paced
      ? `(SELECT least(${rule}.rate_limit - count(*), ${burst(rule)} - count(*) FILTER (
           WHERE s.started_at > p_now - ${rule}.rate_window_ms::float8 * ${burst(rule)}
             / ${rule}.rate_limit * interval '1 millisecond'))
         FROM ${schema}.flow_starts s WHERE s.scope = '${scope}' AND s.name = ${name}
           AND s.partition_key = ${key} AND s.started_at > p_now - ${rule}.rate_window_ms * interval '1 millisecond')::integer`
      : `${rule}.rate_limit - ${starts(rule, scope, name, key)}`
  /**
   * Starts are deleted a minute after their window: a claim whose `p_now`
   * was read before it waited for a lock still counts every start its
   * window holds, even when a claim with a later `p_now` expired starts
   * first.
   */
  const expire = (rule: string, scope: string, name: string, keys: string) => `
        DELETE FROM ${schema}.flow_starts s WHERE s.scope = '${scope}' AND s.name = ${name}
          AND s.partition_key = ANY(${keys})
          AND s.started_at <= p_now - ${rule}.rate_window_ms * interval '1 millisecond' - interval '${keepStartsMs} milliseconds';`
  /**
   * Whether the claim serves key `p` (an SQL expression): not full as this
   * snapshot sees it, then try-locked for every limit counted per key.
   */
  const admit = (p: string) => `CASE
                WHEN v_rq.per_partition IS NOT NULL AND ${p} <> ''
                  AND ${running(`c.queue = v_queue AND c.partition_key = ${p}`)} >= v_rq.per_partition THEN false
                WHEN v_rk.per_partition IS NOT NULL AND ${p} <> ''
                  AND ${running(`c.kind = v_kind AND c.partition_key = ${p}`)} >= v_rk.per_partition THEN false
                ELSE (v_rq.per_partition IS NULL OR ${p} = ''
                      OR pg_try_advisory_xact_lock(v_hq, hashtext('partition/' || ${p})))
                  AND (v_rk.per_partition IS NULL OR ${p} = ''
                      OR pg_try_advisory_xact_lock(v_hk, hashtext('partition/' || ${p})))
                  AND (NOT coalesce(v_rq.rate_by_partition, false)
                      OR pg_try_advisory_xact_lock(v_hq, hashtext('rate/' || ${p})))
                  AND (NOT coalesce(v_rk.rate_by_partition, false)
                      OR pg_try_advisory_xact_lock(v_hk, hashtext('rate/' || ${p})))
                END`
  /** The room left in global shard `v_s` under the group's global limits (see step 2). */
  const shardRoom = `least(
              CASE WHEN v_rq.global_limit IS NOT NULL THEN v_rq.global_limit / v_sq
                + CASE WHEN v_s < v_rq.global_limit % v_sq THEN 1 ELSE 0 END
                - ${running("c.queue = v_queue AND c.flow_shard = v_s")} - v_uq END,
              CASE WHEN v_rk.global_limit IS NOT NULL THEN v_rk.global_limit / v_sk
                + CASE WHEN v_s < v_rk.global_limit % v_sk THEN 1 ELSE 0 END
                - ${running("c.kind = v_kind AND c.flow_shard = v_s")} - v_uk END)`
  const byKey = (rule: string) => `coalesce(${rule}.rate_by_partition, false)`
  const wholeRate = (rule: string) => `(${rule}.rate_limit IS NOT NULL AND NOT ${rule}.rate_by_partition)`
  const rates = `
          CASE WHEN ${wholeRate("v_rq")} THEN ${rateRoom("v_rq", "queue", "v_queue", "''")} END,
          CASE WHEN ${wholeRate("v_rk")} THEN ${rateRoom("v_rk", "kind", "v_kind", "''")} END`
  const outsideQueue = running("c.queue = v_queue AND (c.flow_shard IS NULL OR c.flow_shard >= v_sq)")
  const outsideKind = running("c.kind = v_kind AND (c.flow_shard IS NULL OR c.flow_shard >= v_sk)")
  /** The whole scopes' room and the running jobs outside their shards (migrations 6 to 11). */
  const wholeScope = `        SELECT least(
          CASE WHEN v_rq.global_limit IS NOT NULL THEN v_rq.global_limit - ${running("c.queue = v_queue")} END,
          CASE WHEN v_rk.global_limit IS NOT NULL THEN v_rk.global_limit - ${running("c.kind = v_kind")} END,${rates}),
          CASE WHEN v_sq IS NOT NULL THEN ${outsideQueue} END,
          CASE WHEN v_sk IS NOT NULL THEN ${outsideKind} END
        INTO v_seen, v_uq, v_uk;`
  /**
   * The same, reading the running jobs outside the shards once (one
   * snapshot): a whole scope's count is those plus the shards' (see
   * `claimFlowV12`). `OFFSET 0` keeps the subquery from being inlined into
   * each reference.
   */
  const wholeScopeOnce = `        SELECT least(
          CASE WHEN v_rq.global_limit IS NOT NULL
            THEN v_rq.global_limit - o.uq - ${running("c.queue = v_queue AND c.flow_shard < v_sq")} END,
          CASE WHEN v_rk.global_limit IS NOT NULL
            THEN v_rk.global_limit - o.uk - ${running("c.kind = v_kind AND c.flow_shard < v_sk")} END,${rates}),
          o.uq, o.uk
        INTO v_seen, v_uq, v_uk
        FROM (SELECT CASE WHEN v_sq IS NOT NULL THEN ${outsideQueue} END AS uq,
                CASE WHEN v_sk IS NOT NULL THEN ${outsideKind} END AS uk
              OFFSET 0) AS o;`
  return `  ${create} ${schema}.claim_flow(
    p_kinds text[], p_queues text[], p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz,
    p_cursors text[]
  ) RETURNS TABLE (
    id text, kind text, queue text, payload jsonb, state text, priority integer, attempt integer,
    max_attempts integer, run_at float8, created_at float8, attempted_at float8, finalized_at float8,
    lease_owner text, lease_expires_at float8, fence integer, dedupe_key text, cancel_requested boolean,
    errors jsonb, trace_id text, span_id text, partition_key text, flow_ord integer
  )
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  -- As in migrations 2 to 5: the plan must not depend on statistics.
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off
  AS $fn$
  #variable_conflict use_column
  DECLARE
    v_queue text;
    v_cursor text;
    v_kind text;
    v_kinds text[];
    v_ruled text[];
    v_free text[];
    v_rq ${schema}.flow_rules%ROWTYPE;
    v_rk ${schema}.flow_rules%ROWTYPE;
    v_hq integer;
    v_hk integer;
    v_partitioned boolean;
    v_parts text[];
    v_left integer := p_limit;
    v_cap integer;
    v_share integer;
    v_rows integer;
    v_round integer;
    v_waited boolean := false;
    v_skip boolean;
    v_seen integer;
    v_sq integer;
    v_sk integer;
    v_uq integer;
    v_uk integer;
    v_n integer;
    v_i integer;
    v_s integer;
    v_start integer;
    v_shard integer;
    v_room integer;
    v_want integer;
    v_held boolean;
    v_a boolean;
    v_b boolean;
    v_k1 integer;
    v_k2 integer;
  BEGIN
    IF NOT EXISTS (
         SELECT 1 FROM ${schema}.flow_rules r
         WHERE (r.scope = 'queue' AND r.name = ANY(p_queues)) OR (r.scope = 'kind' AND r.name = ANY(p_kinds)))
       AND NOT EXISTS (
${keyedDue}
    THEN
      -- Nothing to enforce and no keys to take turns: migration 5's claim.
      IF cardinality(p_queues) = 1 THEN
        IF NOT ${paused("p_queues[1]")} THEN
          ${claimDue(plainArm("p_queues[1]", "d.id", "p_kinds", "p_limit"))}
        END IF;
        RETURN;
      END IF;
      ${claimDue(`
        SELECT c.id FROM (
          SELECT DISTINCT rq FROM unnest(p_queues) AS rq WHERE NOT ${paused("rq")}
        ) AS q(queue)
        CROSS JOIN LATERAL (${plainArm("q.queue", "d.id, d.priority, d.run_at", "p_kinds", "p_limit")}) AS c
        ORDER BY c.priority, c.run_at, c.id
        LIMIT p_limit`)}
      RETURN;
    END IF;

    v_ruled := ARRAY(SELECT r.name FROM ${schema}.flow_rules r WHERE r.scope = 'kind' AND r.name = ANY(p_kinds));
    v_free := ARRAY(SELECT k FROM unnest(p_kinds) AS k WHERE k <> ALL(v_ruled));

    -- Queue by queue, in order of each queue's best due job.
    FOR v_queue, v_cursor IN
      SELECT u.queue, u.cursor FROM unnest(p_queues, p_cursors) AS u(queue, cursor)
      CROSS JOIN LATERAL (${bestDue("u.queue", "p_kinds")}) b
      WHERE NOT ${paused("u.queue")}
      ORDER BY b.priority, b.run_at, b.id
    LOOP
      EXIT WHEN v_left <= 0;
      SELECT * INTO v_rq FROM ${schema}.flow_rules r WHERE r.scope = 'queue' AND r.name = v_queue;
      v_hq := hashtext('${schema}/queue/' || v_queue);
      v_partitioned := ${partitioned};

      -- Kind groups: each requested kind with a rule alone, the others together.
      FOR v_kind, v_kinds IN
        SELECT g.kind, g.kinds FROM (
          SELECT k AS kind, ARRAY[k] AS kinds FROM unnest(v_ruled) AS k
          UNION ALL SELECT NULL, v_free WHERE cardinality(v_free) > 0
        ) g
        CROSS JOIN LATERAL (${bestDue("v_queue", "g.kinds")}) b
        ORDER BY b.priority, b.run_at, b.id
      LOOP
        EXIT WHEN v_left <= 0;
        SELECT * INTO v_rk FROM ${schema}.flow_rules r WHERE r.scope = 'kind' AND r.name = v_kind;
        v_hk := hashtext('${schema}/kind/' || coalesce(v_kind, ''));

        IF v_rq.scope IS NULL AND v_rk.scope IS NULL AND NOT v_partitioned THEN
          -- No rule, no keys: migration 5's arm.
          ${claimDue(plainArm("v_queue", "d.id", "v_kinds", "v_left"))}
          GET DIAGNOSTICS v_rows = ROW_COUNT;
          v_left := v_left - v_rows;
          CONTINUE;
        END IF;

        -- The room this snapshot sees under the limits over a whole scope, without their
        -- locks. It can only miss claims in flight (or count jobs since settled), so a
        -- scope it sees full is full: the claim returns at once instead of queueing.
        -- Also the running jobs of a global limit's scope outside its shards (claimed
        -- before the rule, or under another shard count), which every shard counts in full.
        v_sq := CASE WHEN v_rq.global_limit IS NOT NULL THEN greatest(1, least(10, v_rq.global_limit / 25)) END;
        v_sk := CASE WHEN v_rk.global_limit IS NOT NULL THEN greatest(1, least(10, v_rk.global_limit / 25)) END;
${outsideOnce ? wholeScopeOnce : wholeScope}
        CONTINUE WHEN v_seen <= 0;

        -- 1. Global limits: a shard with room. A global limit L is split over S shards
        --    (S = L / 25, from 1 to 10; shard s may run L / S jobs, one more for the
        --    first L % S), each with its own lock; a claimed job carries its shard
        --    (flow_shard). The claim tries the shards from a random one and takes the
        --    first it locks with room, counted in a new statement after the lock, so no
        --    claim waits for another while a shard is free. A job under both a queue's
        --    and a kind's global limit takes the same shard number under both. Only when
        --    every shard is held by claims in flight, and the room seen above leaves
        --    enough for them and this batch, does the claim wait, for one shard. This
        --    comes before the walk over the keys, so that a claim finding no shard
        --    returns without walking, and the walk goes no further than the room.
        v_shard := NULL;
        v_n := least(v_sq, v_sk);
        IF v_n IS NOT NULL THEN
          v_start := floor(random() * v_n)::integer;
          v_held := false;
          FOR v_i IN 0 .. v_n - 1 LOOP
            v_s := (v_start + v_i) % v_n;${
              roomFirst
                ? `
            -- A shard without room by the committed count is passed over unlocked.
            SELECT ${shardRoom} INTO v_room;
            CONTINUE WHEN v_room <= 0;`
                : ""
            }
            v_a := v_rq.global_limit IS NULL OR pg_try_advisory_xact_lock(v_hq, hashtext('global/' || v_s));
            v_b := v_a AND (v_rk.global_limit IS NULL OR pg_try_advisory_xact_lock(v_hk, hashtext('global/' || v_s)));
            v_held := v_held OR v_a;
            IF v_b THEN
              SELECT ${shardRoom} INTO v_room;
              IF v_room > 0 THEN
                v_shard := v_s;
                EXIT;
              END IF;
            END IF;
          END LOOP;
          IF v_shard IS NULL AND NOT v_held AND NOT v_waited AND v_seen >= 2 * v_left THEN
            v_s := v_start;
            FOR v_k1, v_k2 IN
              SELECT l.k1, l.k2 FROM (VALUES
                (v_hq, hashtext('global/' || v_s), v_rq.global_limit IS NOT NULL),
                (v_hk, hashtext('global/' || v_s), v_rk.global_limit IS NOT NULL)
              ) AS l(k1, k2, needed)
              WHERE l.needed
              ORDER BY l.k1, l.k2
            LOOP
              PERFORM pg_advisory_xact_lock(v_k1, v_k2);
            END LOOP;
            v_held := true;
            SELECT ${shardRoom} INTO v_room;
            IF v_room > 0 THEN
              v_shard := v_s;
            END IF;
          END IF;
          v_waited := v_waited OR v_held;
          CONTINUE WHEN v_shard IS NULL;
        END IF;

        -- 2. The keys with due work, in ring order after the cursor, try-locked where a
        --    limit counts per key. A key another claim holds is left to it, and so is a
        --    key already full as this snapshot sees it (a count that can only be stale
        --    high, so it never admits too many); the walk goes on past them, up to
        --    four times as many keys as places, so that claims running together (all
        --    from the same cursor) or full keys do not leave the batch short.
        v_want := least(v_left, CASE WHEN v_shard IS NOT NULL THEN v_room END);
        v_parts := ARRAY(
          WITH RECURSIVE r(p, n, first, ok, got) AS (
            SELECT f.p, 1, f.p, f.ok, f.ok::integer FROM (
              SELECT s.p, ${admit("s.p")} AS ok FROM (
                SELECT CASE WHEN v_cursor IS NULL THEN ${nextKey(">=", "''")}
                  ELSE coalesce(${nextKey(">", "v_cursor")}, ${nextKey(">=", "''")}) END AS p
                OFFSET 0) s
              WHERE s.p IS NOT NULL
              OFFSET 0) f
            UNION ALL
            SELECT x.p, r.n + 1, r.first, x.ok, r.got + x.ok::integer FROM r
            -- OFFSET 0 keeps each step a subquery of its own: inlined, the descents ran
            -- once per reference to the key, and the locks would be tried as often.
            CROSS JOIN LATERAL (
              SELECT s.p, ${admit("s.p")} AS ok FROM (
                SELECT coalesce(${nextKey(">", "r.p")}, ${nextKey(">=", "''")}) AS p OFFSET 0) s
              OFFSET 0) x
            WHERE r.got < v_want AND r.n < 4 * v_want AND x.p <> r.first
          )
          SELECT r.p FROM r WHERE r.ok ORDER BY r.n);
        CONTINUE WHEN cardinality(v_parts) = 0;

        -- 3. Rates over a whole scope: the rate key's lock, in key order. One another
        --    claim holds is waited for only when the room seen above leaves enough for
        --    that claim's batch and this one's (else the holder takes what there is), and
        --    only while this claim holds no lock of a whole scope (so waits cannot form a
        --    cycle: a claim waits only holding the locks before, in key order, the one
        --    it waits for).
        v_skip := false;
        FOR v_k1, v_k2 IN
          SELECT l.k1, l.k2 FROM (VALUES
            (v_hq, hashtext('rate/'), ${wholeRate("v_rq")}),
            (v_hk, hashtext('rate/'), ${wholeRate("v_rk")})
          ) AS l(k1, k2, needed)
          WHERE l.needed
          ORDER BY l.k1, l.k2
        LOOP
          CONTINUE WHEN pg_try_advisory_xact_lock(v_k1, v_k2);
          v_skip := v_waited OR v_seen < 2 * v_left;
          EXIT WHEN v_skip;
          PERFORM pg_advisory_xact_lock(v_k1, v_k2);
        END LOOP;
        CONTINUE WHEN v_skip;
        v_waited := v_waited OR ${wholeRate("v_rq")} OR ${wholeRate("v_rk")};

        -- A new statement, so a snapshot taken after the locks: the room left.
        SELECT least(v_left, CASE WHEN v_shard IS NOT NULL THEN v_room END,
          CASE WHEN ${wholeRate("v_rq")} THEN ${rateRoom("v_rq", "queue", "v_queue", "''")} END,
          CASE WHEN ${wholeRate("v_rk")} THEN ${rateRoom("v_rk", "kind", "v_kind", "''")} END)
        INTO v_cap;
        IF v_rq.rate_limit IS NOT NULL THEN
          ${expire("v_rq", "queue", "v_queue", `CASE WHEN v_rq.rate_by_partition THEN v_parts ELSE ARRAY[''] END`)}
        END IF;
        IF v_rk.rate_limit IS NOT NULL THEN
          ${expire("v_rk", "kind", "v_kind", `CASE WHEN v_rk.rate_by_partition THEN v_parts ELSE ARRAY[''] END`)}
        END IF;
        CONTINUE WHEN v_cap <= 0;

        -- 4. Count each key's running jobs (and starts) and take at most the room
        --    left: an even share per key first, then, if the batch is short, what
        --    the keys still have, in ring order.
        v_round := 1;
        LOOP
          v_share := CASE WHEN v_round = 1 THEN ceil(v_cap::numeric / cardinality(v_parts))::integer ELSE v_cap END;
          RETURN QUERY
            WITH pick AS (
              SELECT x.id, pt.n AS ord
              FROM unnest(v_parts) WITH ORDINALITY AS pt(p, n)
              CROSS JOIN LATERAL (SELECT least(v_share,
                CASE WHEN v_rq.per_partition IS NOT NULL AND pt.p <> ''
                  THEN v_rq.per_partition - ${running("c.queue = v_queue AND c.partition_key = pt.p")} END,
                CASE WHEN v_rk.per_partition IS NOT NULL AND pt.p <> ''
                  THEN v_rk.per_partition - ${running("c.kind = v_kind AND c.partition_key = pt.p")} END,
                CASE WHEN ${byKey("v_rq")} THEN ${rateRoom("v_rq", "queue", "v_queue", "pt.p")} END,
                CASE WHEN ${byKey("v_rk")} THEN ${rateRoom("v_rk", "kind", "v_kind", "pt.p")} END
              ) AS room) c
              CROSS JOIN LATERAL (
                SELECT d.id FROM ${schema}.jobs d
                WHERE d.queue = v_queue AND coalesce(d.partition_key, '') = pt.p AND ${due("d")}
                  AND d.kind = ANY(v_kinds)
                ORDER BY d.priority, d.run_at, d.id
                LIMIT greatest(c.room, 0)
                FOR UPDATE SKIP LOCKED) x
              LIMIT v_cap
            ),
            taken AS (${take("pick", "v_shard")}),
            started AS (
              INSERT INTO ${schema}.flow_starts (scope, name, partition_key, started_at)
              SELECT 'queue', v_queue, CASE WHEN v_rq.rate_by_partition THEN coalesce(t.partition_key, '') ELSE '' END, p_now
              FROM taken t WHERE v_rq.rate_limit IS NOT NULL AND t.state = 'running'
              UNION ALL
              SELECT 'kind', v_kind, CASE WHEN v_rk.rate_by_partition THEN coalesce(t.partition_key, '') ELSE '' END, p_now
              FROM taken t WHERE v_rk.rate_limit IS NOT NULL AND t.state = 'running'
            )
            ${rowsOf("taken")};
          GET DIAGNOSTICS v_rows = ROW_COUNT;
          v_left := v_left - v_rows;
          v_cap := v_cap - v_rows;
          EXIT WHEN v_round = 2 OR v_rows = 0 OR v_cap <= 0;
          v_round := 2;
        END LOOP;
      END LOOP;
    END LOOP;
  END
  $fn$;`
}

/** Migration 6's `keyedDue` (see `claimFlow`). */
const v6KeyedDue = (schema: string) => `         SELECT 1 FROM unnest(p_queues) AS u(queue)
         WHERE EXISTS (SELECT 1 FROM ${schema}.jobs d
                       WHERE d.queue = u.queue AND d.state IN ('available', 'scheduled', 'retryable') AND coalesce(d.partition_key, '') > ''))`

/**
 * Migration 8's `claim_flow`: as migration 6's, but the test for due jobs
 * with a partition key probes each requested queue's part of
 * `jobs_partition_claim_idx` (a lateral subquery with a limit, which the
 * planner cannot turn into a join). Migration 6's form could be planned,
 * with statistics taken while nothing was due, as one scan of every keyed
 * due entry of the index, filtered by queue afterwards: 122 buffers and
 * 11 ms per claim with a backlog, against 2 buffers (bench:churn).
 */
export const claimFlowV8 = (schema: string) =>
  claimFlow(
    schema,
    "CREATE OR REPLACE FUNCTION",
    `         SELECT 1 FROM unnest(p_queues) AS u(queue)
         CROSS JOIN LATERAL (SELECT 1 FROM ${schema}.jobs d
                       WHERE d.queue = u.queue AND d.state IN ('available', 'scheduled', 'retryable')
                         AND coalesce(d.partition_key, '') > '' LIMIT 1) AS keyed)`
  )

/**
 * The first key above `''` of queue `queue`'s due jobs, read from
 * `jobs_partition_claim_idx` in key order: the order is what makes the
 * planner take that index under the claim's settings (no sort). Without it,
 * a generic plan takes a match for a third of the rows (the default for a
 * range over an expression without statistics) and reads the table from the
 * start for the first keyed row: with a million due jobs and no keys, 26,000
 * buffers and 160 ms on every claim (W5), against 0.01 ms by the index.
 */
const firstKey = (
  schema: string,
  queue: string
) => `(SELECT coalesce(d.partition_key, '') FROM ${schema}.jobs d
                       WHERE d.queue = ${queue} AND d.state IN ('available', 'scheduled', 'retryable')
                         AND coalesce(d.partition_key, '') > ''
                       ORDER BY coalesce(d.partition_key, '') LIMIT 1)`

/**
 * Migration 9's `claim_flow` (with `roomFirst`, migration 11's): as
 * migration 8's, but both tests for due jobs with a partition key (any
 * requested queue; then each queue in turn) read `jobs_partition_claim_idx`
 * in key order (see `firstKey`). An `EXISTS` would drop the order, and with
 * it the index.
 */
export const claimFlowV9 = (
  schema: string,
  roomFirst = false,
  outsideOnce = false,
  unkeyedApart = false,
  paced = false
) =>
  claimFlow(
    schema,
    "CREATE OR REPLACE FUNCTION",
    `         SELECT 1 FROM unnest(p_queues) AS u(queue)
         CROSS JOIN LATERAL ${firstKey(schema, "u.queue")} AS keyed(key))`,
    `${firstKey(schema, "v_queue")} IS NOT NULL`,
    roomFirst,
    outsideOnce,
    unkeyedApart,
    paced
  )

/**
 * Migration 11's `claim_flow`: as migration 9's, but a claim under a global
 * limit counts a shard's room before it tries the shard's lock, and passes
 * over a shard without room unlocked. Before, it locked each shard it tried
 * until its transaction ended, room or not: a runner's settle-and-claim
 * held every shard for its whole round trip, the other runners' claims
 * found every shard locked and came back empty, and those runners waited
 * for their poll (1 s) with places free. Traced under `global: 50` with two
 * runners: one runner idle 63% of the drain, the other 32%, and never more
 * than 25 jobs running. The count after the lock is unchanged, so the limit
 * holds as before.
 */
export const claimFlowV11 = (schema: string) => claimFlowV9(schema, true)

/**
 * Migration 12's `claim_flow`: as migration 11's, but a whole scope's
 * running jobs under a `global` limit are counted as those outside its
 * shards (every running row, read through `jobs_lease_idx` since migration
 * 12 narrowed the per-key indexes to keyed jobs) plus those in its shards
 * (`jobs_running_*_shard_idx`), so the read of every running row happens
 * once per scope, not twice.
 */
export const claimFlowV12 = (schema: string) => claimFlowV9(schema, true, true)

/**
 * Migration 13's `claim_flow`: as migration 12's, but due jobs without a
 * partition key are read from `jobs_partition_claim_idx` only (the key
 * `''`), which migration 13 makes the one index that holds them: the fast
 * path's arms (no due job of the queue has a key there) read that key, and
 * a queue's (or kind group's) best due job is the better of its best
 * without a key and its best with one (`jobs_queue_claim_idx`, keyed jobs
 * only since migration 13).
 */
export const claimFlowV13 = (schema: string) => claimFlowV9(schema, true, true, true)

/**
 * Migration 15: `flow_rules.rate_burst` (a rate's declared `burst`, null for
 * the default), and a `claim_flow` as migration 13's, but a rate limit
 * admits a start only when both its window and its pace span have room: at
 * most `burst` (default `ceil(limit / 10)`) starts in any
 * `window × burst / limit` (see `paceOf` in src/internal/store/flow.ts). A
 * rate's starts no longer come a whole window's worth at once, a window
 * apart, unless its burst is the whole limit.
 */
export const claimFlowV15 = (schema: string) => `
  ALTER TABLE ${schema}.flow_rules ADD COLUMN rate_burst integer;
${claimFlowV9(schema, true, true, true, true)}`

/**
 * The insert of a batch without dedupe keys (the rows of `input`, a query
 * with `inputRowsV6`'s columns), its ids in batch order and its one
 * wake-up, then the function's return: migration 6's branch for such
 * batches, and migration 14's for the shared form.
 */
const insertUnkeyed = (schema: string, input: string) => `      WITH ins AS (
        INSERT INTO ${schema}.jobs AS j (kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, trace_id, span_id, partition_key)
        SELECT i.kind, i.queue, i.payload, CASE WHEN i.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          i.priority, i.max_attempts, i.run_at, p_now, i.trace_id, i.span_id, i.partition_key
        FROM (${input}) i
        RETURNING j.id, j.queue, j.state
      )
      SELECT (SELECT string_agg(ins.id::text, ',' ORDER BY ins.id) FROM ins),
             (SELECT array_agg(w.queue ORDER BY w.first)
              FROM (SELECT ins.queue, min(ins.id) AS first FROM ins WHERE ins.state = 'available'
                    GROUP BY ins.queue) w)
      INTO ids, v_woken;
      PERFORM ${schema}.notify_enqueued(v_woken);
      RETURN;`

/**
 * Migration 6's `enqueue` (migration 5's, storing each job's partition key),
 * inserting keyed batches in `insertOrder`, a sort of the `input` rows
 * (migration 6: `input.ord`, their order in the batch); `shared` is run
 * first, before the batch is read as rows (migration 14's shared form).
 */
const enqueueV6 = (schema: string, insertOrder = "input.ord", shared = "") => `
  -- Migration 5's enqueue, storing each job's partition key.
  CREATE OR REPLACE FUNCTION ${schema}.enqueue(
    p_jobs jsonb, p_now timestamptz, p_keyed boolean, OUT ids text, OUT deduped integer[]
  )
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  SET plan_cache_mode = force_generic_plan
  SET jit = off
  AS $fn$
  DECLARE
    v_woken text[];
    v_pending integer[];
    v_missing integer[];
    v_ord integer[] := '{}';
    v_id bigint[] := '{}';
    v_round_ord integer[];
    v_round_id bigint[];
    v_round_woken text[];
    v_found_ord integer[];
    v_found_id bigint[];
    v_round integer := 0;
  BEGIN
    deduped := '{}';${shared}
    IF NOT p_keyed THEN
${insertUnkeyed(schema, inputRowsV6)}
    END IF;

    v_woken := '{}';
    LOOP
      WITH input AS MATERIALIZED (
        SELECT nextval('${schema}.jobs_id_seq') AS id, i.*
        FROM (${inputRowsV6}) i
        WHERE v_pending IS NULL OR i.ord IN (SELECT unnest(v_pending))
      ),
      ins AS (
        INSERT INTO ${schema}.jobs AS j (id, kind, queue, payload, state, priority, max_attempts, run_at,
          created_at, dedupe_key, trace_id, span_id, partition_key)
        SELECT input.id, input.kind, input.queue, input.payload,
          CASE WHEN input.run_at <= p_now THEN 'available' ELSE 'scheduled' END,
          input.priority, input.max_attempts, input.run_at, p_now, input.dedupe_key, input.trace_id, input.span_id,
          input.partition_key
        FROM input
        ORDER BY ${insertOrder}
        ON CONFLICT DO NOTHING
        RETURNING j.id, j.queue, j.state
      )
      SELECT coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.id) FILTER (WHERE ins.id IS NOT NULL), '{}'),
             coalesce(array_agg(input.ord::integer) FILTER (WHERE ins.id IS NULL), '{}'),
             coalesce(array_agg(ins.queue ORDER BY input.ord) FILTER (WHERE ins.state = 'available'), '{}')
      INTO v_round_ord, v_round_id, v_missing, v_round_woken
      FROM input LEFT JOIN ins ON ins.id = input.id;

      v_ord := v_ord || v_round_ord;
      v_id := v_id || v_round_id;
      v_woken := v_woken || v_round_woken;
      EXIT WHEN cardinality(v_missing) = 0;

      SELECT coalesce(array_agg(e.ord::integer), '{}'), coalesce(array_agg(j.id), '{}')
      INTO v_found_ord, v_found_id
      FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(v, ord)
      JOIN unnest(v_missing) AS m(ord) ON m.ord = e.ord
      JOIN ${schema}.jobs j ON j.kind = e.v->>0 AND j.dedupe_key = e.v->>7 AND j.state IN ${activeStates};

      v_ord := v_ord || v_found_ord;
      v_id := v_id || v_found_id;
      deduped := deduped || v_found_ord;
      v_pending := ARRAY(SELECT unnest(v_missing) EXCEPT SELECT unnest(v_found_ord));
      EXIT WHEN cardinality(v_pending) = 0;
      v_round := v_round + 1;
      IF v_round > 5 THEN
        RAISE EXCEPTION 'enqueue kept racing with jobs finishing under the same dedupe key; try again';
      END IF;
    END LOOP;

    SELECT string_agg(u.id::text, ',' ORDER BY u.ord) INTO ids FROM unnest(v_ord, v_id) AS u(ord, id);
    PERFORM ${schema}.notify_enqueued(v_woken);
  END
  $fn$;`

/**
 * Migration 8's `enqueue`: a batch with dedupe keys inserts its rows in key
 * order (kind, then key; rows without a key after them), whatever their
 * order in the batch; ids are still given in batch order. A conflict on a
 * key another transaction is inserting waits for it, so two batches that
 * take the same keys in opposite orders waited for each other: a deadlock,
 * one of them failed. Taken in one order, the later waits for the earlier.
 */
export const enqueueV8 = (schema: string) =>
  enqueueV6(schema, "input.kind, input.dedupe_key NULLS LAST, input.ord")

/**
 * Migration 14's `enqueue`: as migration 8's, and a batch whose jobs share
 * everything but their payload and partition key may come as a JSON object
 * instead of an array, `{"s": [kind, queue, priority, max_attempts,
 * run_at_ms, delay_ms, trace_id, span_id], "p": [payload, …], "k": [key or
 * null, …]}` ("k" left out when no job has a key; no dedupe keys): the
 * shared values are read once, and PostgreSQL parses one or two values a
 * job instead of an array of eleven. Nodes of earlier versions still send
 * the array, which it reads as before.
 */
export const enqueueV14 = (schema: string) =>
  enqueueV6(
    schema,
    "input.kind, input.dedupe_key NULLS LAST, input.ord",
    `
    IF jsonb_typeof(p_jobs) = 'object' THEN
${insertUnkeyed(schema, sharedRows)}
    END IF;`
  )

/**
 * The rows of migration 14's shared form, in `inputRowsV6`'s columns: the
 * shared values and the list of partition keys read once (a materialized
 * CTE), then one row per payload, with the key at its position.
 */
const sharedRows = `
  WITH s AS MATERIALIZED (
    SELECT p_jobs->'s'->>0 AS kind, p_jobs->'s'->>1 AS queue, (p_jobs->'s'->>2)::integer AS priority,
      (p_jobs->'s'->>3)::integer AS max_attempts,
      coalesce(to_timestamp((p_jobs->'s'->>4)::float8 / 1000),
               p_now + coalesce((p_jobs->'s'->>5)::float8, 0) * interval '1 millisecond') AS run_at,
      p_jobs->'s'->>6 AS trace_id, p_jobs->'s'->>7 AS span_id, p_jobs->'k' AS keys
  )
  SELECT e.ord, s.kind, s.queue, e.v AS payload, s.priority, s.max_attempts, s.run_at,
    NULL::text AS dedupe_key, s.trace_id, s.span_id, s.keys->>(e.ord::integer - 1) AS partition_key
  FROM s, jsonb_array_elements(p_jobs->'p') WITH ORDINALITY AS e(v, ord)`

/**
 * The statement of migration 10's `settle`, written with the function's
 * parameters (`p_ids`, …, `p_now`) and its variable `v_running` (exported
 * for the plan test, which prepares it with the same settings).
 *
 * Until migration 10 the client sent this statement whole, and PostgreSQL
 * parsed and planned it on every settle (0.65 ms of the 1.8 ms a settle of
 * a few jobs cost the server). In the function the plan is generic and made
 * once per connection, under settings that leave one shape whatever the
 * statistics say: each settled job found by primary key, locked in id
 * order, then deleted (an outcome that ends it, filed into `jobs_done`) or
 * updated in place, by primary key again. The settlements travel with the
 * lock (`locked`), so no later step joins two of the statement's own
 * results. The running state is tested against a variable, which a generic
 * plan cannot match with the partial indexes over running rows: given
 * `state = 'running'`, a plan made on statistics from before any job ran
 * (a fresh backlog, analysed) takes those indexes for nearly empty and
 * drives the lock from them, reading every settlement once per running
 * job (250,000 rows, 65 ms, for a settle of 500 with 500 running). The lock
 * is taken on rows that passed the fence and state test on their latest
 * version; nothing else can change them before the transaction ends, so the
 * writes do not test them again. Jobs made due at once wake runners in the
 * same statement.
 */
export const settleQueryV10 = (schema: string) => {
  /** The errors list of row `j`, with the error of settlement `l` (when any) appended for this attempt. */
  const errors = (j: string, l: string) => `CASE WHEN ${l}.err_kind IS NULL THEN ${j}.errors
          ELSE ${j}.errors || jsonb_build_array(jsonb_build_object(
            'attempt', ${j}.attempt, 'at', floor(extract(epoch from p_now) * 1000), 'kind', ${l}.err_kind,
            'message', ${l}.err_message, 'startedAt', floor(extract(epoch from ${j}.attempted_at) * 1000),
            'node', ${j}.lease_owner)) END`
  const filed = jobColumns.map((c) => {
    switch (c) {
      case "state":
        return "CASE WHEN e.final THEN e.next ELSE 'cancelled' END"
      case "attempt":
        return "e.attempt - e.uncount"
      case "finalized_at":
        return "p_now"
      case "lease_owner":
        // A completed job keeps the runner that ran it (the job detail's last attempt).
        return "CASE WHEN e.final AND e.next = 'completed' THEN e.lease_owner END"
      case "lease_expires_at":
        return "NULL"
      case "errors":
        return errors("e", "e")
      default:
        return `e.${c}`
    }
  })
  return `
      WITH s AS (
        SELECT * FROM unnest(p_ids, p_fences, p_states, p_delay_ms, p_uncount, p_final, p_err_kind, p_err_message)
          AS s(id, fence, state, delay_ms, uncount, final, err_kind, err_message)
      ),
      locked AS (
        -- A pending cancel turns an outcome that would run the job again into 'cancelled'.
        SELECT s.*, (s.final OR (j.cancel_requested AND NOT s.final)) AS ends
        FROM s JOIN ${schema}.jobs j ON j.id = s.id
        WHERE j.fence = s.fence AND j.state = v_running
        ORDER BY j.id
        FOR UPDATE OF j
      ),
      ended AS (
        DELETE FROM ${schema}.jobs AS j USING locked l
        WHERE j.id = l.id AND l.ends
        RETURNING j.*, l.state AS next, l.final, l.uncount, l.err_kind, l.err_message
      ),
      filed AS (
        INSERT INTO ${schema}.jobs_done (${jobColumns.join(", ")})
        SELECT ${filed.join(", ")}
        FROM ended e
        RETURNING id, state
      ),
      settled AS (
        UPDATE ${schema}.jobs AS j SET
          state = l.state,
          attempt = j.attempt - l.uncount,
          run_at = CASE WHEN l.delay_ms IS NULL THEN j.run_at
                        ELSE p_now + l.delay_ms * interval '1 millisecond' END,
          finalized_at = NULL,
          lease_owner = NULL, lease_expires_at = NULL,
          errors = ${errors("j", "l")}
        FROM locked l
        WHERE j.id = l.id AND NOT l.ends
        RETURNING j.id, j.state, j.queue, j.run_at
      ),
      -- Jobs due again at once (released, snoozed or retried without delay) wake
      -- runners: one notification for the batch, delivered on commit.
      woken AS (
        SELECT ${schema}.notify_enqueued(array_agg(settled.queue)) FROM settled
        WHERE settled.state IN ('available', 'scheduled', 'retryable') AND settled.run_at <= p_now
        HAVING count(*) > 0
      )
      SELECT settled.id::text, settled.state FROM settled LEFT JOIN woken ON true
      UNION ALL
      SELECT filed.id::text, filed.state FROM filed`
}

/**
 * The planner settings of migration 10's `settle`: one plan shape whatever
 * the statistics (see `settleQueryV10`).
 */
export const settleSettingsV10 = [
  "plan_cache_mode = force_generic_plan",
  "enable_hashjoin = off",
  "enable_mergejoin = off",
  "enable_seqscan = off",
  "jit = off"
] as const

/**
 * Migration 10: the settle as a function, `settle(ids, fences, states,
 * delay_ms, uncount, final, err_kind, err_message, now)`, one element of
 * each array per settlement, returning each settled job's id and new state
 * (see `settleQueryV10`).
 */
export const settleV10 = (schema: string) => `
  CREATE OR REPLACE FUNCTION ${schema}.settle(
    p_ids bigint[], p_fences integer[], p_states text[], p_delay_ms float8[], p_uncount integer[],
    p_final boolean[], p_err_kind text[], p_err_message text[], p_now timestamptz
  ) RETURNS TABLE (job_id text, job_state text)
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
${settleSettingsV10.map((setting) => `  SET ${setting}`).join("\n")}
  AS $fn$
  DECLARE
    -- Not a constant in the plan: see settleQueryV10.
    v_running text := 'running';
  BEGIN
    RETURN QUERY
${settleQueryV10(schema)};
  END
  $fn$;`
