/**
 * The PostgreSQL schema of the job store: name validation and migrations.
 *
 * @internal
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as JobStore from "../../JobStore.js"
import { v8 } from "./finished.js"
import {
  claimFlowV9,
  claimFlowV11,
  claimFlowV12,
  claimFlowV13,
  claimFlowV15,
  enqueueV14,
  settleV10,
  v2,
  v3,
  v4,
  v5,
  v6
} from "./functions.js"

/** Lower-case letters, digits and `_`, starting with a letter or `_`, at most 48 characters. */
const identifier = /^[a-z_][a-z0-9_]{0,47}$/

/** Check a schema name before it is ever spliced into SQL. */
export const validateSchema = (schema: string): Effect.Effect<string, JobStore.JobStoreError> =>
  identifier.test(schema)
    ? Effect.succeed(schema)
    : Effect.fail(
        new JobStore.JobStoreError({
          message: `Invalid PostgreSQL schema name ${JSON.stringify(schema)}: use lower-case letters, digits and "_", starting with a letter or "_", at most 48 characters (for example "nightshift").`
        })
      )

const activeStates = "('scheduled', 'available', 'running', 'retryable')"
const dueStates = "('available', 'scheduled', 'retryable')"
const finalStates = "('completed', 'discarded', 'cancelled')"

/** Version 1: jobs, paused queues, cron slots, leader leases. One round trip. */
const v1 = (schema: string) => `
  CREATE SEQUENCE ${schema}.jobs_id_seq;
  CREATE TABLE ${schema}.jobs (
    id bigint PRIMARY KEY DEFAULT nextval('${schema}.jobs_id_seq'),
    kind text NOT NULL,
    queue text NOT NULL,
    payload jsonb,
    state text NOT NULL CHECK (state IN ${activeStates} OR state IN ${finalStates}),
    priority integer NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    attempted_at timestamptz,
    finalized_at timestamptz,
    lease_owner text,
    lease_expires_at timestamptz,
    fence integer NOT NULL DEFAULT 0,
    dedupe_key text,
    cancel_requested boolean NOT NULL DEFAULT false,
    errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    trace_id text,
    span_id text
  ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
  -- A queue table churns: vacuum and re-plan it early (the claim plan depends on fresh statistics).
  ALTER SEQUENCE ${schema}.jobs_id_seq OWNED BY ${schema}.jobs.id;
  -- The claim path: due states in claim order; running and final jobs stay out of it.
  CREATE INDEX jobs_claim_idx ON ${schema}.jobs (priority, run_at, id) WHERE state IN ${dueStates};
  CREATE INDEX jobs_lease_idx ON ${schema}.jobs (lease_expires_at) WHERE state = 'running';
  CREATE INDEX jobs_finalized_idx ON ${schema}.jobs (finalized_at) WHERE state IN ${finalStates};
  -- Dedupe is a constraint, so concurrent and bulk enqueues cannot race.
  CREATE UNIQUE INDEX jobs_dedupe_idx ON ${schema}.jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ${activeStates};
  CREATE TABLE ${schema}.paused_queues (
    queue text PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now()
  );
  -- One row per cron slot taken: the key makes each slot exactly once, in any order.
  CREATE TABLE ${schema}.cron_slots (
    name text NOT NULL,
    slot bigint NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, slot)
  );
  CREATE UNLOGGED TABLE ${schema}.leaders (
    name text PRIMARY KEY,
    leader_id text NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
  );`

/**
 * Version 7: retryable jobs by run-at, for the admin overview's count of
 * retries (`JobStore.activity`). Only a retry writes to it: the claim path
 * and a successful settle never hold a row in this state.
 */
const v7 = (schema: string) => `
  CREATE INDEX jobs_retryable_idx ON ${schema}.jobs (run_at) WHERE state = 'retryable';`

/**
 * Version 12: the running rows of jobs without a partition key leave the
 * per-key counting indexes. `jobs_running_queue_idx` and
 * `jobs_running_kind_idx` (migration 6) serve the counts of running jobs per
 * queue or kind and key, which only keyed jobs have; a claim of jobs without
 * a key (most jobs) wrote an entry into each, two of the four index entries
 * a claimed row gets. The counts of a whole queue or kind under a global
 * limit read the running rows through `jobs_lease_idx`, which holds every
 * running row (their number is bounded by the runners' concurrency and
 * claims ahead, not by the backlog), once per scope (`claimFlowV12`). A
 * count per key (`partition_key = k`) implies `partition_key IS NOT NULL`,
 * so the planner keeps using the new indexes for it.
 */
const v12 = (schema: string) => `
${claimFlowV12(schema)}
  DROP INDEX ${schema}.jobs_running_queue_idx;
  DROP INDEX ${schema}.jobs_running_kind_idx;
  CREATE INDEX jobs_running_queue_idx ON ${schema}.jobs (queue, partition_key, lease_expires_at)
    WHERE state = 'running' AND partition_key IS NOT NULL;
  CREATE INDEX jobs_running_kind_idx ON ${schema}.jobs (kind, partition_key, lease_expires_at)
    WHERE state = 'running' AND partition_key IS NOT NULL;`

/**
 * Version 13: a due job without a partition key is kept in one index, not
 * two. `jobs_partition_claim_idx` (queue, key or `''`, claim order) already
 * holds it, under the key `''`; `jobs_queue_claim_idx` (queue, claim order)
 * now holds keyed due jobs only, for a queue's best due job across its keys.
 * An enqueue of a job without a key writes one index entry less.
 * `claim_flow` (`claimFlowV13`) reads both accordingly. The claims of nodes
 * still on a release before migration 6 (`claim`, `claim_rows`) lose the
 * index they read: upgrade those nodes first.
 */
const v13 = (schema: string) => `
${claimFlowV13(schema)}
  DROP INDEX ${schema}.jobs_queue_claim_idx;
  CREATE INDEX jobs_queue_claim_idx ON ${schema}.jobs (queue, priority, run_at, id)
    WHERE state IN ${dueStates} AND partition_key IS NOT NULL;`

/** Run a migration's DDL (several statements, no parameters) in one round trip. */
const ddl = (text: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(text))

/** The migrations, by id, each a function of the schema. Never edit a released one: add a new id. */
const steps: ReadonlyArray<readonly [name: string, text: (schema: string) => string]> = [
  ["1_create_jobs", v1],
  ["2_hot_path_functions", v2],
  ["3_claim_by_queue", v3],
  ["4_claim_skips_exhausted_rows", v4],
  ["5_fewer_steps_per_statement", v5],
  ["6_flow_control", v6],
  ["7_retryable_index", v7],
  ["8_finished_jobs", v8],
  ["9_keyed_probe_by_index", claimFlowV9],
  ["10_settle_function", settleV10],
  ["11_global_shard_room_first", claimFlowV11],
  ["12_running_key_indexes_keyed_only", v12],
  ["13_one_due_index_for_unkeyed_jobs", v13],
  ["14_enqueue_shared_batch", enqueueV14],
  ["15_paced_rate_limits", claimFlowV15]
]

/** The id of the last migration this version knows. */
export const latestMigration = Math.max(...steps.map(([name]) => Number.parseInt(name, 10)))

/** The migrations for `schema`, in the shape `Migrator.fromRecord` reads. */
export const migrations = (schema: string) =>
  Migrator.fromRecord(Object.fromEntries(steps.map(([name, text]) => [name, ddl(text(schema))])))

/**
 * The id of the last migration applied to `schema` (0 before any), in two
 * short reads that take no lock.
 */
const applied = (sql: SqlClient.SqlClient, table: string) =>
  Effect.gen(function* () {
    const [found] = yield* sql<{
      readonly present: boolean
    }>`SELECT to_regclass(${table}) IS NOT NULL AS present`
    if (found?.present !== true) return 0
    const [row] = yield* sql<{
      readonly id: number | null
    }>`SELECT max(migration_id) AS id FROM ${sql(table)}`
    return row?.id ?? 0
  })

/**
 * Create or upgrade the schema. Safe when several processes migrate at once:
 * a transaction-scoped advisory lock serialises them, and the second finds
 * nothing left to do.
 */
export const migrate = (
  schema: string
): Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  JobStore.JobStoreError,
  SqlClient.SqlClient
> =>
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const table = `${schema}.migrations`
    // A schema already at (or past) this version's last migration, as at every start but the
    // first after an upgrade: nothing to run, and no transaction, lock or DDL to pay for
    // (about ten round trips). Migrations only ever move forward, so a schema seen up to
    // date stays so; anything older takes the locked path below.
    if ((yield* applied(sql, table)) >= latestMigration) return []
    const run = Effect.gen(function* () {
      yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${`nightshift.migrate:${schema}`}, 0))`
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
      yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
        migration_id integer PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        name text NOT NULL
      )`
      return yield* Migrator.make({})({ loader: migrations(schema), table })
    })
    return yield* sql.withTransaction(run).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  }).pipe(
    // A failing migration is a defect inside `Migrator`; report it as a store error.
    Effect.catchAllCause((cause) =>
      Effect.fail(
        new JobStore.JobStoreError({
          message: `Migrating the PostgreSQL schema "${schema}" failed: ${messageOf(Cause.squash(cause))}. Check that the database is reachable and that its user may create schemas and tables.`,
          cause: Cause.squash(cause)
        })
      )
    ),
    Effect.withSpan("PgStore.migrate", { attributes: { schema } })
  )

/** The message of an error, or its string form. */
export const messageOf = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null) {
    const inner = (cause as { cause?: unknown }).cause
    const own = (cause as { message?: unknown }).message
    if (inner instanceof Error && inner.message !== "") return inner.message
    if (typeof own === "string" && own !== "") return own
  }
  return String(cause)
}
