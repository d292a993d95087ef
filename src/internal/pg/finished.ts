/**
 * Finished jobs on PostgreSQL: a table of their own, partitioned by state
 * and by finish time, so that the `jobs` table holds only live jobs
 * (scheduled, available, running, retryable) and stays small whatever the
 * retention.
 *
 * - `jobs_done` is partitioned by list of state (completed, discarded,
 *   cancelled), each of those by range of `finalized_at`. The pruner
 *   (`prune_done`) creates each state's partitions ahead of time, one
 *   width being an eighth of that state's retention (from a minute to a
 *   day), and drops a partition once all of it is past retention. A row
 *   whose finish time has no partition (none created yet, or a clock far
 *   from the pruner's) goes to the state's default partition, which the
 *   pruner deletes from row by row.
 * - A settle to a final state moves the row in its statement (`DELETE …
 *   RETURNING` into `INSERT`, see `jobs.ts`). Every other way a live row
 *   becomes final (a cancel, a rescue that discards, the claim's fence
 *   discard, a hand edit, a node still on the previous version) is caught
 *   by the `jobs_file_finished` trigger, which moves it at the end of the
 *   statement.
 * - `jobs_all` reads both tables (`get`, `list`, `counts`, the bulk
 *   operations); a retry moves the row back.
 * - Rows finished before this migration are moved by `move_finished` in
 *   batches after it (`moveLegacy`), while runners keep working.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import { type Ctx, millis } from "./context.js"
import { claimFlowV8, enqueueV8 } from "./functions.js"
import { jobColumns } from "./rows.js"

export const finalStates = ["completed", "discarded", "cancelled"] as const

const finalList = "('completed', 'discarded', 'cancelled')"

/**
 * Migration 8: the finished jobs' table, the trigger that files them, the
 * view over both, the pruner and the mover; the live table tuned for churn;
 * `enqueue` inserting a keyed batch in key order (see `enqueueV8`); and
 * `claim_flow` testing for keyed due jobs queue by queue (see `claimFlowV8`).
 *
 * The live table's pages are left a fifth empty (`fillfactor`), so that a
 * claim, heartbeat or settle can often write the new row version on the
 * same page, and it is vacuumed after 1% of it changed (at least 200 rows)
 * and without the cost-based pauses: it is small, and every claim walks
 * what vacuum has not yet cleaned.
 */
export const v8 = (schema: string) => {
  const statePartitions = finalStates
    .map(
      (state) => `
  CREATE TABLE ${schema}.jobs_done_${state} PARTITION OF ${schema}.jobs_done
    FOR VALUES IN ('${state}') PARTITION BY RANGE (finalized_at);
  CREATE TABLE ${schema}.jobs_done_${state}_default PARTITION OF ${schema}.jobs_done_${state} DEFAULT;`
    )
    .join("")
  const all = jobColumns.join(", ")
  return `
  ALTER TABLE ${schema}.jobs SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200, autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0);

  CREATE TABLE ${schema}.jobs_done (LIKE ${schema}.jobs) PARTITION BY LIST (state);
  ${statePartitions}
  -- By id: get, list (newest first) and the bulk operations. By finish time: the overview,
  -- and the pruner's deletes in a default partition.
  CREATE INDEX jobs_done_id_idx ON ${schema}.jobs_done (id);
  CREATE INDEX jobs_done_finalized_idx ON ${schema}.jobs_done (finalized_at);

  -- The time partitions the pruner made, with their bounds.
  CREATE TABLE ${schema}.done_partitions (
    name text PRIMARY KEY,
    state text NOT NULL,
    lo timestamptz NOT NULL,
    hi timestamptz NOT NULL
  );

  CREATE VIEW ${schema}.jobs_all AS
    SELECT ${all} FROM ${schema}.jobs UNION ALL SELECT ${all} FROM ${schema}.jobs_done;

  -- A live row made final by any statement but the settle (which moves its rows itself).
  CREATE FUNCTION ${schema}.file_finished() RETURNS trigger
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $fn$
  BEGIN
    DELETE FROM ${schema}.jobs WHERE id = NEW.id;
    NEW.finalized_at := coalesce(NEW.finalized_at, now());
    INSERT INTO ${schema}.jobs_done (${all}) SELECT ${jobColumns.map((c) => `NEW.${c}`).join(", ")};
    RETURN NULL;
  END
  $fn$;
  CREATE TRIGGER jobs_file_finished AFTER INSERT OR UPDATE OF state ON ${schema}.jobs
    FOR EACH ROW WHEN (NEW.state IN ${finalList}) EXECUTE FUNCTION ${schema}.file_finished();

  -- Rows finished before migration 8, moved a batch at a time (oldest first); returns how many.
  CREATE FUNCTION ${schema}.move_finished(p_limit integer) RETURNS integer
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $fn$
  DECLARE
    v_moved integer;
  BEGIN
    WITH picked AS (
      SELECT j.id FROM ${schema}.jobs j WHERE j.state IN ${finalList}
      ORDER BY j.id LIMIT p_limit FOR UPDATE SKIP LOCKED
    ),
    gone AS (
      DELETE FROM ${schema}.jobs j USING picked WHERE j.id = picked.id RETURNING j.*
    ),
    filed AS (
      INSERT INTO ${schema}.jobs_done (${all})
      SELECT ${jobColumns
        .map((c) =>
          c === "finalized_at" ? "coalesce(g.finalized_at, g.attempted_at, g.created_at)" : `g.${c}`
        )
        .join(", ")}
      FROM gone g
      RETURNING 1
    )
    SELECT count(*) INTO v_moved FROM filed;
    RETURN v_moved;
  END
  $fn$;

  -- The pruner: for each final state (retention p_keep_ms[1..3] for completed, discarded,
  -- cancelled), drop a time partition wholly past retention, delete the rows of the default
  -- partition past it (at most p_limit rows in all), and create the partitions of the
  -- current and next period. Returns the number of jobs deleted.
  CREATE FUNCTION ${schema}.prune_done(p_now timestamptz, p_keep_ms float8[], p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $fn$
  DECLARE
    v_states text[] := ARRAY['completed', 'discarded', 'cancelled'];
    v_state text;
    v_cutoff timestamptz;
    v_width float8;
    v_part record;
    v_total integer := 0;
    v_n integer;
    v_lo timestamptz;
    v_hi timestamptz;
    v_taken timestamptz;
    v_name text;
    v_timeout text := current_setting('lock_timeout');
  BEGIN
    -- One pruner at a time changes partitions; another skips that part.
    IF NOT pg_try_advisory_xact_lock(hashtextextended('nightshift.prune_done:${schema}', 0)) THEN
      RETURN 0;
    END IF;
    FOR v_i IN 1 .. 3 LOOP
      v_state := v_states[v_i];
      -- A retention past 300 years (or infinite) keeps everything.
      v_cutoff := CASE WHEN p_keep_ms[v_i] < 1e13 THEN p_now - p_keep_ms[v_i] * interval '1 millisecond'
                       ELSE '-infinity'::timestamptz END;

      -- A whole partition past retention goes in one step. DDL takes the partitioned table's
      -- strongest lock: wait for it briefly, else leave it to the next pass.
      FOR v_part IN
        SELECT * FROM ${schema}.done_partitions p WHERE p.state = v_state AND p.hi <= v_cutoff
        ORDER BY p.lo LIMIT 1
      LOOP
        BEGIN
          PERFORM set_config('lock_timeout', '200ms', true);
          EXECUTE format('LOCK TABLE ${schema}.%I IN ACCESS EXCLUSIVE MODE', 'jobs_done_' || v_state);
          EXECUTE format('SELECT count(*)::integer FROM ${schema}.%I', v_part.name) INTO v_n;
          EXECUTE format('DROP TABLE ${schema}.%I', v_part.name);
          DELETE FROM ${schema}.done_partitions p WHERE p.name = v_part.name;
          PERFORM set_config('lock_timeout', v_timeout, true);
          v_total := v_total + v_n;
        EXCEPTION WHEN lock_not_available THEN
          PERFORM set_config('lock_timeout', v_timeout, true);
        END;
      END LOOP;

      -- Rows without a time partition, one by one. A final row without a finish time (a hand
      -- edit) is aged from its latest attempt, else its creation.
      IF v_total < p_limit THEN
        EXECUTE format(
          'WITH gone AS (DELETE FROM ${schema}.%1$I WHERE ctid IN (
             SELECT ctid FROM ${schema}.%1$I
             WHERE finalized_at < $1 OR (finalized_at IS NULL AND coalesce(attempted_at, created_at) < $1)
             LIMIT $2) RETURNING 1)
           SELECT count(*)::integer FROM gone', 'jobs_done_' || v_state || '_default')
        INTO v_n USING v_cutoff, p_limit - v_total;
        v_total := v_total + v_n;
      END IF;

      -- The current and next period's partitions: an eighth of the retention each, from a
      -- minute to a day, aligned to the width. A range the default partition already has
      -- rows in is left to it; one another partition covers in part starts where that ends.
      v_width := least(greatest(p_keep_ms[v_i] / 8, 60000), 86400000) / 1000;
      v_lo := to_timestamp(floor(extract(epoch from p_now) / v_width) * v_width);
      FOR v_k IN 0 .. 1 LOOP
        v_hi := v_lo + v_width * interval '1 second';
        SELECT max(p.hi) INTO v_taken FROM ${schema}.done_partitions p
        WHERE p.state = v_state AND p.lo < v_hi AND p.hi > v_lo;
        IF v_taken IS NULL OR v_taken < v_hi THEN
          v_lo := greatest(v_lo, coalesce(v_taken, v_lo));
          EXECUTE format('SELECT count(*)::integer FROM (SELECT 1 FROM ${schema}.%I
              WHERE finalized_at >= $1 AND finalized_at < $2 LIMIT 1) x', 'jobs_done_' || v_state || '_default')
            INTO v_n USING v_lo, v_hi;
          IF v_n = 0 THEN
            v_name := 'jobs_done_' || v_state || '_' || to_char(v_lo AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS');
            BEGIN
              PERFORM set_config('lock_timeout', '200ms', true);
              EXECUTE format('CREATE TABLE ${schema}.%I PARTITION OF ${schema}.%I FOR VALUES FROM (%L) TO (%L)',
                v_name, 'jobs_done_' || v_state, v_lo, v_hi);
              INSERT INTO ${schema}.done_partitions (name, state, lo, hi) VALUES (v_name, v_state, v_lo, v_hi);
              PERFORM set_config('lock_timeout', v_timeout, true);
            EXCEPTION WHEN lock_not_available THEN
              PERFORM set_config('lock_timeout', v_timeout, true);
            END;
          END IF;
        END IF;
        v_lo := v_hi;
      END LOOP;
    END LOOP;
    RETURN v_total;
  END
  $fn$;
${enqueueV8(schema)}
${claimFlowV8(schema)}`
}

/**
 * `JobStore.prune`: a batch of rows finished before migration 8 moved
 * (normally none: `moveLegacy` did it at start-up), then `prune_done`
 * (partitions and default partitions), and old cron slot rows, except the
 * latest of each name.
 */
export const prune = (ctx: Ctx, request: JobStore.PruneRequest) => {
  if (request.limit <= 0) return Effect.succeed(0)
  return Effect.flatMap(ctx.now, (now) =>
    ctx.sql<{ count: number }>`
      WITH legacy AS (
        SELECT ${ctx.table("move_finished")}(${request.limit}::integer)
      ),
      pruned AS (
        SELECT ${ctx.table("prune_done")}(${now.ts},
          ARRAY[${request.completedMs}, ${request.discardedMs}, ${request.cancelledMs}]::float8[],
          ${request.limit}::integer) AS count
        FROM legacy
      ),
      old_slots AS (
        DELETE FROM ${ctx.table("cron_slots")} c
        WHERE c.ctid IN (
          SELECT o.ctid FROM ${ctx.table("cron_slots")} o
          WHERE o.enqueued_at < ${now.ts} - ${millis(ctx, request.completedMs)}
            AND o.slot < (SELECT max(m.slot) FROM ${ctx.table("cron_slots")} m WHERE m.name = o.name)
          LIMIT ${request.limit})
      )
      SELECT count FROM pruned`.pipe(Effect.map((rows) => rows[0]?.count ?? 0))
  )
}

/**
 * Move the rows finished before migration 8 into `jobs_done`, a batch per
 * transaction, until none is left; other nodes doing the same skip the rows
 * this one holds. Returns how many this call moved.
 */
export const moveLegacy = (ctx: Ctx, batch = 5_000) =>
  Effect.gen(function* () {
    let total = 0
    while (true) {
      const [row] = yield* ctx.sql<{ moved: number }>`SELECT ${ctx.table("move_finished")}(${batch}) AS moved`
      const moved = row?.moved ?? 0
      total += moved
      if (moved < batch) return total
      yield* Effect.yieldNow()
    }
  })

/** `JobStore.tableStats`: the live table's dead and live rows and sizes, and the finished jobs' size. */
export const tableStats = (ctx: Ctx) =>
  Effect.map(
    ctx.sql<{
      dead: number | null
      live: number | null
      table_bytes: number
      index_bytes: number
      finished_bytes: number | null
    }>`
      SELECT s.n_dead_tup::float8 AS dead, s.n_live_tup::float8 AS live,
        pg_table_size(c.oid)::float8 AS table_bytes, pg_indexes_size(c.oid)::float8 AS index_bytes,
        (SELECT sum(pg_total_relation_size(t.relid))::float8
         FROM pg_partition_tree(${`${ctx.schema}.jobs_done`}::regclass) t WHERE t.isleaf) AS finished_bytes
      FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE c.oid = ${`${ctx.schema}.jobs`}::regclass`,
    ([row]): JobStore.TableStats => ({
      liveRows: row?.live ?? 0,
      deadRows: row?.dead ?? 0,
      tableBytes: row?.table_bytes ?? 0,
      indexBytes: row?.index_bytes ?? 0,
      finishedBytes: row?.finished_bytes ?? 0
    })
  )
