/**
 * On a server with autovacuum off (this project's benchmark server has
 * `autovacuum = off`), vacuum the system catalogs now, as autovacuum would
 * have. Every benchmark run creates and drops schemas (tables, indexes,
 * functions, partitions): after one full `npm run bench`, `pg_attribute`
 * held 72,200 dead rows against 3,128 live, and every new connection's
 * first statements read the catalogs through them.
 */

/** The part of `pg`'s client used here (the package is bench/'s; the root typecheck reads this file too). */
interface PgClient {
  connect(): Promise<unknown>
  query<R>(text: string): Promise<{ rows: Array<R> }>
  end(): Promise<unknown>
}

/** Vacuum the catalogs of `url`'s database; false (and nothing done) when the server's autovacuum is on. */
export const vacuumCatalogs = async (url: string): Promise<boolean> => {
  const driver = "pg"
  const { default: pg } = (await import(driver)) as {
    default: { Client: new (options: { connectionString: string }) => PgClient }
  }
  const client = new pg.Client({ connectionString: url })
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
