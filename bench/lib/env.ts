/**
 * The machine, the services and the library versions a run is measured on.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { cpus, loadavg, release, totalmem } from "node:os"
import { join } from "node:path"

/** `DATABASE_URL`, or the local server. */
export const databaseUrl = () => process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** `REDIS_URL`, or the local server. */
export const redisUrl = () => process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

export const machine = () => ({
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGb: Math.round(totalmem() / 2 ** 30),
  os: `${process.platform} ${release()}`,
  node: process.version,
  loadAverage: loadavg().map((x) => Math.round(x * 10) / 10)
})

const versionOf = (dir: string, pkg: string) => {
  const file = join(dir, "node_modules", pkg, "package.json")
  return existsSync(file)
    ? (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version
    : "missing"
}

const quiet = (cmd: string, args: ReadonlyArray<string>) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5_000 })
  } catch {
    return ""
  }
}

/** Versions of everything measured; servers asked best-effort through their CLIs. */
export const versions = (rootDir: string, benchDir: string) => {
  const redis = new URL(redisUrl())
  const redisInfo = quiet("redis-cli", ["-h", redis.hostname, "-p", redis.port || "6379", "INFO", "server"])
  return {
    nightshift: (JSON.parse(readFileSync(join(rootDir, "package.json"), "utf8")) as { version: string })
      .version,
    effect: versionOf(rootDir, "effect"),
    "@effect/sql-pg": versionOf(rootDir, "@effect/sql-pg"),
    "@effect/sql-sqlite-node": versionOf(rootDir, "@effect/sql-sqlite-node"),
    "better-sqlite3": versionOf(rootDir, "better-sqlite3"),
    "graphile-worker": versionOf(benchDir, "graphile-worker"),
    "pg-boss": versionOf(benchDir, "pg-boss"),
    bullmq: versionOf(benchDir, "bullmq"),
    ioredis: versionOf(benchDir, "ioredis"),
    pg: versionOf(benchDir, "pg"),
    plainjob: versionOf(benchDir, "plainjob"),
    sidequest: versionOf(benchDir, "sidequest"),
    "@sidequest/sqlite-backend": versionOf(benchDir, "@sidequest/sqlite-backend"),
    "better-sqlite3 (peers)": versionOf(benchDir, "better-sqlite3"),
    postgresql:
      quiet("psql", [databaseUrl(), "-Atc", "SHOW server_version"]).trim().split(" ")[0] || "unknown",
    redis: /redis_version:(\S+)/.exec(redisInfo)?.[1] ?? "unknown"
  }
}

/** The value after `--<name>` on the command line, if given. */
export const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
