/**
 * Entry point of a flow-control benchmark child (`npm run bench:flow`):
 * hosts Nightshift on one store (PostgreSQL, SQLite or memory) with the
 * flow-control kinds of bench/flowcontrol.ts, and answers the harness's
 * commands over IPC with the same framing as bench/contestants/child.ts
 * (so bench/lib/proc.ts drives it). Started as
 * `node flow.mjs '<ChildSpec JSON>'`; the spec's driver is one of the
 * `nightshift-*` drivers, and it names the store.
 *
 * Only the library's public API is used: `Job.make` with `partition`,
 * `concurrency` and `rateLimit`, `JobQueue.enqueueMany`/`enqueue`,
 * `JobRunner.layer(handlers, { concurrency })` with every other option at
 * its default, `JobStore.flowState` for the sampler and `JobQueue.list` for
 * the claim times.
 */
import { rmSync } from "node:fs"
import { createRequire } from "node:module"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Job from "../../src/Job.js"
import * as JobQueue from "../../src/JobQueue.js"
import * as JobRunner from "../../src/JobRunner.js"
import * as JobStore from "../../src/JobStore.js"
import { type FlowCommand, type FlowKind, type FlowReport, type FlowSample, slowJobMs } from "../lib/flow.js"
import type { ChildSpec, Message } from "../lib/protocol.js"
import { now } from "../lib/protocol.js"
import { type Engine, sqliteFile, storeLayer } from "./nightshift.js"

const Payload = Schema.Struct({ i: Schema.Number, t: Schema.Number, tenant: Schema.String })
const tenantOf = (p: typeof Payload.Type) => p.tenant

/** The kinds, one per variant, so a worker serves (and declares the limits of) exactly one. */
const kinds = {
  keyed: Job.make("flow_keyed", { payload: Payload, partition: tenantOf }),
  perPartition2: Job.make("flow_per_partition_2", {
    payload: Payload,
    partition: tenantOf,
    concurrency: { perPartition: 2 }
  }),
  global50: Job.make("flow_global_50", {
    payload: Payload,
    partition: tenantOf,
    concurrency: { global: 50 }
  }),
  global2000: Job.make("flow_global_2000", {
    payload: Payload,
    partition: tenantOf,
    concurrency: { global: 2000 }
  }),
  global50slow: Job.make("flow_global_50_slow", {
    payload: Payload,
    partition: tenantOf,
    concurrency: { global: 50 }
  }),
  plain: Job.make("flow_plain", { payload: Payload }),
  rate100: Job.make("flow_rate_100", { payload: Payload, rateLimit: { limit: 100, per: "1 second" } })
} satisfies Record<FlowKind, unknown>

const engineOf = (spec: ChildSpec): Engine =>
  spec.driver === "nightshift-pg" ? "pg" : spec.driver === "nightshift-sqlite" ? "sqlite" : "memory"

const send = (message: Message) => process.send?.(message)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Handler starts per job index (count, first start, enqueue time) and progress notes. */
class Tally {
  counts = new Uint8Array(0)
  starts = new Float64Array(0)
  enqueued = new Float64Array(0)
  handled = 0
  private cpu: NodeJS.CpuUsage | undefined
  private timer: ReturnType<typeof setInterval> | undefined

  reset(n: number) {
    this.counts = new Uint8Array(n)
    this.starts = new Float64Array(n)
    this.enqueued = new Float64Array(n)
    this.handled = 0
    this.cpu = process.cpuUsage()
    let last = -1
    this.timer = setInterval(() => {
      if (this.handled !== last) send({ progress: (last = this.handled) })
    }, 10)
  }

  readonly onJob = (i: number, t: number) => {
    const at = now()
    this.handled++
    if (i < 0 || i >= this.counts.length) return
    if (this.counts[i]! < 255) this.counts[i]!++
    if (this.starts[i] === 0) {
      this.starts[i] = at
      this.enqueued[i] = t
    }
  }

  started(from: number, to: number) {
    let n = 0
    for (let i = from; i < to && i < this.counts.length; i++) if (this.counts[i]! > 0) n++
    return n
  }

  report(): FlowReport {
    clearInterval(this.timer)
    const cpu = process.cpuUsage(this.cpu)
    return {
      counts: Array.from(this.counts),
      starts: Array.from(this.starts),
      enqueued: Array.from(this.enqueued),
      cpuMs: (cpu.user + cpu.system) / 1000
    }
  }
}

/** Samples `flowState` (running jobs per kind and partition key, as the claims count them) until stopped. */
class Sampler {
  private running = false
  private done: Promise<void> = Promise.resolve()
  private sample: FlowSample = { samples: 0, maxRunning: 0, maxPerPartition: 0, errors: 0 }

  start(read: () => Promise<JobStore.FlowState>, everyMs: number) {
    this.running = true
    this.sample = { samples: 0, maxRunning: 0, maxPerPartition: 0, errors: 0 }
    this.done = (async () => {
      while (this.running) {
        try {
          const state = await read()
          let total = 0
          let perPartition = 0
          for (const g of state.running) {
            total += g.running
            if (g.partition !== null) perPartition = Math.max(perPartition, g.running)
          }
          this.sample = {
            samples: this.sample.samples + 1,
            maxRunning: Math.max(this.sample.maxRunning, total),
            maxPerPartition: Math.max(this.sample.maxPerPartition, perPartition),
            errors: this.sample.errors
          }
        } catch {
          this.sample = { ...this.sample, errors: this.sample.errors + 1 }
        }
        await sleep(everyMs)
      }
    })()
  }

  async stop(): Promise<FlowSample> {
    this.running = false
    await this.done
    return this.sample
  }
}

/**
 * `BENCH_FLOW_COUNT=1`: the worker's store calls, counted (claims, empty claims, jobs claimed,
 * settles, jobs settled, heartbeats, settles sent with a claim) and printed to stderr when the worker stops.
 */
const counting = process.env.BENCH_FLOW_COUNT === "1"
const counts = {
  claims: 0,
  emptyClaims: 0,
  claimed: 0,
  settles: 0,
  settled: 0,
  heartbeats: 0,
  /** `settleAndClaim` calls: a settle and a claim in one round trip. */
  settlesWithClaim: 0,
  /** Wall time in each kind of call, ms. */
  claimMs: 0,
  settleMs: 0,
  settleWithClaimMs: 0,
  /** Statements the pg driver sent (every one, BEGIN and COMMIT included), and their text's length. */
  pgQueries: 0,
  pgTextChars: 0
}
if (counting) {
  // The store's pg, as @effect/sql-pg resolves it (bench/node_modules has a copy of its own).
  const pg = createRequire(import.meta.resolve("@effect/sql-pg"))("pg") as {
    readonly Client: { readonly prototype: { query: (...args: Array<unknown>) => unknown } }
  }
  const Client = pg.Client.prototype
  const query = Client.query
  Client.query = function (this: unknown, ...args: Array<unknown>) {
    const q = args[0] as string | { text?: string }
    counts.pgQueries++
    counts.pgTextChars += (typeof q === "string" ? q : (q?.text ?? "")).length
    return query.apply(this, args)
  }
}
/** `effect`, its wall time added to `counts[key]` (ms). */
const timed = <A, E>(key: "claimMs" | "settleMs" | "settleWithClaimMs", effect: Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const t0 = performance.now()
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        counts[key] += performance.now() - t0
      })
    )
  })

const countingStore = Layer.effect(
  JobStore.JobStore,
  Effect.map(JobStore.JobStore, (store) => ({
    ...store,
    claim: (request: JobStore.ClaimRequest) =>
      Effect.tap(timed("claimMs", store.claim(request)), (jobs) => {
        counts.claims++
        counts.claimed += jobs.length
        if (jobs.length === 0) counts.emptyClaims++
      }),
    settle: (outcomes: Parameters<JobStore.Service["settle"]>[0]) =>
      Effect.tap(timed("settleMs", store.settle(outcomes)), () => {
        counts.settles++
        counts.settled += outcomes.length
      }),
    ...(store.settleAndClaim === undefined
      ? {}
      : {
          settleAndClaim: (
            outcomes: Parameters<JobStore.Service["settle"]>[0],
            request: JobStore.ClaimRequest
          ) =>
            Effect.tap(
              timed("settleWithClaimMs", store.settleAndClaim!(outcomes, request)),
              ({ claimed }) => {
                counts.settlesWithClaim++
                counts.settled += outcomes.length
                counts.claimed += claimed.length
                if (claimed.length === 0) counts.emptyClaims++
              }
            )
        }),
    heartbeat: (...args: Parameters<JobStore.Service["heartbeat"]>) =>
      Effect.tap(store.heartbeat(...args), () => {
        counts.heartbeats++
      })
  }))
)

const main = async () => {
  const spec = JSON.parse(process.argv[2]!) as ChildSpec
  const engine = engineOf(spec)
  const runtime = ManagedRuntime.make(JobQueue.layer.pipe(Layer.provideMerge(storeLayer(spec, engine))))
  const tally = new Tally()
  const sampler = new Sampler()
  let worker: Scope.CloseableScope | undefined

  const items = (kind: FlowKind, from: number, n: number, tenant: (i: number) => string) =>
    Array.from({ length: n }, (_, k) =>
      JobQueue.item(kinds[kind], { i: from + k, t: 0, tenant: tenant(from + k) })
    )

  const tenantFn = (spec: "mod1000" | "A" | "B") => (i: number) =>
    spec === "mod1000" ? `p${i % 1000}` : spec

  const handle = async (command: FlowCommand): Promise<unknown> => {
    switch (command.cmd) {
      case "clock":
        return now()
      case "setup":
        return runtime.runPromise(Effect.void)
      case "enqueue": {
        const t0 = now()
        // In chunks, so one statement never carries an unbounded number of rows.
        for (let from = command.from; from < command.from + command.n; from += 10_000) {
          const k = Math.min(10_000, command.from + command.n - from)
          await runtime.runPromise(
            Effect.asVoid(JobQueue.enqueueMany(items(command.kind, from, k, tenantFn(command.tenant))))
          )
        }
        return now() - t0
      }
      case "produce": {
        const kind = kinds[command.kind]
        const start = now()
        for (let k = 0; k < command.n; k++) {
          const due = start + (k * 1000) / command.perSecond
          const wait = due - now()
          if (wait > 0) await sleep(wait)
          await runtime.runPromise(
            Effect.asVoid(JobQueue.enqueue(kind, { i: command.from + k, t: now(), tenant: command.tenant }))
          )
        }
        return command.n
      }
      case "startWorker": {
        tally.reset(command.n)
        const kind = kinds[command.kind]
        return runtime.runPromise(
          Effect.gen(function* () {
            const scope = yield* Scope.make()
            const handlers = Job.handlers(
              Job.handle(kind, ({ i, t }: typeof Payload.Type) => {
                const started = Effect.sync(() => tally.onJob(i, t))
                return command.kind === "global50slow"
                  ? Effect.zipRight(started, Effect.sleep(slowJobMs))
                  : started
              })
            )
            const runner = JobRunner.layer(handlers, {
              concurrency: command.concurrency,
              ...(command.prefetch === undefined ? {} : { prefetch: command.prefetch })
            })
            yield* Layer.buildWithScope(counting ? runner.pipe(Layer.provide(countingStore)) : runner, scope)
            worker = scope
          })
        )
      }
      case "started":
        return tally.started(command.from, command.to)
      case "stopWorker": {
        if (worker !== undefined) {
          const scope = worker
          worker = undefined
          await runtime.runPromise(Scope.close(scope, Exit.void))
        }
        if (counting) console.error(`bench:flow worker ${process.pid}: ${JSON.stringify(counts)}`)
        return tally.report()
      }
      case "committed":
        return runtime.runPromise(
          Effect.map(JobQueue.JobQueue.pipe(Effect.flatMap((q) => q.counts)), (counts) =>
            counts.filter((c) => c.state === "completed").reduce((sum, c) => sum + c.count, 0)
          )
        )
      case "startSampler":
        sampler.start(
          () =>
            runtime.runPromise(Effect.flatMap(JobStore.JobStore, (store) => store.flowState({ due: false }))),
          command.everyMs
        )
        return null
      case "stopSampler":
        return sampler.stop()
      case "claimTimes":
        return runtime.runPromise(
          Effect.gen(function* () {
            const queue = yield* JobQueue.JobQueue
            const out: Array<readonly [number, number]> = []
            let cursor: string | null = null
            do {
              const page: JobStore.ListPage = yield* queue.list({
                kinds: [kinds[command.kind].name],
                limit: JobStore.maxListLimit,
                cursor
              })
              for (const job of page.jobs)
                if (job.attemptedAt !== null) out.push([(job.payload as { i: number }).i, job.attemptedAt])
              cursor = page.nextCursor
            } while (cursor !== null)
            return out
          })
        )
      case "teardown": {
        if (engine === "pg") {
          await runtime.runPromise(
            Effect.flatMap(Effect.serviceOption(SqlClient.SqlClient), (sql) =>
              Option.isSome(sql)
                ? sql.value`DROP SCHEMA IF EXISTS ${sql.value(spec.namespace)} CASCADE`
                : Effect.void
            )
          )
        }
        await runtime.dispose()
        if (engine === "sqlite") {
          for (const suffix of ["", "-wal", "-shm"]) rmSync(`${sqliteFile(spec)}${suffix}`, { force: true })
        }
        return null
      }
    }
  }

  process.on("message", (command: FlowCommand & { readonly id: number }) => {
    handle(command).then(
      (value) => send({ id: command.id, ok: true, value: value ?? null }),
      (error: unknown) =>
        send({
          id: command.id,
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error)
        })
    )
  })
  process.on("disconnect", () => process.exit(0))
  send({ id: 0, ok: true, value: "ready" })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
