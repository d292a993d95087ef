/**
 * The admin API's answers as the page reads them: the encoded (JSON) side of
 * the schemas in `../schema.ts`, written out because the page is compiled
 * without the server's modules. `test/dashboard.page-types.ts` checks at
 * compile time that every schema's JSON still fits these.
 */

import type { RuleFields } from "../../store/ruleWords.js"

export type JobState =
  | "scheduled"
  | "available"
  | "running"
  | "retryable"
  | "completed"
  | "discarded"
  | "cancelled"

export interface WorkerStatus {
  readonly name: string
  readonly kind: string
  readonly state: string
  readonly schedule: string | null
  readonly nextTickAt: number | null
  readonly lastError: string | null
  readonly runs: number
  readonly failures: number
}

export interface RunnerStatus {
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly concurrency: number
  readonly running: number
  readonly healthy: boolean
  readonly lastError: string | null
}

export interface WorkersResponse {
  readonly workers: ReadonlyArray<WorkerStatus>
  readonly runner: RunnerStatus | null
}

export interface TickResponse {
  readonly worker: string
  readonly outcome:
    | { readonly _tag: "success" | "timeout" | "interrupted" }
    | { readonly _tag: "failure"; readonly error: string }
    | { readonly _tag: "skipped"; readonly reason: string }
}

/** A flow rule as the admin API sends it: the fields `ruleWords` (shared with the CLI, import-free) reads. */
export type Rule = RuleFields

export interface PartitionInfo {
  readonly partition: string
  readonly running: number
  readonly due: number
  readonly throttled: number
  readonly waiting: string | null
}

export interface QueueInfo {
  readonly name: string
  readonly paused: boolean
  readonly counts: { readonly [K in JobState]: number }
  readonly flow: {
    readonly rules: ReadonlyArray<Rule>
    readonly throttled: number
    readonly keys: number
    readonly partitions: ReadonlyArray<PartitionInfo>
  }
}

export interface QueuesResponse {
  readonly queues: ReadonlyArray<QueueInfo>
}

export interface KindsResponse {
  readonly kinds: ReadonlyArray<{ readonly name: string }>
}

interface JobFields {
  readonly id: string
  readonly kind: string
  readonly queue: string
  readonly state: JobState
  readonly priority: number
  readonly attempt: number
  readonly maxAttempts: number
  readonly runAt: number
  readonly createdAt: number
  readonly attemptedAt: number | null
  readonly finalizedAt: number | null
  readonly leaseOwner: string | null
  readonly dedupeKey: string | null
  readonly partition: string | null
  readonly waiting: string | null
  readonly cancelRequested: boolean
  readonly problems?: ReadonlyArray<string>
}

export interface JobSummary extends JobFields {
  readonly lastError: string | null
}

/** One failed (or lost) attempt; `startedAt` and `node` are null on errors stored before 0.3. */
export interface AttemptError {
  readonly attempt: number
  readonly at: number
  readonly kind: string
  readonly message: string
  readonly startedAt: number | null
  readonly node: string | null
}

export interface JobDetail extends JobFields {
  readonly payload: unknown
  /** True: decoded, secret (`Schema.Redacted`) fields shown as "<redacted>"; false: shown as stored. */
  readonly payloadRedacted: boolean
  readonly errors: ReadonlyArray<AttemptError>
  readonly traceId: string | null
  readonly spanId: string | null
}

export interface JobCount {
  readonly count: number
  readonly capped: boolean
}

export interface BulkResponse {
  readonly action: "retry" | "cancel" | "delete"
  readonly changed: number
  readonly requested: number
  readonly skipped: ReadonlyArray<{
    readonly reason: "not-found" | "state" | "dedupe"
    readonly state: JobState | null
    readonly count: number
  }>
  readonly nextCursor: string | null
}

export interface RanNow {
  readonly id: string
  readonly result: "moved" | "due"
}

export interface JobPage {
  readonly jobs: ReadonlyArray<JobSummary>
  readonly nextCursor: string | null
}

export interface Enqueued {
  readonly id: string
  readonly deduped: boolean
}

export interface OverviewPoint {
  readonly at: number
  readonly completed: number
  readonly retried: number
  readonly discarded: number
  readonly cancelled: number
  readonly started: number
  readonly p50: number | null
  readonly p90: number | null
  readonly p99: number | null
  readonly depth: {
    readonly [queue: string]: {
      readonly scheduled: number
      readonly available: number
      readonly running: number
      readonly retryable: number
    }
  }
}

export interface Overview {
  readonly window: string
  readonly now: number
  readonly intervalMs: number
  readonly resolutionMs: number
  readonly queues: ReadonlyArray<string>
  readonly points: ReadonlyArray<OverviewPoint>
}

export type TickOutcome = TickResponse["outcome"]

export interface TickRecord {
  readonly startedAt: number
  readonly durationMs: number
  readonly forced: boolean
  readonly outcome: TickOutcome
}

export interface RestartRecord {
  readonly at: number
  readonly reason: "failed" | "exited" | "requested" | "gave up"
  readonly attempt: number
  readonly error: string | null
  readonly backoffMs: number | null
  readonly restartAt: number | null
}

export interface WorkerHistory {
  readonly name: string
  readonly kind: string
  readonly ticks: ReadonlyArray<TickRecord>
  readonly ticksRecorded: number
  readonly ticksKept: number
  readonly restarts: ReadonlyArray<RestartRecord>
  readonly restartsKept: number
}

export interface TreeNode {
  readonly name: string
  readonly kind: string
  readonly state: string
  readonly restart: string
  readonly maxRestarts: number
  readonly restartWindowMs: number
  readonly onMaxRestarts: string
  readonly children: ReadonlyArray<TreeNode>
}

export interface TreeResponse {
  readonly tree: ReadonlyArray<TreeNode>
}
