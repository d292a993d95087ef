import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Events from "../../Events.js"
import * as JobQueue from "../../JobQueue.js"
import * as JobStore from "../../JobStore.js"
import * as Nightshift from "../../Nightshift.js"
import { Api } from "./api.js"
import * as Dashboard from "./dashboard.js"
import * as Prometheus from "./prometheus.js"
import * as Readiness from "./readiness.js"
import * as S from "./schema.js"
import * as Sse from "./sse.js"

/** Handler settings. */
export interface Settings {
  readonly lateAfter: Duration.Duration
  readonly storeTimeout: Duration.Duration
  readonly keepAlive: Duration.Duration
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? ""

const storeFailed = (e: JobStore.JobStoreError) =>
  Effect.zipRight(
    Effect.logWarning(`nightshift admin: job store failed: ${firstLine(e.message)}`),
    Effect.fail(new S.StoreUnavailable({ message: `the job store failed: ${firstLine(e.message)}` }))
  )

const summary = (job: JobStore.JobRecord): typeof S.JobSummary.Type => {
  const last = job.errors[job.errors.length - 1]
  return {
    ...job,
    errorCount: job.errors.length,
    lastError: last === undefined ? null : `${last.kind}: ${firstLine(last.message).slice(0, 300)}`
  }
}

const notFound = (id: string) => new S.JobNotFound({ id, message: `no job with id ${JSON.stringify(id)}` })

const retried =
  (id: string) =>
  (r: JobStore.RetryResult): Effect.Effect<typeof S.Retried.Type, S.JobNotFound | S.JobStateConflict> => {
    if (r._tag === "retried") return Effect.succeed({ id, result: "retried" })
    if (r._tag === "not-found") return Effect.fail(notFound(id))
    const message = `job ${id} is ${r.state}; only completed, discarded or cancelled jobs can be retried`
    return Effect.fail(new S.JobStateConflict({ id, state: r.state, message }))
  }

const cancelled =
  (id: string) =>
  (r: JobStore.CancelResult): Effect.Effect<typeof S.Cancelled.Type, S.JobNotFound | S.JobStateConflict> => {
    if (r._tag === "cancelled" || r._tag === "requested") return Effect.succeed({ id, result: r._tag })
    if (r._tag === "not-found") return Effect.fail(notFound(id))
    const message = `job ${id} already finished (${r.state}); there is nothing to cancel`
    return Effect.fail(new S.JobStateConflict({ id, state: r.state, message }))
  }

const health = (settings: Settings) =>
  HttpApiBuilder.group(Api, "health", (handlers) =>
    Effect.gen(function* () {
      const app = yield* Nightshift.Nightshift
      const store = yield* JobStore.JobStore
      return handlers
        .handle("live", () => Effect.succeed({ status: "ok" as const }))
        .handle("ready", () =>
          Effect.flatMap(Readiness.checks(app, store, settings), (checks) => {
            const failing = checks.filter((c) => !c.ok)
            return failing.length === 0
              ? Effect.succeed({ ready: true as const, checks })
              : Effect.fail(
                  new S.NotReady({
                    ready: false,
                    checks,
                    message: failing.map((c) => c.detail ?? c.name).join("; ")
                  })
                )
          })
        )
    })
  )

const workers = HttpApiBuilder.group(Api, "workers", (handlers) =>
  Effect.gen(function* () {
    const { crew, runner } = yield* Nightshift.Nightshift
    const missing = (name: string) =>
      new S.WorkerNotFound({
        worker: name,
        message: `no worker named ${JSON.stringify(name)} (GET /workers lists the names; nested ones are "parent/child")`
      })
    return handlers
      .handle("list", () =>
        Effect.all({
          workers: crew.status,
          runner: runner === undefined ? Effect.succeed(null) : runner.status
        })
      )
      .handle("tick", ({ path }) =>
        crew.tick(path.name).pipe(
          Effect.map((outcome) => ({ worker: path.name, outcome })),
          Effect.catchTags({
            WorkerNotFound: () => Effect.fail(missing(path.name)),
            NotPeriodic: (e) => Effect.fail(new S.NotPeriodic({ worker: path.name, message: e.message }))
          })
        )
      )
      .handle("restart", ({ path }) =>
        crew.restart(path.name).pipe(
          Effect.as({ worker: path.name, restarted: true as const }),
          Effect.catchTag("WorkerNotFound", () => Effect.fail(missing(path.name)))
        )
      )
  })
)

const enqueueOptions = (body: typeof S.EnqueueRequest.Type): JobQueue.EnqueueOptions => ({
  queue: body.queue,
  priority: body.priority,
  maxAttempts: body.maxAttempts,
  dedupeKey: body.dedupeKey,
  runAt: body.runAt,
  delay: body.delay as Duration.DurationInput | undefined
})

const badBody = (message: string) => new S.InvalidRequest({ message })

/**
 * The enqueue body, read by hand so that every rejection (wrong content
 * type, unparsable JSON, fields that do not decode) says what to fix.
 */
const readEnqueue = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    const type = request.headers["content-type"] ?? ""
    if (!/^application\/json\b/i.test(type)) {
      return yield* badBody(
        `send the job as JSON with the header Content-Type: application/json (got ${type === "" ? "no content type" : JSON.stringify(type)})`
      )
    }
    const text = yield* Effect.mapError(request.text, () => badBody("the request body could not be read"))
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => badBody(`the request body is not valid JSON: ${(e as Error).message}`)
    })
    return yield* Schema.decodeUnknown(S.EnqueueRequest)(json).pipe(
      Effect.mapError((e) =>
        badBody(`the request body is not a valid job:\n${ParseResult.TreeFormatter.formatErrorSync(e)}`)
      )
    )
  })

const jobs = HttpApiBuilder.group(Api, "jobs", (handlers) =>
  Effect.gen(function* () {
    const { app, kinds } = yield* Nightshift.Nightshift
    const handled = app.handlers?.byKind ?? new Map()
    const kindList = {
      kinds: Array.from(kinds.values(), (k) => ({
        name: k.name,
        queue: k.queue,
        priority: k.priority,
        maxAttempts: k.retry.maxAttempts,
        handled: handled.has(k.name)
      })).sort((a, b) => (a.name < b.name ? -1 : 1))
    }
    const queue = yield* JobQueue.JobQueue
    const invalid = (message: string) => Effect.fail(new S.InvalidRequest({ message }))
    const enqueue = (body: typeof S.EnqueueRequest.Type) => {
      const kind = kinds.get(body.kind)
      if (kind === undefined) {
        const known = Array.from(kinds.keys()).sort().join(", ") || "(none)"
        return invalid(`unknown job kind ${JSON.stringify(body.kind)}; this app knows: ${known}`)
      }
      return Schema.decodeUnknown(kind.payload)(body.payload).pipe(
        Effect.catchTag("ParseError", (e) =>
          invalid(
            `payload for ${kind.name} does not match its schema:\n${ParseResult.TreeFormatter.formatErrorSync(e)}`
          )
        ),
        Effect.flatMap((payload) => queue.enqueue(kind, payload, enqueueOptions(body))),
        Effect.catchTags({
          InvalidPayload: (e) => invalid(e.message),
          InvalidOptions: (e) => invalid(e.message),
          JobStoreError: storeFailed
        })
      )
    }
    return handlers
      .handle("list", ({ urlParams }) =>
        queue
          .list({
            states: urlParams.state,
            kinds: urlParams.kind,
            queues: urlParams.queue,
            limit: urlParams.limit ?? 50,
            cursor: urlParams.cursor
          })
          .pipe(
            Effect.map((page) => ({ jobs: page.jobs.map(summary), nextCursor: page.nextCursor })),
            Effect.catchTag("JobStoreError", storeFailed)
          )
      )
      .handle("get", ({ path }) =>
        queue.get(path.id).pipe(
          Effect.catchTag("JobStoreError", storeFailed),
          Effect.flatMap(
            Option.match({
              onNone: () => Effect.fail(notFound(path.id)),
              onSome: (job) => Effect.succeed(job)
            })
          )
        )
      )
      .handle("kinds", () => Effect.succeed(kindList))
      .handleRaw("enqueue", ({ request }) => Effect.flatMap(readEnqueue(request), enqueue))
      .handle("retry", ({ path }) =>
        queue
          .retry(path.id)
          .pipe(Effect.catchTag("JobStoreError", storeFailed), Effect.flatMap(retried(path.id)))
      )
      .handle("cancel", ({ path }) =>
        queue
          .cancel(path.id)
          .pipe(Effect.catchTag("JobStoreError", storeFailed), Effect.flatMap(cancelled(path.id)))
      )
  })
)

const zeroCounts = () =>
  Object.fromEntries(JobStore.JobState.literals.map((s) => [s, 0])) as Record<JobStore.JobState, number>

const queues = HttpApiBuilder.group(Api, "queues", (handlers) =>
  Effect.gen(function* () {
    const { runner } = yield* Nightshift.Nightshift
    const queue = yield* JobQueue.JobQueue
    const list = Effect.gen(function* () {
      const [counts, paused, status] = yield* Effect.all([
        queue.counts,
        queue.paused,
        runner === undefined ? Effect.succeed(undefined) : runner.status
      ])
      const byName = new Map<string, Record<JobStore.JobState, number>>()
      const entry = (name: string) => {
        let e = byName.get(name)
        if (e === undefined) byName.set(name, (e = zeroCounts()))
        return e
      }
      for (const name of status?.queues ?? []) entry(name)
      for (const name of paused) entry(name)
      for (const c of counts) entry(c.queue)[c.state] += c.count
      const names = Array.from(byName.keys()).sort()
      return {
        queues: names.map((name) => ({ name, paused: paused.includes(name), counts: byName.get(name)! }))
      }
    })
    const set = (name: string, pause: boolean) =>
      (pause ? queue.pause(name) : queue.resume(name)).pipe(
        Effect.as({ queue: name, paused: pause }),
        Effect.catchTags({
          InvalidOptions: (e) => Effect.fail(new S.InvalidRequest({ message: e.message })),
          JobStoreError: storeFailed
        })
      )
    return handlers
      .handle("list", () => Effect.catchTag(list, "JobStoreError", storeFailed))
      .handle("pause", ({ path }) => set(path.name, true))
      .handle("resume", ({ path }) => set(path.name, false))
  })
)

const observe = (settings: Settings) =>
  HttpApiBuilder.group(Api, "observe", (handlers) =>
    Effect.gen(function* () {
      const { crew } = yield* Nightshift.Nightshift
      const events = yield* Events.Events
      const closing = yield* Deferred.make<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(closing, undefined))
      let spec: OpenApi.OpenAPISpec | undefined
      return handlers
        .handle("events", () =>
          Effect.succeed(Sse.response(Sse.stream(events, crew, settings.keepAlive, closing)))
        )
        .handle("metrics", () => Effect.map(Metric.snapshot, Prometheus.format))
        .handle("openapi", () => Effect.sync(() => (spec ??= OpenApi.fromApi(Api))))
    })
  )

const dashboard = HttpApiBuilder.group(Api, "dashboard", (handlers) =>
  handlers.handle("page", () =>
    Effect.succeed(
      HttpServerResponse.text(Dashboard.html, {
        contentType: "text/html; charset=utf-8",
        headers: Dashboard.headers
      })
    )
  )
)

/** Every group's handlers. */
export const layer = (settings: Settings) =>
  Layer.mergeAll(health(settings), workers, jobs, queues, observe(settings), dashboard)
