import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import pg from "pg"
const url = "postgres://postgres@127.0.0.1:5432/test"
const runtime = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url) }))
const client = new pg.Client({ connectionString: url }); await client.connect()
const N = Number(process.argv[2] ?? 4000)
const q = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT ${1}::int AS x`)
const qu = Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`SELECT $1::int AS x`, [1]))
for (const label of (process.argv[3] ?? "raw,effect,unsafe,raw,effect,unsafe").split(",")) {
  const t0 = performance.now(); const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) {
    if (label === "raw") await client.query(`SELECT $1::int AS x`, [1])
    else if (label === "effect") await runtime.runPromise(q)
    else await runtime.runPromise(qu)
  }
  const cpu = process.cpuUsage(c0)
  console.log(label, ((performance.now() - t0) / N * 1000).toFixed(0), "us wall", ((cpu.user + cpu.system) / N).toFixed(0), "us cpu")
}
await client.end(); await runtime.dispose()
