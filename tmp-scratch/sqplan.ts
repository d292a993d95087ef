import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqliteStore from "../src/SqliteStore.js"
import * as JobStore from "../src/JobStore.js"
import { rmSync } from "node:fs"
const file = "/tmp/sqplan.db"
rmSync(file, { force: true })
const program = Effect.gen(function* () {
  const store = yield* JobStore.JobStore
  yield* store.enqueue(Array.from({ length: 20000 }, (_, i) => ({ kind: "k", queue: "q", payload: { i }, priority: 0, maxAttempts: 3 })))
  const c = yield* store.claim({ queues: ["q"], kinds: ["k"], limit: 15000, leaseMs: 60000, owner: "o" })
  yield* store.settle(c.slice(0, 14990).map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" as const } })))
})
await Effect.runPromise(program.pipe(Effect.provide(SqliteStore.layer({ filename: file } as any)), Effect.scoped) as any)
const db = new Database(file)
db.exec("ANALYZE")
const q = (t: string) => console.log(db.prepare(`EXPLAIN QUERY PLAN ${t}`).all([1, "[[1,1]]"]).map((r: any) => r.detail).join(" | "))
q(`UPDATE nightshift_jobs AS j SET state = 'completed', finalized_at = ?, lease_expires_at = NULL FROM (SELECT value ->> 0 AS id, value ->> 1 AS fence FROM json_each(?)) AS s WHERE j.id = s.id AND j.fence = s.fence AND j.state = 'running' RETURNING id`)
q(`UPDATE nightshift_jobs AS j SET state = 'completed', finalized_at = ?, lease_expires_at = NULL FROM (SELECT value ->> 0 AS id, value ->> 1 AS fence FROM json_each(?)) AS s WHERE j.id = s.id AND j.fence = s.fence AND +j.state = 'running' RETURNING id`)
