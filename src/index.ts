/**
 * Nightshift: a typed runtime for background work in Effect.
 *
 * Every public module is also a subpath export (`nightshift/Worker`, …). The
 * storage engines are imported from their subpaths only (`nightshift/SqliteStore`,
 * `nightshift/PgStore`, `nightshift/PgLock`, `nightshift/PgLeader`), so an app
 * loads only the database driver it uses.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Admin from "./Admin.js"

/** @since 0.1.0 */
export * as Crew from "./Crew.js"

/** @since 0.1.0 */
export * as CronJob from "./CronJob.js"

/** @since 0.1.0 */
export * as Events from "./Events.js"

/** @since 0.2.0 */
export * as FlowControl from "./FlowControl.js"

/** @since 0.1.0 */
export * as Job from "./Job.js"

/** @since 0.1.0 */
export * as JobQueue from "./JobQueue.js"

/** @since 0.1.0 */
export * as JobRunner from "./JobRunner.js"

/** @since 0.1.0 */
export * as JobStore from "./JobStore.js"

/** @since 0.1.0 */
export * as Leader from "./Leader.js"

/** @since 0.1.0 */
export * as Lock from "./Lock.js"

/** @since 0.1.0 */
export * as MemoryStore from "./MemoryStore.js"

/** @since 0.1.0 */
export * as Metrics from "./Metrics.js"

/** @since 0.1.0 */
export * as Nightshift from "./Nightshift.js"

/** @since 0.2.0 */
export * as ShardedStore from "./ShardedStore.js"

/** @since 0.1.0 */
export * as Store from "./Store.js"

/** @since 0.1.0 */
export * as Telemetry from "./Telemetry.js"

/** @since 0.1.0 */
export * as Testing from "./Testing.js"

/** @since 0.1.0 */
export * as Worker from "./Worker.js"

/** @since 0.1.0 */
export * as WorkerStatus from "./WorkerStatus.js"
