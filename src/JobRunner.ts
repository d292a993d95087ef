/**
 * The consumer: claims due jobs, runs each in its own fiber, and settles
 * their outcomes in batches.
 *
 * Its loops run as workers under a crew named `jobs`: `fetcher` (claims up
 * to the free slots, woken by store hints or the poll interval), `heartbeat`
 * (extends leases, stops cancelled attempts), `settler` (writes outcomes in
 * batches), `listener` (store hints), `sampler` (queue depth gauges on the
 * leader; waiting jobs for autoscaling on every node that autoscales),
 * `rescuer` (takes back jobs whose lease ran out) and `cron` (tries every
 * slot; the store records each once) on every node, and `pruner` on the
 * leader (on every node over a sharded store, whose shards each let one
 * prune at a time).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Crew from "./Crew.js"
import type * as CronJob from "./CronJob.js"
import * as FlowControl from "./FlowControl.js"
import { isValidName } from "./internal/input.js"
import { type Config, makeEngine, paceRetryMs } from "./internal/runner/engine.js"
import {
  cronLoop,
  makeSampler,
  prunePass,
  type Retention,
  rescuePass
} from "./internal/runner/maintenance.js"
import { makeSettler } from "./internal/runner/settler.js"
import { costSpaced, sampleCostFactor } from "./internal/sampling.js"
import { paceOf } from "./internal/store/flow.js"
import * as Hints from "./internal/store/hints.js"
import type * as Job from "./Job.js"
import * as JobStore from "./JobStore.js"
import * as Leader from "./Leader.js"
import * as ShardedStore from "./ShardedStore.js"
import * as Worker from "./Worker.js"

/**
 * Runner options. Durations accept anything `Duration.decode` does.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Queues to claim from. Default: `"default"` plus the default queue of every handled kind. */
  readonly queues?: ReadonlyArray<string> | undefined
  /** Jobs run at once. Default 10. */
  readonly concurrency?: number | undefined
  /** Scale concurrency between `min` and `max` with the number of available jobs. */
  readonly autoscale?: { readonly min: number; readonly max: number } | undefined
  /** How often to look for work when no hint arrives. Default 1 second. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /**
   * Most jobs claimed in one call. Default: the concurrency plus `prefetch`
   * (plus the adaptive maximum, `min(500, 50 × concurrency)`, when
   * `prefetch` is `"auto"`).
   */
  readonly claimBatchSize?: number | undefined
  /**
   * Jobs to claim ahead and hold in this process, under lease, beyond the
   * running ones, so that a busy runner claims in large batches instead of
   * one round trip per freed slot. Buffered jobs are heartbeated, dropped
   * when cancelled or when their lease is lost, released (without using an
   * attempt) at shutdown, and released instead of started when heartbeats
   * failed while they waited. While buffered they keep their place: a
   * higher-priority job enqueued meanwhile waits behind them, and they show
   * as `running` in the store.
   *
   * Default `"auto"`: the runner measures how long its attempts take (a
   * moving average) and how long a claim takes, and holds what its slots
   * would start in four claim round trips, at most what they start in a
   * tenth of the lease, and at most `min(500, 50 × concurrency)`. Slow jobs
   * get no buffer (the target rounds to 0, as it is for a runner that has
   * not measured yet: it then claims for free slots only); a runner
   * draining a backlog of quick jobs claims in batches of hundreds. A
   * number holds exactly that many ahead; `0` claims only for free slots
   * (the former default; choose it for large payloads, or when a newly
   * enqueued higher-priority job must never wait behind claimed ones).
   * Trade-offs and measurements: docs/benchmarks.md.
   */
  readonly prefetch?: number | "auto" | undefined
  /**
   * How long a claim holds a job before the rescuer may take it back.
   * Default 30 seconds; at most `JobStore.maxLeaseMs` (24 hours).
   */
  readonly leaseDuration?: Duration.DurationInput | undefined
  /** How often running jobs' leases are extended. Default: a third of the lease. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** How long shutdown waits for running jobs before releasing them. Default 10 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Most outcomes written in one settle call. Default 500. */
  readonly settleBatchSize?: number | undefined
  /** How often the rescuer looks for expired leases. Default 5 seconds. */
  readonly rescueInterval?: Duration.DurationInput | undefined
  /** Retention of finished jobs: defaults completed 1 day, discarded and cancelled 7 days, every minute, 10,000 per delete. */
  readonly retention?:
    | {
        readonly completed?: Duration.DurationInput | undefined
        readonly discarded?: Duration.DurationInput | undefined
        readonly cancelled?: Duration.DurationInput | undefined
        readonly interval?: Duration.DurationInput | undefined
        readonly batchSize?: number | undefined
      }
    | undefined
  /** Cron jobs to enqueue. */
  readonly cron?: ReadonlyArray<CronJob.CronJob> | undefined
  /**
   * Flow control limits per queue, across every node: running jobs in all
   * and per partition key (`concurrency`), starts per window
   * (`rateLimit`). The runner stores them, with its kinds' limits, before
   * its first claim, and clears the stored limits of the queues and kinds
   * it serves that declare none: every runner serving a queue should
   * declare the same limits (the last one to start wins). See
   * docs/flow-control.md.
   */
  readonly queueLimits?: Readonly<Record<string, FlowControl.Limits>> | undefined
  /** Claim only while this process is the leader. Default false. */
  readonly leaderOnly?: boolean | undefined
  /** This runner's identity in leases. Default: host, pid and a random suffix. */
  readonly id?: string | undefined
}

/**
 * Runner options that cannot work (a heartbeat slower than the lease, a
 * concurrency below 1, …).
 *
 * @since 0.1.0
 */
export class InvalidRunnerOptions extends Schema.TaggedError<InvalidRunnerOptions>()("InvalidRunnerOptions", {
  message: Schema.String
}) {}

/**
 * What the runner reports about itself.
 *
 * @since 0.1.0
 */
export interface Status {
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly concurrency: number
  readonly running: number
  /** Jobs claimed ahead that wait in this process for a free slot (see `prefetch`). */
  readonly prefetched: number
  readonly runningJobs: ReadonlyArray<{
    readonly id: string
    readonly kind: string
    readonly attempt: number
  }>
  /** False while the store (or, with a sharded store, any of its shards) is unreachable. */
  readonly healthy: boolean
  /** The store's last error; with a sharded store, the first unreachable shard's, naming it. */
  readonly lastError: string | null
  readonly lastErrorAt: number | null
  readonly lastClaimAt: number | null
  /** Each shard's reachability with a sharded store (see `ShardedStore`), else `null`. */
  readonly shards: ReadonlyArray<ShardedStore.ShardHealth> | null
}

/**
 * The runner service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly id: string
  readonly status: Effect.Effect<Status>
  /** Look for work now (as if a hint had arrived). */
  readonly wake: Effect.Effect<void>
  /** Run one rescuer pass now; returns the number of jobs rescued. */
  readonly rescue: Effect.Effect<number, JobStore.JobStoreError>
  /** Run one pruner pass now; returns the number of jobs deleted. */
  readonly prune: Effect.Effect<number, JobStore.JobStoreError>
}

/**
 * The `JobRunner` service tag.
 *
 * @since 0.1.0
 */
export class JobRunner extends Context.Tag("nightshift/JobRunner")<JobRunner, Service>() {}

const ms = (d: Duration.DurationInput | undefined, fallback: number) =>
  d === undefined ? fallback : Duration.toMillis(Duration.decode(d))

const defaultId = () => {
  const host = typeof process !== "undefined" ? (process.env.HOSTNAME ?? "node") : "node"
  const pid = typeof process !== "undefined" ? process.pid : 0
  return `${host}-${pid}-${Math.random().toString(36).slice(2, 8)}`
}

const resolve = (handlers: Job.Handlers<any>, options: Options) =>
  Effect.gen(function* () {
    const concurrency = options.autoscale?.max ?? options.concurrency ?? 10
    const leaseMs = ms(options.leaseDuration, 30_000)
    const adaptivePrefetch = options.prefetch === undefined || options.prefetch === "auto"
    const prefetch = adaptivePrefetch ? Math.min(500, 50 * concurrency) : (options.prefetch as number)
    const config: Config = {
      owner: options.id ?? defaultId(),
      queues:
        options.queues ??
        Array.from(new Set(["default", ...Array.from(handlers.byKind.values(), (h) => h.kind.queue)])),
      concurrency: options.autoscale?.min ?? concurrency,
      claimBatchSize: options.claimBatchSize ?? concurrency + prefetch,
      prefetch,
      adaptivePrefetch,
      pollIntervalMs: ms(options.pollInterval, 1_000),
      leaseMs,
      heartbeatIntervalMs: ms(options.heartbeatInterval, Math.floor(leaseMs / 3)),
      shutdownTimeoutMs: ms(options.shutdownTimeout, 10_000),
      flowLimited: false,
      paceSpanMs: undefined,
      paceRetries: 0
    }
    const fail = (message: string) => Effect.fail(new InvalidRunnerOptions({ message }))
    if (!(concurrency >= 1 && Number.isInteger(concurrency)))
      yield* fail("concurrency must be an integer >= 1")
    if (
      options.autoscale &&
      !(options.autoscale.min >= 1 && options.autoscale.min <= options.autoscale.max)
    ) {
      yield* fail("autoscale needs 1 <= min <= max")
    }
    if (!(config.claimBatchSize >= 1)) yield* fail("claimBatchSize must be >= 1")
    if (!(config.prefetch >= 0 && Number.isInteger(config.prefetch)))
      yield* fail('prefetch must be "auto" or an integer >= 0')
    if (!(leaseMs > 0 && leaseMs <= JobStore.maxLeaseMs)) {
      yield* fail(
        `leaseDuration (${leaseMs} ms) must be positive and at most ${JobStore.maxLeaseMs} ms (24 hours, JobStore.maxLeaseMs): the stores clamp a longer lease to it, and take back a job whose lease ends later`
      )
    }
    if (!(config.heartbeatIntervalMs > 0 && config.heartbeatIntervalMs < leaseMs)) {
      yield* fail(
        `heartbeatInterval (${config.heartbeatIntervalMs} ms) must be shorter than leaseDuration (${leaseMs} ms)`
      )
    }
    if (!(config.pollIntervalMs > 0)) yield* fail("pollInterval must be positive")
    if (config.queues.length === 0) yield* fail("queues must name at least one queue")
    const queueLimits = options.queueLimits ?? {}
    for (const [queue, limits] of Object.entries(queueLimits)) {
      if (!isValidName(queue)) yield* fail(`queueLimits: invalid queue name ${JSON.stringify(queue)}`)
      const problem = FlowControl.limitsProblem(limits)
      if (problem !== undefined) yield* fail(`queueLimits.${queue}: ${problem}`)
    }
    const rules = [
      ...Array.from(handlers.byKind.values(), (h) => FlowControl.toRule("kind", h.kind.name, h.kind.limits)),
      ...Array.from(new Set([...config.queues, ...Object.keys(queueLimits)]), (queue) =>
        FlowControl.toRule("queue", queue, queueLimits[queue])
      )
    ]
    const limited = rules.filter((rule) => !FlowControl.isEmpty(rule))
    // A rate limit's window frees places with time, not with a settle: look that often.
    const rates = limited.flatMap((rule) =>
      rule.rateLimit === null || rule.rateWindowMs === null
        ? []
        : [
            {
              windowMs: rule.rateWindowMs,
              spanMs: paceOf(rule.rateLimit, rule.rateWindowMs, rule.rateBurst).spanMs
            }
          ]
    )
    const paceSpanMs = rates.length === 0 ? undefined : Math.min(...rates.map((r) => r.spanMs))
    const flow = {
      rules,
      flowLimited: limited.length > 0,
      pollIntervalMs:
        rates.length === 0
          ? config.pollIntervalMs
          : Math.min(config.pollIntervalMs, Math.max(10, Math.min(...rates.map((r) => r.windowMs)) / 4)),
      paceSpanMs,
      // Retries `paceRetryMs` apart, over the longest window.
      paceRetries:
        paceSpanMs === undefined
          ? 0
          : Math.ceil(Math.max(...rates.map((r) => r.windowMs)) / paceRetryMs(paceSpanMs))
    }
    const retention: Retention = {
      completedMs: ms(options.retention?.completed, 86_400_000),
      discardedMs: ms(options.retention?.discarded, 7 * 86_400_000),
      cancelledMs: ms(options.retention?.cancelled, 7 * 86_400_000),
      batchSize: options.retention?.batchSize ?? 10_000
    }
    const settleBatchSize = options.settleBatchSize ?? 500
    if (!(settleBatchSize >= 1 && Number.isInteger(settleBatchSize)))
      yield* fail("settleBatchSize must be an integer >= 1")
    return {
      config: {
        ...config,
        flowLimited: flow.flowLimited,
        pollIntervalMs: flow.pollIntervalMs,
        paceSpanMs: flow.paceSpanMs,
        paceRetries: flow.paceRetries
      },
      rules: flow.rules,
      retention,
      maxConcurrency: concurrency,
      settleBatchSize
    }
  })

const leaderOf = Effect.map(Effect.serviceOption(Leader.Leader), (leader) =>
  Option.getOrElse(leader, () => Leader.fromConstant(true))
)

/**
 * Build a runner: its service, and the crew worker that runs its loops.
 * Include the worker in the application's crew (as `Nightshift.layer`
 * does), or start it with `Crew.start`. The runner's jobs live in the
 * current scope; closing it drains them.
 *
 * @since 0.1.0
 */
export const make = <R>(
  handlers: Job.Handlers<R>,
  options: Options = {}
): Effect.Effect<
  { readonly service: Service; readonly worker: Worker.Worker<unknown, never> },
  InvalidRunnerOptions,
  JobStore.JobStore | R | Scope.Scope
> =>
  Effect.gen(function* () {
    const { config, maxConcurrency, retention, rules, settleBatchSize } = yield* resolve(handlers, options)
    const store = yield* JobStore.JobStore
    const waitMs = store.answerWithinMs
    if (waitMs !== undefined && waitMs >= config.leaseMs - config.heartbeatIntervalMs) {
      // A heartbeat that waits this long for a hung shard delays the next one past the lease
      // end of every job on the healthy shards, which are then rescued and run twice.
      return yield* new InvalidRunnerOptions({
        message:
          `the store waits up to ${waitMs} ms for a shard's answer (answerWithin), which leaves no room in ` +
          `leaseDuration (${config.leaseMs} ms) minus heartbeatInterval (${config.heartbeatIntervalMs} ms): ` +
          `shorten answerWithin or lengthen leaseDuration`
      })
    }
    // Hints flow before the first claim, so a job enqueued after it wakes this runner.
    yield* Hints.keepFlowing(store)
    const leader = yield* leaderOf
    const settler = yield* makeSettler(store, settleBatchSize)
    const engine = yield* makeEngine(store, handlers, config, settler)
    const context = yield* Effect.context<R>()
    // Exclude<R, R> is never, but TypeScript does not reduce it for a generic R.
    const provide = <A, E>(effect: Effect.Effect<A, E, R>) =>
      Effect.provide(effect, context) as Effect.Effect<A, E>
    const onLeader = { shouldRun: leader.isLeader }
    const logged = <A>(what: string, effect: Effect.Effect<A, JobStore.JobStoreError>) =>
      Effect.tapError(effect, (e) => Effect.logWarning(`nightshift: ${what} failed`, e))

    // Limits are stored before the first claim, so no claim runs under an older deploy's.
    const declare = store.declareLimits(rules).pipe(
      Effect.tapError((e) =>
        Effect.logWarning("nightshift: storing flow control limits failed; retrying", e)
      ),
      Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
      Effect.orDie // the schedule above never ends
    )
    const claimLoop = Effect.zipRight(declare, engine.fetchLoop)
    const fetch = options.leaderOnly
      ? Leader.whileLeader(claimLoop).pipe(Effect.provideService(Leader.Leader, leader))
      : claimLoop
    const fetcher: Effect.Effect<unknown> = Effect.ensuring(provide(fetch), engine.drain)

    // The depth gauges describe the whole store, so one process writes them: the leader (every
    // process without a Leader service). A runner that autoscales counts for itself either way.
    const depth = makeSampler(store, config.queues)
    let reporting = false
    const sampler = Effect.gen(function* () {
      const record = yield* leader.isLeader
      if (reporting && !record) yield* depth.clear
      reporting = record
      if (!record && options.autoscale === undefined) return
      const waiting = yield* depth.sample(record)
      if (options.autoscale !== undefined) {
        const target = Math.max(
          options.autoscale.min,
          Math.min(maxConcurrency, engine.running().length + waiting)
        )
        if (target !== engine.capacity()) {
          engine.setCapacity(target)
          yield* engine.wake
        }
      }
    })

    const sampling = costSpaced(logged("sampling queue depth", sampler), options.autoscale ? 1_000 : 5_000)

    const workers: Array<Worker.Worker<any, never>> = [
      Worker.make("settler", settler.run),
      Worker.make("listener", engine.listen, { restart: "permanent" }),
      Worker.periodic(
        "heartbeat",
        { schedule: Schedule.spaced(config.heartbeatIntervalMs) },
        engine.heartbeat
      ),
      Worker.periodic(
        "sampler",
        {
          schedule: sampling.schedule,
          description: `every ${options.autoscale ? 1 : 5} seconds, or ${sampleCostFactor} times a slow sample`
        },
        sampling.sample
      ),
      // Every node rescues (the update is fenced, so two rescuers never both take a job):
      // a dead leader's jobs come back as fast as anyone's.
      Worker.periodic(
        "rescuer",
        { schedule: Schedule.spaced(ms(options.rescueInterval, 5_000)) },
        logged("rescue", rescuePass(store, 1_000))
      ),
      // On one database the leader prunes. A sharded store's shards each choose their own
      // pruner (a shard's prune runs under its own lock), so every node prunes and no shard
      // waits on the server where leadership lives.
      Worker.periodic(
        "pruner",
        {
          ...(ShardedStore.isSharded(store) ? {} : onLeader),
          schedule: Schedule.spaced(ms(options.retention?.interval, 60_000))
        },
        logged("prune", prunePass(store, retention))
      ),
      // Every node tries every slot; the store records each slot once.
      Worker.make("cron", cronLoop(store, options.cron ?? [])),
      Worker.make("fetcher", fetcher, { shutdownTimeout: config.shutdownTimeoutMs + 5_000 })
    ]

    const service: Service = {
      id: config.owner,
      wake: engine.wake,
      rescue: rescuePass(store, 1_000),
      prune: prunePass(store, retention),
      status: Effect.sync(() => {
        const health = engine.health()
        const running = engine.running()
        const shards = ShardedStore.isSharded(store) ? store.shardHealth() : null
        // Claims go on from the other shards while one is down: say which one is.
        const down = shards?.find((s) => !s.reachable)
        return {
          id: config.owner,
          queues: config.queues,
          concurrency: engine.capacity(),
          running: running.length,
          prefetched: engine.prefetched(),
          runningJobs: running.map((j) => ({ id: j.id, kind: j.kind, attempt: j.attempt })),
          ...health,
          ...(health.healthy && down !== undefined
            ? {
                healthy: false,
                lastError: `${down.name} is unreachable: ${down.lastError}`,
                lastErrorAt: down.lastErrorAt
              }
            : {}),
          shards
        }
      })
    }
    return { service, worker: Crew.make("jobs", workers) }
  })

/**
 * A runner started in its own crew, as a layer.
 *
 * @since 0.1.0
 */
export const layer = <R>(
  handlers: Job.Handlers<R>,
  options: Options = {}
): Layer.Layer<JobRunner, InvalidRunnerOptions, JobStore.JobStore | R> =>
  Layer.scoped(
    JobRunner,
    Effect.gen(function* () {
      const { service, worker } = yield* make(handlers, options)
      yield* Crew.start(worker)
      return service
    })
  )
