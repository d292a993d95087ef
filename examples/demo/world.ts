/**
 * The demo's simulated world, kept in memory: tenants with orphaned
 * resources, deployments that drift, services to health-check, TLS
 * certificates, webhook endpoints and a telemetry buffer.
 *
 * Everything here is a stand-in for a real system (a cloud API, a database,
 * an ACME server, customers' HTTP endpoints). Some of it misbehaves on
 * purpose so that retries, discards and failures show up on the dashboard.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"

/** A failure of some remote system the demo talks to. */
export class RemoteError extends Data.TaggedError("RemoteError")<{
  readonly system: string
  readonly status: number
  readonly detail: string
}> {
  override get message(): string {
    return `${this.system} answered ${this.status}: ${this.detail}`
  }
}

/** A resource left behind by a deleted parent (a volume without its VM, …). */
export interface Orphan {
  readonly id: string
  readonly tenant: string
  readonly createdAt: number
}

/** A deployment: how many replicas it should have and has. */
export interface Deployment {
  readonly name: string
  readonly desired: number
  readonly actual: number
}

/** A TLS certificate. */
export interface Certificate {
  readonly domain: string
  readonly expiresAt: number
}

/** How a customer's webhook endpoint behaves. */
export type EndpointBehaviour = "healthy" | "flaky" | "slow" | "gone" | "rate-limited"

/** A customer's webhook endpoint. */
export interface Endpoint {
  readonly url: string
  readonly tenant: string
  readonly behaviour: EndpointBehaviour
}

/** One telemetry sample, exported in batches. */
export interface Sample {
  readonly name: string
  readonly value: number
  readonly at: number
}

const day = 24 * 60 * 60 * 1000

/** True with probability `p`. */
export const chance = (p: number): Effect.Effect<boolean> => Effect.map(Random.next, (x) => x < p)

/** Sleep a random time between `minMs` and `maxMs` (simulated latency). */
export const latency = (minMs: number, maxMs: number): Effect.Effect<void> =>
  Effect.flatMap(Random.nextIntBetween(minMs, maxMs), (ms) => Effect.sleep(ms))

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

const make = Effect.gen(function* () {
  const start = yield* now
  const tenants = ["acme", "globex", "initech", "umbrella"] as const
  const orphans = yield* Ref.make<ReadonlyArray<Orphan>>([])
  const deployments = yield* Ref.make<ReadonlyArray<Deployment>>([
    { name: "api", desired: 3, actual: 3 },
    { name: "worker", desired: 5, actual: 5 },
    { name: "frontend", desired: 2, actual: 2 }
  ])
  const certificates = yield* Ref.make<ReadonlyArray<Certificate>>([
    { domain: "acme.example", expiresAt: start + 5 * day },
    { domain: "globex.example", expiresAt: start + 80 * day },
    { domain: "initech.example", expiresAt: start + 12 * day },
    { domain: "umbrella.example", expiresAt: start - day }
  ])
  const endpoints: ReadonlyArray<Endpoint> = [
    { url: "https://hooks.acme.example/orders", tenant: "acme", behaviour: "healthy" },
    { url: "https://globex.example/webhooks", tenant: "globex", behaviour: "flaky" },
    { url: "https://initech.example/hooks", tenant: "initech", behaviour: "slow" },
    { url: "https://old.umbrella.example/hook", tenant: "umbrella", behaviour: "gone" },
    { url: "https://umbrella.example/v2/hook", tenant: "umbrella", behaviour: "rate-limited" }
  ]
  const telemetry = yield* Queue.sliding<Sample>(10_000)
  let nextId = 1

  return {
    tenants,
    endpoints,
    telemetry,
    deployments,
    certificates,

    /** Some work elsewhere leaves orphans behind. */
    leaveOrphans: Effect.gen(function* () {
      const at = yield* now
      const count = yield* Random.nextIntBetween(0, 6)
      const fresh = yield* Effect.forEach(Array.from({ length: count }), () =>
        Effect.map(
          Random.choice(tenants),
          (tenant): Orphan => ({ id: `vol-${nextId++}`, tenant, createdAt: at })
        )
      )
      yield* Ref.update(orphans, (all) => [...all, ...fresh])
    }),

    /** A tenant's orphans created before `cutoff`, oldest first. Globex's API is unreliable. */
    listOrphans: (tenant: string, cutoff: number) =>
      Effect.gen(function* () {
        yield* latency(20, 150)
        if (tenant === "globex" && (yield* chance(0.3))) {
          return yield* new RemoteError({ system: "globex cloud API", status: 502, detail: "bad gateway" })
        }
        const all = yield* Ref.get(orphans)
        return all.filter((o) => o.tenant === tenant && o.createdAt < cutoff)
      }),

    deleteOrphan: (orphan: Orphan) =>
      Effect.zipRight(
        latency(5, 40),
        Ref.update(orphans, (all) => all.filter((o) => o.id !== orphan.id))
      ),

    orphanCount: Effect.map(Ref.get(orphans), (all) => all.length),

    /** Nodes die now and then: a deployment loses replicas. */
    drift: Effect.gen(function* () {
      if (!(yield* chance(0.5))) return
      const all = yield* Ref.get(deployments)
      const victim = all[yield* Random.nextIntBetween(0, all.length)]!
      yield* Ref.set(
        deployments,
        all.map((d) => (d.name === victim.name ? { ...d, actual: Math.max(0, d.actual - 1) } : d))
      )
    }),

    scale: (name: string, replicas: number) =>
      Effect.zipRight(
        latency(50, 300),
        Ref.update(deployments, (all) => all.map((d) => (d.name === name ? { ...d, actual: replicas } : d)))
      ),

    /** Probe a service; `payments` is down now and then. */
    probe: (service: string) =>
      Effect.gen(function* () {
        yield* latency(10, 200)
        if (service === "payments" && (yield* chance(0.25))) {
          return yield* new RemoteError({ system: service, status: 503, detail: "health check failed" })
        }
      }),

    /** Ask the (simulated) ACME server for a new certificate. */
    issueCertificate: (domain: string) =>
      Effect.gen(function* () {
        yield* latency(200, 1500)
        if (yield* chance(0.2)) {
          return yield* new RemoteError({ system: "ACME server", status: 429, detail: "rate limited" })
        }
        const expiresAt = (yield* now) + 90 * day
        yield* Ref.update(certificates, (all) =>
          all.map((c) => (c.domain === domain ? { domain, expiresAt } : c))
        )
      }),

    /** POST a webhook to an endpoint; how it goes depends on the endpoint. */
    post: (endpoint: Endpoint) =>
      Effect.gen(function* () {
        const fail = (status: number, detail: string) =>
          Effect.fail(new RemoteError({ system: endpoint.url, status, detail }))
        switch (endpoint.behaviour) {
          case "healthy":
            return yield* latency(20, 120)
          case "flaky":
            yield* latency(20, 200)
            return (yield* chance(0.5)) ? yield* fail(503, "service unavailable") : undefined
          case "slow":
            return yield* latency(500, 6_000)
          case "gone":
            return yield* fail(410, "gone")
          case "rate-limited":
            return (yield* chance(0.6)) ? yield* fail(429, "too many requests") : yield* latency(20, 80)
        }
      }),

    /** Scan a container image; a few images cannot be scanned at all. */
    scan: (image: string) =>
      Effect.gen(function* () {
        yield* latency(500, 4_000)
        if (image.endsWith(":legacy")) {
          return yield* new RemoteError({
            system: "scanner",
            status: 422,
            detail: "unsupported image format"
          })
        }
        if (yield* chance(0.1))
          return yield* new RemoteError({ system: "scanner", status: 500, detail: "crashed" })
        return yield* Random.nextIntBetween(0, 4)
      }),

    /** Record a telemetry sample (dropped when the buffer is full). */
    record: (name: string, value: number) =>
      Effect.flatMap(now, (at) => Queue.offer(telemetry, { name, value, at })),

    /** Send a batch of samples to the (simulated) metrics backend. */
    exportSamples: (samples: ReadonlyArray<Sample>) =>
      Effect.gen(function* () {
        yield* latency(20, 200)
        if (yield* chance(0.1)) {
          return yield* new RemoteError({ system: "metrics backend", status: 504, detail: "timeout" })
        }
        return samples.length
      })
  }
})

/** The world service. */
export class World extends Context.Tag("demo/World")<World, Effect.Effect.Success<typeof make>>() {}

/** A fresh world. */
export const layer: Layer.Layer<World> = Layer.effect(World, make)
