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
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * Run `onCommit` after each burst of commits other connections make to the
 * main database of `sql`, for as long as the scope is open. Does nothing for
 * an in-memory database; logs once and leaves it to polling when the
 * directory cannot be watched.
 */
export const watchCommits = (
  sql: SqlClient.SqlClient,
  onCommit: Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const databases = yield* sql<{ name: string; file: string }>`PRAGMA database_list`
    const file = databases.find((d) => d.name === "main")?.file
    if (file === undefined || file === "") return
    const base = NodePath.basename(file)
    const names = new Set([base, `${base}-wal`])
    const version = Effect.map(
      sql<{ data_version: number }>`PRAGMA data_version`,
      (rows) => rows[0]?.data_version
    )
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
    yield* Queue.take(writes).pipe(
      Effect.zipRight(version),
      Effect.flatMap((now) => {
        if (now === seen) return Effect.void
        seen = now
        return onCommit
      }),
      Effect.catchAll(() => Effect.void),
      Effect.forever,
      Effect.forkScoped
    )
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logInfo(
        `nightshift: SqliteStore cannot watch its database file for other processes' commits (${error}); they are found by polling`
      )
    )
  )
