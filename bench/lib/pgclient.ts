/**
 * A bare `pg` client for the harness's own statements. The package is
 * bench/'s, and the root typecheck reads the harness too (before bench's
 * packages are installed in a fresh checkout), so `pg` is loaded by a name
 * the typecheck does not resolve, and typed here by the part used.
 */

/** The part of `pg`'s client the harness uses. */
export interface PgClient {
  connect(): Promise<unknown>
  query<R>(text: string): Promise<{ rows: Array<R> }>
  end(): Promise<unknown>
}

/** A new, unconnected client for `url`. */
export const newPgClient = async (url: string): Promise<PgClient> => {
  const driver = "pg"
  const { default: pg } = (await import(driver)) as {
    default: { Client: new (options: { connectionString: string }) => PgClient }
  }
  return new pg.Client({ connectionString: url })
}
