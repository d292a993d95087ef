/**
 * An application's background work in one definition: its workers, job
 * handlers, cron jobs and runner options, run as one supervised crew.
 *
 * The same definition composes into an Effect application as a `Layer`
 * (`Nightshift.layer(app)`, given a `JobStore`), or runs standalone with
 * `nightshift run ./app.ts` when the module's default export is
 * `Nightshift.define(...)`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Crew from "./Crew.js"
import type * as CronJob from "./CronJob.js"
import * as Events from "./Events.js"
import type * as Job from "./Job.js"
import * as JobQueue from "./JobQueue.js"
import * as JobRunner from "./JobRunner.js"
import type * as JobStore from "./JobStore.js"
import type * as Worker from "./Worker.js"

/**
 * An application definition.
 *
 * @since 0.1.0
 */
export interface App<R = never> {
  /** Name of the top-level crew. Default `"nightshift"`. */
  readonly name?: string | undefined
  /** Periodic, long-running and consumer workers, and nested crews. */
  readonly workers?: ReadonlyArray<Worker.Worker<any, R>> | undefined
  /** Job handlers; the runner claims only these kinds. */
  readonly handlers?: Job.Handlers<R> | undefined
  /** Job kinds this app may enqueue by name (from the CLI or admin API) besides the handled ones. */
  readonly kinds?: ReadonlyArray<Job.Kind<string, any, any, never>> | undefined
  /** Cron jobs to enqueue. */
  readonly cron?: ReadonlyArray<CronJob.CronJob> | undefined
  /** Runner options, or `false` for a node that only produces jobs and runs workers. */
  readonly runner?: JobRunner.Options | false | undefined
}

/**
 * What `define` and `layer` accept: an `App` whose workers and handlers may
 * each need different services. `W` is the union of its workers, `R` what its
 * handlers need.
 *
 * @since 0.1.0
 */
export interface Definition<W extends Worker.Worker<any, any> = never, R = never>
  extends Omit<App<never>, "workers" | "handlers"> {
  readonly workers?: ReadonlyArray<W> | undefined
  readonly handlers?: Job.Handlers<R> | undefined
}

/**
 * Declare an application (identity, for type inference: the app needs the
 * union of what its workers and handlers need; `define<R>(...)` states it
 * instead). A module whose default export is an app runs with
 * `nightshift run <module>`.
 *
 * @since 0.1.0
 */
export const define: {
  <W extends Worker.Worker<any, any> = never, R = never>(
    app: Definition<W, R>
  ): App<Worker.Worker.Context<W> | R>
  <R>(app: App<R>): App<R>
} = (app: App<unknown>) => app

/**
 * The running application.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly app: App<any>
  /** The top-level crew: status table, forced ticks, restarts. */
  readonly crew: Crew.Handle
  /** The job runner, unless the app runs without one. */
  readonly runner: JobRunner.Service | undefined
  /** Job kinds known by name: handled kinds and `app.kinds`. */
  readonly kinds: ReadonlyMap<string, Job.Kind<string, any, any, never>>
}

/**
 * The `Nightshift` service tag.
 *
 * @since 0.1.0
 */
export class Nightshift extends Context.Tag("nightshift/Nightshift")<Nightshift, Service>() {}

const kindsOf = (app: App<any>) => {
  const kinds = new Map<string, Job.Kind<string, any, any, never>>()
  for (const h of app.handlers?.byKind.values() ?? [])
    kinds.set(h.kind.name, h.kind as Job.Kind<string, any, any, never>)
  for (const k of app.kinds ?? []) kinds.set(k.name, k)
  for (const c of app.cron ?? []) kinds.set(c.kind.name, c.kind)
  return kinds
}

const start = <R>(app: App<R>) =>
  Effect.gen(function* () {
    const handlers: Job.Handlers<R> = app.handlers ?? { _tag: "JobHandlers", byKind: new Map() }
    const runner =
      app.runner === false
        ? undefined
        : yield* JobRunner.make(handlers, {
            ...app.runner,
            cron: [...(app.runner?.cron ?? []), ...(app.cron ?? [])]
          })
    const workers = [...(app.workers ?? []), ...(runner === undefined ? [] : [runner.worker])]
    const crew = yield* Crew.start(Crew.make(app.name ?? "nightshift", workers))
    const service: Service = { app, crew, runner: runner?.service, kinds: kindsOf(app) }
    return Context.make(Nightshift, service).pipe(Context.add(Crew.Crew, crew))
  })

/**
 * Run an application in the layer's scope: its crew (workers and the job
 * runner) starts when the layer is built and shuts down gracefully when it
 * is released. Provides the producer (`JobQueue`), the event bus (`Events`),
 * the crew handle (`Crew.Crew`) and the `Nightshift` service; needs a
 * `JobStore` (MemoryStore, SqliteStore or PgStore layer) and whatever the
 * app's workers and handlers need.
 *
 * @since 0.1.0
 */
export const layer = <W extends Worker.Worker<any, any> = never, R = never>(
  app: Definition<W, R>
): Layer.Layer<
  Nightshift | Crew.Crew | JobQueue.JobQueue | Events.Events,
  JobRunner.InvalidRunnerOptions,
  | JobStore.JobStore
  | Exclude<Worker.Worker.Context<W> | R, JobQueue.JobQueue | Events.Events | Crew.Crew | Nightshift>
> =>
  Layer.scopedContext(
    start(app as App<any>) as Effect.Effect<
      Context.Context<Nightshift | Crew.Crew>,
      JobRunner.InvalidRunnerOptions,
      any
    >
  ).pipe(Layer.provideMerge(JobQueue.layer.pipe(Layer.provideMerge(Events.layer))))
