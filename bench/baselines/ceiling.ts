/**
 * W4, the PostgreSQL ceiling: no library, just `pg`. Ten loops, each on its
 * own connection, claim a batch with `FOR UPDATE SKIP LOCKED` and delete it
 * with one statement, until the table is empty. Rows per second here is
 * what any PostgreSQL queue on this machine can hope for at that batch size.
 */
import pg from "pg"
import type { Baseline } from "../contestants/driver.js"
import type { ChildSpec } from "../lib/protocol.js"
import { now } from "../lib/protocol.js"

const ddl = (s: string) => `
  CREATE SCHEMA "${s}";
  CREATE TABLE "${s}".jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL DEFAULT 'default',
    state text NOT NULL DEFAULT 'available',
    priority int NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempt int NOT NULL DEFAULT 0,
    locked_by text,
    locked_at timestamptz,
    payload jsonb
  );
  CREATE INDEX ON "${s}".jobs (priority, run_at, id) WHERE state = 'available';`

const claim = (s: string) => `
  UPDATE "${s}".jobs SET state = 'running', locked_by = $1, locked_at = now(), attempt = attempt + 1
  WHERE id IN (
    SELECT id FROM "${s}".jobs WHERE state = 'available' AND run_at <= now()
    ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
  RETURNING id, payload`

const loop = async (pool: pg.Pool, s: string, worker: string, batch: number) => {
  const client = await pool.connect()
  let done = 0
  try {
    while (true) {
      const { rows } = await client.query(claim(s), [worker, batch])
      if (rows.length === 0) return done
      await client.query(`DELETE FROM "${s}".jobs WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)])
      done += rows.length
    }
  } finally {
    client.release()
  }
}

export const make = async (spec: ChildSpec): Promise<Baseline> => ({
  run: async ({ rows = 20_000, batch = 50, loops = 10 }) => {
    const s = spec.namespace
    const pool = new pg.Pool({ connectionString: spec.databaseUrl, max: loops })
    try {
      await pool.query(ddl(s))
      await pool.query(
        `INSERT INTO "${s}".jobs (payload) SELECT jsonb_build_object('i', g) FROM generate_series(1, $1::int) g`,
        [rows]
      )
      await pool.query(`ANALYZE "${s}".jobs`)
      const t0 = now()
      const counts = await Promise.all(Array.from({ length: loops }, (_, k) => loop(pool, s, `w${k}`, batch)))
      const ms = now() - t0
      return { ms, rows: counts.reduce((a, b) => a + b, 0) }
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
      await pool.end()
    }
  }
})
