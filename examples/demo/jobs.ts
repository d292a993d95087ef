/**
 * The demo's durable job kinds and their handlers.
 *
 * A handler's typed failure decides what happens next: `Job.Discard` gives
 * up now, `Job.Snooze` tries again later without counting the attempt,
 * `Job.Retry` retries after an explicit delay, and any other failure retries
 * with the kind's backoff until its attempts run out.
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Job from "nightshift/Job"
import { type RemoteError, World } from "./world.js"

/** Deliver one event to one customer endpoint. */
export const DeliverWebhook = Job.make("deliver_webhook", {
  payload: Schema.Struct({ event: Schema.String, type: Schema.String, url: Schema.String }),
  queue: "webhooks",
  retry: { maxAttempts: 6, backoff: Schedule.exponential("2 seconds").pipe(Schedule.jittered) },
  timeout: "4 seconds"
})

/** Scan a container image for vulnerabilities. */
export const ScanImage = Job.make("scan_image", {
  payload: Schema.Struct({ image: Schema.String }),
  queue: "scans",
  retry: { maxAttempts: 3, backoff: Schedule.spaced("5 seconds") }
})

/** Renew a domain's TLS certificate. */
export const RenewCertificate = Job.make("renew_certificate", {
  payload: Schema.Struct({ domain: Schema.String }),
  queue: "certificates",
  retry: { maxAttempts: 10, backoff: Schedule.exponential("10 seconds") }
})

/** Summarise the world (enqueued by a cron job). */
export const UsageReport = Job.make("usage_report", {
  payload: Schema.Struct({ period: Schema.String }),
  queue: "reports"
})

/** 410 Gone: stop trying. 429: retry after the endpoint's Retry-After. Anything else: back off. */
const classify = (error: RemoteError): Job.Discard | Job.Retry | RemoteError => {
  if (error.status === 410) return new Job.Discard({ reason: `${error.system} is gone (410)` })
  if (error.status === 429) return new Job.Retry({ reason: "rate limited (429)", delay: "15 seconds" })
  return error
}

const deliver = Job.handle(DeliverWebhook, ({ event, type, url }, job) =>
  Effect.gen(function* () {
    const world = yield* World
    const endpoint = world.endpoints.find((e) => e.url === url)
    if (endpoint === undefined) return yield* new Job.Discard({ reason: `no endpoint ${url} any more` })
    yield* world.post(endpoint).pipe(Effect.mapError(classify))
    yield* world.record("webhook.delivered", job.attempt)
    yield* Effect.logDebug(`delivered ${type} ${event} to ${url}`)
  })
)

const scan = Job.handle(ScanImage, ({ image }) =>
  Effect.gen(function* () {
    const world = yield* World
    const findings = yield* world.scan(image).pipe(
      Effect.catchIf(
        (error) => error.status === 422,
        (error) => Effect.fail(new Job.Discard({ reason: `${image}: ${error.detail}` }))
      )
    )
    yield* world.record("scan.findings", findings)
  })
)

const renew = Job.handle(RenewCertificate, ({ domain }) =>
  Effect.gen(function* () {
    const world = yield* World
    yield* world.issueCertificate(domain).pipe(
      Effect.catchIf(
        (error) => error.status === 429,
        () => Effect.fail(new Job.Snooze({ duration: "20 seconds" }))
      )
    )
    yield* Effect.logInfo(`renewed the certificate of ${domain} for 90 days`)
  })
)

const report = Job.handle(UsageReport, ({ period }) =>
  Effect.gen(function* () {
    const world = yield* World
    const orphans = yield* world.orphanCount
    const deployments = yield* Ref.get(world.deployments)
    const degraded = deployments.filter((d) => d.actual < d.desired).map((d) => d.name)
    yield* Effect.logInfo(
      `usage report (${period}): ${orphans} orphans waiting, degraded deployments: ${degraded.join(", ") || "none"}`
    )
  })
)

/** Every handler of the demo. */
export const handlers = Job.handlers(deliver, scan, renew, report)
