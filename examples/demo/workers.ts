/**
 * The demo's workers: the periodic, cron, long-running and batch programs a
 * platform team runs beside its job queues. Intervals are short so there is
 * always something to watch; production values are in the comments.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Crew from "nightshift/Crew"
import * as JobQueue from "nightshift/JobQueue"
import * as Worker from "nightshift/Worker"
import { DeliverWebhook, RenewCertificate, ScanImage } from "./jobs.js"
import { type Sample, World } from "./world.js"

/** Some tenants could not be garbage-collected this tick; the others were. */
export class TenantsFailed extends Data.TaggedError("TenantsFailed")<{
  readonly tenants: ReadonlyArray<string>
}> {
  override get message(): string {
    return `garbage collection failed for ${this.tenants.join(", ")} (other tenants were collected)`
  }
}

/** Orphans younger than this are left alone: their parent may still be on its way (1 hour in production). */
const gracePeriodMs = 30_000

/** At most this many deletions per tick, so one tick never hammers the cloud API. */
const maxDeletionsPerTick = 15

/** Reap one tenant's orphans older than the grace period, at most `budget` of them. */
const reapTenant = (tenant: string, cutoff: number, budget: number) =>
  Effect.gen(function* () {
    const world = yield* World
    const orphans = (yield* world.listOrphans(tenant, cutoff)).slice(0, budget)
    yield* Effect.forEach(orphans, world.deleteOrphan, { discard: true })
    return orphans.length
  }).pipe(Effect.withSpan("gc.tenant", { attributes: { tenant } }))

/**
 * One garbage-collection pass over every tenant. A tenant whose API fails is
 * skipped and reported; the others are still collected.
 */
const collectGarbage = Effect.gen(function* () {
  const world = yield* World
  const cutoff = (yield* Clock.currentTimeMillis) - gracePeriodMs
  let budget = maxDeletionsPerTick
  const failed: Array<string> = []
  for (const tenant of world.tenants) {
    if (budget === 0) break
    const result = yield* Effect.either(reapTenant(tenant, cutoff, budget))
    if (Either.isLeft(result)) failed.push(tenant)
    else budget -= result.right
  }
  yield* Effect.logInfo(`garbage collector: reaped ${maxDeletionsPerTick - budget} orphans`)
  if (failed.length > 0) return yield* new TenantsFailed({ tenants: failed })
})

/** Singleton: with several replicas on PostgreSQL, one of them collects per tick. */
export const garbageCollector = Worker.periodic(
  "garbage-collector",
  { schedule: "20 seconds", initialJitter: "3 seconds", timeout: "15 seconds", singleton: true },
  collectGarbage
)

/** Bring every deployment back to its desired replica count. */
export const reconciler = Worker.periodic(
  "reconciler",
  { schedule: "10 seconds", runOnStart: true },
  Effect.gen(function* () {
    const world = yield* World
    const drifted = (yield* Ref.get(world.deployments)).filter((d) => d.actual !== d.desired)
    yield* Effect.forEach(drifted, (d) => world.scale(d.name, d.desired), { discard: true })
    if (drifted.length > 0) {
      yield* Effect.logInfo(`reconciler: scaled ${drifted.map((d) => d.name).join(", ")} back up`)
    }
  })
)

/** One health check per service, each on its own schedule, supervised together as a nested crew. */
export const healthChecks = Crew.make(
  "health-checks",
  ["api", "payments", "search"].map((service) =>
    Worker.periodic(
      service,
      { schedule: "5 seconds", initialJitter: "1 second", timeout: "2 seconds" },
      Effect.gen(function* () {
        const world = yield* World
        const started = yield* Clock.currentTimeMillis
        yield* world.probe(service)
        yield* world.record(`health.${service}.ms`, (yield* Clock.currentTimeMillis) - started)
      })
    )
  )
)

/** Renew certificates that expire within 30 days, every minute on the minute (daily in production). */
export const certificateRenewer = Either.getOrThrow(
  Worker.cron(
    "certificate-renewer",
    "* * * * *",
    { runOnStart: true },
    Effect.gen(function* () {
      const world = yield* World
      const soon = (yield* Clock.currentTimeMillis) + 30 * 24 * 60 * 60 * 1000
      const expiring = (yield* Ref.get(world.certificates)).filter((c) => c.expiresAt < soon)
      // The dedupe key keeps one renewal per domain in flight however often this runs.
      yield* JobQueue.enqueueMany(
        expiring.map((c) =>
          JobQueue.item(RenewCertificate, { domain: c.domain }, { dedupeKey: `renew:${c.domain}` })
        )
      )
    })
  )
)

/** Export telemetry samples in batches of up to 100, or every 10 seconds. */
export const telemetryCollector = Worker.batchConsumer(
  "telemetry-collector",
  Stream.unwrap(Effect.map(World, (world) => Stream.fromQueue(world.telemetry))),
  (batch: Chunk.Chunk<Sample>) =>
    Effect.flatMap(World, (world) => world.exportSamples(Chunk.toReadonlyArray(batch))).pipe(
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.intersect(Schedule.recurs(3)))),
      Effect.catchAll((error) =>
        Effect.logWarning(`telemetry: dropped ${Chunk.size(batch)} samples: ${error.message}`)
      )
    ),
  { maxSize: 100, maxWait: "10 seconds" }
)

const eventTypes = ["order.created", "order.paid", "invoice.sent", "user.invited"] as const

/**
 * A long-running worker: domain events arrive and each is fanned out as one
 * webhook job per endpoint of its tenant. Upstream delivery is
 * at-least-once, so events sometimes arrive twice; the dedupe key folds the
 * second copy into the first job.
 */
export const eventSource = Worker.make(
  "event-source",
  Effect.gen(function* () {
    const world = yield* World
    let sequence = 0
    while (true) {
      yield* Effect.sleep(yield* Random.nextIntBetween(500, 2_500))
      const duplicate = sequence > 0 && (yield* Random.nextIntBetween(0, 10)) === 0
      const event = `evt_${duplicate ? sequence : ++sequence}`
      const tenant = yield* Random.choice(world.tenants)
      const type = yield* Random.choice(eventTypes)
      yield* JobQueue.enqueueMany(
        world.endpoints
          .filter((e) => e.tenant === tenant)
          .map((e) =>
            JobQueue.item(DeliverWebhook, { event, type, url: e.url }, { dedupeKey: `${event}:${e.url}` })
          )
      )
    }
  })
)

const images = [
  "api:1.42",
  "worker:2.3",
  "frontend:7.0",
  "billing:0.9",
  "search:3.1",
  "reports:1.0:legacy"
] as const

/** Every 30 seconds, a burst of image scans: the runner's pool grows with the queue and shrinks after. */
export const scanScheduler = Worker.periodic(
  "scan-scheduler",
  { schedule: "30 seconds", runOnStart: true },
  Effect.gen(function* () {
    const count = yield* Random.nextIntBetween(5, 40)
    const burst = yield* Effect.forEach(Array.from({ length: count }), () => Random.choice(images))
    yield* JobQueue.enqueueMany(burst.map((image) => JobQueue.item(ScanImage, { image })))
  })
)

/** The simulated world moves on: new orphans appear, deployments lose replicas. */
export const simulator = Worker.periodic(
  "simulator",
  { schedule: "3 seconds" },
  Effect.flatMap(World, (world) => Effect.zipRight(world.leaveOrphans, world.drift))
)
