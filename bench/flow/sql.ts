/**
 * Flow-control spike: the schema and every candidate claim, as SQL text.
 * Spike code, not product code: simplified jobs table (no kinds filter, no
 * paused queues, no fence-overflow case), one queue per claim.
 */

const due = `d.state IN ('available', 'scheduled', 'retryable') AND d.run_at <= p_now`

/** Planner settings as in src/internal/pg/functions.ts v4: plans independent of statistics. */
const settings = `
  LANGUAGE plpgsql VOLATILE
  SET plan_cache_mode = force_generic_plan
  SET enable_sort = off
  SET enable_bitmapscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET jit = off`

/** Mark the ids of CTE `pick` (id, partition, ord) running under a lease; return id, partition, ord. */
const take = (s: string, pick = "pick", extra = "") => `
  UPDATE ${s}.jobs AS j SET ${extra}
    state = 'running', attempt = j.attempt + 1, fence = j.fence + 1, attempted_at = p_now,
    lease_owner = p_owner, lease_expires_at = p_now + p_lease_ms * interval '1 millisecond'
  FROM ${pick} WHERE j.id = ${pick}.id
  RETURNING j.id, j.partition, ${pick}.ord`

/**
 * The first partition (in text order) after `after` with due work in the
 * queue, by one descent of jobs_part_claim_idx (a "loose index scan" step).
 */
const nextPart = (s: string, after: string) => `(
  SELECT d.partition FROM ${s}.jobs d
  WHERE d.queue = p_queue AND ${due} AND d.partition > ${after}
  ORDER BY d.partition LIMIT 1)`

/**
 * Recursive CTE `r(p, n, first)`: up to `m` distinct partitions with due
 * work, round-robin from the caller's cursor (the last partition it served),
 * wrapping to the start of the key space once; no shared state.
 */
const candidates = (s: string, m: string) => `
  r(p, n, first) AS (
    SELECT f.p, 1, f.p FROM (SELECT coalesce(${nextPart(s, "p_cursor")}, ${nextPart(s, "''")}) AS p) f
    WHERE f.p IS NOT NULL
    UNION ALL
    SELECT x.p, r.n + 1, r.first FROM r
    -- OFFSET 0 keeps the step a subquery: inlined, it ran once per reference to x.p (3 times).
    CROSS JOIN LATERAL (SELECT coalesce(${nextPart(s, "r.p")}, ${nextPart(s, "''")}) AS p OFFSET 0) x
    WHERE r.n < ${m} AND x.p IS NOT NULL AND x.p <> r.first
  )`

/** Due jobs of partition `part` in claim order, at most `lim`, locked. */
const partArm = (s: string, part: string, lim: string, cols = "d.id") => `
  SELECT ${cols} FROM ${s}.jobs d
  WHERE d.queue = p_queue AND d.partition = ${part} AND ${due}
  ORDER BY d.priority, d.run_at, d.id
  LIMIT ${lim}
  FOR UPDATE SKIP LOCKED`

const sig = `p_queue text, p_limit integer, p_owner text, p_lease_ms float8, p_now timestamptz`
const ret = `RETURNS TABLE(id bigint, partition text, ord integer)`

export const schemaSql = (s: string) => `
  DROP SCHEMA IF EXISTS ${s} CASCADE;
  CREATE SCHEMA ${s};
  CREATE TABLE ${s}.jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL DEFAULT 'noop',
    queue text NOT NULL,
    partition text,
    payload jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL CHECK (state IN ('scheduled','available','running','retryable','completed','discarded','cancelled')),
    priority integer NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 25,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    finalized_at timestamptz,
    lease_owner text,
    lease_expires_at timestamptz,
    fence integer NOT NULL DEFAULT 0,
    shard smallint
  );
  -- Today's claim index (migration 3).
  CREATE INDEX jobs_queue_claim_idx ON ${s}.jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
  -- Per-partition arms and the loose index scan over partitions with due work.
  CREATE INDEX jobs_part_claim_idx ON ${s}.jobs (queue, partition, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
  -- Technique "count": running rows per queue / (queue, partition).
  CREATE INDEX jobs_running_idx ON ${s}.jobs (queue, partition) WHERE state = 'running';
  -- Technique "count, sharded": running rows per (queue, shard).
  CREATE INDEX jobs_running_shard_idx ON ${s}.jobs (queue, shard) WHERE state = 'running' AND shard IS NOT NULL;

  -- Technique "slot": N rows per limited key; key '*' is the queue-wide limit.
  CREATE TABLE ${s}.slots (
    queue text NOT NULL, key text NOT NULL, n integer NOT NULL,
    job_id bigint, fence integer,
    PRIMARY KEY (queue, key, n)
  ) WITH (fillfactor = 50);

  -- Technique "counter": one running-count row per (queue, partition).
  CREATE TABLE ${s}.pcount (
    queue text NOT NULL, partition text NOT NULL, lim integer NOT NULL, running integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, partition)
  ) WITH (fillfactor = 50);

  -- (a) baseline: today's claim (one arm of v4, one queue).
  CREATE FUNCTION ${s}.claim_base(${sig}) ${ret} ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH pick AS (
        SELECT d.id, 0 AS ord FROM ${s}.jobs d
        WHERE d.queue = p_queue AND ${due}
        ORDER BY d.priority, d.run_at, d.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
      ${take(s)};
  END $fn$;

  -- Fair, no limit: up to p_limit partitions round-robin from the cursor,
  -- ceil(p_limit / partitions found) jobs from each, cut at p_limit in ring order.
  CREATE FUNCTION ${s}.claim_fair(${sig}, p_cursor text) ${ret} ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH RECURSIVE ${candidates(s, "p_limit")},
      parts AS MATERIALIZED (SELECT r.p, r.n FROM r),
      sh AS (SELECT ceil(p_limit::numeric / greatest(count(*), 1))::integer AS k FROM parts),
      pick AS (
        SELECT x.id, pt.n AS ord FROM parts pt
        CROSS JOIN LATERAL (${partArm(s, "pt.p", "(SELECT sh.k FROM sh)")}) x
        LIMIT p_limit)
      ${take(s)};
  END $fn$;

  -- Count + advisory lock, per partition: statement 1 try-locks candidate
  -- partitions (skipping ones another claim holds); statement 2, with a fresh
  -- snapshot taken after the locks, counts each one's running rows and takes
  -- at most (limit - running) of its due jobs.
  CREATE FUNCTION ${s}.claim_count_part(${sig}, p_cursor text, p_per integer) ${ret} ${settings} AS $fn$
  DECLARE v_parts text[];
  BEGIN
    v_parts := ARRAY(
      WITH RECURSIVE ${candidates(s, "p_limit")}
      SELECT r.p FROM r WHERE pg_try_advisory_xact_lock(hashtextextended(p_queue || chr(31) || r.p, 0)));
    IF cardinality(v_parts) = 0 THEN RETURN; END IF;
    RETURN QUERY
      WITH pick AS (
        SELECT x.id, pt.n::integer AS ord FROM unnest(v_parts) WITH ORDINALITY AS pt(p, n)
        CROSS JOIN LATERAL (
          SELECT p_per - count(*) AS room FROM ${s}.jobs c
          WHERE c.queue = p_queue AND c.partition = pt.p AND c.state = 'running') c
        CROSS JOIN LATERAL (${partArm(s, "pt.p", `least(ceil(p_limit::numeric / cardinality(v_parts))::integer, greatest(c.room, 0))`)}) x
        LIMIT p_limit)
      ${take(s)};
  END $fn$;

  -- Count + advisory lock, queue-wide: lock the queue's key (blocking), then
  -- count its running rows with a fresh snapshot and take at most the room.
  CREATE FUNCTION ${s}.claim_count_global(${sig}, p_max integer) ${ret} ${settings} AS $fn$
  DECLARE v_room integer;
  BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_queue, 1));
    SELECT p_max - count(*) INTO v_room FROM ${s}.jobs c WHERE c.queue = p_queue AND c.state = 'running';
    IF v_room <= 0 THEN RETURN; END IF;
    RETURN QUERY
      WITH pick AS (
        SELECT d.id, 0 AS ord FROM ${s}.jobs d
        WHERE d.queue = p_queue AND ${due}
        ORDER BY d.priority, d.run_at, d.id LIMIT least(p_limit, v_room) FOR UPDATE SKIP LOCKED)
      ${take(s)};
  END $fn$;

  -- Count + advisory locks, queue-wide but sharded: the limit is split over
  -- p_shards lock keys (shard i may run floor or ceil of p_max / p_shards);
  -- a claim try-locks shards from a random one on, counts that shard's running
  -- rows (fresh snapshot) and claims into the first shard with room, stamping
  -- the shard on the rows. No claim waits; the sum of shard limits is p_max.
  CREATE FUNCTION ${s}.claim_count_sharded(${sig}, p_max integer, p_shards integer) ${ret} ${settings} AS $fn$
  DECLARE
    v_start integer := floor(random() * p_shards)::integer;
    v_shard integer;
    v_room integer;
  BEGIN
    FOR i IN 0 .. p_shards - 1 LOOP
      v_shard := (v_start + i) % p_shards;
      CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(p_queue, 100 + v_shard));
      SELECT p_max / p_shards + CASE WHEN v_shard < p_max % p_shards THEN 1 ELSE 0 END - count(*) INTO v_room
      FROM ${s}.jobs c WHERE c.queue = p_queue AND c.shard = v_shard AND c.state = 'running';
      EXIT WHEN v_room > 0;
    END LOOP;
    IF v_room IS NULL OR v_room <= 0 THEN RETURN; END IF;
    RETURN QUERY
      WITH pick AS (
        SELECT d.id, 0 AS ord FROM ${s}.jobs d
        WHERE d.queue = p_queue AND ${due}
        ORDER BY d.priority, d.run_at, d.id LIMIT least(p_limit, v_room) FOR UPDATE SKIP LOCKED)
      ${take(s, "pick", "shard = v_shard,")};
  END $fn$;

  -- Slot rows, per partition: for each candidate partition lock free slots
  -- (SKIP LOCKED), take as many due jobs, pair them by rank, write the job
  -- id and fence into the slots. One statement.
  CREATE FUNCTION ${s}.claim_slot_part(${sig}, p_cursor text) ${ret} ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH RECURSIVE ${candidates(s, "p_limit")},
      parts AS MATERIALIZED (SELECT r.p, r.n FROM r),
      sh AS (SELECT ceil(p_limit::numeric / greatest(count(*), 1))::integer AS k FROM parts),
      got AS MATERIALIZED (
        SELECT pt.p, pt.n AS ord, sl.n AS slot FROM parts pt
        CROSS JOIN LATERAL (
          SELECT s.n FROM ${s}.slots s
          WHERE s.queue = p_queue AND s.key = pt.p AND s.job_id IS NULL
          ORDER BY s.n LIMIT (SELECT sh.k FROM sh) FOR UPDATE SKIP LOCKED) sl),
      gotn AS (SELECT g.p, g.ord, g.slot, row_number() OVER (PARTITION BY g.p ORDER BY g.slot) AS rn FROM got g),
      perp AS (SELECT g.p, g.ord, count(*) AS k FROM got g GROUP BY g.p, g.ord),
      jobsel AS (
        SELECT pp.p, pp.ord, x.id, row_number() OVER (PARTITION BY pp.p ORDER BY x.priority, x.run_at, x.id) AS rn
        FROM perp pp CROSS JOIN LATERAL (${partArm(s, "pp.p", "pp.k", "d.id, d.priority, d.run_at")}) x),
      pick AS MATERIALIZED (
        SELECT js.id, js.p, gn.slot, js.ord::integer AS ord FROM jobsel js
        JOIN gotn gn ON gn.p = js.p AND gn.rn = js.rn
        ORDER BY js.ord LIMIT p_limit),
      held AS (
        UPDATE ${s}.slots s SET job_id = pick.id, fence = (SELECT j.fence + 1 FROM ${s}.jobs j WHERE j.id = pick.id)
        FROM pick WHERE s.queue = p_queue AND s.key = pick.p AND s.n = pick.slot)
      ${take(s)};
  END $fn$;

  -- Slot rows, queue-wide: N rows under key '*'.
  CREATE FUNCTION ${s}.claim_slot_global(${sig}) ${ret} ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH got AS MATERIALIZED (
        SELECT s.n FROM ${s}.slots s
        WHERE s.queue = p_queue AND s.key = '*' AND s.job_id IS NULL
        ORDER BY s.n LIMIT p_limit FOR UPDATE SKIP LOCKED),
      gotn AS (SELECT g.n, row_number() OVER (ORDER BY g.n) AS rn FROM got g),
      jobsel AS (
        SELECT x.id, row_number() OVER (ORDER BY x.priority, x.run_at, x.id) AS rn FROM (
          SELECT d.id, d.priority, d.run_at FROM ${s}.jobs d
          WHERE d.queue = p_queue AND ${due}
          ORDER BY d.priority, d.run_at, d.id LIMIT (SELECT count(*) FROM got) FOR UPDATE SKIP LOCKED) x),
      pick AS MATERIALIZED (SELECT js.id, gn.n AS slot, 0 AS ord FROM jobsel js JOIN gotn gn ON gn.rn = js.rn),
      held AS (
        UPDATE ${s}.slots s SET job_id = pick.id, fence = (SELECT j.fence + 1 FROM ${s}.jobs j WHERE j.id = pick.id)
        FROM pick WHERE s.queue = p_queue AND s.key = '*' AND s.n = pick.slot)
      ${take(s)};
  END $fn$;

  -- Counter rows, per partition: lock each candidate partition's count row
  -- (SKIP LOCKED), take at most (lim - running) jobs, add what was taken.
  CREATE FUNCTION ${s}.claim_counter_part(${sig}, p_cursor text) ${ret} ${settings} AS $fn$
  BEGIN
    RETURN QUERY
      WITH RECURSIVE ${candidates(s, "p_limit")},
      parts AS MATERIALIZED (SELECT r.p, r.n FROM r),
      sh AS (SELECT ceil(p_limit::numeric / greatest(count(*), 1))::integer AS k FROM parts),
      rooms AS MATERIALIZED (
        SELECT pt.p, pt.n AS ord, greatest(c.lim - c.running, 0) AS room FROM parts pt
        CROSS JOIN LATERAL (
          SELECT pc.lim, pc.running FROM ${s}.pcount pc
          WHERE pc.queue = p_queue AND pc.partition = pt.p FOR UPDATE SKIP LOCKED) c),
      pick AS MATERIALIZED (
        SELECT x.id, x.partition AS p, rm.ord::integer AS ord FROM rooms rm
        CROSS JOIN LATERAL (${partArm(s, "rm.p", "least(rm.room, (SELECT sh.k FROM sh))", "d.id, d.partition")}) x
        LIMIT p_limit),
      counted AS (
        UPDATE ${s}.pcount pc SET running = pc.running + t.k
        FROM (SELECT pick.p, count(*) AS k FROM pick GROUP BY pick.p) t
        WHERE pc.queue = p_queue AND pc.partition = t.p)
      ${take(s)};
  END $fn$;

  -- Rescue of expired leases, as today: only the jobs rows.
  CREATE FUNCTION ${s}.rescue(p_now timestamptz) RETURNS integer LANGUAGE sql AS $fn$
    WITH r AS (
      UPDATE ${s}.jobs SET state = 'retryable', lease_owner = NULL, lease_expires_at = NULL
      WHERE state = 'running' AND lease_expires_at < p_now RETURNING id)
    SELECT count(*)::integer FROM r;
  $fn$;
  -- Slots: the rescue must also free the slots of the jobs it takes back.
  CREATE FUNCTION ${s}.rescue_slot(p_now timestamptz) RETURNS integer LANGUAGE sql AS $fn$
    WITH r AS (
      UPDATE ${s}.jobs SET state = 'retryable', lease_owner = NULL, lease_expires_at = NULL
      WHERE state = 'running' AND lease_expires_at < p_now RETURNING id, queue),
    freed AS (
      UPDATE ${s}.slots s SET job_id = NULL, fence = NULL FROM r WHERE s.queue = r.queue AND s.job_id = r.id)
    SELECT count(*)::integer FROM r;
  $fn$;
  -- Slots, self-healing alternative: a slot whose job is no longer running under
  -- the fence it was taken with is free (a sweep; the claim could test the same).
  CREATE FUNCTION ${s}.sweep_slots() RETURNS integer LANGUAGE sql AS $fn$
    WITH f AS (
      UPDATE ${s}.slots s SET job_id = NULL, fence = NULL
      WHERE s.job_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM ${s}.jobs j WHERE j.id = s.job_id AND j.state = 'running' AND j.fence = s.fence)
      RETURNING 1)
    SELECT count(*)::integer FROM f;
  $fn$;
  -- Counters: the rescue must decrement what it takes back.
  CREATE FUNCTION ${s}.rescue_counter(p_now timestamptz) RETURNS integer LANGUAGE sql AS $fn$
    WITH r AS (
      UPDATE ${s}.jobs SET state = 'retryable', lease_owner = NULL, lease_expires_at = NULL
      WHERE state = 'running' AND lease_expires_at < p_now RETURNING queue, partition),
    t AS (SELECT r.queue AS q, r.partition AS p, count(*) AS k FROM r GROUP BY r.queue, r.partition),
    locked AS (
      SELECT pc.queue, pc.partition, t.k FROM ${s}.pcount pc JOIN t ON pc.queue = t.q AND pc.partition = t.p
      ORDER BY pc.queue, pc.partition FOR UPDATE OF pc),
    dec AS (
      UPDATE ${s}.pcount pc SET running = pc.running - locked.k
      FROM locked WHERE pc.queue = locked.queue AND pc.partition = locked.partition)
    SELECT count(*)::integer FROM r;
  $fn$;

  -- Settles (a no-op job succeeded). Plain: the count techniques need nothing else.
  CREATE FUNCTION ${s}.settle(p_ids bigint[], p_now timestamptz) RETURNS void LANGUAGE sql AS $fn$
    UPDATE ${s}.jobs SET state = 'completed', finalized_at = p_now, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(p_ids) AND state = 'running';
  $fn$;
  -- Slots: free the slots holding these jobs in the same statement.
  CREATE FUNCTION ${s}.settle_slot(p_queue text, p_keys text[], p_ids bigint[], p_now timestamptz) RETURNS void LANGUAGE sql AS $fn$
    WITH freed AS (
      UPDATE ${s}.slots s SET job_id = NULL, fence = NULL
      WHERE s.queue = p_queue AND s.key = ANY(p_keys) AND s.job_id = ANY(p_ids))
    UPDATE ${s}.jobs SET state = 'completed', finalized_at = p_now, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(p_ids) AND state = 'running';
  $fn$;
  -- Counters: decrement by the rows this statement actually moved out of running.
  CREATE FUNCTION ${s}.settle_counter(p_queue text, p_ids bigint[], p_now timestamptz) RETURNS void LANGUAGE sql AS $fn$
    WITH done AS (
      UPDATE ${s}.jobs SET state = 'completed', finalized_at = p_now, lease_owner = NULL, lease_expires_at = NULL
      WHERE id = ANY(p_ids) AND state = 'running'
      RETURNING partition),
    t AS (SELECT done.partition AS p, count(*) AS k FROM done GROUP BY done.partition),
    -- Lock the count rows in key order first: two settles sharing partitions would
    -- otherwise deadlock (claims skip locked count rows, so they never wait).
    locked AS (
      SELECT pc.partition, t.k FROM ${s}.pcount pc JOIN t ON pc.queue = p_queue AND pc.partition = t.p
      ORDER BY pc.partition FOR UPDATE OF pc)
    UPDATE ${s}.pcount pc SET running = pc.running - locked.k
    FROM locked WHERE pc.queue = p_queue AND pc.partition = locked.partition;
  $fn$;
`
