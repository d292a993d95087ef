/**
 * Tables and migrations of the SQLite engine. Table names are fixed; no user
 * value ever becomes an identifier.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The `Migrator` bookkeeping table, kept apart from the host app's own. */
export const migrationsTable = "nightshift_migrations"

const statements = (...ddl: ReadonlyArray<string>): Effect.Effect<void, unknown, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(ddl, (statement) => sql.unsafe(statement).raw, { discard: true })
  )

const createJobs = statements(
  `CREATE TABLE nightshift_jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT,
    state TEXT NOT NULL CHECK (state IN
      ('scheduled', 'available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    priority INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    attempted_at INTEGER,
    finalized_at INTEGER,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    fence INTEGER NOT NULL DEFAULT 0,
    dedupe_key TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    errors TEXT NOT NULL DEFAULT '[]',
    trace_id TEXT,
    span_id TEXT
  ) STRICT`,
  `CREATE INDEX nightshift_jobs_claim ON nightshift_jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable')`,
  `CREATE UNIQUE INDEX nightshift_jobs_dedupe ON nightshift_jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable')`,
  `CREATE INDEX nightshift_jobs_lease ON nightshift_jobs (lease_expires_at) WHERE state = 'running'`,
  `CREATE INDEX nightshift_jobs_finalized ON nightshift_jobs (state, finalized_at)
    WHERE finalized_at IS NOT NULL`,
  `CREATE TABLE nightshift_paused_queues (
    queue TEXT PRIMARY KEY NOT NULL,
    paused_at INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID`,
  `CREATE TABLE nightshift_cron_slots (
    name TEXT NOT NULL,
    slot INTEGER NOT NULL,
    job_id INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, slot)
  ) STRICT, WITHOUT ROWID`,
  `CREATE TABLE nightshift_counters (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID`,
  `INSERT INTO nightshift_counters (name, value) VALUES ('job_id', 0)`
)

/**
 * Final rows without a finish time (only a hand edit makes one): `prune` ages
 * them from their latest attempt or creation and finds them here instead of
 * scanning the table. Normally empty.
 */
const indexUnfinalized = statements(
  `CREATE INDEX nightshift_jobs_unfinalized ON nightshift_jobs (state)
    WHERE finalized_at IS NULL AND state IN ('completed', 'discarded', 'cancelled')`
)

/**
 * Flow control (issue 14): a job's partition key; the rules `declareLimits`
 * stores; one row per start counted against a rate limit (epoch ms, like
 * every time of this engine; `partition_key` is `''` for a rate counted over
 * the whole kind or queue).
 *
 * - `nightshift_jobs_partition` orders each queue's due jobs by key, then in
 *   claim order: the fair claim walks the keys with one seek each and reads
 *   a key's next jobs with another. It replaces `nightshift_jobs_claim`:
 *   the plain claim reads the jobs without a key (`partition_key IS NULL`)
 *   in the same order, and a due row is kept in one index, not two (a
 *   second index over due rows made the claim of unkeyed jobs about a
 *   third slower).
 * - `nightshift_jobs_running` holds only running rows, covering the counts
 *   of running jobs by queue or kind and key that a limited claim reads.
 */
const flowControl = statements(
  `ALTER TABLE nightshift_jobs ADD COLUMN partition_key TEXT`,
  `DROP INDEX nightshift_jobs_claim`,
  `CREATE INDEX nightshift_jobs_partition ON nightshift_jobs (queue, partition_key, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable')`,
  `CREATE INDEX nightshift_jobs_running ON nightshift_jobs (queue, kind, partition_key, lease_expires_at)
    WHERE state = 'running'`,
  `CREATE TABLE nightshift_flow_rules (
    scope TEXT NOT NULL CHECK (scope IN ('kind', 'queue')),
    name TEXT NOT NULL,
    global_limit INTEGER,
    per_partition INTEGER,
    rate_limit INTEGER,
    rate_window_ms INTEGER,
    rate_by_partition INTEGER NOT NULL DEFAULT 0 CHECK (rate_by_partition IN (0, 1)),
    PRIMARY KEY (scope, name)
  ) STRICT, WITHOUT ROWID`,
  `CREATE TABLE nightshift_flow_starts (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    partition_key TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL
  ) STRICT`,
  `CREATE INDEX nightshift_flow_starts_window ON nightshift_flow_starts (scope, name, partition_key, started_at)`
)

/**
 * 0004: retryable jobs by run-at, for the admin overview's count of retries
 * (`JobStore.activity`). Only a retry writes to it.
 */
const retryableIndex = statements(
  `CREATE INDEX nightshift_jobs_retryable ON nightshift_jobs (run_at) WHERE state = 'retryable'`
)

/**
 * Migration 5: a rate limit's declared `burst` (null: the default pace, a
 * tenth of the limit); see `paceOf` in src/internal/store/flow.ts.
 */
const rateBurst = statements(`ALTER TABLE nightshift_flow_rules ADD COLUMN rate_burst integer`)

/** Every migration of the engine, in the shape `Migrator.fromRecord` reads. Never edit a released one. */
export const migrations = Migrator.fromRecord({
  "0001_create_jobs": createJobs,
  "0002_index_unfinalized": indexUnfinalized,
  "0003_flow_control": flowControl,
  "0004_retryable_index": retryableIndex,
  "0005_rate_burst": rateBurst
})

/**
 * Run the migrations. The whole run holds SQLite's write lock from its first
 * statement, so processes that start together on one file wait for each
 * other instead of racing (a deferred transaction would only take the lock
 * at its first write, after reading the migration table).
 */
export const migrate = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${migrationsTable} (
    migration_id integer PRIMARY KEY NOT NULL,
    created_at datetime NOT NULL DEFAULT current_timestamp,
    name VARCHAR(255) NOT NULL
  )`).raw
  return yield* sql.withTransaction(
    Effect.zipRight(
      sql.unsafe(`UPDATE ${migrationsTable} SET name = name WHERE 0`).raw,
      Migrator.make({})({ loader: migrations, table: migrationsTable })
    )
  )
})
