import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as JobStore from "../../JobStore.js"
import type * as Nightshift from "../../Nightshift.js"
import type * as WorkerStatus from "../../WorkerStatus.js"

/** One check's result. */
export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string | null
}

const pass = (name: string): Check => ({ name, ok: true, detail: null })

const firstLine = (s: string) => {
  const line = s.split("\n", 1)[0] ?? ""
  return line.length > 300 ? `${line.slice(0, 300)}…` : line
}

const storeCheck = (store: JobStore.Service, timeout: Duration.Duration) =>
  store.ping.pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => ({ message: `no answer within ${Duration.format(timeout)}` })
    }),
    Effect.match({
      onFailure: (e): Check => ({
        name: "store",
        ok: false,
        detail: `${store.engine} store unreachable: ${firstLine(e.message)}`
      }),
      onSuccess: () => pass("store")
    })
  )

const runnerCheck = (app: Nightshift.Service) =>
  app.runner === undefined
    ? Effect.succeed<ReadonlyArray<Check>>([])
    : Effect.map(
        app.runner.status,
        (s): ReadonlyArray<Check> => [
          s.healthy
            ? pass("runner")
            : {
                name: "runner",
                ok: false,
                detail: `runner unhealthy: ${firstLine(s.lastError ?? "unknown error")}`
              }
        ]
      )

const scheduled: ReadonlyArray<WorkerStatus.State> = ["idle", "running"]

/**
 * A periodic worker is late when its next tick was due more than `lateAfter`
 * ago: its tick is stuck, or the process's timers do not fire.
 */
export const lateWorkers = (
  workers: ReadonlyArray<WorkerStatus.WorkerStatus>,
  now: number,
  lateAfterMs: number
): ReadonlyArray<Check> =>
  workers
    .filter((w) => w.kind === "periodic" && scheduled.includes(w.state) && w.nextTickAt !== null)
    .filter((w) => now - w.nextTickAt! > lateAfterMs)
    .map((w) => ({
      name: `worker:${w.name}`,
      ok: false,
      detail: `periodic worker "${w.name}" is ${Duration.format(Duration.millis(now - w.nextTickAt!))} late (tick due at ${new Date(w.nextTickAt!).toISOString()})`
    }))

/** Every readiness check, failing ones included. */
export const checks = (
  app: Nightshift.Service,
  store: JobStore.Service,
  options: { readonly lateAfter: Duration.Duration; readonly storeTimeout: Duration.Duration }
): Effect.Effect<ReadonlyArray<Check>> =>
  Effect.gen(function* () {
    const [store_, runner, workers, now] = yield* Effect.all(
      [storeCheck(store, options.storeTimeout), runnerCheck(app), app.crew.status, Clock.currentTimeMillis],
      { concurrency: "unbounded" }
    )
    const late = lateWorkers(workers, now, Duration.toMillis(options.lateAfter))
    return [store_, ...runner, late.length === 0 ? pass("workers") : undefined, ...late].filter(
      (c): c is Check => c !== undefined
    )
  })
