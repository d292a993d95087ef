import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Events from "../../Events.js"
import type * as Job from "../../Job.js"
import type * as JobStore from "../../JobStore.js"
import * as Metrics from "../../Metrics.js"
import { internals } from "../fiberInternals.js"
import * as Hints from "../store/hints.js"
import { macrotask } from "./eventLoop.js"
import {
  defectOutcome,
  execute,
  type InterruptReason,
  interruptedOutcome,
  jobAnnotations,
  type Settle
} from "./execute.js"
import type { Rider, Settler } from "./settler.js"

/** How often, in wall-clock ms, a busy fetcher lets the event loop run timers and I/O. */
const breathMs = 20

/** Runner settings with every default filled in. */
export interface Config {
  readonly owner: string
  readonly queues: ReadonlyArray<string>
  readonly concurrency: number
  readonly claimBatchSize: number
  /**
   * Jobs claimed ahead and held here, under lease, beyond the running ones:
   * exactly this many when `adaptivePrefetch` is false, at most this many
   * when it is true.
   */
  readonly prefetch: number
  /**
   * Size the buffer of jobs claimed ahead from what this runner measures:
   * the jobs it starts in a few claim round trips (see `aheadTarget`).
   */
  readonly adaptivePrefetch: boolean
  readonly pollIntervalMs: number
  /**
   * Flow control limits hold for some of the runner's kinds or queues: a
   * claim that came back short may have been held back by a limit that a
   * settle frees, so each settled batch wakes the fetcher.
   */
  readonly flowLimited: boolean
  /**
   * The shortest pace span of the rate limits over the runner's kinds and
   * queues (see `paceOf`), if any: a paced rate admits its next starts a
   * span after the last ones, which no settle announces. A claim that came
   * back empty with nothing running is tried again when the span of this
   * runner's last claim that took jobs ends, or (another runner's starts
   * holding the room) an eighth of a span later, for the first
   * `paceRetries` tries, instead of the doubling wait.
   */
  readonly paceSpanMs: number | undefined
  /** How many empty claims in a row the pace's retries hold for: one longest window's worth. */
  readonly paceRetries: number
  readonly leaseMs: number
  readonly heartbeatIntervalMs: number
  readonly shutdownTimeoutMs: number
}

/** How soon a paced rate's claim is tried again while other runners hold its room: an eighth of its span, at least 5 ms. */
export const paceRetryMs = (paceSpanMs: number): number => Math.max(5, paceSpanMs / 8)

/** A job claimed ahead, with the local time until which its lease is known to hold. */
interface Buffered {
  readonly job: JobStore.JobRecord
  heldUntil: number
}

/** Claim round trips of work an adaptive buffer holds (it is refilled at half, one round trip ahead of need with a 2× margin). */
const horizonRoundTrips = 4

/**
 * The adaptive number of jobs to hold ahead: what this runner starts, at
 * its measured start rate, in `horizonRoundTrips` claim round trips, never
 * more than it starts in a tenth of the lease, and at most `max`. Without a
 * measurement yet, 0 (claims for free slots only).
 */
export const aheadTarget = (
  startsPerMs: number | undefined,
  claimRoundTripMs: number | undefined,
  leaseMs: number,
  max: number
): number =>
  startsPerMs === undefined || claimRoundTripMs === undefined
    ? 0
    : Math.max(
        0,
        Math.min(max, Math.floor(startsPerMs * Math.min(horizonRoundTrips * claimRoundTripMs, leaseMs / 10)))
      )

interface Running {
  readonly job: JobStore.JobRecord
  readonly startedAt: number
  /** The lane whose fiber runs the attempt. */
  readonly lane: Lane
  reason: InterruptReason | undefined
  finished: boolean
}

/** A fiber that runs attempts one after another (see `runLane`), and the one it runs now. */
interface Lane {
  current: Running | undefined
  fiber: Fiber.RuntimeFiber<void> | undefined
}

/** Health of the runner's conversation with its store. */
export interface Health {
  readonly healthy: boolean
  readonly lastError: string | null
  readonly lastErrorAt: number | null
  readonly lastClaimAt: number | null
}

/**
 * The runner's moving parts: what runs, how many may, and the loops that
 * claim, run, extend and stop jobs. Each loop is exposed as an effect so the
 * runner can put it under a crew as a worker.
 */
export interface Engine<R> {
  readonly config: Config
  readonly running: () => ReadonlyArray<JobStore.JobRecord>
  /** Jobs claimed ahead that wait here for a free slot. */
  readonly prefetched: () => number
  readonly capacity: () => number
  readonly setCapacity: (n: number) => void
  readonly health: () => Health
  /** Ask the fetcher to look for work now. */
  readonly wake: Effect.Effect<void>
  /** Claim and start jobs while there are free slots (a long-running worker). */
  readonly fetchLoop: Effect.Effect<never, never, R>
  /** Extend leases, and stop attempts whose lease was lost or that were cancelled. */
  readonly heartbeat: Effect.Effect<void>
  /** Follow the store's hints (new work, cancel requests). */
  readonly listen: Effect.Effect<void, JobStore.JobStoreError>
  /** Interrupt a job running here; returns false when it is not here. */
  readonly interrupt: (id: string, reason: InterruptReason) => Effect.Effect<boolean>
  /** Stop claiming, wait for running jobs up to the shutdown timeout, then release the rest. */
  readonly drain: Effect.Effect<void>
}

/**
 * How long the drain keeps trying to write the last outcomes at shutdown.
 * Within the 5 s the fetcher's worker is given beyond the shutdown timeout.
 */
const flushBudget = Duration.seconds(4)

export const makeEngine = <R>(
  store: JobStore.Service,
  handlers: Job.Handlers<R>,
  config: Config,
  settler: Settler
): Effect.Effect<Engine<R>, never, R | Scope.Scope> =>
  Effect.gen(function* () {
    const running = new Map<string, Running>()
    // Attempts run on daemon fibers (lanes); whatever is left when the runner's scope closes
    // (normally nothing: `drain` waits for them) is interrupted, and takes no further job.
    const lanes = new Set<Fiber.RuntimeFiber<void>>()
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        return Fiber.interruptAll(Array.from(lanes))
      })
    )
    // Claimed ahead, in claim order (priority, run-at, id), from `buffer[head]` on.
    let buffer: Array<Buffered> = []
    let head = 0
    const buffered = () => buffer.length - head
    /** Jobs to hold ahead: fixed, or adapted after every claim (`retarget`). */
    let ahead = config.adaptivePrefetch ? 0 : config.prefetch
    // Adaptive measurements (moving averages): how long an attempt takes, and a claim round trip.
    let attemptMs: number | undefined
    let claimMs: number | undefined
    const signal = yield* Queue.sliding<true>(1)
    const kinds = Array.from(handlers.byKind.keys())
    let capacity = config.concurrency
    let draining = false
    let health: Health = { healthy: true, lastError: null, lastErrorAt: null, lastClaimAt: null }
    const clockService = yield* Effect.clock
    const clock = Effect.sync(() => clockService.unsafeCurrentTimeMillis())
    const events = yield* Effect.serviceOption(Events.Events)

    /**
     * Wake-ups from outside the fetcher (a store hint, the poll, a written
     * settle under flow control), counted: a claim sent after the last of
     * them that came back short leaves nothing to claim until the next.
     */
    let wakeups = 0
    /**
     * A claim now may find work: the last claim came back full, or a wake-up
     * came after it was sent. Without it, an attempt's end does not wake the
     * fetcher (on an idle queue that claim would come back empty: one more
     * statement per job). Every way work becomes due publishes a hint (an
     * enqueue, a settle or rescue that makes a job due now, a retry, a
     * resume); a scheduled job falling due is the poll's. Under flow control
     * a short claim may have been held back by a limit: each settle this
     * runner writes then wakes the fetcher (`flowLimited`), and a place freed
     * on another node is seen by that claim or the poll.
     */
    let more = true
    const hinted = () => {
      wakeups++
      signal.unsafeOffer(true)
    }
    const wake = Effect.sync(hinted)

    /**
     * The fetcher's runtime (its context and fiber refs), captured when it
     * starts: an attempt that ends starts the next buffered job with it, as
     * the fetcher would have.
     */
    let runtime: Runtime.Runtime<R> | undefined

    /**
     * Free the attempt's place, hand the outcome to the settler, and update
     * the attempt-duration average. Starting what comes next is the
     * caller's business (`afterAttempt`).
     */
    const finish = (entry: Running, outcome: JobStore.Outcome | undefined, now: number) => {
      if (entry.finished) return
      entry.finished = true
      running.delete(entry.job.id)
      const durationMs = now - entry.startedAt
      attemptMs = attemptMs === undefined ? durationMs : 0.8 * attemptMs + 0.2 * durationMs
      if (outcome !== undefined) settler.unsafeOffer({ job: entry.job, outcome, durationMs })
    }

    /**
     * After an attempt ended and its place was freed: start buffered jobs in
     * the free slots, and wake the fetcher when it has work: a claim to make
     * (the buffer is down to half its target) or slots to fill.
     */
    const afterAttempt = (now: number) => {
      startNext(now)
      Metrics.unsafeRunning(config.owner, running.size)
      if (more && (buffered() <= ahead / 2 || running.size < capacity)) signal.unsafeOffer(true)
    }

    /** Record a job as running, on `lane`. */
    const enter = (job: JobStore.JobRecord, now: number, lane: Lane): Running => {
      const entry: Running = { job, startedAt: now, lane, reason: undefined, finished: false }
      running.set(job.id, entry)
      return entry
    }

    /**
     * A lane is one fiber that runs attempts back to back: after an attempt
     * it takes the next buffered job itself, while there is one and a free
     * slot, and ends when there is none. A fiber per attempt would cost a
     * fork, a fiber-ref copy and the garbage they leave, about half of a
     * quick job's CPU.
     *
     * Attempts stay as isolated as on a fiber of their own (with effect's
     * fiber internals, `fiberInternals.ts`; without them a lane runs one
     * attempt): each starts from the lane's own fiber refs, what it forked
     * is interrupted when it ends, and the lane goes on only after an
     * attempt that was not interrupted (an interrupt is only ever sent for
     * the lane's current job, whose `reason` is set first, and everything
     * but the handler is uninterruptible, so it cannot reach the next job).
     */
    const runLane = (lane: Lane): Effect.Effect<void, never, R> =>
      Effect.withFiberRuntime<void, never, R>((fiber) => {
        const inside = internals(fiber)
        // The lane's own fiber refs, put back before every attempt after the first: nothing
        // an attempt sets (`FiberRef.set`, a provided service) reaches the next one. Not over
        // an interrupt that arrived meanwhile (it lives in the refs): that attempt is then
        // interrupted at once, and the lane ends after it.
        const refs = fiber.getFiberRefs()
        const annotations = fiber.getFiberRef(FiberRef.currentLogAnnotations)
        const fiberId = fiber.id()
        let fresh = true
        // The lane's refs with the job's log annotations, put in place in one step (each
        // replacement of a fiber's refs re-reads its cached services: one per attempt, not two).
        const annotate = Effect.suspend(() => {
          const value = jobAnnotations(annotations, lane.current!.job)
          const first = fresh
          fresh = false
          if (inside !== undefined && (first || !inside.isInterrupted())) {
            inside.setFiberRefs(
              FiberRefs.updateAs(first ? fiber.getFiberRefs() : refs, {
                fiberId,
                fiberRef: FiberRef.currentLogAnnotations,
                value
              })
            )
            return Effect.void
          }
          return FiberRef.set(FiberRef.currentLogAnnotations, value)
        })
        const run = Effect.suspend(() => {
          const entry = lane.current!
          return execute(handlers.byKind.get(entry.job.kind), entry.job, () => entry.reason)
        })
        // What an attempt forked and left running is interrupted as it ends, as when a fiber
        // of its own would have ended.
        const attempt = Effect.flatMap(
          Effect.zipRight(
            events._tag === "None"
              ? annotate
              : Effect.zipRight(
                  Effect.suspend(() => publishStarted([lane.current!.job], lane.current!.startedAt)),
                  annotate
                ),
            run
          ),
          (outcome) => {
            const children = inside?.interruptAllChildren() ?? null
            return children === null ? Effect.succeed(outcome) : Effect.as(children, outcome)
          }
        )
        return Effect.whileLoop({
          while: () => lane.current !== undefined,
          body: () => attempt,
          step: (outcome: Settle) => {
            const entry = lane.current!
            const now = clockService.unsafeCurrentTimeMillis()
            finish(entry, outcome, now)
            lane.current = undefined
            if (
              !draining &&
              !closed &&
              entry.reason === undefined &&
              inside !== undefined &&
              !inside.isInterrupted()
            ) {
              const next = takeStartable(Math.min(1, capacity - running.size), now)[0]
              if (next !== undefined) lane.current = enter(next, now, lane)
            }
            afterAttempt(now)
          }
        })
      })

    /**
     * Called when a lane's fiber ends: normally with nothing current; when
     * it was interrupted before its attempt ran, or died, the current job
     * still frees its slot and is settled.
     */
    const onLaneExit = (lane: Lane, exit: Exit.Exit<void>) => {
      const entry = lane.current
      if (entry === undefined || entry.finished) return
      lane.current = undefined
      const now = clockService.unsafeCurrentTimeMillis()
      finish(
        entry,
        Exit.isInterrupted(exit)
          ? interruptedOutcome(entry.reason)
          : defectOutcome(entry.job, Exit.isFailure(exit) ? exit.cause : Cause.empty),
        now
      )
      afterAttempt(now)
    }

    /** A lane for `job`, ready to fork; its fiber is attached with `observe`. */
    const lane = (job: JobStore.JobRecord, now: number): Lane => {
      const l: Lane = { current: undefined, fiber: undefined }
      l.current = enter(job, now, l)
      return l
    }

    // The observer is attached before the fiber first runs (forked fibers start on the
    // scheduler), so no interrupt can end a lane without it.
    const observe = (l: Lane, fiber: Fiber.RuntimeFiber<void>) => {
      l.fiber = fiber
      lanes.add(fiber)
      fiber.addObserver((exit) => {
        lanes.delete(fiber)
        onLaneExit(l, exit)
      })
    }

    /**
     * Start a lane for `job` with the fetcher's runtime. `immediate`: run it
     * now, up to its first asynchronous step, instead of after the tasks
     * already scheduled (the fetcher's first job of a claim: its handler
     * starts without waiting a scheduler turn behind other fibers).
     */
    const startLane = (l: Lane, immediate: boolean) => {
      observe(l, Runtime.runFork(runtime!, Effect.uninterruptible(runLane(l)), { immediate }))
    }

    /**
     * Start buffered jobs in the free slots now, in plain code (from an
     * attempt's end), with the fetcher's runtime: no fetcher round per job.
     * A lane publishes each job's `started` event before it runs it.
     */
    const startNext = (now: number) => {
      if (draining || runtime === undefined || head === buffer.length) return
      const next = takeStartable(capacity - running.size, now)
      for (const job of next) startLane(lane(job, now), false)
    }

    /** The `started` events of jobs about to start, published before their fibers run. */
    const publishStarted = (jobs: ReadonlyArray<JobStore.JobRecord>, now: number) =>
      events._tag === "None"
        ? Effect.void
        : events.value.publishAll(
            jobs.map((job) => ({
              _tag: "started" as const,
              id: job.id,
              kind: job.kind,
              queue: job.queue,
              at: now,
              attempt: job.attempt
            }))
          )

    const recordError = (e: JobStore.JobStoreError) =>
      Effect.gen(function* () {
        const now = yield* clock
        if (health.healthy) yield* Effect.logError("nightshift: the job store is unreachable; backing off", e)
        health = { ...health, healthy: false, lastError: e.message, lastErrorAt: now }
      })

    /**
     * A buffered job is started only while its lease, as last confirmed by
     * the claim or a heartbeat (timed from before the call), still has
     * `leaseMargin` to run. Heartbeats that succeed never let it get that
     * low; when they have been failing while the job waited, it is released
     * instead of run, as it may have been rescued and claimed elsewhere.
     */
    const leaseMargin = Math.min(
      config.heartbeatIntervalMs,
      (config.leaseMs - config.heartbeatIntervalMs) / 2
    )
    const startable = (b: Buffered, now: number) => now < b.heldUntil - leaseMargin

    /**
     * Take up to `free` jobs to start from the buffer, releasing the lapsed
     * ones met on the way.
     */
    const takeStartable = (free: number, now: number): Array<JobStore.JobRecord> => {
      const next: Array<JobStore.JobRecord> = []
      while (head < buffer.length && next.length < free) {
        const b = buffer[head++]!
        if (startable(b, now)) next.push(b.job)
        else settler.unsafeOffer({ job: b.job, outcome: { _tag: "release" }, durationMs: 0 })
      }
      if (head === buffer.length) {
        buffer = []
        head = 0
      }
      return next
    }

    /** Start buffered jobs while there are free slots. */
    const startBuffered = Effect.suspend(() => {
      const free = capacity - running.size
      if (free <= 0 || head === buffer.length) return Effect.void
      const now = clockService.unsafeCurrentTimeMillis()
      const next = takeStartable(free, now)
      if (next.length === 0) return Effect.void
      // Every job is entered before the first lane runs, so that lane cannot take buffered
      // jobs ahead of them.
      const ready = next.map((job) => lane(job, now))
      return Effect.sync(() => {
        for (let i = 0; i < ready.length; i++) startLane(ready[i]!, i === 0)
      })
    })

    /**
     * After a claim that took `roundTrip` ms (timed in nanoseconds: on an
     * embedded store it is well under a millisecond, and a round trip
     * counted as 0 would hold nothing ahead): update the round trip and the
     * target. The start rate is what the slots sustain while busy,
     * `capacity / attemptMs` (attempts are timed in whole ms: one under 1 ms
     * counts as 0.01 ms).
     */
    const retarget = (roundTrip: number) => {
      if (!config.adaptivePrefetch) return
      claimMs = claimMs === undefined ? roundTrip : (claimMs + roundTrip) / 2
      const startsPerMs = attemptMs === undefined ? undefined : capacity / Math.max(attemptMs, 0.01)
      ahead = aheadTarget(startsPerMs, claimMs, config.leaseMs, config.prefetch)
    }

    /** The last claim came back with fewer jobs than it asked for. */
    let short = false
    /**
     * Under flow control, the claims in a row that came back empty. Places a
     * limit frees on another node send no wake-up, so a runner whose claim
     * found none, with nothing of its own running whose settle would wake it,
     * tries again after 5 ms, then after waits that double up to the poll
     * interval (at most 5,120 ms), instead of waiting a whole poll interval.
     */
    let emptyClaims = 0
    /** When (local clock) the last claim that took jobs was sent: a paced rate's span runs from there. */
    let lastTookAt: number | undefined
    /** The fetcher's claim is in flight. */
    let fetching = false
    /** A claim sent with a settle (see `rider`) is in flight. */
    let riding = false

    const claimRequest = (limit: number): JobStore.ClaimRequest => ({
      queues: config.queues,
      kinds,
      limit,
      leaseMs: config.leaseMs,
      owner: config.owner
    })

    /** Buffer claimed jobs, in claim order, with their lease as of `sentAt`. */
    const hold = (claimed: ReadonlyArray<JobStore.JobRecord>, sentAt: number) => {
      if (claimed.length === 0) return
      const heldUntil = sentAt + config.leaseMs
      buffer = buffer.slice(head).concat(claimed.map((job) => ({ job, heldUntil })))
      head = 0
    }

    /**
     * One round of the fetcher: fill free slots from the buffer, then claim
     * when there is room (free slots, plus buffer space once the buffer is
     * down to half). Returns the number claimed when the claim came back
     * full, or not empty under flow control (more may be waiting), 0 when
     * it did not, -1 when there was no room to claim.
     */
    const claimOnce: Effect.Effect<number, JobStore.JobStoreError, R> = Effect.gen(function* () {
      // A claim sent with a settle is in flight (see `rider`): its end wakes the fetcher.
      if (draining || kinds.length === 0 || riding) return -1
      // Uninterruptible from claim to start: jobs a claim committed are always started or
      // buffered (and so drained or released at shutdown), never stranded under a stopped runner.
      yield* Effect.uninterruptible(startBuffered)
      if (riding) return -1
      const slots = Math.max(0, capacity - running.size)
      const room = slots + ahead - buffered()
      if (room <= 0 || buffered() > ahead / 2) return -1
      const limit = Math.min(room, config.claimBatchSize)
      // Set with the room it claims, before any other fiber runs: no claim rides a settle meanwhile.
      fetching = true
      const sentAt = clockService.unsafeCurrentTimeMillis()
      const seen = wakeups
      const sentNanos = clockService.unsafeCurrentTimeNanos()
      const jobs = yield* Effect.uninterruptible(
        Effect.tap(
          Effect.ensuring(
            store.claim(claimRequest(limit)),
            Effect.sync(() => {
              fetching = false
            })
          ),
          (claimed) => {
            hold(claimed, sentAt)
            return startBuffered
          }
        )
      )
      retarget(Number(clockService.unsafeCurrentTimeNanos() - sentNanos) / 1e6)
      short = jobs.length < limit
      emptyClaims = jobs.length === 0 ? emptyClaims + 1 : 0
      if (jobs.length > 0) lastTookAt = sentAt
      more = !short || wakeups !== seen
      const now = yield* clock
      if (!health.healthy) yield* Effect.logInfo("nightshift: the job store is reachable again")
      health = { ...health, healthy: true, lastClaimAt: now }
      if (jobs.length > 0) yield* Metrics.running(config.owner, running.size)
      // Under flow control a claim can come back short with more to take: it takes one
      // share of a global limit at a time. Claim again until one comes back empty.
      return jobs.length === limit || (config.flowLimited && jobs.length > 0) ? jobs.length : 0
    })

    /** Take a job out of the buffer and settle it as `reason` says; false when it is not there. */
    const unbuffer = (id: string, reason: InterruptReason) =>
      Effect.suspend(() => {
        const at = buffer.findIndex((b, i) => i >= head && b.job.id === id)
        if (at < 0) return Effect.succeed(false)
        const job = buffer[at]!.job
        buffer = buffer.slice(head).filter((b) => b.job !== job)
        head = 0
        const outcome = interruptedOutcome(reason)
        return Effect.as(
          outcome === undefined ? Effect.void : settler.offer({ job, outcome, durationMs: 0 }),
          true
        )
      })

    // A short claim under flow control may have been held back by running jobs: their settles
    // free places, so each written batch wakes the fetcher (the poll is the backstop).
    if (config.flowLimited)
      settler.onWritten(() => {
        if (short) hinted()
      })

    /**
     * Under flow control, after a short claim, the claim the settler sends
     * with its next batch (when the store can, `settleAndClaim`): it takes
     * the places that batch frees in the same round trip, instead of a
     * wake-up and a claim after the settle is written. Sized and handled as
     * the fetcher's claim; never while the fetcher's own claim is in flight
     * (and the fetcher does not claim while this one is), so the two never
     * claim the same room.
     */
    const rider = (): Rider | undefined => {
      if (!short || fetching || riding || draining || closed || runtime === undefined || kinds.length === 0)
        return undefined
      const slots = Math.max(0, capacity - running.size)
      const room = slots + ahead - buffered()
      if (room <= 0 || buffered() > ahead / 2) return undefined
      const limit = Math.min(room, config.claimBatchSize)
      const sentAt = clockService.unsafeCurrentTimeMillis()
      const sentNanos = clockService.unsafeCurrentTimeNanos()
      const seen = wakeups
      riding = true
      return {
        request: claimRequest(limit),
        done: (claimed) => {
          riding = false
          if (claimed === undefined) {
            // Not claimed: the batch is written alone, and its write wakes the fetcher as usual.
            signal.unsafeOffer(true)
            return
          }
          if (draining || closed || runtime === undefined) {
            // Stopping: what was claimed goes straight back, as the buffer does at a drain.
            for (const job of claimed)
              settler.unsafeOffer({ job, outcome: { _tag: "release" }, durationMs: 0 })
            return
          }
          hold(claimed, sentAt)
          const now = clockService.unsafeCurrentTimeMillis()
          retarget(Number(clockService.unsafeCurrentTimeNanos() - sentNanos) / 1e6)
          short = claimed.length < limit
          more = !short || wakeups !== seen
          if (claimed.length > 0) {
            emptyClaims = 0
            lastTookAt = sentAt
          }
          // Nothing claimed and nothing running: no settle of ours will wake the fetcher.
          else if (running.size === 0 && buffered() === 0) more = true
          health = { ...health, healthy: true, lastClaimAt: now }
          startNext(now)
          Metrics.unsafeRunning(config.owner, running.size)
          if (more) signal.unsafeOffer(true)
        }
      }
    }
    if (config.flowLimited) settler.claimWith(rider)

    // Idle, the fetcher waits for a signal: a wake-up hint, a finished attempt, or the poll
    // (a ticker beside the loop, so that waiting forks nothing and sets no timer).
    const waitForSignal = Queue.take(signal)
    const poll = Effect.forever(Effect.zipRight(Effect.sleep(config.pollIntervalMs), wake))

    // With an in-process store (memory, SQLite) every step of a drain completes synchronously
    // or on a microtask, so nothing ever returns to the event loop: timers (heartbeats, the
    // rescuer, the poll) and I/O (the admin API, metrics) would wait for the backlog to end.
    // The fetcher lets the event loop turn once every `breathMs` of wall time.
    let lastBreath = Date.now()
    const breathe: Effect.Effect<void> = Effect.suspend(() => {
      const now = Date.now()
      if (now - lastBreath < breathMs) return Effect.void
      lastBreath = now
      return macrotask
    })

    /**
     * The wait before claiming again after `n` empty claims in a row under
     * flow control: 5 ms doubling up to the poll interval; under a rate
     * limit, for the first `paceRetries`, until the pace span of this
     * runner's last claim that took jobs ends, or an eighth of a span.
     */
    const retryAfterEmpty = (n: number) => {
      const backoff = Math.min(config.pollIntervalMs, 5 * 2 ** Math.min(n - 1, 10))
      if (config.paceSpanMs === undefined || n > config.paceRetries) return backoff
      const spanEnds = (lastTookAt ?? 0) + config.paceSpanMs - clockService.unsafeCurrentTimeMillis()
      return spanEnds > 0
        ? Math.min(config.pollIntervalMs, spanEnds + 1)
        : Math.min(backoff, paceRetryMs(config.paceSpanMs))
    }

    // Back off on store errors: 100 ms doubling up to 5 s, reset on success.
    let failures = 0
    const step: Effect.Effect<void, never, R> = Effect.matchEffect(claimOnce, {
      onFailure: (e) =>
        Effect.zipRight(
          recordError(e),
          Effect.suspend(() => Effect.sleep(Math.min(5_000, 100 * 2 ** Math.min(failures++, 6))))
        ),
      onSuccess: (n) => {
        failures = 0
        const next =
          n > 0
            ? Effect.yieldNow() // a full batch: more may be waiting
            : config.flowLimited && emptyClaims > 0 && running.size === 0 && buffered() === 0
              ? Effect.race(waitForSignal, Effect.sleep(retryAfterEmpty(emptyClaims)))
              : waitForSignal
        return Effect.zipRight(breathe, next)
      }
    })
    // Not `Effect.forever`: it yields to the scheduler after every round, which put a wake-up's
    // claim behind every other ready fiber (0.15 ms of an idle runner's 0.3 ms from a memory
    // store's enqueue to the handler). A round that claimed a full batch yields above.
    const loop: Effect.Effect<never, never, R> = Effect.flatMap(step, () => loop)

    // While the fetcher is stopped (`leaderOnly` and not the leader), buffered jobs wait for it,
    // as they did when only the fetcher started them.
    const fetchLoop: Effect.Effect<never, never, R> = Effect.flatMap(Effect.runtime<R>(), (rt) => {
      runtime = rt
      return Effect.ensuring(
        Effect.zipRight(Effect.fork(poll), loop),
        Effect.sync(() => {
          runtime = undefined
        })
      )
    })

    const interrupt = (id: string, reason: InterruptReason) =>
      Effect.suspend(() => {
        const entry = running.get(id)
        const fiber = entry?.lane.fiber
        if (entry === undefined || fiber === undefined) return unbuffer(id, reason)
        if (entry.reason === undefined) entry.reason = reason
        return Effect.as(Fiber.interruptFork(fiber), true)
      })

    const heartbeat = Effect.gen(function* () {
      const settling = settler.held()
      const waiting = buffer.slice(head)
      if (running.size === 0 && waiting.length === 0 && settling.length === 0) return
      // Jobs whose outcome waits to be written keep their lease too: a stalled settle must not
      // let a finished job be rescued and run again.
      const leases = Array.from(running.values(), (r) => ({ id: r.job.id, fence: r.job.fence })).concat(
        waiting.map((b) => ({ id: b.job.id, fence: b.job.fence })),
        settling
      )
      const sentAt = yield* clock
      const statuses = yield* store.heartbeat(config.owner, leases, config.leaseMs)
      const renewed = new Map(waiting.map((b) => [b.job.id, b]))
      for (const s of statuses) {
        const b = renewed.get(s.id)
        if (b !== undefined && s.held) b.heldUntil = Math.max(b.heldUntil, sentAt + config.leaseMs)
        if (!s.held) yield* interrupt(s.id, "lost")
        else if (s.cancelRequested) yield* interrupt(s.id, "cancel")
      }
    }).pipe(Effect.catchAll(recordError))

    const ours = new Set(config.queues)
    const forUs = (hint: JobStore.Wakeup) =>
      hint._tag === "changed" || (hint._tag === "enqueued" && ours.has(hint.queue))
    // A store with the hook calls this listener as it publishes: the fetcher is woken without a
    // hop through the stream. Cancel requests (rare) go to a fiber of their own, so that nothing
    // subscribes to the stream and a wake-up hint costs no fiber but the fetcher's.
    const cancels: Array<string> = []
    const cancelRequested = Effect.unsafeMakeLatch(false)
    const direct = Hints.listenTo(store, (hint) => {
      if (hint._tag === "cancel") {
        cancels.push(hint.id)
        cancelRequested.unsafeOpen()
      } else if (forUs(hint)) hinted()
    })
    const cancelLoop = Effect.forever(
      Effect.zipRight(
        cancelRequested.await,
        Effect.suspend(() => {
          const ids = cancels.splice(0)
          cancelRequested.unsafeClose()
          return Effect.forEach(ids, (id) => interrupt(id, "cancel"), { discard: true })
        })
      )
    )
    const follow = store.wakeups.pipe(
      Stream.runForEach((hint) =>
        hint._tag === "cancel" ? interrupt(hint.id, "cancel") : forUs(hint) ? wake : Effect.void
      )
    )
    const listen = direct === undefined ? follow : Effect.scoped(Effect.zipRight(direct, cancelLoop))

    const drain = Effect.gen(function* () {
      draining = true
      // Jobs claimed ahead go straight back, without using up an attempt.
      const held = buffer.slice(head)
      buffer = []
      head = 0
      for (const b of held) yield* settler.offer({ job: b.job, outcome: { _tag: "release" }, durationMs: 0 })
      const fibers = () => Array.from(lanes)
      // interruptible: drain runs as a finalizer, and the timeout must be able to stop the wait
      const done = yield* Effect.interruptible(Fiber.awaitAll(fibers())).pipe(
        Effect.timeoutOption(Duration.millis(config.shutdownTimeoutMs)),
        Effect.map(Option.isSome)
      )
      if (!done) {
        yield* Effect.logWarning(
          `nightshift: ${running.size} job(s) still running after the shutdown timeout; releasing them to the queue`
        )
        for (const id of Array.from(running.keys())) yield* interrupt(id, "shutdown")
        yield* Fiber.awaitAll(fibers())
      }
      const unwritten = yield* settler.flush(flushBudget)
      if (unwritten > 0) {
        yield* Effect.logWarning(
          `nightshift: the store did not take ${unwritten} job outcome(s) within ${Duration.format(flushBudget)} of shutdown; those jobs stay running until their lease expires, then the rescuer makes them available again (they may run twice)`
        )
      }
      draining = false
    })

    return {
      config,
      running: () => Array.from(running.values(), (r) => r.job),
      prefetched: buffered,
      capacity: () => capacity,
      setCapacity: (n) => {
        capacity = n
      },
      health: () => health,
      wake,
      fetchLoop,
      heartbeat,
      listen,
      interrupt,
      drain
    }
  })
