/**
 * `Leader` among the processes sharing a PostgreSQL schema, by a lease row.
 *
 * Each candidate tries, every `interval`, one upsert on the `leaders` table:
 * it takes the row when it is free or expired, or renews it when it already
 * holds it. The lease's expiry is on the database clock, so candidates whose
 * clocks disagree still agree on who leads. A leader that cannot renew steps
 * down on its own before its lease can expire (measured on its own clock from
 * when it sent the last successful renewal), so two leaders never overlap
 * while clocks run at the same rate. When the leader dies, another takes over
 * within `ttl + interval`; when it shuts down cleanly it deletes its row, and
 * the next candidate takes over within `interval`.
 *
 * Unlike a session advisory lock, a lease also hands over when the leader is
 * frozen or cut off from the database without its connection being closed.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Schema from "./internal/pg/schema.js"
import type * as JobStore from "./JobStore.js"
import * as Leader from "./Leader.js"

/**
 * Election options.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Schema holding the `leaders` table (created by the store's migrations). Default `nightshift`. */
  readonly schema?: string | undefined
  /** Election name: candidates of the same group elect one leader. Default `maintenance`. */
  readonly group?: string | undefined
  /** This candidate's identity. Default host, pid and a random suffix. */
  readonly id?: string | undefined
  /** Lease length. Default 15 seconds. */
  readonly ttl?: Duration.DurationInput | undefined
  /** How often candidates try and the leader renews. Default a third of `ttl`. */
  readonly interval?: Duration.DurationInput | undefined
  /** Run the store's migrations first. Default true. */
  readonly migrate?: boolean | undefined
}

const defaultId = (): string =>
  `${process.env.HOSTNAME ?? "host"}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`

interface Settings {
  readonly sql: SqlClient.SqlClient
  readonly table: string
  readonly group: string
  readonly id: string
  readonly ttl: number
  readonly interval: number
}

/** Take or renew the lease; true when this candidate holds it afterwards. */
const claim = (s: Settings) =>
  s.sql<{ leader_id: string }>`
    INSERT INTO ${s.sql(s.table)} AS l (name, leader_id, elected_at, expires_at)
    VALUES (${s.group}, ${s.id}, now(), now() + ${s.ttl}::float8 * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE SET
      leader_id = excluded.leader_id,
      expires_at = excluded.expires_at,
      elected_at = CASE WHEN l.leader_id = excluded.leader_id THEN l.elected_at ELSE excluded.elected_at END
    WHERE l.leader_id = excluded.leader_id OR l.expires_at < now()
    RETURNING l.leader_id`.pipe(Effect.map((rows) => rows.length > 0))

const resign = (s: Settings) =>
  s.sql`DELETE FROM ${s.sql(s.table)} WHERE name = ${s.group} AND leader_id = ${s.id}`.pipe(Effect.ignore)

/** One election round; returns how long to wait before the next. */
const round = (s: Settings, ref: SubscriptionRef.SubscriptionRef<boolean>, validUntil: { at: number }) =>
  Effect.gen(function* () {
    const sentAt = yield* Clock.currentTimeMillis
    const leading = yield* SubscriptionRef.get(ref)
    const budget = leading ? Math.max(0, validUntil.at - sentAt) : s.interval
    const result = yield* claim(s).pipe(Effect.timeout(budget), Effect.either)
    if (Either.isRight(result)) {
      if (result.right) validUntil.at = sentAt + s.ttl - Math.min(1000, s.ttl / 10)
      if (result.right !== leading) yield* SubscriptionRef.set(ref, result.right)
    } else {
      const now = yield* Clock.currentTimeMillis
      if (leading && now >= validUntil.at) yield* SubscriptionRef.set(ref, false)
      yield* Effect.logWarning("nightshift: leader election round failed", result.left)
    }
    const now = yield* Clock.currentTimeMillis
    return (yield* SubscriptionRef.get(ref))
      ? Math.max(0, Math.min(s.interval, validUntil.at - now))
      : s.interval
  })

/**
 * Join the election in the current scope. Leaving the scope resigns.
 * Timers run on the live clock: the lease lives on the database clock,
 * which a `TestClock` cannot move.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Leader.Service, JobStore.JobStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const schema = yield* Schema.validateSchema(options.schema ?? "nightshift")
    if (options.migrate !== false) yield* Schema.migrate(schema)
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const ttl = Duration.toMillis(options.ttl ?? "15 seconds")
    const settings: Settings = {
      sql,
      table: `${schema}.leaders`,
      group: options.group ?? "maintenance",
      id: options.id ?? defaultId(),
      ttl,
      interval: options.interval === undefined ? ttl / 3 : Duration.toMillis(options.interval)
    }
    const ref = yield* SubscriptionRef.make(false)
    const validUntil = { at: 0 }
    const live = Clock.make()
    yield* Effect.addFinalizer(() => Effect.zipRight(SubscriptionRef.set(ref, false), resign(settings)))
    const first = yield* round(settings, ref, validUntil).pipe(Effect.withClock(live))
    const loop = (wait: number): Effect.Effect<never> =>
      Effect.sleep(wait).pipe(Effect.zipRight(round(settings, ref, validUntil)), Effect.flatMap(loop))
    yield* loop(first).pipe(
      Effect.annotateLogs({ group: settings.group, candidate: settings.id }),
      Effect.withClock(live),
      Effect.interruptible,
      Effect.forkScoped
    )
    return {
      id: settings.id,
      // Also checked against the deadline, in case the election loop is late to step down.
      isLeader: Effect.zipWith(
        SubscriptionRef.get(ref),
        live.currentTimeMillis,
        (lead, now) => lead && now < validUntil.at
      ),
      changes: ref.changes
    }
  })

/**
 * The PostgreSQL `Leader` layer.
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Leader.Leader, JobStore.JobStoreError, SqlClient.SqlClient> =>
  Layer.scoped(Leader.Leader, make(options))
