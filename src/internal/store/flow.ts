/**
 * Flow control logic every engine shares: which rules hold for a job, how
 * much room they leave, and why a job waits. The memory and SQLite engines
 * claim through `Budget`; PostgreSQL does the same arithmetic in SQL; every
 * engine's `flowState` feeds `waitingOf`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as FlowControl from "../../FlowControl.js"
import type * as JobStore from "../../JobStore.js"

/**
 * How long a rate-limit start is kept past its rule's window before it is
 * deleted. A claim reads "now" before it may wait for a lock (SQLite's write
 * lock, PostgreSQL's advisory locks, whose transaction's now() is its
 * start); it must still find every start its window holds, even after a
 * claim with a later "now" has deleted the expired ones. Counting is
 * conservative with an early "now" (it has no upper bound), so only the
 * deletion needs this margin.
 */
export const keepStartsMs = 60_000

type Scope = "kind" | "queue"

const scopeKey = (scope: Scope, name: string) => `${scope}\u0001${name}`
const partitionKey = (scope: Scope, name: string, partition: string | null) =>
  `${scope}\u0001${name}\u0001${partition ?? ""}`

/** Rules by scope and name. */
export class Rules {
  private readonly byScope = new Map<string, FlowControl.Rule>()
  constructor(rules: ReadonlyArray<FlowControl.Rule>) {
    for (const rule of rules) this.byScope.set(scopeKey(rule.scope, rule.name), rule)
  }
  get size(): number {
    return this.byScope.size
  }
  /** Every rule, by scope then name. */
  all(): Array<FlowControl.Rule> {
    return [...this.byScope.values()].sort((a, b) =>
      a.scope === b.scope ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.scope < b.scope ? -1 : 1
    )
  }
  get(scope: Scope, name: string): FlowControl.Rule | undefined {
    return this.byScope.get(scopeKey(scope, name))
  }
  /** The rules that hold for a job of this queue and kind: the queue's, then the kind's. */
  forJob(queue: string, kind: string): ReadonlyArray<FlowControl.Rule> {
    const q = this.get("queue", queue)
    const k = this.get("kind", kind)
    return q === undefined ? (k === undefined ? none : [k]) : k === undefined ? [q] : [q, k]
  }
  /** Whether any rule holds for some of these queues or kinds. */
  touches(queues: ReadonlyArray<string>, kinds: ReadonlyArray<string>): boolean {
    if (this.byScope.size === 0) return false
    return (
      queues.some((q) => this.get("queue", q) !== undefined) ||
      kinds.some((k) => this.get("kind", k) !== undefined)
    )
  }
}

const none: ReadonlyArray<FlowControl.Rule> = []

/** The name a rule counts a job under: its queue or its kind. */
const nameFor = (rule: FlowControl.Rule, queue: string, kind: string) =>
  rule.scope === "queue" ? queue : kind

/**
 * A rate limit's pace: besides at most `rateLimit` starts in any window of
 * `rateWindowMs`, at most `limit` (its `burst`, by default a tenth of the
 * rate, rounded up) in any `spanMs` (the same share of the window: `limit`
 * starts per `spanMs` is exactly `rateLimit` per window). Without it a claim
 * could take the whole window's starts at once, and the next window's would
 * come at once again as soon as those left it: bursts a window apart, whose
 * handler starts (which lag their claims by a varying few milliseconds)
 * could put more than the limit into one window. Paced, starts come at most
 * a tenth at a time, spread over the window. Every engine counts both
 * (PostgreSQL in `claim_flow`, from migration 15).
 */
export const paceOf = (
  rateLimit: number,
  rateWindowMs: number,
  burst: number | null
): { readonly limit: number; readonly spanMs: number } => {
  const limit = burst ?? Math.ceil(rateLimit / 10)
  return { limit, spanMs: (rateWindowMs * limit) / rateLimit }
}

/** The partition a rate limit counts a start under (`null`: the whole scope). */
export const ratePartition = (rule: FlowControl.Rule, partition: string | null): string | null =>
  rule.rateByPartition ? partition : null

/**
 * The most places of a global limit `global` that one claim takes: one
 * shard's share, as on PostgreSQL, whose claim takes the room of one of
 * `global / 25` shards (1 to 10; see `claim_flow`). Runners on several
 * nodes then each hold a share of the limit and turn it over by
 * themselves, instead of the first claim taking every place and its
 * runner keeping them, settle after settle, while the others wait.
 */
export const claimShare = (global: number): number =>
  Math.ceil(global / Math.max(1, Math.min(10, Math.floor(global / 25))))

/**
 * Room left under a set of rules, given what runs and what started in each
 * rate window; `take` counts one more start. One claim builds one budget
 * from a consistent view and admits jobs through it in claim order; a
 * claim's budget (`forClaim`) also holds it to `claimShare` of each global
 * limit.
 */
export class Budget {
  private readonly running = new Map<string, number>()
  /** Starts in each rate key's window and in its pace span (see `paceOf`). */
  private readonly rate = new Map<string, { starts: number; recent: number }>()
  /** Places of each global limit's scope taken through this budget (claims only). */
  private readonly taken: Map<string, number> | undefined
  constructor(
    readonly rules: Rules,
    running: ReadonlyArray<JobStore.RunningGroup>,
    rate: ReadonlyArray<JobStore.RateUsage>,
    forClaim = false
  ) {
    this.taken = forClaim ? new Map() : undefined
    for (const group of running) this.addRunning(group.queue, group.kind, group.partition, group.running)
    for (const usage of rate)
      this.addStarts(partitionKey(usage.scope, usage.name, usage.partition), usage.starts, usage.recent)
  }

  private addStarts(key: string, starts: number, recent: number): void {
    const seen = this.rate.get(key)
    this.rate.set(key, { starts: (seen?.starts ?? 0) + starts, recent: (seen?.recent ?? 0) + recent })
  }

  private addRunning(queue: string, kind: string, partition: string | null, n: number): void {
    for (const rule of this.rules.forJob(queue, kind)) {
      const name = nameFor(rule, queue, kind)
      const whole = scopeKey(rule.scope, name)
      this.running.set(whole, (this.running.get(whole) ?? 0) + n)
      if (partition !== null) {
        const part = partitionKey(rule.scope, name, partition)
        this.running.set(part, (this.running.get(part) ?? 0) + n)
      }
    }
  }

  /** Why one more job of this queue, kind and partition cannot start now, or `null` when it can. */
  blocked(queue: string, kind: string, partition: string | null): FlowControl.Waiting | null {
    const rules = this.rules.forJob(queue, kind)
    for (const rule of rules) {
      if (rule.perPartition === null || partition === null) continue
      const running = this.running.get(partitionKey(rule.scope, nameFor(rule, queue, kind), partition)) ?? 0
      if (running >= rule.perPartition) return "partition at limit"
    }
    for (const rule of rules) {
      if (rule.global === null) continue
      const whole = scopeKey(rule.scope, nameFor(rule, queue, kind))
      if ((this.running.get(whole) ?? 0) >= rule.global) return "global limit"
      if (this.taken !== undefined && (this.taken.get(whole) ?? 0) >= claimShare(rule.global))
        return "global limit"
    }
    for (const rule of rules) {
      if (rule.rateLimit === null) continue
      const key = partitionKey(rule.scope, nameFor(rule, queue, kind), ratePartition(rule, partition))
      if (this.rateRoom(rule, key) <= 0) return "rate limited"
    }
    return null
  }

  /**
   * How many more jobs of this queue and kind the rules counted over a whole
   * scope admit, whatever their keys: the room under a global limit or a
   * rate not counted by key (`Infinity` when no such rule holds).
   */
  room(queue: string, kind: string): number {
    let room = Number.POSITIVE_INFINITY
    for (const rule of this.rules.forJob(queue, kind)) {
      const name = nameFor(rule, queue, kind)
      if (rule.global !== null) {
        const whole = scopeKey(rule.scope, name)
        room = Math.min(room, rule.global - (this.running.get(whole) ?? 0))
        if (this.taken !== undefined)
          room = Math.min(room, claimShare(rule.global) - (this.taken.get(whole) ?? 0))
      }
      if (rule.rateLimit !== null && !rule.rateByPartition)
        room = Math.min(room, this.rateRoom(rule, partitionKey(rule.scope, name, null)))
    }
    return Math.max(0, room)
  }

  /** Count one start of this queue, kind and partition against every rule that holds for it. */
  take(queue: string, kind: string, partition: string | null): void {
    this.addRunning(queue, kind, partition, 1)
    for (const rule of this.rules.forJob(queue, kind)) {
      if (this.taken !== undefined && rule.global !== null) {
        const whole = scopeKey(rule.scope, nameFor(rule, queue, kind))
        this.taken.set(whole, (this.taken.get(whole) ?? 0) + 1)
      }
      if (rule.rateLimit === null) continue
      this.addStarts(
        partitionKey(rule.scope, nameFor(rule, queue, kind), ratePartition(rule, partition)),
        1,
        1
      )
    }
  }

  /** Starts a rate rule admits now under one key: the room in its window and in its pace span. */
  private rateRoom(rule: FlowControl.Rule, key: string): number {
    if (rule.rateLimit === null) return Number.POSITIVE_INFINITY
    const seen = this.rate.get(key)
    const pace = paceOf(rule.rateLimit, rule.rateWindowMs ?? 0, rule.rateBurst)
    return Math.min(rule.rateLimit - (seen?.starts ?? 0), pace.limit - (seen?.recent ?? 0))
  }
}

const dueStates: ReadonlySet<JobStore.JobState> = new Set(["available", "scheduled", "retryable"])

/**
 * Why a job waits (see `FlowControl.Waiting`), given the flow state read
 * with it: `null` for a job that is due and free to start, or that is not
 * waiting at all (running or final).
 */
export const waitingOf = (
  job: JobStore.JobRecord,
  state: { readonly now: number; readonly paused: ReadonlySet<string>; readonly budget: Budget }
): FlowControl.Waiting | null => {
  if (!dueStates.has(job.state)) return null
  if (job.runAt > state.now) return "scheduled"
  if (state.paused.has(job.queue)) return "queue paused"
  return state.budget.blocked(job.queue, job.kind, job.partition)
}

/** The budget and paused set of a flow state, for `waitingOf`. */
export const viewOf = (state: JobStore.FlowState) => ({
  now: state.now,
  paused: new Set(state.paused),
  budget: new Budget(new Rules(state.rules), state.running, state.rate)
})

/**
 * Jobs with `waiting` set from the store's flow state, which is read only
 * when one of them has not started.
 */
export const withWaiting = (
  store: JobStore.Service,
  jobs: ReadonlyArray<JobStore.JobRecord>
): Effect.Effect<ReadonlyArray<JobStore.JobRecord>, JobStore.JobStoreError> =>
  jobs.some((job) => dueStates.has(job.state))
    ? Effect.map(store.flowState({ due: false }), (state) => {
        const view = viewOf(state)
        return jobs.map((job) => ({ ...job, waiting: waitingOf(job, view) }))
      })
    : Effect.succeed(jobs.map((job) => ({ ...job, waiting: null })))
