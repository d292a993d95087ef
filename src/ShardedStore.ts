/**
 * A job store spread over several stores (shards), each on its own database
 * or server: past one PostgreSQL's write ceiling with ordinary servers.
 *
 * - **Placement.** An enqueued job goes to one shard, chosen by rendezvous
 *   hashing of its shard key: its partition key when it has one, else its
 *   kind and dedupe key, else its queue. The same key always lands on the
 *   same shard, on every node and across restarts. A cron slot is recorded on
 *   the shard its name hashes to, so it still enqueues once.
 * - **Ids** carry their shard (a shard's own id × 256 + the shard number), so
 *   `get`, `cancel`, `retry`, heartbeats and settles go straight to it.
 * - **Claims** take turns over the shards (each claim starts one shard further
 *   on and fills up from the next ones), so no shard starves. A shard that
 *   fails, or does not answer within `answerWithin` (a hung server), is
 *   skipped for a short backoff while the others keep working; its jobs wait
 *   for it. `shardHealth` says which shard is unreachable.
 * - **Reads** (`list`, `counts`, `flowState`) merge every shard's answer;
 *   `pause`, `resume` and `declareLimits` apply to every shard; `rescue` and
 *   `prune` run on each shard.
 *
 * What a shard does not share with the others: a batch of jobs is atomic
 * per shard (jobs of one call that land on different shards commit
 * separately); a dedupe key is unique among jobs with the same partition key
 * (or none); and flow-control limits hold per shard (a partition key's jobs
 * are all on one shard, so `perPartition` is exact; `global` and unkeyed
 * rate limits hold on each shard, so a cluster-wide cap of n over k shards
 * is declared as n / k).
 *
 * @since 0.2.0
 */
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as FlowControl from "./FlowControl.js"
import * as Route from "./internal/sharded/route.js"
import { claimOrder } from "./internal/store/core.js"
import * as Hints from "./internal/store/hints.js"
import { idBounds, listLimit } from "./internal/store/list.js"
import * as JobStore from "./JobStore.js"

/**
 * One shard: a store and its number. The number is the shard's identity:
 * ids carry it and placement hashes it, so it must never change or be
 * reused for another database. Numbers run from 0 to 255.
 *
 * @since 0.2.0
 */
export interface Shard {
  readonly shard: number
  readonly store: JobStore.Service
  /** A name for messages (a host, a database); default `shard <n>`. */
  readonly name?: string | undefined
}

/**
 * A shard's reachability as the sharded store last saw it.
 *
 * @since 0.2.0
 */
export interface ShardHealth {
  readonly shard: number
  readonly name: string
  readonly reachable: boolean
  /** The last failure's message, while unreachable. */
  readonly lastError: string | null
  /** Epoch ms of the last failure. */
  readonly lastErrorAt: number | null
}

/**
 * A sharded store: the `JobStore` service plus each shard's health.
 *
 * @since 0.2.0
 */
export interface Service extends JobStore.Service {
  readonly shardHealth: () => ReadonlyArray<ShardHealth>
}

/** Backoff before a failed shard is asked again: doubling from 250 ms up to 5 s. */
const backoffMs = (failures: number) => Math.min(5_000, 250 * 2 ** Math.min(failures - 1, 5))

interface ShardState {
  readonly shard: number
  readonly name: string
  readonly store: JobStore.Service
  failures: number
  retryAt: number
  lastError: string | null
  lastErrorAt: number | null
  /** Claims sent to it that did not answer within `answerWithin` and are still out: send no other meanwhile. */
  claimsOut: number
}

const invalid = (message: string) => new JobStore.JobStoreError({ message })

/** Keep, in input order, the answers of per-shard calls made on groups of the input. */
const byShard = <A>(items: ReadonlyArray<A>, shardOf: (item: A) => number | undefined) => {
  const groups = new Map<number, Array<number>>()
  const unplaced: Array<number> = []
  items.forEach((item, i) => {
    const shard = shardOf(item)
    if (shard === undefined) unplaced.push(i)
    else {
      const group = groups.get(shard)
      if (group === undefined) groups.set(shard, [i])
      else group.push(i)
    }
  })
  return { groups, unplaced }
}

/**
 * Sharded store options.
 *
 * @since 0.2.0
 */
export interface Options {
  /**
   * How long a call on one shard may go unanswered before that shard counts
   * as unreachable for it, so that a shard that hangs (a server frozen, a
   * network partition that drops packets without closing the connection)
   * holds back only its own jobs: claims, heartbeats, settles, reads and
   * maintenance go on with the other shards. An enqueue is not cut short
   * (it waits for its shard as it would on one database), nor is a prune
   * (it may take a while on a large table, and nothing waits for it). A claim that
   * answers after this is not lost: the jobs it took are handed back
   * without using up an attempt. Default 5 seconds.
   */
  readonly answerWithin?: Duration.DurationInput | undefined
}

/**
 * Build a sharded store over `shards` (at least one; numbers unique, from 0
 * to 255).
 *
 * @since 0.2.0
 */
export const make = (
  shards: ReadonlyArray<Shard>,
  options: Options = {}
): Effect.Effect<Service, JobStore.JobStoreError> =>
  Effect.suspend(() => {
    if (shards.length === 0) return Effect.fail(invalid("A sharded store needs at least one shard."))
    const numbers = new Set<number>()
    for (const s of shards) {
      if (!Number.isInteger(s.shard) || s.shard < 0 || s.shard >= Route.shardSlots)
        return Effect.fail(
          invalid(
            `Shard number ${s.shard} is out of range: use a whole number from 0 to ${Route.shardSlots - 1}.`
          )
        )
      if (numbers.has(s.shard))
        return Effect.fail(
          invalid(`Shard number ${s.shard} is given twice: every shard needs its own number.`)
        )
      numbers.add(s.shard)
    }
    const answerWithin = Duration.decode(options.answerWithin ?? defaultAnswerWithin)
    if (!Duration.isFinite(answerWithin) || Duration.toMillis(answerWithin) <= 0)
      return Effect.fail(
        invalid(`answerWithin must be a positive, finite duration, not ${Duration.format(answerWithin)}.`)
      )
    return Effect.gen(function* () {
      const clock = yield* Effect.clock
      // Each instance starts its claims at a shard of its own, so that runners do not all begin on the same one.
      const turn = yield* Random.nextIntBetween(0, shards.length)
      const { service, refreshRules } = build(shards, clock, answerWithin, turn)
      return yield* Effect.as(refreshRules, service)
    })
  })

/**
 * A claim of at least this many jobs per reachable shard asks one shard for
 * all of them (the next claim starts at the next shard) instead of sharing
 * it out.
 */
const wholeBatch = 10

/** How long placement trusts the rules it last read from the shards. */
const rulesTtlMs = 5_000

/** The default of `Options.answerWithin`. */
const defaultAnswerWithin = Duration.seconds(5)

const build = (
  shards: ReadonlyArray<Shard>,
  clock: Clock.Clock,
  answerWithin: Duration.Duration,
  firstTurn: number
): { readonly service: Service; readonly refreshRules: Effect.Effect<void> } => {
  const now = () => clock.unsafeCurrentTimeMillis()
  const states: ReadonlyArray<ShardState> = shards.map((s) => ({
    shard: s.shard,
    name: s.name ?? `shard ${s.shard}`,
    store: s.store,
    failures: 0,
    retryAt: 0,
    lastError: null,
    lastErrorAt: null,
    claimsOut: 0
  }))
  const byNumber = new Map(states.map((s) => [s.shard, s]))
  const numbers = states.map((s) => s.shard)
  const place = (key: string) => byNumber.get(Route.shardOf(key, numbers))!

  /**
   * The rules that pin a whole kind or queue to one shard: a `global` limit,
   * or a rate limit over the whole scope, is only exact when every job it
   * counts is on one shard. Learnt from `declareLimits` here and from the
   * shards (every `rulesTtlMs`), so rules declared on another node reach
   * this node's placement within that time.
   */
  const pinned = new Map<string, FlowControl.Rule>()
  const learn = (rule: FlowControl.Rule) => {
    const key = `${rule.scope}:${rule.name}`
    if (rule.global !== null || (rule.rateLimit !== null && !rule.rateByPartition)) pinned.set(key, rule)
    else pinned.delete(key)
  }
  let rulesAt = Number.NEGATIVE_INFINITY
  /** Read the rules from the first shard that answers (every shard holds the same); no shard, no change. */
  const refreshRules = Effect.suspend(() => {
    rulesAt = now()
    return Effect.firstSuccessOf(
      readyFirst().map((s) => on(s, (store) => store.flowState({ due: false })))
    ).pipe(
      Effect.tap((state) =>
        Effect.sync(() => {
          pinned.clear()
          for (const rule of state.rules) learn(rule)
        })
      ),
      Effect.ignore
    )
  })
  const placeJob = (job: JobStore.EnqueueInput) =>
    pinned.has(`queue:${job.queue}`)
      ? place(`pin:queue:${job.queue}`)
      : pinned.has(`kind:${job.kind}`)
        ? place(`pin:kind:${job.kind}`)
        : place(Route.shardKey(job))

  const up = (s: ShardState) => {
    s.failures = 0
    s.lastError = null
  }
  const down = (s: ShardState, error: JobStore.JobStoreError) => {
    s.failures++
    s.retryAt = now() + backoffMs(s.failures)
    s.lastError = error.message
    s.lastErrorAt = now()
  }
  const unanswered = (what: string) =>
    new JobStore.JobStoreError({
      message: `${what} did not answer within ${Duration.format(answerWithin)}: counted as unreachable`
    })
  const backingOff = (s: ShardState) => s.failures > 0 && s.retryAt > now()
  /** Record whether a call on `s` answered; the error names the shard. */
  const recorded = <A>(s: ShardState, call: Effect.Effect<A, JobStore.JobStoreError>) =>
    call.pipe(
      Effect.tapBoth({
        onFailure: (error) => Effect.sync(() => down(s, error)),
        onSuccess: () => Effect.sync(() => up(s))
      }),
      Effect.mapError(
        (error) => new JobStore.JobStoreError({ message: `${s.name}: ${error.message}`, cause: error })
      )
    )
  /**
   * Run `call` on a fiber of its own and wait for its exit for at most
   * `answerWithin`: `None` past it (the call goes on). The wait is a
   * deferred that either the call or a timer completes, not a race, so it
   * ends at the deadline even in a caller's uninterruptible region (a
   * runner's claim or settle), where a timeout could not interrupt the call.
   * `late` runs with the call's exit when it answers after the deadline.
   */
  const within = <A>(
    call: Effect.Effect<A, JobStore.JobStoreError>,
    late: (exit: Exit.Exit<A, JobStore.JobStoreError>) => Effect.Effect<void>
  ) =>
    Effect.gen(function* () {
      const result = yield* Deferred.make<Option.Option<Exit.Exit<A, JobStore.JobStoreError>>>()
      yield* Effect.exit(call).pipe(
        Effect.flatMap((exit) =>
          Effect.flatMap(Deferred.succeed(result, Option.some(exit)), (first) =>
            first ? Effect.void : late(exit)
          )
        ),
        Effect.forkDaemon
      )
      const timer = yield* Effect.forkDaemon(
        Effect.zipRight(Effect.sleep(answerWithin), Deferred.succeed(result, Option.none()))
      )
      const answer = yield* Deferred.await(result)
      yield* Fiber.interruptFork(timer)
      return answer
    })
  /**
   * Run `f` on one shard, recording whether it answered, within
   * `answerWithin`: a call still out then fails (and is left to end in the
   * background), so that one hung shard does not hold up a call that spans
   * all of them. A shard in its backoff after a failure is not asked: the
   * call fails at once (a hung shard would otherwise cost every call its
   * deadline); the first call after the backoff asks it again.
   */
  const on = <A>(s: ShardState, f: (store: JobStore.Service) => Effect.Effect<A, JobStore.JobStoreError>) =>
    Effect.suspend(() =>
      backingOff(s)
        ? Effect.fail(
            new JobStore.JobStoreError({
              message: `${s.name}: unreachable, asked again after its backoff (${s.lastError ?? "failed"})`
            })
          )
        : recorded(
            s,
            Effect.flatMap(
              within(f(s.store), () => Effect.void),
              Option.match({ onNone: () => Effect.fail(unanswered("the shard")), onSome: (exit) => exit })
            )
          )
    )

  /** Run `f` on every shard at once; fails with the first failure after all have run. */
  const everywhere = <A>(
    f: (store: JobStore.Service) => Effect.Effect<A, JobStore.JobStoreError>,
    bounded = true
  ) =>
    Effect.flatMap(
      Effect.all(
        states.map((s) => Effect.either(bounded ? on(s, f) : recorded(s, f(s.store)))),
        { concurrency: "unbounded" }
      ),
      (results) => {
        const answers: Array<A> = []
        const errors: Array<JobStore.JobStoreError> = []
        for (const r of results) {
          if (r._tag === "Left") errors.push(r.left)
          else answers.push(r.right)
        }
        if (errors.length === 0) return Effect.succeed(answers)
        return Effect.fail(
          errors.length === 1
            ? errors[0]!
            : new JobStore.JobStoreError({
                message: errors.map((e) => e.message).join("; "),
                cause: errors[0]
              })
        )
      }
    )
  /** The shards, those not backing off from a failure first: where a question any shard can answer goes. */
  const readyFirst = () => {
    const at = now()
    return [...states].sort(
      (a, b) => Number(a.failures > 0 && a.retryAt > at) - Number(b.failures > 0 && b.retryAt > at)
    )
  }

  /** A shard's id as a sharded id. A shard's ids stay far below the bound for any real table. */
  const toGlobal = (s: ShardState, id: string) => {
    const g = Route.globalId(s.shard, id)
    if (g === undefined)
      throw new RangeError(
        `${s.name}: job id ${id} is too large to carry its shard number (at most ${Math.floor(Number.MAX_SAFE_INTEGER / Route.shardSlots)})`
      )
    return g
  }
  const safeGlobal = <A>(f: () => A) =>
    Effect.try({ try: f, catch: (e) => invalid(e instanceof Error ? e.message : String(e)) })
  const recordOf = (s: ShardState, job: JobStore.JobRecord): JobStore.JobRecord => ({
    ...job,
    id: toGlobal(s, job.id)
  })
  const locate = (id: string) => {
    const local = Route.localId(id)
    if (local === undefined) return undefined
    const s = byNumber.get(local.shard)
    return s === undefined ? undefined : { state: s, id: local.id }
  }

  let turn = firstTurn

  const enqueue = (jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
    Effect.suspend(() => {
      if (now() - rulesAt > rulesTtlMs) return Effect.zipRight(refreshRules, enqueueNow(jobs))
      return enqueueNow(jobs)
    })
  const enqueueNow = (jobs: ReadonlyArray<JobStore.EnqueueInput>) =>
    Effect.suspend(() => {
      const { groups } = byShard(jobs, (job) => placeJob(job).shard)
      return Effect.flatMap(
        Effect.all(
          [...groups].map(([shard, indexes]) => {
            const s = byNumber.get(shard)!
            // Not cut short: an enqueue waits for its shard, as on one database.
            return recorded(s, s.store.enqueue(indexes.map((i) => jobs[i]!))).pipe(
              Effect.flatMap((results) =>
                safeGlobal(() =>
                  results.map((r, k) => [indexes[k]!, { ...r, id: toGlobal(s, r.id) }] as const)
                )
              )
            )
          }),
          { concurrency: "unbounded" }
        ),
        (parts) => {
          const out = new Array<JobStore.EnqueueResult>(jobs.length)
          for (const part of parts) for (const [i, r] of part) out[i] = r
          return Effect.succeed(out)
        }
      )
    })

  /**
   * A claim on one shard, awaited for at most `answerWithin`. A claim still
   * out then is not interrupted (its jobs may be committed as claimed by
   * then): the shard counts as unreachable, no other claim goes to it
   * meanwhile, and the jobs it answers with later are handed back without
   * using up an attempt (they were never started).
   */
  const claimOn = (
    s: ShardState,
    request: JobStore.ClaimRequest
  ): Effect.Effect<ReadonlyArray<JobStore.JobRecord>, JobStore.JobStoreError> =>
    Effect.suspend(() => {
      const handBack = (jobs: ReadonlyArray<JobStore.JobRecord>) =>
        recorded(
          s,
          s.store.settle(jobs.map((job) => ({ id: job.id, fence: job.fence, outcome: { _tag: "release" } })))
        ).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(
              `nightshift: ${jobs.length} job(s) claimed late on ${s.name} could not be handed back; they run again once their lease expires`,
              error
            )
          )
        )
      const late = (exit: Exit.Exit<ReadonlyArray<JobStore.JobRecord>, JobStore.JobStoreError>) =>
        Effect.suspend(() => {
          s.claimsOut--
          return Exit.isSuccess(exit) && exit.value.length > 0 ? handBack(exit.value) : Effect.void
        })
      return Effect.flatMap(
        within(recorded(s, s.store.claim(request)), late),
        Option.match({
          onSome: (exit) => exit,
          onNone: () => {
            // Counted until it answers (`late`), which may already have happened.
            s.claimsOut++
            const error = unanswered("a claim")
            down(s, error)
            return Effect.fail(
              new JobStore.JobStoreError({ message: `${s.name}: ${error.message}`, cause: error })
            )
          }
        })
      )
    })

  /**
   * A claim asks every reachable shard at once for a share of `limit` (the
   * shares start one shard further on each time), or, for a large `limit`
   * (`wholeBatch` per shard), the first shard for all of it; then it fills
   * what is left from the shards not yet asked and those that gave their
   * whole share, one after another. Jobs come back in claim order
   * (priority, run-at, id) within what was claimed.
   */
  const claim = (
    request: JobStore.ClaimRequest
  ): Effect.Effect<ReadonlyArray<JobStore.JobRecord>, JobStore.JobStoreError> =>
    Effect.suspend(() => {
      if (request.limit <= 0) return Effect.succeed([])
      const start = turn++ % states.length
      const at = now()
      const ready = states
        .map((_, i) => states[(start + i) % states.length]!)
        .filter((s) => s.claimsOut === 0 && (s.failures === 0 || s.retryAt <= at))
      if (ready.length === 0)
        return Effect.fail(
          invalid(
            `Every shard is unreachable: ${states.map((s) => `${s.name} (${s.lastError ?? "failed"})`).join("; ")}`
          )
        )
      // A large batch goes whole to one shard (one statement, and completions that settle
      // together); a small one is shared, so that every shard with work gets a turn in it.
      const whole = request.limit >= wholeBatch * ready.length
      const base = Math.floor(request.limit / ready.length)
      const extra = request.limit % ready.length
      const shares = ready.map((_, i) => (whole ? (i === 0 ? request.limit : 0) : base + (i < extra ? 1 : 0)))
      const claimed: Array<JobStore.JobRecord> = []
      let answered = 0
      const errors: Array<JobStore.JobStoreError> = []
      const ask = (s: ShardState, limit: number) =>
        claimOn(s, { ...request, limit }).pipe(
          Effect.match({
            onFailure: (error) => {
              errors.push(error)
              return -1
            },
            onSuccess: (jobs) => {
              answered++
              for (const job of jobs) claimed.push(recordOf(s, job))
              return jobs.length
            }
          })
        )
      return Effect.gen(function* () {
        const got = yield* Effect.all(
          ready.map((s, i) => (shares[i]! > 0 ? ask(s, shares[i]!) : Effect.succeed(-2))),
          { concurrency: "unbounded" }
        )
        // Not asked first (their share was 0), then those that may hold more.
        const again = [
          ...ready.filter((_, i) => got[i] === -2),
          ...ready.filter((_, i) => got[i]! > 0 && got[i] === shares[i])
        ]
        for (const s of again) {
          const left = request.limit - claimed.length
          if (left <= 0) break
          yield* ask(s, left)
        }
        // Every shard asked failed: the claim fails (the runner backs off and reports it).
        if (answered === 0 && errors.length > 0)
          return yield* Effect.fail(
            errors.length === 1
              ? errors[0]!
              : new JobStore.JobStoreError({
                  message: `No shard answered the claim: ${errors.map((e) => e.message).join("; ")}`,
                  cause: errors[0]
                })
          )
        return claimed.sort(claimOrder)
      })
    })

  /** Split id-keyed calls by shard, run each shard's part, and answer in input order. */
  /**
   * Split id-keyed calls by shard, run each shard's part, and answer in
   * input order. The items of a shard that fails are answered by `down`
   * (the others' answers stand); the call fails only when every shard it
   * needed failed.
   */
  const perShardById = <I extends { readonly id: string }, O extends { readonly id: string }>(
    items: ReadonlyArray<I>,
    call: (
      store: JobStore.Service,
      items: ReadonlyArray<I>
    ) => Effect.Effect<ReadonlyArray<O>, JobStore.JobStoreError>,
    missing: (item: I) => O,
    down: (item: I) => O
  ) =>
    Effect.suspend(() => {
      const located = items.map((item) => locate(item.id))
      const { groups, unplaced } = byShard(located, (l) => l?.state.shard)
      return Effect.flatMap(
        Effect.all(
          [...groups].map(([shard, indexes]) => {
            const s = byNumber.get(shard)!
            const local = indexes.map((i) => ({ ...items[i]!, id: located[i]!.id }))
            return Effect.either(
              Effect.map(
                on(s, (store) => call(store, local)),
                (answers) =>
                  answers.map((a, k) => [indexes[k]!, { ...a, id: items[indexes[k]!]!.id }] as const)
              )
            ).pipe(Effect.map((answer) => ({ indexes, answer })))
          }),
          { concurrency: "unbounded" }
        ),
        (parts) => {
          const failed = parts.filter((p) => p.answer._tag === "Left")
          if (failed.length > 0 && failed.length === parts.length && failed[0]!.answer._tag === "Left")
            return Effect.fail(failed[0]!.answer.left)
          const out = new Array<O>(items.length)
          for (const part of parts) {
            if (part.answer._tag === "Right") for (const [i, o] of part.answer.right) out[i] = o
            else for (const i of part.indexes) out[i] = down(items[i]!)
          }
          for (const i of unplaced) out[i] = missing(items[i]!)
          return Effect.succeed(out)
        }
      )
    })

  /**
   * A page over every shard: each shard lists below its share of the cursor
   * (and within its share of the id range); the page holds the newest of
   * what came back, but nothing below the highest id a shard has not looked
   * at yet (a shard whose page was full, or whose scan window ended, says
   * where it stopped), which is where the next page starts.
   */
  /** A bulk operation, each shard's ids in one call to it; ids no shard can hold are skipped as not found. */
  const bulk = (
    ids: ReadonlyArray<string>,
    call: (
      store: JobStore.Service,
      ids: ReadonlyArray<string>
    ) => Effect.Effect<JobStore.BulkResult, JobStore.JobStoreError>
  ) =>
    Effect.suspend(() => {
      const unique = [...new Set(ids)]
      const located = unique.map((id) => ({ id, at: locate(id) }))
      const groups = new Map<number, Array<string>>()
      const skipped: Array<JobStore.BulkSkip> = []
      for (const { id, at } of located) {
        if (at === undefined) skipped.push({ id, reason: "not-found", state: null })
        else groups.set(at.state.shard, [...(groups.get(at.state.shard) ?? []), at.id])
      }
      return Effect.map(
        Effect.all(
          [...groups].map(([shard, local]) => {
            const s = byNumber.get(shard)!
            const back = (id: string) => Route.globalId(s.shard, id) ?? id
            return Effect.map(
              on(s, (store) => call(store, local)),
              (r) => ({
                changed: r.changed.map(back),
                requested: r.requested.map(back),
                skipped: r.skipped.map((k) => ({ ...k, id: back(k.id) })),
                cancelled: r.cancelled?.map((c) => ({ ...c, id: back(c.id) }))
              })
            )
          }),
          { concurrency: "unbounded" }
        ),
        (parts): JobStore.BulkResult => {
          // In the order the ids were given, as every engine answers.
          const order = new Map(unique.map((id, i) => [id, i]))
          const byInput = <A>(xs: ReadonlyArray<A>, id: (a: A) => string) =>
            [...xs].sort((a, b) => (order.get(id(a)) ?? 0) - (order.get(id(b)) ?? 0))
          return {
            changed: byInput(
              parts.flatMap((p) => p.changed),
              (id) => id
            ),
            requested: byInput(
              parts.flatMap((p) => p.requested),
              (id) => id
            ),
            skipped: byInput([...parts.flatMap((p) => p.skipped), ...skipped], (k) => k.id),
            ...(parts.some((p) => p.cancelled !== undefined)
              ? {
                  cancelled: byInput(
                    parts.flatMap((p) => p.cancelled ?? []),
                    (c) => c.id
                  )
                }
              : {})
          }
        }
      )
    })

  const list = (filter: JobStore.ListFilter): Effect.Effect<JobStore.ListPage, JobStore.JobStoreError> =>
    Effect.suspend(() => {
      const limit = listLimit(filter.limit)
      const bounds = idBounds(filter)
      if (bounds === undefined) return Effect.succeed<JobStore.ListPage>({ jobs: [], nextCursor: null })
      const { idTo: _, ...rest } = filter
      return Effect.map(
        Effect.all(
          states.map((s) => {
            const from = Math.max(1, Route.localBound(s.shard, bounds.from))
            const below = bounds.below === undefined ? undefined : Route.localBound(s.shard, bounds.below)
            if (below !== undefined && below <= from)
              return Effect.succeed({
                jobs: [] as ReadonlyArray<JobStore.JobRecord>,
                top: Number.NEGATIVE_INFINITY
              })
            return on(s, (store) =>
              store.list({
                ...rest,
                limit,
                idFrom: String(from),
                cursor: below === undefined ? null : String(below)
              })
            ).pipe(
              Effect.map((page) => ({
                jobs: page.jobs.map((job) => recordOf(s, job)),
                // Its ids below this one (as sharded ids) are not looked at yet.
                top:
                  page.nextCursor === null
                    ? Number.NEGATIVE_INFINITY
                    : Number(page.nextCursor) * Route.shardSlots + s.shard
              }))
            )
          }),
          { concurrency: "unbounded" }
        ),
        (pages) => {
          let next = Math.max(...pages.map((p) => p.top))
          const seen = pages
            .flatMap((p) => p.jobs)
            .filter((job) => Number(job.id) >= next)
            .sort((a, b) => Number(b.id) - Number(a.id))
          const jobs = seen.slice(0, limit)
          if (seen.length > limit) next = Number(jobs[limit - 1]!.id)
          return { jobs, nextCursor: Number.isFinite(next) && next > 1 ? String(next) : null }
        }
      )
    })

  const sumBy = <A>(rows: ReadonlyArray<A>, key: (a: A) => string, add: (a: A, b: A) => A) => {
    const out = new Map<string, A>()
    for (const row of rows) {
      const k = key(row)
      const seen = out.get(k)
      out.set(k, seen === undefined ? row : add(seen, row))
    }
    return [...out.values()]
  }
  /** Counts per queue and state, summed over shards. */
  const sumCounts = (rows: ReadonlyArray<JobStore.QueueCount>) =>
    sumBy(
      rows,
      (c) => `${c.queue}\u0000${c.state}`,
      (a, b) => ({ ...a, count: a.count + b.count })
    )

  const translateHint = (s: ShardState, hint: JobStore.Wakeup): JobStore.Wakeup =>
    hint._tag === "cancel" ? { _tag: "cancel", id: Route.globalId(s.shard, hint.id) ?? hint.id } : hint
  /** A shard's hints with sharded ids; its failing leaves the others' (the runner's poll is the backstop). */
  const hintsOf = (s: ShardState) =>
    s.store.wakeups.pipe(
      Stream.map((hint) => translateHint(s, hint)),
      Stream.retry(Schedule.spaced("1 second"))
    )

  const service: Service = {
    engine: `sharded(${[...new Set(states.map((s) => s.store.engine))].join(", ")} × ${states.length})`,
    enqueue,
    claim,
    answerWithinMs: Duration.toMillis(answerWithin),
    heartbeat: (owner, leases, leaseMs) =>
      perShardById(
        leases,
        (store, local) => store.heartbeat(owner, local, leaseMs),
        (lease): JobStore.LeaseStatus => ({ id: lease.id, held: false, cancelRequested: false }),
        // Nobody can rescue or claim a job while its shard is unreachable: the lease is not lost.
        (lease): JobStore.LeaseStatus => ({ id: lease.id, held: true, cancelRequested: false })
      ),
    settle: (settlements) =>
      perShardById(
        settlements,
        (store, local) => store.settle(local),
        (s): JobStore.SettleResult => ({ id: s.id, applied: false, state: null }),
        (s): JobStore.SettleResult => ({ id: s.id, applied: false, state: null, deferred: true })
      ),
    rescue: (limit) =>
      Effect.map(
        everywhere((store) => store.rescue(limit)),
        (parts) =>
          parts.flatMap((rescued, i) => rescued.map((r) => ({ ...r, id: toGlobal(states[i]!, r.id) })))
      ),
    prune: (request) =>
      Effect.map(
        // Not bounded: a prune may take a while on a large table, and nothing waits for it.
        everywhere((store) => store.prune(request), false),
        (counts) => counts.reduce((a, b) => a + b, 0)
      ),
    get: (id) =>
      Effect.suspend(() => {
        const at = locate(id)
        if (at === undefined) return Effect.succeed(undefined)
        return Effect.map(
          on(at.state, (store) => store.get(at.id)),
          (job) => (job === undefined ? undefined : recordOf(at.state, job))
        )
      }),
    list,
    counts: Effect.map(
      everywhere((store) => store.counts),
      (parts) => sumCounts(parts.flat())
    ),
    depth: Effect.map(
      everywhere((store) => store.depth),
      (parts) => sumCounts(parts.flat())
    ),
    tableStats: Effect.map(
      everywhere((store) => store.tableStats ?? Effect.succeed(undefined)),
      (parts): JobStore.TableStats => {
        const known = parts.filter((p): p is JobStore.TableStats => p !== undefined)
        const sum = (f: (s: JobStore.TableStats) => number) => known.reduce((a, s) => a + f(s), 0)
        return {
          liveRows: sum((s) => s.liveRows),
          deadRows: sum((s) => s.deadRows),
          tableBytes: sum((s) => s.tableBytes),
          indexBytes: sum((s) => s.indexBytes),
          finishedBytes: sum((s) => s.finishedBytes)
        }
      }
    ),
    activity: (since) =>
      Effect.map(
        everywhere((store) => store.activity(since)),
        (parts) => ({
          // The earliest shard's now ends the span: the next span starts there, so a shard whose
          // clock is behind loses nothing (one ahead may count a job near the edge twice).
          now: Math.min(...parts.map((p) => p.now)),
          completed: parts.reduce((a, p) => a + p.completed, 0),
          discarded: parts.reduce((a, p) => a + p.discarded, 0),
          cancelled: parts.reduce((a, p) => a + p.cancelled, 0),
          retried: parts.reduce((a, p) => a + p.retried, 0),
          latencies: parts.flatMap((p) => p.latencies).slice(0, JobStore.activityLatencyLimit),
          depth: sumCounts(parts.flatMap((p) => p.depth))
        })
      ),
    retryMany: (ids) => bulk(ids, (store, local) => store.retryMany(local)),
    cancelMany: (ids) => bulk(ids, (store, local) => store.cancelMany(local)),
    deleteMany: (ids) => bulk(ids, (store, local) => store.deleteMany(local)),
    runNow: (id) =>
      Effect.suspend(() => {
        const at = locate(id)
        if (at === undefined) return Effect.succeed<JobStore.RunNowResult>({ _tag: "not-found" })
        return on(at.state, (store) => store.runNow(at.id))
      }),
    cancel: (id) =>
      Effect.suspend(() => {
        const at = locate(id)
        if (at === undefined) return Effect.succeed<JobStore.CancelResult>({ _tag: "not-found" })
        return on(at.state, (store) => store.cancel(at.id))
      }),
    retry: (id) =>
      Effect.suspend(() => {
        const at = locate(id)
        if (at === undefined) return Effect.succeed<JobStore.RetryResult>({ _tag: "not-found" })
        return on(at.state, (store) => store.retry(at.id))
      }),
    pause: (queue) => Effect.asVoid(everywhere((store) => store.pause(queue))),
    resume: (queue) => Effect.asVoid(everywhere((store) => store.resume(queue))),
    paused: Effect.map(
      everywhere((store) => store.paused),
      (parts) => [...new Set(parts.flat())].sort()
    ),
    enqueueCronSlot: (input) =>
      Effect.suspend(() => {
        // Placed like the job itself (so its dedupe key is checked where it lives): every
        // node places the same slot's job on the same shard, which records the slot once.
        const s = placeJob(input.job)
        return Effect.flatMap(
          on(s, (store) => store.enqueueCronSlot(input)),
          (result) =>
            result === undefined
              ? Effect.succeed(undefined)
              : safeGlobal(() => ({ ...result, id: toGlobal(s, result.id) }))
        )
      }),
    lastCronSlot: (name) =>
      Effect.map(
        everywhere((store) => store.lastCronSlot(name)),
        (slots) => {
          const known = slots.filter((slot): slot is number => slot !== undefined)
          return known.length === 0 ? undefined : Math.max(...known)
        }
      ),
    declareLimits: (rules) =>
      Effect.zipRight(
        everywhere((store) => store.declareLimits(rules)),
        Effect.sync(() => {
          for (const rule of rules) learn(rule)
        })
      ),
    flowState: (options) =>
      Effect.map(
        everywhere((store) => store.flowState(options)),
        (parts) => ({
          // The earliest shard's now ends the span: the next span starts there, so a shard whose
          // clock is behind loses nothing (one ahead may count a job near the edge twice).
          now: Math.min(...parts.map((p) => p.now)),
          rules: parts[0]!.rules,
          paused: [...new Set(parts.flatMap((p) => p.paused))].sort(),
          running: sumBy(
            parts.flatMap((p) => p.running),
            (g) => `${g.queue}\u0000${g.kind}\u0000${g.partition}`,
            (a, b) => ({ ...a, running: a.running + b.running })
          ),
          rate: sumBy(
            parts.flatMap((p) => p.rate),
            (r) => `${r.scope}\u0000${r.name}\u0000${r.partition}`,
            (a, b) => ({ ...a, starts: a.starts + b.starts, recent: a.recent + b.recent })
          ),
          due: sumBy(
            parts.flatMap((p) => p.due),
            (g) => `${g.queue}\u0000${g.kind}\u0000${g.partition}`,
            (a, b) => ({ ...a, due: a.due + b.due })
          )
        })
      ),
    // The first shard that answers tells the time (shards on the database clock agree closely).
    now: Effect.suspend(() => Effect.firstSuccessOf(readyFirst().map((s) => on(s, (store) => store.now)))),
    ping: Effect.asVoid(everywhere((store) => store.ping)),
    wakeups: Stream.mergeAll(states.map(hintsOf), { concurrency: "unbounded" }),
    shardHealth: () =>
      states.map((s) => ({
        shard: s.shard,
        name: s.name,
        reachable: s.failures === 0,
        lastError: s.lastError,
        lastErrorAt: s.lastErrorAt
      }))
  }
  // Runners in this process hear every shard's hints without a hop through the stream.
  const hooked = Hints.hook(service, (listener) =>
    Effect.forEach(
      states,
      (s) =>
        Hints.listenTo(s.store, (hint) => listener(translateHint(s, hint))) ??
        Effect.forkScoped(Stream.runForEach(hintsOf(s), (hint) => Effect.sync(() => listener(hint)))),
      { discard: true, concurrency: "unbounded" }
    )
  )
  return { service: hooked, refreshRules }
}

/**
 * A shard that may be unreachable when the store starts: `build` (in a
 * scope of its own, closed when it fails) is tried once now; when it fails,
 * the shard is a stand-in whose every call fails saying so (the sharded
 * store then treats it as down), and `build` is tried again every
 * `retryEvery` until it succeeds, from when on the stand-in is the store
 * (its migrations run then). `connected` says whether the first try worked;
 * `error` is its failure.
 *
 * @since 0.2.0
 */
export const connectLater = (
  engine: string,
  build: (scope: Scope.Scope) => Effect.Effect<JobStore.Service, JobStore.JobStoreError>,
  retryEvery: Duration.DurationInput = "2 seconds"
): Effect.Effect<
  { readonly store: JobStore.Service; readonly error: JobStore.JobStoreError | undefined },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const outer = yield* Effect.scope
    const attempt = Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) =>
      build(scope).pipe(Effect.tapError(() => Scope.close(scope, Exit.void)))
    )
    const first = yield* Effect.either(attempt)
    if (first._tag === "Right") return { store: first.right, error: undefined }
    let lastError = first.left
    let current: JobStore.Service | undefined
    const ready = yield* Deferred.make<JobStore.Service>()
    yield* attempt.pipe(
      Effect.tapError((error) =>
        Effect.sync(() => {
          lastError = error
        })
      ),
      Effect.retry(Schedule.spaced(retryEvery)),
      Effect.flatMap((store) =>
        Effect.zipRight(
          Effect.sync(() => {
            current = store
          }),
          Deferred.succeed(ready, store)
        )
      ),
      Effect.forkScoped
    )
    const via = <A>(f: (store: JobStore.Service) => Effect.Effect<A, JobStore.JobStoreError>) =>
      Effect.suspend(() =>
        current === undefined
          ? Effect.fail(new JobStore.JobStoreError({ message: `not connected yet: ${lastError.message}` }))
          : f(current)
      )
    const store: JobStore.Service = {
      engine,
      enqueue: (jobs) => via((s) => s.enqueue(jobs)),
      claim: (request) => via((s) => s.claim(request)),
      heartbeat: (owner, leases, leaseMs) => via((s) => s.heartbeat(owner, leases, leaseMs)),
      settle: (settlements) => via((s) => s.settle(settlements)),
      rescue: (limit) => via((s) => s.rescue(limit)),
      prune: (request) => via((s) => s.prune(request)),
      get: (id) => via((s) => s.get(id)),
      list: (filter) => via((s) => s.list(filter)),
      counts: via((s) => s.counts),
      activity: (since) => via((s) => s.activity(since)),
      depth: via((s) => s.depth),
      tableStats: via(
        (s) =>
          s.tableStats ??
          Effect.fail(
            new JobStore.JobStoreError({
              message: `this ${engine} store reports no table sizes (JobStore.tableStats)`
            })
          )
      ),
      cancel: (id) => via((s) => s.cancel(id)),
      retry: (id) => via((s) => s.retry(id)),
      retryMany: (ids) => via((s) => s.retryMany(ids)),
      cancelMany: (ids) => via((s) => s.cancelMany(ids)),
      deleteMany: (ids) => via((s) => s.deleteMany(ids)),
      runNow: (id) => via((s) => s.runNow(id)),
      pause: (queue) => via((s) => s.pause(queue)),
      resume: (queue) => via((s) => s.resume(queue)),
      paused: via((s) => s.paused),
      enqueueCronSlot: (input) => via((s) => s.enqueueCronSlot(input)),
      lastCronSlot: (name) => via((s) => s.lastCronSlot(name)),
      declareLimits: (rules) => via((s) => s.declareLimits(rules)),
      flowState: (options) => via((s) => s.flowState(options)),
      now: via((s) => s.now),
      ping: via((s) => s.ping),
      // Its hints once it is connected.
      wakeups: Stream.unwrap(Effect.map(Deferred.await(ready), (s) => s.wakeups))
    }
    return { store, error: first.left }
  })

/**
 * A sharded store over shards each built by `connectLater`: those that
 * cannot be reached now are connected (and migrated) later, and count as
 * down meanwhile. Fails only when no shard can be reached (most likely the
 * addresses are wrong), naming each.
 *
 * @since 0.2.0
 */
export const connectAll = (
  shards: ReadonlyArray<{
    readonly shard: number
    readonly name: string
    readonly engine: string
    readonly build: (scope: Scope.Scope) => Effect.Effect<JobStore.Service, JobStore.JobStoreError>
  }>,
  options: Options = {}
): Effect.Effect<Service, JobStore.JobStoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const connected = yield* Effect.forEach(
      shards,
      (s) => Effect.map(connectLater(s.engine, s.build), (c) => ({ shard: s.shard, name: s.name, ...c })),
      { concurrency: "unbounded" }
    )
    if (connected.every((c) => c.error !== undefined))
      return yield* Effect.fail(
        invalid(
          `No shard could be reached: ${connected.map((c) => `${c.name}: ${c.error!.message}`).join("; ")}`
        )
      )
    return yield* make(
      connected.map((c) => ({ shard: c.shard, name: c.name, store: c.store })),
      options
    )
  })

/**
 * Is this `JobStore` a sharded store (whose `shardHealth` says which shard
 * is unreachable)?
 *
 * @since 0.2.0
 */
export const isSharded = (store: JobStore.Service): store is Service => "shardHealth" in store

/**
 * A layer of the sharded store over shards built in the layer's scope.
 *
 * @since 0.2.0
 */
export const layer = <E, R>(
  shards: Effect.Effect<ReadonlyArray<Shard>, E, R | Scope.Scope>,
  options: Options = {}
): Layer.Layer<JobStore.JobStore, E | JobStore.JobStoreError, Exclude<R, Scope.Scope>> =>
  Layer.scoped(
    JobStore.JobStore,
    Effect.flatMap(shards, (list) => make(list, options))
  )
