/**
 * A stand-in for autovacuum, for servers that have it turned off (the
 * benchmark server of this project does: `autovacuum = off`). A table that
 * churns is only representative with vacuum running beside it, so when
 * `SHOW autovacuum` says `off`, this loop does autovacuum's job on the
 * benchmark's own schemas, by autovacuum's rules read from the server and
 * each table's storage parameters:
 *
 * - every `autovacuum_naptime`, each table of the schemas (leaf partitions
 *   included) is vacuumed when its dead tuples exceed
 *   `vacuum_threshold + vacuum_scale_factor × reltuples`, or its inserts
 *   since the last vacuum exceed the insert threshold and scale factor, and
 *   analysed when its changes since the last analyse exceed the analyse
 *   threshold and scale factor;
 * - the session is throttled like an autovacuum worker
 *   (`vacuum_cost_delay` and `vacuum_cost_limit` set to the autovacuum ones).
 *
 * Differences that remain: one table at a time in one session (autovacuum
 * has up to `autovacuum_max_workers`), and these runs count in
 * `pg_stat_user_tables.vacuum_count`, not `autovacuum_count`.
 */
import pg from "pg"

export interface StandIn {
  /** The server's `autovacuum` setting. */
  readonly server: "on" | "off"
  /** Whether the stand-in runs (the server's autovacuum is off, and it was wanted). */
  readonly active: boolean
  /** VACUUM and ANALYZE statements it ran so far. */
  readonly runs: () => { readonly vacuums: number; readonly analyzes: number }
  /** Stop, cancelling a statement in flight. */
  readonly stop: () => Promise<void>
}

type Settings = Record<string, string>

const setting = (settings: Settings, options: Settings, name: string) =>
  Number(options[name] ?? settings[name])

/**
 * Start the stand-in when the server's autovacuum is off and `wanted`;
 * `schemas()` names the schemas to look after.
 */
export const autovacuumStandIn = async (
  url: string,
  schemas: () => ReadonlyArray<string>,
  log: (line: string) => void,
  wanted = true
): Promise<StandIn> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const settings: Settings = Object.fromEntries(
    (
      await client.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name LIKE 'autovacuum%' OR name = 'vacuum_cost_limit'"
      )
    ).rows.map((r) => [r.name, r.setting])
  )
  let vacuums = 0
  let analyzes = 0
  const runs = () => ({ vacuums, analyzes })
  const server = settings.autovacuum === "on" ? "on" : "off"
  if (server === "on" || !wanted) {
    await client.end()
    return { server, active: false, runs, stop: async () => {} }
  }
  const limit = Number(settings.autovacuum_vacuum_cost_limit)
  const delay = Number(settings.autovacuum_vacuum_cost_delay)
  await client.query(
    `SET vacuum_cost_limit = ${limit > 0 ? limit : Number(settings.vacuum_cost_limit)}${delay >= 0 ? `; SET vacuum_cost_delay = '${delay}ms'` : ""}`
  )
  const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid
  const naptimeMs = Number(settings.autovacuum_naptime) * 1000
  let stopped = false
  let wake: () => void = () => {}

  const pass = async () => {
    const { rows } = await client.query<{
      name: string
      dead: string
      inserted: string
      modified: string
      reltuples: number
      options: Array<string> | null
    }>(
      `SELECT format('%I.%I', s.schemaname, s.relname) AS name, s.n_dead_tup AS dead,
         s.n_ins_since_vacuum AS inserted, s.n_mod_since_analyze AS modified,
         greatest(c.reltuples, 0)::float8 AS reltuples, c.reloptions AS options
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
       WHERE s.schemaname = ANY($1::text[]) AND c.relkind = 'r'`,
      [schemas()]
    )
    for (const row of rows) {
      if (stopped) return
      const options: Settings = Object.fromEntries(
        (row.options ?? []).map((o) => [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)])
      )
      if (options.autovacuum_enabled === "false") continue
      const over = (kind: "vacuum" | "vacuum_insert" | "analyze", value: string) => {
        const threshold = setting(settings, options, `autovacuum_${kind}_threshold`)
        const scale = setting(settings, options, `autovacuum_${kind}_scale_factor`)
        return threshold >= 0 && Number(value) > threshold + scale * row.reltuples
      }
      const vacuum = over("vacuum", row.dead) || over("vacuum_insert", row.inserted)
      const analyze = over("analyze", row.modified)
      if (!vacuum && !analyze) continue
      const statement = vacuum ? (analyze ? "VACUUM (ANALYZE)" : "VACUUM") : "ANALYZE"
      const t0 = Date.now()
      try {
        await client.query(`${statement} ${row.name}`)
        if (vacuum) vacuums++
        if (analyze) analyzes++
        log(
          `    (autovacuum stand-in: ${statement} ${row.name}, ${Number(row.dead).toLocaleString("en-US")} dead tuples, ${((Date.now() - t0) / 1000).toFixed(1)} s)`
        )
      } catch (error) {
        // A schema dropped meanwhile, or the stop's cancel.
        if (!stopped) log(`    (autovacuum stand-in: ${statement} ${row.name} failed: ${String(error)})`)
      }
    }
  }

  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, naptimeMs)
      })
      if (!stopped) await pass().catch((error) => log(`    (autovacuum stand-in: ${String(error)})`))
    }
  })()

  log(
    `autovacuum is off on this server: the benchmark vacuums its own schemas by autovacuum's rules (every ${naptimeMs / 1000} s, cost delay ${settings.autovacuum_vacuum_cost_delay} ms)`
  )
  return {
    server,
    active: true,
    runs,
    stop: async () => {
      stopped = true
      wake()
      const other = new pg.Client({ connectionString: url })
      await other.connect()
      await other.query("SELECT pg_cancel_backend($1)", [pid]).finally(() => other.end())
      await loop
      await client.end()
    }
  }
}
