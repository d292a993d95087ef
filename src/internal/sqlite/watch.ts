/**
 * Commits made to the store's file by other connections (another process,
 * or another client in this one), noticed as they happen instead of at the
 * next poll.
 *
 * The directory of the database file is watched (inotify, FSEvents, …)
 * for writes to the file and its WAL; each burst of writes costs one
 * `PRAGMA data_version`, whose value changes only when another connection
 * has committed. The engine's own writes therefore wake nobody, and the
 * runner's polling stays the backstop (a file system without change events,
 * a network share).
 *
 * `FileSystem.watch` of `@effect/platform` resolves the names Node reports
 * against the working directory and stats every renamed entry; the
 * directory may be busy, so `node:fs` is used directly.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Exec } from "./db.js"

/** How long after a change event that showed no new commit the version is read again. */
const recheckMs = 3

/**
 * Run `onCommit` after each burst of commits other connections make to the
 * main database of `sql`, for as long as the scope is open. Does nothing for
 * an in-memory database; logs once and leaves it to polling when the
 * directory cannot be watched.
 */
export const watchCommits = (
  sql: SqlClient.SqlClient,
  exec: Exec,
  onCommit: Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const databases = yield* sql<{ name: string; file: string }>`PRAGMA database_list`
    const file = databases.find((d) => d.name === "main")?.file
    if (file === undefined || file === "") return
    const base = NodePath.basename(file)
    const names = new Set([base, `${base}-wal`])
    // Read after every burst of writes, the engine's own commits included (they raise events too):
    // on the connection itself (db.exec), not through a span and a compile per read.
    const version = Effect.map(exec.values("PRAGMA data_version", []), (rows) => rows[0]?.[0])
    let seen = yield* version
    const writes = yield* Queue.sliding<void>(1)
    yield* Effect.acquireRelease(
      Effect.try(() => {
        const watcher = NodeFs.watch(NodePath.dirname(file), { persistent: false }, (_event, name) => {
          if (name !== null && names.has(name)) writes.unsafeOffer(undefined)
        })
        // A watch that breaks later (the directory removed) leaves it to polling.
        watcher.on("error", () => watcher.close())
        return watcher
      }),
      (watcher) => Effect.sync(() => watcher.close())
    )
    /** Run `onCommit` if another connection committed since the last look; true when it did. */
    const check = Effect.flatMap(version, (now) => {
      if (now === seen) return Effect.succeed(false)
      seen = now
      return Effect.as(onCommit, true)
    })
    // The change event can come before the commit is visible: the WAL frames are written
    // first and the commit lands in the shared-memory index, whose writes raise no event.
    // With two processes and 300 commits, 32-45 were not yet visible when their event
    // arrived. A look that finds nothing new is repeated once a moment later.
    yield* Queue.take(writes).pipe(
      Effect.zipRight(check),
      Effect.flatMap((changed) => (changed ? Effect.void : Effect.zipRight(Effect.sleep(recheckMs), check))),
      Effect.catchAll(() => Effect.void),
      Effect.forever,
      // The watch follows the real file, whatever clock the rest of the store runs on.
      Effect.withClock(Clock.make()),
      Effect.forkScoped
    )
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logInfo(
        `nightshift: SqliteStore cannot watch its database file for other processes' commits (${error}); they are found by polling`
      )
    )
  )
