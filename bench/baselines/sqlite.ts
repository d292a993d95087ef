/**
 * The SQLite baseline of the 100k drain: bare better-sqlite3 on a WAL file
 * with `synchronous = NORMAL` (the store's settings), claiming 50 jobs with
 * one `UPDATE … RETURNING` and deleting them with one statement, in a plain
 * loop. No library, no Effect.
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import type { Baseline } from "../contestants/driver.js"
import type { ChildSpec } from "../lib/protocol.js"
import { now } from "../lib/protocol.js"

export const make = async (spec: ChildSpec): Promise<Baseline> => ({
  run: async ({ rows = 100_000, batch = 50 }) => {
    const file = join(spec.tmpDir, `${spec.namespace}.db`)
    const db = new Database(file)
    try {
      db.pragma("journal_mode = WAL")
      db.pragma("synchronous = NORMAL")
      db.exec(`CREATE TABLE jobs (
        id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT 'available', priority INTEGER NOT NULL DEFAULT 0,
        run_at INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, locked_by TEXT, locked_at INTEGER, payload TEXT);
        CREATE INDEX jobs_claim ON jobs (priority, run_at, id) WHERE state = 'available';`)
      const insert = db.prepare("INSERT INTO jobs (run_at, payload) VALUES (?, ?)")
      db.transaction(() => {
        for (let i = 0; i < rows; i++) insert.run(Date.now(), JSON.stringify({ i }))
      })()
      const claim =
        db.prepare(`UPDATE jobs SET state = 'running', locked_by = 'w', locked_at = ?, attempt = attempt + 1
        WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND run_at <= ?
                     ORDER BY priority, run_at, id LIMIT ?) RETURNING id, payload`)
      const remove = db.prepare("DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?))")
      const t0 = now()
      let done = 0
      while (true) {
        const at = Date.now()
        const claimed = claim.all(at, at, batch) as Array<{ id: number; payload: string }>
        if (claimed.length === 0) break
        for (const row of claimed) JSON.parse(row.payload)
        remove.run(JSON.stringify(claimed.map((r) => r.id)))
        done += claimed.length
      }
      return { ms: now() - t0, rows: done }
    } finally {
      db.close()
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true })
    }
  }
})
