/**
 * On a server with autovacuum off (this project's benchmark server has
 * `autovacuum = off`), vacuum the system catalogs now, as autovacuum would
 * have. Every benchmark run creates and drops schemas (tables, indexes,
 * functions, partitions): after one full `npm run bench`, `pg_attribute`
 * held 72,200 dead rows against 3,128 live, and every new connection's
 * first statements read the catalogs through them.
 */
import { newPgClient } from "./pgclient.js"

/** Vacuum the catalogs of `url`'s database; false (and nothing done) when the server's autovacuum is on. */
export const vacuumCatalogs = async (url: string): Promise<boolean> => {
  const client = await newPgClient(url)
  await client.connect()
  try {
    const { rows } = await client.query<{ autovacuum: string }>("SHOW autovacuum")
    if (rows[0]?.autovacuum !== "off") return false
    const tables = await client.query<{ name: string }>(
      `SELECT format('pg_catalog.%I', relname) AS name FROM pg_class
       WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind = 'r'`
    )
    await client.query(`VACUUM ${tables.rows.map((r) => r.name).join(", ")}`)
    return true
  } finally {
    await client.end()
  }
}
