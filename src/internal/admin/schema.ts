import * as Duration from "effect/Duration"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as FlowControl from "../../FlowControl.js"
import * as JobStore from "../../JobStore.js"
import * as Worker from "../../Worker.js"
import * as WorkerStatus from "../../WorkerStatus.js"

const Millis = Schema.NullOr(Schema.Number)

/** One attempt's error as the API shows it. */
export const AttemptError = Schema.Struct({
  attempt: Schema.Number,
  at: Schema.Number.annotations({ description: "When the attempt ended (epoch ms)" }),
  kind: Schema.String,
  message: Schema.String,
  startedAt: Millis.annotations({
    description: "When the attempt started (epoch ms); null on errors stored by versions before 0.3"
  }),
  node: Schema.NullOr(Schema.String).annotations({
    description: "The runner that held the attempt's lease; null where startedAt is"
  })
})

const jobFields = {
  id: Schema.String,
  kind: Schema.String,
  queue: Schema.String,
  state: JobStore.JobState,
  priority: Schema.Number,
  attempt: Schema.Number,
  maxAttempts: Schema.Number,
  runAt: Schema.Number,
  createdAt: Schema.Number,
  attemptedAt: Millis,
  finalizedAt: Millis,
  leaseOwner: Schema.NullOr(Schema.String),
  leaseExpiresAt: Millis,
  dedupeKey: Schema.NullOr(Schema.String),
  /** The job's partition key, if it has one. */
  partition: Schema.NullOr(Schema.String).annotations({
    description: "The partition key (a tenant, an account) flow control counts the job under; null when none"
  }),
  /** Why a job that has not started is held back. */
  waiting: Schema.NullOr(FlowControl.Waiting).annotations({
    description:
      "Why a job that has not started is held back: scheduled, queue paused, partition at limit, global limit or rate limited; null when it is only waiting its turn, or not waiting"
  }),
  cancelRequested: Schema.Boolean
}

/**
 * What could not be read from a stored job, or does not add up (e.g. an
 * `errors` column that is not a list, a completed job with no finish time);
 * present only when there is something to say. The rest of the job is shown.
 */
const problems = Schema.optionalWith(Schema.Array(Schema.String), { exact: true }).annotations({
  description: "What could not be read from the stored job, or does not add up; absent when all is well"
})

/** A job in a list: no payload, the first line of its latest error. */
export const JobSummary = Schema.Struct({
  ...jobFields,
  errorCount: Schema.Number,
  lastError: Schema.NullOr(Schema.String),
  problems
})

/** A job with its payload and every attempt's error. */
export const JobDetail = Schema.Struct({
  ...jobFields,
  payload: Schema.Unknown.annotations({
    description:
      'The payload decoded by the kind\'s schema and shown as JSON, its Schema.Redacted fields as "<redacted>" (the hook logs use); as stored when payloadRedacted is false'
  }),
  payloadRedacted: Schema.Boolean.annotations({
    description:
      "false when the payload is shown as stored (encoded): its kind is unknown to this app, or it does not decode with the kind's schema any more"
  }),
  fence: Schema.Number,
  errors: Schema.Array(AttemptError),
  traceId: Schema.NullOr(Schema.String),
  spanId: Schema.NullOr(Schema.String),
  problems
})

/** A stored job that could not be shown at all, and why. */
export const UnreadableJob = Schema.Struct({ id: Schema.String, problem: Schema.String })

/** A page of jobs, newest first. */
export const JobPage = Schema.Struct({
  jobs: Schema.Array(JobSummary),
  nextCursor: Schema.NullOr(Schema.String),
  /** Jobs on this page that could not be shown at all; absent when there are none. */
  unreadable: Schema.optionalWith(Schema.Array(UnreadableJob), { exact: true })
})

const says = (message: string) => ({ message: () => ({ message, override: true }) })

const csv = <A, I extends string>(item: Schema.Schema<A, I>, message: string) =>
  Schema.compose(
    Schema.transform(Schema.String, Schema.Array(Schema.String), {
      strict: true,
      decode: (s) =>
        s
          .split(",")
          .map((x) => x.trim())
          .filter((x) => x.length > 0),
      encode: (xs) => xs.join(",")
    }),
    Schema.Array(item)
  ).annotations(says(message))

/** A job id as text: a positive whole number. */
const JobIdText = Schema.String.pipe(Schema.pattern(/^[1-9][0-9]{0,15}$/)).annotations({
  description: "A job id",
  ...says("a job id is a positive whole number such as 42")
})

/** A time as text: epoch milliseconds or an ISO 8601 date, decoded to epoch ms. */
const TimeText = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (s, _, ast) => {
    const ms = /^-?[0-9]+$/.test(s) ? Number(s) : Date.parse(s)
    return Number.isFinite(ms)
      ? ParseResult.succeed(ms)
      : ParseResult.fail(new ParseResult.Type(ast, s, "not a time"))
  },
  encode: (ms) => ParseResult.succeed(String(ms))
}).annotations({
  description: "Epoch milliseconds or an ISO 8601 date",
  ...says("a time is epoch milliseconds or an ISO 8601 date such as 2030-01-01T00:00:00Z")
})

/** A time in a JSON body: epoch milliseconds, or an ISO 8601 date. */
const TimeInput = Schema.Union(Schema.Number.pipe(Schema.finite()), TimeText).annotations(
  says("a time is epoch milliseconds or an ISO 8601 date such as 2030-01-01T00:00:00Z")
)

const pathMessage = `a payload path is 1 to ${JobStore.maxPayloadPathDepth} keys joined by dots, such as tenantId or order.id (optionally written payload.tenantId), each key 1-64 of [A-Za-z0-9_$-]`

/** A payload path such as `tenantId` or `payload.order.id`, decoded to its keys. */
export const PayloadPath = Schema.transformOrFail(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (s, _, ast) => {
    const keys = s.replace(/^payload\./, "").split(".")
    return JobStore.isPayloadPath(keys)
      ? ParseResult.succeed(keys)
      : ParseResult.fail(new ParseResult.Type(ast, s, pathMessage))
  },
  encode: (keys) => ParseResult.succeed(keys.join("."))
}).annotations({ description: "Keys joined by dots, such as tenantId or order.id", ...says(pathMessage) })

/** A JSON value a payload search compares with: text, a number, true, false or null. */
export const JsonScalar = Schema.Union(
  Schema.String,
  Schema.Number.pipe(Schema.finite()),
  Schema.Boolean,
  Schema.Null
).annotations(says("a payload value is text, a number, true, false or null"))

/**
 * A payload value from the query string: JSON text that holds a string,
 * number, true, false or null is that value (`"42"` is the text 42, `42`
 * the number); anything else is taken as text as it is.
 */
const ScalarText = Schema.transform(Schema.String, JsonScalar, {
  strict: true,
  decode: (s) => {
    try {
      const v: unknown = JSON.parse(s)
      if (v === null || typeof v === "string" || typeof v === "boolean") return v
      if (typeof v === "number" && Number.isFinite(v)) return v
    } catch {
      // text as it is
    }
    return s
  },
  encode: (v) => (typeof v === "string" ? v : JSON.stringify(v))
})

/** Filters of the job list (and of `GET /jobs/count`), from the query string. */
const filterParams = {
  state: Schema.optional(
    csv(JobStore.JobState, `state must be a comma-separated list of ${JobStore.JobState.literals.join(", ")}`)
  ),
  kind: Schema.optional(csv(Schema.String, "kind must be a comma-separated list of kind names")),
  queue: Schema.optional(csv(Schema.String, "queue must be a comma-separated list of queue names")),
  dedupeKey: Schema.optional(Schema.String),
  idFrom: Schema.optional(JobIdText),
  idTo: Schema.optional(JobIdText),
  createdFrom: Schema.optional(TimeText),
  createdTo: Schema.optional(TimeText),
  payload: Schema.optional(PayloadPath),
  value: Schema.optional(ScalarText)
}

/** How many jobs `GET /jobs/count` counts at most. */
export const maxCount = 10_000

/** Filters of `GET /jobs/count`. */
export const JobCountParams = Schema.Struct(filterParams)

/** How many jobs match a filter, up to `maxCount`. */
export const JobCount = Schema.Struct({
  count: Schema.Int.pipe(Schema.nonNegative()),
  capped: Schema.Boolean.annotations({
    description: `true when more than ${maxCount} match: count stops there`
  })
})

/** Filters and the page of the job list, from the query string. */
export const JobListParams = Schema.Struct({
  ...filterParams,
  limit: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)).annotations(
      says("limit must be an integer from 1 to 500")
    )
  ),
  cursor: Schema.optional(Schema.String)
})

const DelayInput = Schema.Union(
  Schema.NonNegative,
  Schema.String.pipe(Schema.filter((s) => Duration.decodeUnknown(s)._tag === "Some"))
).annotations({
  description: 'Milliseconds, or a duration such as "30 seconds"',
  ...says('delay must be milliseconds or a duration such as "30 seconds"')
})

/** Enqueue a job of a kind the app knows, by name. */
export const EnqueueRequest = Schema.Struct({
  kind: Schema.String,
  payload: Schema.optional(Schema.Unknown),
  queue: Schema.optional(Schema.String),
  priority: Schema.optional(Schema.Int),
  maxAttempts: Schema.optional(Schema.Int),
  dedupeKey: Schema.optional(Schema.String),
  /** A partition key; default: what the kind derives from the payload, if anything. */
  partition: Schema.optional(Schema.String),
  /** Epoch milliseconds or an ISO 8601 date. */
  runAt: Schema.optional(
    Schema.Union(Schema.Number, Schema.Date).annotations(
      says("runAt must be epoch milliseconds or an ISO 8601 date such as 2030-01-01T00:00:00Z")
    )
  ),
  delay: Schema.optional(DelayInput)
})

/** A job kind the app can enqueue by name, with its defaults. */
export const KindInfo = Schema.Struct({
  name: Schema.String,
  queue: Schema.String,
  priority: Schema.Number,
  maxAttempts: Schema.Number,
  handled: Schema.Boolean
})

/** Every kind known by name. */
export const KindsResponse = Schema.Struct({ kinds: Schema.Array(KindInfo) })

/** The result of an enqueue. */
export const Enqueued = Schema.Struct({ id: Schema.String, deduped: Schema.Boolean })

/** The result of a cancel that took effect. */
export const Cancelled = Schema.Struct({
  id: Schema.String,
  result: Schema.Literal("cancelled", "requested")
})

/** The result of a retry that took effect. */
export const Retried = Schema.Struct({ id: Schema.String, result: Schema.Literal("retried") })

/** The status of the job runner. */
export const RunnerStatus = Schema.Struct({
  id: Schema.String,
  queues: Schema.Array(Schema.String),
  concurrency: Schema.Number,
  running: Schema.Number,
  prefetched: Schema.Number,
  runningJobs: Schema.Array(
    Schema.Struct({ id: Schema.String, kind: Schema.String, attempt: Schema.Number })
  ),
  healthy: Schema.Boolean,
  lastError: Schema.NullOr(Schema.String),
  lastErrorAt: Millis,
  lastClaimAt: Millis,
  /** Each shard's reachability with a sharded store, else null. */
  shards: Schema.NullOr(
    Schema.Array(
      Schema.Struct({
        shard: Schema.Number,
        name: Schema.String,
        reachable: Schema.Boolean,
        lastError: Schema.NullOr(Schema.String),
        lastErrorAt: Millis
      })
    )
  )
})

/** Every worker's status and the runner's. */
export const WorkersResponse = Schema.Struct({
  workers: Schema.Array(WorkerStatus.WorkerStatus),
  runner: Schema.NullOr(RunnerStatus)
})

/** The supervision tree, from `GET /workers/tree`. */
export const TreeResponse = Schema.Struct({ tree: Schema.Array(WorkerStatus.TreeNode) })

/** A worker's recent ticks and restarts, from `GET /workers/:name/history`. */
export const HistoryResponse = WorkerStatus.WorkerHistory

/** The outcome of a forced tick. */
export const TickResponse = Schema.Struct({ worker: Schema.String, outcome: Worker.TickOutcome })

/** A restart that was done. */
export const RestartResponse = Schema.Struct({ worker: Schema.String, restarted: Schema.Literal(true) })

const stateCounts = Object.fromEntries(JobStore.JobState.literals.map((s) => [s, Schema.Number])) as {
  readonly [K in JobStore.JobState]: typeof Schema.Number
}

const Count = Schema.Int.pipe(Schema.nonNegative())

/** One partition key of a queue: what runs, what is due, how much of that is throttled and why. */
export const PartitionInfo = Schema.Struct({
  partition: Schema.String,
  running: Count,
  due: Count,
  throttled: Count.annotations({ description: "Due jobs of this key that cannot start now" }),
  waiting: Schema.NullOr(FlowControl.Waiting).annotations({
    description: "Why its throttled jobs wait (the reason of most of them); null when none is"
  })
})

/** A queue's flow control: its limits, what runs and waits, and its busiest partition keys. */
export const QueueFlow = Schema.Struct({
  rules: Schema.Array(FlowControl.Rule).annotations({
    description: "The queue's own limits and those of the kinds with running or due jobs in it"
  }),
  running: Count.annotations({ description: "Running jobs whose lease holds, across every node" }),
  due: Count.annotations({ description: "Due jobs (available, or scheduled/retryable past their run-at)" }),
  throttled: Count.annotations({
    description: "Due jobs that cannot start now: beyond the room the limits leave, or in a paused queue"
  }),
  keys: Count.annotations({ description: "Partition keys with running or due jobs" }),
  partitions: Schema.Array(PartitionInfo).annotations({
    description: "The busiest partition keys: most running first, then most due"
  })
})

/** One queue: whether it is paused, how many jobs it holds per state, and its flow control. */
export const QueueInfo = Schema.Struct({
  name: Schema.String,
  paused: Schema.Boolean,
  counts: Schema.Struct(stateCounts),
  flow: QueueFlow
})

/** Due jobs of one queue and kind held back now, and why. */
export const ThrottledCount = Schema.Struct({
  queue: Schema.String,
  kind: Schema.String,
  reason: FlowControl.Waiting,
  count: Count
})

/** Every known queue, every stored limit, and what flow control holds back. */
export const QueuesResponse = Schema.Struct({
  queues: Schema.Array(QueueInfo),
  rules: Schema.Array(FlowControl.Rule).annotations({
    description: "Every limit the runners declared, by scope (kind, queue) and name"
  }),
  throttled: Schema.Array(ThrottledCount).annotations({
    description: "Non-zero counts of due jobs held back, by queue, kind and reason"
  })
})

/** The partitions of one queue, from `GET /queues/:name/partitions`. */
export const QueuePartitions = Schema.Struct({
  queue: Schema.String,
  paused: Schema.Boolean,
  ...QueueFlow.fields
})

/** How many partition keys to list. */
export const PartitionParams = Schema.Struct({
  limit: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)).annotations(
      says("limit must be an integer from 1 to 1000")
    )
  )
})

/** A queue after pause or resume. */
export const QueueState = Schema.Struct({ queue: Schema.String, paused: Schema.Boolean })

/** The jobs a bulk action applies to, as a filter (every field optional; `{}` is every job). */
export const JobFilter = Schema.Struct({
  state: Schema.optional(Schema.Array(JobStore.JobState)),
  kind: Schema.optional(Schema.Array(Schema.String)),
  queue: Schema.optional(Schema.Array(Schema.String)),
  dedupeKey: Schema.optional(Schema.String),
  idFrom: Schema.optional(JobIdText),
  idTo: Schema.optional(JobIdText),
  createdFrom: Schema.optional(TimeInput),
  createdTo: Schema.optional(TimeInput),
  payload: Schema.optional(Schema.Struct({ path: PayloadPath, value: JsonScalar }))
})

/** The most jobs one bulk request by filter acts on. */
export const maxBulkMatches = 100_000

/** A bulk retry, cancel or delete: of these ids, or of the jobs a filter matches. */
export const BulkRequest = Schema.Struct({
  ids: Schema.optional(
    Schema.Array(JobIdText).pipe(Schema.minItems(1), Schema.maxItems(JobStore.maxBulkIds))
  ).annotations({ description: `Up to ${JobStore.maxBulkIds} job ids` }),
  filter: Schema.optional(JobFilter).annotations({ description: "Every job that matches, newest first" }),
  max: Schema.optional(
    Schema.Int.pipe(Schema.between(1, maxBulkMatches)).annotations(
      says(`max must be an integer from 1 to ${maxBulkMatches}`)
    )
  ).annotations({
    description: `With filter: act on at most this many jobs (default and most ${maxBulkMatches})`
  }),
  cursor: Schema.optional(JobIdText).annotations({
    description: "With filter: go on from a previous response's nextCursor"
  })
})

/** Jobs a bulk action left as they were, counted by why. */
export const BulkSkipped = Schema.Struct({
  reason: Schema.Literal("not-found", "state", "dedupe"),
  state: Schema.NullOr(JobStore.JobState),
  count: Count
})

/** What a bulk action did. */
export const BulkResponse = Schema.Struct({
  action: Schema.Literal("retry", "cancel", "delete"),
  changed: Count.annotations({ description: "Jobs retried, cancelled or deleted" }),
  requested: Count.annotations({ description: "Cancel: running jobs whose runner was asked to stop" }),
  skipped: Schema.Array(BulkSkipped).annotations({
    description:
      "Jobs left as they were: not-found; state (retry needs a final job, cancel an unfinished one, delete one that is not running); dedupe (retry: another live job holds its dedupe key)"
  }),
  nextCursor: Schema.NullOr(Schema.String).annotations({
    description: "With filter: null when every match was seen; else pass it as cursor to go on"
  })
})

/** The result of a run-now that took effect (or found the job already due). */
export const RanNow = Schema.Struct({ id: Schema.String, result: Schema.Literal("moved", "due") })

/** One readiness check. */
export const Check = Schema.Struct({
  name: Schema.String,
  ok: Schema.Boolean,
  detail: Schema.NullOr(Schema.String)
})

/** Readiness when every check passes. */
export const Ready = Schema.Struct({ ready: Schema.Literal(true), checks: Schema.Array(Check) })

/** Liveness. */
export const Live = Schema.Struct({ status: Schema.Literal("ok") })

// ---- errors ---------------------------------------------------------------

/** The bearer token is missing or wrong. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}) {}

/** A cross-site request, or a host name that is not this server's (DNS rebinding). */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", { message: Schema.String }) {}

/** No job with that id. */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", {
  id: Schema.String,
  message: Schema.String
}) {}

/** No worker with that name; a forced tick of a worker that is not periodic: the crew's own errors. */
export { NotPeriodic, WorkerNotFound } from "../worker/core.js"

/** The job is in a state the operation cannot apply to. */
export class JobStateConflict extends Schema.TaggedError<JobStateConflict>()("JobStateConflict", {
  id: Schema.String,
  state: JobStore.JobState,
  message: Schema.String
}) {}

/** The request names a kind the app does not know, or its payload or options are invalid. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String
}) {}

/** The request body is larger than the server accepts (`maxBodyBytes`). */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limit: Schema.Number,
  message: Schema.String
}) {}

/**
 * The job store failed while answering a request (503). Not `Store.StoreUnavailable`,
 * which says a configured store cannot be opened at start-up.
 */
export class StoreFailed extends Schema.TaggedError<StoreFailed>()("StoreFailed", {
  message: Schema.String
}) {}

/** A readiness check failed. */
export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  ready: Schema.Literal(false),
  checks: Schema.Array(Check),
  message: Schema.String
}) {}

/** The spans the overview shows. */
export const OverviewWindow = Schema.Literal("5m", "15m", "1h", "6h", "24h")

/** A window's length in ms. */
export const windowMs: Record<typeof OverviewWindow.Type, number> = {
  "5m": 5 * 60_000,
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "6h": 6 * 3_600_000,
  "24h": 24 * 3_600_000
}

/** Query of `GET /overview`. */
export const OverviewParams = Schema.Struct({
  window: Schema.optional(OverviewWindow.annotations(says("window must be one of 5m, 15m, 1h, 6h, 24h"))),
  after: Schema.optional(
    Schema.NumberFromString.annotations(says("after must be a time in epoch milliseconds")).annotations({
      description: "Only points later than this (epoch ms): what a page that has the window already asks for"
    })
  )
})

const Rate = Schema.Number.annotations({ description: "Per second, over the point's span" })
const Latency = Schema.NullOr(Schema.Number).annotations({
  description:
    "Start latency in ms (run-at, i.e. enqueue or scheduled time, to start); null when nothing started"
})

/** Jobs of one queue in the states that make its depth. */
export const QueueDepth = Schema.Struct({
  scheduled: Schema.Number,
  available: Schema.Number,
  running: Schema.Number,
  retryable: Schema.Number
})

/** One sample (or one minute) of the overview. */
export const OverviewPoint = Schema.Struct({
  at: Schema.Number.annotations({ description: "End of the point's span, epoch ms (store clock)" }),
  completed: Rate,
  retried: Rate,
  discarded: Rate,
  cancelled: Rate,
  started: Count.annotations({ description: "Starts whose latency was measured (at most 1000 per sample)" }),
  p50: Latency,
  p90: Latency,
  p99: Latency,
  depth: Schema.Record({ key: Schema.String, value: QueueDepth }).annotations({
    description: `Jobs per queue and state at the end of the span; queues beyond the 8th share "(other queues)"`
  })
})

/** The overview's history over a window. */
export const Overview = Schema.Struct({
  window: OverviewWindow,
  now: Schema.Number.annotations({
    description: "The latest sample's time (store clock), or this node's time"
  }),
  intervalMs: Schema.Number.annotations({ description: "Time between samples" }),
  resolutionMs: Schema.Number.annotations({
    description:
      "Time between points: the sample interval, or a minute for windows longer than the samples kept"
  }),
  queues: Schema.Array(Schema.String).annotations({
    description: "Queues with depth, in the order first seen"
  }),
  points: Schema.Array(OverviewPoint)
})
