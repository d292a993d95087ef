/**
 * How the pools the library opens treat idle connections.
 *
 * @internal
 */
import * as Duration from "effect/Duration"

/**
 * How long an idle pool connection is kept (the `pg` pool closes one after
 * 10 seconds by default). A connection's first calls of the store's
 * functions cost tens of milliseconds on the server (compiling them,
 * planning their statements, loading the catalog entries of the tables and
 * indexes), which the job that meets a reopened connection waits for; a
 * runner with a trickle of jobs would meet one again and again.
 */
export const idleTimeout = Duration.minutes(30)
