/**
 * Workers and crews in five seconds of real time.
 *
 *   npx tsx examples/workers.ts
 *
 * Starts a crew with two periodic workers (one of them flaky, one gated), a
 * cron worker, a queue consumer fed by a producer, and a nested crew; prints
 * the status table once a second, forces one tick, and shuts down gracefully.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Crew from "../src/Crew.js"
import * as Worker from "../src/Worker.js"
import type * as WorkerStatus from "../src/WorkerStatus.js"

const program = Effect.gen(function* () {
  const orders = yield* Queue.bounded<number>(100)
  const nextOrder = yield* Ref.make(1)
  const open = yield* Ref.make(false)

  // A cron expression is parsed when the worker is defined: a typo is an error here, not at 3 a.m.
  const nightly = yield* Worker.cron(
    "nightly-report",
    "0 3 * * *",
    { tz: "Europe/Paris" },
    Console.log("report!")
  )

  const crew = Crew.make("shop", [
    Worker.periodic(
      "produce",
      { schedule: "300 millis" },
      Effect.flatMap(
        Ref.getAndUpdate(nextOrder, (n) => n + 1),
        (n) => Queue.offer(orders, n)
      )
    ),
    Worker.consumer("fulfil", orders, (n) => Effect.sleep(`${100 + (n % 3) * 100} millis`), {
      concurrency: 2
    }),
    Worker.periodic(
      "flaky-sync",
      { schedule: Schedule.spaced("700 millis"), timeout: "500 millis", initialJitter: "200 millis" },
      Effect.flatMap(Random.nextBoolean, (ok) => (ok ? Effect.void : Effect.fail("upstream said no")))
    ),
    Worker.periodic("gated", { schedule: "1 second", shouldRun: Ref.get(open) }, Effect.void),
    nightly,
    Crew.make("maintenance", [
      Worker.periodic("vacuum", { schedule: "2 seconds", runOnStart: true }, Effect.void)
    ])
  ])

  const handle = yield* Crew.start(crew)

  for (let second = 1; second <= 5; second++) {
    yield* Effect.sleep("1 second")
    if (second === 3) {
      yield* Ref.set(open, true)
      const outcome = yield* handle.tick("shop/gated")
      yield* Console.log(`forced tick of shop/gated: ${JSON.stringify(outcome)}`)
    }
    yield* Console.log(`\nafter ${second} s`)
    yield* Console.table((yield* handle.status).map(row))
  }
  yield* Console.log("\nshutting down (reverse start order)...")
})

const time = (ms: number | null) => (ms === null ? "" : new Date(ms).toISOString().slice(11, 23))

const row = (s: WorkerStatus.WorkerStatus) => ({
  name: s.name,
  kind: s.kind,
  state: s.state,
  schedule: s.schedule ?? "",
  runs: s.runs,
  ok: s.successes,
  failed: s.failures,
  skipped: s.skips,
  restarts: s.restarts,
  "next tick": time(s.nextTickAt),
  "last error": s.lastError?.split("\n")[0] ?? ""
})

NodeRuntime.runMain(Effect.scoped(program))
