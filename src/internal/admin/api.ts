import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import * as S from "./schema.js"

/** Bearer-token authorization (and cross-site / DNS-rebinding protection) of every route but liveness. */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("nightshift/Admin/Authorization", {
  failure: Schema.Union(
    S.Unauthorized.annotations(HttpApiSchema.annotations({ status: 401 })),
    S.Forbidden.annotations(HttpApiSchema.annotations({ status: 403 }))
  ),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const text = (contentType: string, description: string) =>
  Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType })).annotations({ description })

const hidden = OpenApi.annotations({ exclude: true })

const IdPath = Schema.Struct({ id: Schema.String })
const WorkerPath = Schema.Struct({ name: Schema.String })
const QueuePath = Schema.Struct({ name: Schema.String })

/** Liveness and readiness. */
export const health = HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live")
      .addSuccess(S.Live)
      .annotate(OpenApi.Description, "The process is up. Needs no token.")
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready")
      .addSuccess(S.Ready)
      .addError(S.NotReady, { status: 503 })
      .middleware(Authorization)
      .annotate(
        OpenApi.Description,
        "503 when the store is unreachable, the runner reports it unhealthy, or a periodic worker is late by more than the threshold."
      )
  )

/** The crew's workers. */
export const workers = HttpApiGroup.make("workers")
  .add(HttpApiEndpoint.get("list", "/workers").addSuccess(S.WorkersResponse))
  .add(
    HttpApiEndpoint.get("tree", "/workers/tree")
      .addSuccess(S.TreeResponse)
      .annotate(
        OpenApi.Description,
        "The supervision tree: the top-level crew, the crews and workers it supervises, and the children workers added, in start order, with each one's restart policy."
      )
  )
  .add(
    HttpApiEndpoint.get("history", "/workers/:name/history")
      .setPath(WorkerPath)
      .addSuccess(S.HistoryResponse)
      .addError(S.WorkerNotFound, { status: 404 })
      .annotate(
        OpenApi.Description,
        "A worker's recent history, newest first: its last 16 ticks (periodic workers: start, duration, forced or not, outcome with the failure's cause) and its last 10 restarts (when, why, the backoff waited)."
      )
  )
  .add(
    HttpApiEndpoint.post("tick", "/workers/:name/tick")
      .setPath(WorkerPath)
      .addSuccess(S.TickResponse)
      .addError(S.WorkerNotFound, { status: 404 })
      .addError(S.NotPeriodic, { status: 409 })
      .annotate(OpenApi.Description, "Run one tick of a periodic worker now and return its outcome.")
  )
  .add(
    HttpApiEndpoint.post("restart", "/workers/:name/restart")
      .setPath(WorkerPath)
      .addSuccess(S.RestartResponse)
      .addError(S.WorkerNotFound, { status: 404 })
  )
  .middleware(Authorization)

const bulkRules = {
  retry: "Final jobs (completed, discarded, cancelled) become available now, as POST /jobs/:id/retry does",
  cancel: "Queued jobs end cancelled; running ones are asked to stop, as POST /jobs/:id/cancel does",
  delete: "Jobs that are not running are deleted (cancel a running job first)"
} as const

/** A bulk route: by ids, or every job a filter matches, in batches of at most 1,000 jobs. */
const bulk = <const Name extends string>(name: Name, action: keyof typeof bulkRules) =>
  HttpApiEndpoint.post(name, `/jobs/bulk/${action}`)
    .addSuccess(S.BulkResponse)
    .addError(S.InvalidRequest, { status: 400 })
    .addError(S.PayloadTooLarge, { status: 413 })
    .annotate(
      OpenApi.Description,
      `${bulkRules[action]}. The body names the jobs: {"ids": [...]} (up to 1,000), or {"filter": {...}} (the filters of GET /jobs, as JSON: state, kind, queue as lists, payload as {"path": "tenantId", "value": "t-42"}) with an optional max; each batch of 1,000 is one transaction. The response counts what changed and what was skipped, and why. A bad body writes nothing.`
    )

/** Durable jobs. */
export const jobs = HttpApiGroup.make("jobs")
  .add(
    HttpApiEndpoint.get("list", "/jobs")
      .setUrlParams(S.JobListParams)
      .addSuccess(S.JobPage)
      .addError(S.InvalidRequest, { status: 400 })
      .annotate(
        OpenApi.Description,
        "Jobs newest first. Filters take comma-separated values; pass nextCursor as cursor for the next page."
      )
  )
  .add(
    HttpApiEndpoint.get("count", "/jobs/count")
      .setUrlParams(S.JobCountParams)
      .addSuccess(S.JobCount)
      .addError(S.InvalidRequest, { status: 400 })
      .annotate(
        OpenApi.Description,
        `How many jobs match the filters of GET /jobs, counted up to ${S.maxCount} (capped says it stopped there).`
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/jobs/:id")
      .setPath(IdPath)
      .addSuccess(S.JobDetail)
      .addError(S.JobNotFound, { status: 404 })
  )
  .add(
    HttpApiEndpoint.get("kinds", "/kinds")
      .addSuccess(S.KindsResponse)
      .annotate(OpenApi.Description, "The job kinds this app can enqueue by name, with their defaults.")
  )
  .add(
    HttpApiEndpoint.post("enqueue", "/jobs")
      .setPayload(S.EnqueueRequest)
      .addSuccess(S.Enqueued, { status: 201 })
      .addError(S.InvalidRequest, { status: 400 })
      .addError(S.PayloadTooLarge, { status: 413 })
      .annotate(
        OpenApi.Description,
        "Enqueue a job of a kind the app knows; the payload is checked by its schema."
      )
  )
  .add(
    HttpApiEndpoint.post("retry", "/jobs/:id/retry")
      .setPath(IdPath)
      .addSuccess(S.Retried)
      .addError(S.JobNotFound, { status: 404 })
      .addError(S.JobStateConflict, { status: 409 })
  )
  .add(
    HttpApiEndpoint.post("cancel", "/jobs/:id/cancel")
      .setPath(IdPath)
      .addSuccess(S.Cancelled)
      .addError(S.JobNotFound, { status: 404 })
      .addError(S.JobStateConflict, { status: 409 })
  )
  .add(
    HttpApiEndpoint.post("runNow", "/jobs/:id/run")
      .setPath(IdPath)
      .addSuccess(S.RanNow)
      .addError(S.JobNotFound, { status: 404 })
      .addError(S.JobStateConflict, { status: 409 })
      .annotate(
        OpenApi.Description,
        "Make a scheduled or retryable job due now (result moved); an available job is already due (result due); 409 for any other state."
      )
  )
  .add(bulk("retryMany", "retry"))
  .add(bulk("cancelMany", "cancel"))
  .add(bulk("deleteMany", "delete"))
  .addError(S.StoreFailed, { status: 503 })
  .middleware(Authorization)

/** Queues: depths and pausing. */
export const queues = HttpApiGroup.make("queues")
  .add(
    HttpApiEndpoint.get("list", "/queues")
      .addSuccess(S.QueuesResponse)
      .annotate(
        OpenApi.Description,
        "Every queue with its job counts per state, whether it is paused, its flow control (limits, running, due and throttled jobs, the 5 busiest partition keys), every stored limit, and throttled counts per queue, kind and reason."
      )
  )
  .add(
    HttpApiEndpoint.get("partitions", "/queues/:name/partitions")
      .setPath(QueuePath)
      .setUrlParams(S.PartitionParams)
      .addSuccess(S.QueuePartitions)
      .addError(S.InvalidRequest, { status: 400 })
      .annotate(
        OpenApi.Description,
        "A queue's flow control: its limits, running, due and throttled jobs, and its busiest partition keys (most running first, then most due; `limit` keys, default 20)."
      )
  )
  .add(
    HttpApiEndpoint.post("pause", "/queues/:name/pause")
      .setPath(QueuePath)
      .addSuccess(S.QueueState)
      .addError(S.InvalidRequest, { status: 400 })
  )
  .add(
    HttpApiEndpoint.post("resume", "/queues/:name/resume")
      .setPath(QueuePath)
      .addSuccess(S.QueueState)
      .addError(S.InvalidRequest, { status: 400 })
  )
  .addError(S.StoreFailed, { status: 503 })
  .middleware(Authorization)

/** Live events, metrics and this document. */
export const observe = HttpApiGroup.make("observe")
  .add(
    HttpApiEndpoint.get("events", "/events")
      .addSuccess(
        text("text/event-stream", "Server-Sent Events: `job` (lifecycle) and `worker` (status) events")
      )
      .annotate(
        OpenApi.Description,
        "A text/event-stream of job lifecycle events (event `job`) and worker status changes (event `worker`)."
      )
  )
  .add(
    HttpApiEndpoint.get("overview", "/overview")
      .setUrlParams(S.OverviewParams)
      .addSuccess(S.Overview)
      .annotate(
        OpenApi.Description,
        "Jobs completed, retried, discarded and cancelled per second, start-latency percentiles and queue depth over a window (5m to 24h, default 15m), from this node's sampled history of the store (the whole cluster's on PostgreSQL). `after` returns only newer points, for live updates."
      )
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
      text("text/plain; version=0.0.4; charset=utf-8", "Prometheus text exposition format")
    )
  )
  .add(HttpApiEndpoint.get("openapi", "/openapi.json").addSuccess(Schema.Unknown).annotateContext(hidden))
  .middleware(Authorization)

/** The dashboard page: a static shell with no data, so it needs no token. */
export const dashboard = HttpApiGroup.make("dashboard")
  .add(HttpApiEndpoint.get("page", "/").addSuccess(text("text/html; charset=utf-8", "The dashboard")))
  .annotateContext(hidden)

/** The admin API. */
export const Api = HttpApi.make("nightshift-admin")
  .add(health)
  .add(workers)
  .add(jobs)
  .add(queues)
  .add(observe)
  .add(dashboard)
  .annotateContext(
    OpenApi.annotations({
      title: "Nightshift admin API",
      version: "0.1.0",
      description:
        "Operate a Nightshift process: health, workers, jobs, queues, live events and metrics. Send `Authorization: Bearer <token>` on every route but /health/live."
    })
  )
