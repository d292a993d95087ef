/**
 * The README quick start, runnable: `npx tsx examples/quickstart.ts`.
 * It is typechecked by `npm test`, so the README's code cannot rot.
 */
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Schedule, Schema } from "effect"
import { Job, JobQueue, Nightshift, Worker } from "nightshift"
import * as SqliteStore from "nightshift/SqliteStore"

// 1. Declare a job kind once; producers and consumers share it.
const SendEmail = Job.make("send_email", {
  payload: Schema.Struct({ to: Schema.String, subject: Schema.String }),
  retry: { maxAttempts: 5, backoff: Schedule.exponential("1 second") },
  timeout: "30 seconds"
})

// 2. Handle it. A typed failure retries with backoff; Job.Discard gives up now.
const handlers = Job.handlers(
  Job.handle(SendEmail, ({ to, subject }, job) =>
    to.endsWith("@example.invalid")
      ? Effect.fail(new Job.Discard({ reason: `no such domain for ${to}` }))
      : Console.log(`sending "${subject}" to ${to} (attempt ${job.attempt})`)
  )
)

// 3. Periodic and long-running workers, under supervision.
const heartbeat = Worker.periodic(
  "heartbeat",
  { schedule: "2 seconds", initialJitter: "500 millis" },
  Console.log("tick")
)

// 4. One app: workers, handlers and runner options.
const app = Nightshift.define({ workers: [heartbeat], handlers, runner: { concurrency: 10 } })

// 5. Enqueue from anywhere that has the JobQueue service (dedupe keys fold repeats).
const program = Effect.gen(function* () {
  yield* JobQueue.enqueue(
    SendEmail,
    { to: "ada@example.com", subject: "Welcome" },
    { dedupeKey: "welcome:ada" }
  )
  yield* JobQueue.enqueue(SendEmail, { to: "bob@example.invalid", subject: "Welcome" })
  yield* Effect.sleep("5 seconds")
})

// 6. Run it on the embedded SQLite store (PgStore.layerUrl(url) for PostgreSQL).
const store = SqliteStore.layer({ filename: join(tmpdir(), "quickstart.db") })
program.pipe(Effect.provide(Nightshift.layer(app).pipe(Layer.provide(store))), NodeRuntime.runMain)
