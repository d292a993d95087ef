/**
 * Database URLs: which store a URL names, and the errors of store selection.
 */
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** The store a URL selects. */
export type Target =
  | { readonly _tag: "Memory" }
  | { readonly _tag: "Sqlite"; readonly filename: string }
  | {
      readonly _tag: "Postgres"
      /** The connection URL without the `schema` parameter. */
      readonly url: Redacted.Redacted<string>
      readonly host: string
      readonly port: number
      readonly database: string
      /** From `?schema=`; the store's default schema when absent. */
      readonly schema: string | undefined
    }
  | {
      /** Several PostgreSQL URLs, comma-separated: a store sharded over them, shard 0 first. */
      readonly _tag: "ShardedPostgres"
      readonly shards: ReadonlyArray<Target & { readonly _tag: "Postgres" }>
    }

export const envVar = "NIGHTSHIFT_DATABASE_URL"

export const defaultUrl = "./nightshift.db"

/** A database URL that selects no store: unknown scheme, malformed URL or an empty path. */
export class InvalidDatabaseUrl extends Schema.TaggedError<InvalidDatabaseUrl>()("InvalidDatabaseUrl", {
  /** The URL with any password hidden. */
  url: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid database URL ${JSON.stringify(this.url)}: ${this.reason}`
  }
}

/** The selected store could not be opened; the message says what to fix. */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  /** The store, as `describe` prints it. */
  target: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

const usage = "use postgres://user:password@host:5432/db, sqlite:<path>, a file path, or memory:"

const hidePassword = (url: string): string =>
  url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, "$1:***@")

const invalid = (url: string, reason: string) =>
  Either.left(new InvalidDatabaseUrl({ url: hidePassword(url), reason }))

const sqlitePath = (url: string, rest: string): Either.Either<Target, InvalidDatabaseUrl> => {
  const filename = rest.startsWith("//") ? rest.slice(2) : rest
  return filename.length === 0
    ? invalid(url, `no file path after the scheme; ${usage}`)
    : Either.right({ _tag: "Sqlite", filename })
}

const postgres = (input: string): Either.Either<Target, InvalidDatabaseUrl> => {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return invalid(input, "not a valid URL; expected postgres://user:password@host:5432/database")
  }
  const schema = url.searchParams.get("schema") ?? undefined
  url.searchParams.delete("schema")
  const port = url.port === "" ? 5432 : Number(url.port)
  const database = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || "postgres"
  return Either.right({
    _tag: "Postgres",
    url: Redacted.make(url.toString()),
    host: url.hostname === "" ? "localhost" : url.hostname,
    port,
    database,
    schema
  })
}

/** Several PostgreSQL URLs, comma-separated: the shards of a sharded store, in shard order. */
const sharded = (input: string): Either.Either<Target, InvalidDatabaseUrl> => {
  const parts = input.split(",").map((part) => part.trim())
  const shards: Array<Target & { readonly _tag: "Postgres" }> = []
  for (const part of parts) {
    if (!/^postgres(ql)?:\/\//i.test(part))
      return invalid(
        input,
        `a list of URLs shards the store over PostgreSQL servers; every item must be a postgres:// URL (got ${JSON.stringify(hidePassword(part))})`
      )
    const one = postgres(part)
    if (Either.isLeft(one)) return one
    shards.push(one.right as Target & { readonly _tag: "Postgres" })
  }
  const schemas = new Set(shards.map((s) => s.schema))
  if (schemas.size > 1) return invalid(input, "every shard's URL must name the same ?schema= (or none)")
  return Either.right({ _tag: "ShardedPostgres", shards })
}

/** Read a database URL; empty selects `defaultUrl`. */
export const parse = (input: string): Either.Either<Target, InvalidDatabaseUrl> => {
  const url = input.trim()
  if (url === "") return parse(defaultUrl)
  if (url.includes(",") && /^postgres(ql)?:\/\//i.test(url)) return sharded(url)
  if (url === ":memory:") return Either.right({ _tag: "Sqlite", filename: ":memory:" })
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(url)?.[1]?.toLowerCase()
  switch (scheme) {
    case undefined:
      return Either.right({ _tag: "Sqlite", filename: url })
    case "postgres":
    case "postgresql":
      return postgres(url)
    case "sqlite":
    case "sqlite3":
    case "file":
      return sqlitePath(url, url.slice(scheme.length + 1))
    case "memory":
      return /^memory:(\/\/)?$/i.test(url)
        ? Either.right({ _tag: "Memory" })
        : invalid(url, "memory: takes nothing after the scheme")
    default:
      return invalid(url, `unknown scheme "${scheme}:"; ${usage}`)
  }
}

/** A short, password-free description of a target. */
export const describe = (target: Target): string => {
  switch (target._tag) {
    case "Memory":
      return "memory (jobs are lost when the process exits)"
    case "Sqlite":
      return `sqlite ${target.filename}`
    case "Postgres":
      return `postgres ${target.database}@${target.host}:${target.port}${target.schema === undefined ? "" : ` (schema ${target.schema})`}`
    case "ShardedPostgres":
      return `postgres sharded over ${target.shards.length}: ${target.shards.map((s) => `${s.database}@${s.host}:${s.port}`).join(", ")}${target.shards[0]!.schema === undefined ? "" : ` (schema ${target.shards[0]!.schema})`}`
  }
}
