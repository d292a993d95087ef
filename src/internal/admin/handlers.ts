import { IncomingMessage } from "node:http"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Events from "../../Events.js"
import type * as Job from "../../Job.js"
import * as JobQueue from "../../JobQueue.js"
import * as JobStore from "../../JobStore.js"
import * as Nightshift from "../../Nightshift.js"
import { formatParseError, isStorableText, jsonTooDeep, maxDepth } from "../input.js"
import * as Bulk from "../store/bulk.js"
import * as Flow from "../store/flow.js"
import * as FlowReport from "../store/flowReport.js"
import { Api } from "./api.js"
import * as Dashboard from "./dashboard.js"
import * as History from "./history.js"
import * as Prometheus from "./prometheus.js"
import * as Readiness from "./readiness.js"
import * as Render from "./render.js"
import * as S from "./schema.js"
import * as Sse from "./sse.js"

/** Handler settings. */
export interface Settings {
  readonly lateAfter: Duration.Duration
  readonly storeTimeout: Duration.Duration
  readonly keepAlive: Duration.Duration
  /** Time between the overview's samples of the store. */
  readonly sampleInterval: Duration.Duration
  /** The largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? ""

const storeFailed = (e: JobStore.JobStoreError) =>
  Effect.zipRight(
    Effect.logWarning(`nightshift admin: job store failed: ${firstLine(e.message)}`),
    Effect.fail(new S.StoreFailed({ message: `the job store failed: ${firstLine(e.message)}` }))
  )

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
      .handle("tree", () => Effect.map(crew.tree, (tree) => ({ tree })))
      .handle("history", ({ path }) =>
        Effect.catchTag(crew.history(path.name), "WorkerNotFound", () => Effect.fail(missing(path.name)))
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
  partition: body.partition,
  runAt: body.runAt,
  delay: body.delay as Duration.DurationInput | undefined
})

const badBody = (message: string) => new S.InvalidRequest({ message })

const tooLarge = (limit: number) =>
  new S.PayloadTooLarge({
    limit,
    message: `the request body is larger than ${limit} bytes, the most this server accepts (Admin option maxBodyBytes, env NIGHTSHIFT_ADMIN_MAX_BODY_BYTES)`
  })

/**
 * A Node request body as text. Past the limit, the chunks already held are
 * dropped and the rest is read and discarded (not buffered), so that the
 * client still gets its 413 on a connection that stays usable.
 */
const readIncoming = (source: IncomingMessage, limit: number) =>
  Effect.async<string, S.PayloadTooLarge | S.InvalidRequest>((resume) => {
    let chunks: Array<Buffer> = []
    let bytes = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.off("close", onClose)
    }
    const finish = (result: Effect.Effect<string, S.PayloadTooLarge | S.InvalidRequest>) => {
      cleanup()
      resume(result)
    }
    function onData(chunk: Buffer | string) {
      bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length
      if (bytes > limit) {
        chunks = []
        finish(Effect.fail(tooLarge(limit)))
        source.resume() // keep draining, into nothing
        return
      }
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk)
    }
    function onEnd() {
      finish(Effect.sync(() => Buffer.concat(chunks).toString("utf8")))
    }
    function onError() {
      finish(Effect.fail(badBody("the request body could not be read")))
    }
    // Closed before its end: the client went away mid-body.
    function onClose() {
      finish(Effect.fail(badBody("the request body ended before it was complete")))
    }
    source.on("data", onData)
    source.once("end", onEnd)
    source.once("error", onError)
    source.once("close", onClose)
    return Effect.sync(cleanup)
  })

/**
 * The request body as text, refused unread when its declared length is over
 * the limit, and cut off as soon as it grows past it when it declares none.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) => {
  const declared = request.headers["content-length"]
  if (declared !== undefined && !(Number(declared) <= limit)) return Effect.fail(tooLarge(limit))
  const source = (request as { readonly source?: unknown }).source
  if (source instanceof IncomingMessage) return readIncoming(source, limit)
  // Another server (a host application's): its own limit mechanism.
  return request.text.pipe(
    HttpServerRequest.withMaxBodySize(Option.some(limit)),
    Effect.mapError((e) =>
      /maxBytes/.test(String((e as { cause?: unknown }).cause))
        ? tooLarge(limit)
        : badBody("the request body could not be read")
    )
  )
}

/**
 * A JSON body, read by hand so that every rejection (too large, wrong
 * content type, unparsable or too deeply nested JSON, fields that do not
 * decode) says what to fix. `what` names the body in messages ("the job").
 */
const readJson = <A, I>(
  request: HttpServerRequest.HttpServerRequest,
  limit: number,
  schema: Schema.Schema<A, I>,
  what: string
) =>
  Effect.gen(function* () {
    const type = request.headers["content-type"] ?? ""
    if (!/^application\/json\b/i.test(type)) {
      return yield* badBody(
        `send ${what} as JSON with the header Content-Type: application/json (got ${type === "" ? "no content type" : JSON.stringify(type)})`
      )
    }
    const text = yield* readBody(request, limit)
    if (jsonTooDeep(text)) {
      return yield* badBody(`the request body nests arrays or objects more than ${maxDepth} levels deep`)
    }
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => badBody(`the request body is not valid JSON: ${(e as Error).message}`)
    })
    return yield* Schema.decodeUnknown(schema)(json).pipe(
      Effect.mapError((e) => badBody(`the request body is not ${what}:\n${formatParseError(e)}`))
    )
  }).pipe(Effect.withSpan("nightshift.admin.readJson"))

/** The enqueue body. */
const readEnqueue = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  readJson(request, limit, S.EnqueueRequest, "a valid job")

/** The filters a list, count or bulk request gives, in the store's terms. */
interface Filters {
  readonly state?: ReadonlyArray<JobStore.JobState> | undefined
  readonly kind?: ReadonlyArray<string> | undefined
  readonly queue?: ReadonlyArray<string> | undefined
  readonly dedupeKey?: string | undefined
  readonly idFrom?: string | undefined
  readonly idTo?: string | undefined
  readonly createdFrom?: number | undefined
  readonly createdTo?: number | undefined
  readonly payload?: JobStore.PayloadMatch | undefined
  readonly cursor?: string | undefined
}

/** The URL form of the filters: the payload path and its value come apart, and both or neither are given. */
const urlFilters = (
  params: typeof S.JobCountParams.Type & { readonly cursor?: string | undefined }
): Effect.Effect<Filters, S.InvalidRequest> => {
  const { payload, value, ...rest } = params
  if ((payload === undefined) !== (value === undefined))
    return Effect.fail(
      badBody(
        'a payload search takes both payload (the path, such as tenantId) and value (such as t-42, or "42" for the text 42)'
      )
    )
  return Effect.succeed(payload === undefined ? rest : { ...rest, payload: { path: payload, value: value! } })
}

/** The store filter of checked filters. */
const storeFilter = (f: Filters): Omit<JobStore.ListFilter, "limit" | "cursor"> => ({
  states: f.state,
  kinds: f.kind,
  queues: f.queue,
  dedupeKey: f.dedupeKey,
  idFrom: f.idFrom,
  idTo: f.idTo,
  createdFrom: f.createdFrom,
  createdTo: f.createdTo,
  payload: f.payload
})

/** The list filters, refused when they hold text no name can (a NUL character, a lone surrogate). */
const checkFilters = (params: Filters): Effect.Effect<void, S.InvalidRequest> => {
  for (const [what, values] of [
    ["kind", params.kind],
    ["queue", params.queue],
    ["dedupeKey", params.dedupeKey === undefined ? undefined : [params.dedupeKey]],
    ["value", typeof params.payload?.value === "string" ? [params.payload.value] : undefined],
    ["cursor", params.cursor === undefined ? undefined : [params.cursor]]
  ] as const) {
    for (const v of values ?? []) {
      if (!isStorableText(v))
        return Effect.fail(
          badBody(
            `${what} ${JSON.stringify(v)} holds a NUL character or a lone surrogate, which no ${what} can`
          )
        )
    }
  }
  return Effect.void
}

/** A page as the API shows it: unreadable rows are named, not fatal. */
const renderPage = (page: JobStore.ListPage): typeof S.JobPage.Type => {
  const jobs: Array<typeof S.JobSummary.Type> = []
  const unreadable: Array<typeof S.UnreadableJob.Type> = []
  for (const job of page.jobs) {
    const shown = Render.show(job)
    if ("unreadable" in shown)
      unreadable.push({ id: String((job as { id?: unknown }).id), problem: shown.unreadable })
    else jobs.push(Render.summary(shown))
  }
  return unreadable.length === 0
    ? { jobs, nextCursor: page.nextCursor }
    : { jobs, nextCursor: page.nextCursor, unreadable }
}

/**
 * A list page for the API: a bounded filter's store pages (one window of
 * ids each) are followed until the page is full, nothing is left, or the
 * page has spent `listBudgetMs` or read `listWindows` windows (so one page
 * answers in bounded time whatever the table holds; its cursor goes on).
 */
const listFilling = (
  queue: JobQueue.JobQueue["Type"],
  store: JobStore.Service,
  filter: Omit<JobStore.ListFilter, "limit" | "cursor">,
  limit: number,
  cursor: string | undefined
) =>
  Effect.gen(function* () {
    const jobs: Array<JobStore.JobRecord> = []
    let next: string | null = cursor ?? null
    let windows = 0
    const start = yield* Clock.currentTimeMillis
    if (!JobStore.isWindowed(filter)) return yield* queue.list({ ...filter, limit, cursor: next })
    do {
      // The store's pages, and why their waiting jobs wait read once for the whole page, below.
      const page: JobStore.ListPage = yield* store.list({
        ...filter,
        limit: limit - jobs.length,
        cursor: next
      })
      jobs.push(...page.jobs)
      next = page.nextCursor
      windows++
    } while (
      next !== null &&
      jobs.length < limit &&
      windows < listWindows &&
      (yield* Clock.currentTimeMillis) - start < listBudgetMs
    )
    return { jobs: yield* Flow.withWaiting(store, jobs), nextCursor: next }
  })

/** The most windows of ids (`JobStore.listScanWindow` each) one API list page reads. */
const listWindows = 100

/** How long one API list page goes on reading windows of ids. */
const listBudgetMs = 250

/** How many jobs match, up to `S.maxCount`, read a list page at a time. */
const countMatching = (store: JobStore.Service, filter: Omit<JobStore.ListFilter, "limit" | "cursor">) =>
  Effect.gen(function* () {
    let count = 0
    let cursor: string | null = null
    do {
      const page: JobStore.ListPage = yield* store.list({
        ...filter,
        limit: Math.min(JobStore.maxListLimit, S.maxCount + 1 - count),
        cursor
      })
      count += page.jobs.length
      cursor = page.nextCursor
    } while (cursor !== null && count <= S.maxCount)
    return count > S.maxCount ? { count: S.maxCount, capped: true } : { count, capped: false }
  })

/**
 * A job's payload as the detail shows it: decoded by its kind's schema and
 * written back as JSON, so that `Schema.Redacted` fields print as
 * `"<redacted>"`, the hook logs use (the store holds the encoded form, in
 * which they are plain). A kind this app does not know, or a payload that no
 * longer decodes, is shown as stored, and says so.
 */
const redacted = (
  detail: typeof S.JobDetail.Type,
  kind: Job.Kind<string, any, any, never> | undefined
): typeof S.JobDetail.Type => {
  if (kind === undefined) return detail
  const decoded = Schema.decodeUnknownEither(kind.payload)(detail.payload)
  if (decoded._tag === "Left") return detail
  try {
    return { ...detail, payload: JSON.parse(JSON.stringify(decoded.right) ?? "null"), payloadRedacted: true }
  } catch {
    // A decoded value JSON cannot write (a bigint): shown as stored.
    return detail
  }
}

/** A bulk summary as the API shows it. */
const bulkResponse = (
  action: "retry" | "cancel" | "delete",
  summary: Bulk.Summary,
  nextCursor: string | null
): typeof S.BulkResponse.Type => ({
  action,
  changed: summary.changed,
  requested: summary.requested,
  skipped: [...summary.skipped.values()].map(({ count, reason, state }) => ({ reason, state, count })),
  nextCursor
})

const jobs = (settings: Settings) =>
  HttpApiBuilder.group(Api, "jobs", (handlers) =>
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
      const store = yield* JobStore.JobStore
      const invalid = (message: string) => Effect.fail(new S.InvalidRequest({ message }))
      const bulk = (
        request: HttpServerRequest.HttpServerRequest,
        action: "retry" | "cancel" | "delete",
        op: (ids: ReadonlyArray<string>) => Effect.Effect<JobStore.BulkResult, JobStore.JobStoreError>
      ) =>
        Effect.gen(function* () {
          const body = yield* readJson(request, settings.maxBodyBytes, S.BulkRequest, `a bulk ${action}`)
          if ((body.ids === undefined) === (body.filter === undefined))
            return yield* badBody(
              `name the jobs to ${action} with either ids (a list of up to ${JobStore.maxBulkIds} job ids) or filter (the filters of GET /jobs; {} for every job), not both or neither`
            )
          if (body.ids !== undefined) {
            if (body.max !== undefined || body.cursor !== undefined)
              return yield* badBody("max and cursor go with filter, not with ids")
            const summary = Bulk.count(Bulk.summary(), yield* op(body.ids))
            return bulkResponse(action, summary, null)
          }
          const filters: Filters = body.filter!
          yield* checkFilters(filters)
          const done = yield* Bulk.matching(
            store,
            storeFilter(filters),
            { max: body.max ?? S.maxBulkMatches, cursor: body.cursor },
            op
          )
          return bulkResponse(action, done.summary, done.nextCursor)
        }).pipe(
          Effect.catchTag("JobStoreError", storeFailed),
          Effect.withSpan(`nightshift.admin.bulk.${action}`)
        )
      const enqueue = (body: typeof S.EnqueueRequest.Type) => {
        const kind = kinds.get(body.kind)
        if (kind === undefined) {
          const known = Array.from(kinds.keys()).sort().join(", ") || "(none)"
          return invalid(`unknown job kind ${JSON.stringify(body.kind)}; this app knows: ${known}`)
        }
        return Schema.decodeUnknown(kind.payload)(body.payload).pipe(
          Effect.catchTag("ParseError", (e) =>
            invalid(`payload for ${kind.name} does not match its schema:\n${formatParseError(e)}`)
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
          urlFilters(urlParams).pipe(
            Effect.tap(checkFilters),
            Effect.flatMap((filters) =>
              listFilling(queue, store, storeFilter(filters), urlParams.limit ?? 50, urlParams.cursor)
            ),
            Effect.map(renderPage),
            Effect.catchTag("JobStoreError", storeFailed)
          )
        )
        .handle("count", ({ urlParams }) =>
          urlFilters(urlParams).pipe(
            Effect.tap(checkFilters),
            Effect.flatMap((filters) => countMatching(store, storeFilter(filters))),
            Effect.catchTag("JobStoreError", storeFailed)
          )
        )
        .handle("runNow", ({ path }) =>
          queue.runNow(path.id).pipe(
            Effect.catchTag("JobStoreError", storeFailed),
            Effect.flatMap(
              (r): Effect.Effect<typeof S.RanNow.Type, S.JobNotFound | S.JobStateConflict> =>
                r._tag === "not-found"
                  ? Effect.fail(notFound(path.id))
                  : r._tag === "not-waiting"
                    ? Effect.fail(
                        new S.JobStateConflict({
                          id: path.id,
                          state: r.state,
                          message: `job ${path.id} is ${r.state}; only a scheduled or retryable job can be run now`
                        })
                      )
                    : Effect.succeed({ id: path.id, result: r._tag })
            )
          )
        )
        .handleRaw("retryMany", ({ request }) => bulk(request, "retry", queue.retryMany))
        .handleRaw("cancelMany", ({ request }) => bulk(request, "cancel", queue.cancelMany))
        .handleRaw("deleteMany", ({ request }) => bulk(request, "delete", queue.deleteMany))
        .handle("get", ({ path }) =>
          queue.get(path.id).pipe(
            Effect.catchTag("JobStoreError", storeFailed),
            Effect.flatMap(
              Option.match({
                onNone: (): Effect.Effect<typeof S.JobDetail.Type, S.JobNotFound | S.StoreFailed> =>
                  Effect.fail(notFound(path.id)),
                onSome: (job): Effect.Effect<typeof S.JobDetail.Type, S.JobNotFound | S.StoreFailed> => {
                  const shown = Render.show(job)
                  return "unreadable" in shown
                    ? Effect.fail(
                        new S.StoreFailed({
                          message: `job ${path.id} is stored in a form this version cannot show: ${shown.unreadable}`
                        })
                      )
                    : Effect.succeed(redacted(shown.detail, kinds.get(shown.detail.kind)))
                }
              })
            )
          )
        )
        .handle("kinds", () => Effect.succeed(kindList))
        .handleRaw("enqueue", ({ request }) =>
          Effect.flatMap(readEnqueue(request, settings.maxBodyBytes), enqueue)
        )
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

/** Partition keys listed per queue by `GET /queues`. */
const queueListTop = FlowReport.defaultTop

/** Partition keys listed by `GET /queues/:name/partitions` without a limit. */
const partitionsTop = 20

const queues = HttpApiBuilder.group(Api, "queues", (handlers) =>
  Effect.gen(function* () {
    const { runner } = yield* Nightshift.Nightshift
    const queue = yield* JobQueue.JobQueue
    const store = yield* JobStore.JobStore
    const list = Effect.gen(function* () {
      const [counts, paused, status, state] = yield* Effect.all([
        queue.counts,
        queue.paused,
        runner === undefined ? Effect.succeed(undefined) : runner.status,
        store.flowState({ due: true })
      ])
      const report = FlowReport.report(state, { top: queueListTop })
      const flows = new Map(report.queues.map((f) => [f.queue, f]))
      const byName = new Map<string, Record<JobStore.JobState, number>>()
      const entry = (name: string) => {
        let e = byName.get(name)
        if (e === undefined) byName.set(name, (e = zeroCounts()))
        return e
      }
      for (const name of status?.queues ?? []) entry(name)
      for (const name of paused) entry(name)
      for (const c of counts) entry(c.queue)[c.state] += c.count
      for (const name of flows.keys()) entry(name)
      const names = Array.from(byName.keys()).sort()
      return {
        queues: names.map((name) => {
          const isPaused = paused.includes(name)
          return {
            name,
            paused: isPaused,
            counts: byName.get(name)!,
            flow: FlowReport.flowOf(flows.get(name) ?? FlowReport.emptyFlow(name, isPaused))
          }
        }),
        rules: report.rules,
        throttled: report.throttled
      }
    })
    const partitions = (name: string, limit: number | undefined) =>
      Effect.gen(function* () {
        if (!JobQueue.isValidName(name))
          return yield* new S.InvalidRequest({
            message: `invalid queue name ${JSON.stringify(name)}: use 1-128 of [A-Za-z0-9_.:-]`
          })
        const state = yield* Effect.catchTag(store.flowState({ due: true }), "JobStoreError", storeFailed)
        const flow =
          FlowReport.report(state, { top: limit ?? partitionsTop }).queues.find((f) => f.queue === name) ??
          FlowReport.emptyFlow(name, state.paused.includes(name))
        return { queue: name, paused: flow.paused, ...FlowReport.flowOf(flow) }
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
      .handle("partitions", ({ path, urlParams }) => partitions(path.name, urlParams.limit))
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
      const store = yield* JobStore.JobStore
      const history = new History.History(Duration.toMillis(settings.sampleInterval))
      yield* Effect.forkScoped(History.sample(history, store, settings.sampleInterval))
      let spec: OpenApi.OpenAPISpec | undefined
      return handlers
        .handle("events", () =>
          Effect.succeed(Sse.response(Sse.stream(events, crew, settings.keepAlive, closing)))
        )
        .handle("overview", ({ urlParams }) =>
          Effect.map(Clock.currentTimeMillis, (clockNow) => {
            const window = urlParams.window ?? "15m"
            const ms = S.windowMs[window]
            const now = history.latest ?? clockNow
            return {
              window,
              now,
              intervalMs: history.intervalMs,
              resolutionMs: ms <= history.baseMs ? history.intervalMs : History.minuteMs,
              queues: history.columns,
              points: history.points(ms, now, urlParams.after)
            }
          })
        )
        .handle("metrics", () => Effect.map(Metric.snapshot, Prometheus.format))
        .handle("openapi", () => Effect.sync(() => (spec ??= OpenApi.fromApi(Api))))
    })
  )

const dashboard = HttpApiBuilder.group(Api, "dashboard", (handlers) =>
  handlers.handle("page", () =>
    Effect.sync(() => {
      const page = Dashboard.get()
      return HttpServerResponse.text(page.html, {
        contentType: "text/html; charset=utf-8",
        headers: page.headers
      })
    })
  )
)

/** Every group's handlers. */
export const layer = (settings: Settings) =>
  Layer.mergeAll(health(settings), workers, jobs(settings), queues, observe(settings), dashboard)
