/**
 * `nightshift jobs list|show|retry|cancel`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as JobStore from "../../JobStore.js"
import { database, failure, json, printJson, usageError, withStore } from "./common.js"
import { fields, indent, table, time } from "./format.js"

const lastError = (job: JobStore.JobRecord) => job.errors.at(-1)?.message ?? ""

const listTable = (page: JobStore.ListPage) =>
  page.jobs.length === 0
    ? "no jobs match"
    : table(
        ["ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "RUN AT", "LAST ERROR"],
        page.jobs.map((job) => [
          job.id,
          job.kind,
          job.queue,
          job.state,
          `${job.attempt}/${job.maxAttempts}`,
          time(job.runAt),
          lastError(job)
        ])
      ) + (page.nextCursor === null ? "" : `\n\nmore: add --cursor ${page.nextCursor}`)

const list = Command.make(
  "list",
  {
    state: Options.choice("state", JobStore.JobState.literals).pipe(
      Options.withDescription("Only jobs in this state (repeatable)."),
      Options.repeated
    ),
    kind: Options.text("kind").pipe(
      Options.withDescription("Only this kind (repeatable)."),
      Options.repeated
    ),
    queue: Options.text("queue").pipe(
      Options.withDescription("Only this queue (repeatable)."),
      Options.repeated
    ),
    limit: Options.integer("limit").pipe(
      Options.withDescription("Jobs per page, newest first."),
      Options.withDefault(20)
    ),
    cursor: Options.text("cursor").pipe(
      Options.withDescription("Continue after the page that printed this cursor."),
      Options.optional
    ),
    database,
    json
  },
  (input) =>
    Effect.gen(function* () {
      const filter: JobStore.ListFilter = {
        states: input.state.length > 0 ? input.state : undefined,
        kinds: input.kind.length > 0 ? input.kind : undefined,
        queues: input.queue.length > 0 ? input.queue : undefined,
        limit: input.limit,
        cursor: Option.getOrUndefined(input.cursor)
      }
      if (!(input.limit >= 1 && input.limit <= 1000)) {
        return yield* Effect.fail(usageError("--limit must be from 1 to 1000"))
      }
      const page = yield* withStore(
        input.database,
        Effect.flatMap(JobStore.JobStore, (store) => store.list(filter))
      )
      yield* input.json ? printJson(page) : Console.log(listTable(page))
    })
).pipe(Command.withDescription("List jobs, newest first, with filters and pagination."))

const id = Args.text({ name: "id" }).pipe(Args.withDescription("The job's id."))

const notFound = (jobId: string) => failure(`no job with id ${jobId}`)

const showText = (job: JobStore.JobRecord) => {
  const lines = fields([
    ["id", job.id],
    ["kind", job.kind],
    ["queue", job.queue],
    ["state", job.state + (job.cancelRequested ? " (cancel requested)" : "")],
    ["attempt", `${job.attempt} of ${job.maxAttempts}`],
    ["priority", String(job.priority)],
    ["run at", time(job.runAt)],
    ["created", time(job.createdAt)],
    ["attempted", time(job.attemptedAt)],
    ["finalized", time(job.finalizedAt)],
    ["lease", job.leaseOwner === null ? "-" : `${job.leaseOwner} until ${time(job.leaseExpiresAt)}`],
    ["dedupe key", job.dedupeKey ?? "-"],
    ["payload", JSON.stringify(job.payload)]
  ])
  const errors = job.errors.map(
    (e) => `attempt ${e.attempt} at ${time(e.at)} (${e.kind}):\n${indent(e.message, "    ")}`
  )
  return errors.length === 0
    ? `${lines}\nerrors      none`
    : `${lines}\nerrors\n${indent(errors.join("\n"), "  ")}`
}

const show = Command.make("show", { id, database, json }, (input) =>
  Effect.gen(function* () {
    const job = yield* withStore(
      input.database,
      Effect.flatMap(JobStore.JobStore, (store) => store.get(input.id))
    )
    if (job === undefined) return yield* Effect.fail(notFound(input.id))
    yield* input.json ? printJson(job) : Console.log(showText(job))
  })
).pipe(Command.withDescription("Show one job with its attempts and every attempt's error."))

const retry = Command.make("retry", { id, database, json }, (input) =>
  Effect.gen(function* () {
    const result = yield* withStore(
      input.database,
      Effect.flatMap(JobStore.JobStore, (store) => store.retry(input.id))
    )
    if (input.json) yield* printJson(result)
    switch (result._tag) {
      case "retried":
        return input.json ? undefined : yield* Console.log(`job ${input.id} is available again`)
      case "not-retryable":
        return yield* Effect.fail(
          failure(
            `job ${input.id} is ${result.state}; only completed, discarded or cancelled jobs can be retried`
          )
        )
      case "not-found":
        return yield* Effect.fail(notFound(input.id))
    }
  })
).pipe(Command.withDescription("Make a completed, discarded or cancelled job available again."))

const cancel = Command.make("cancel", { id, database, json }, (input) =>
  Effect.gen(function* () {
    const result = yield* withStore(
      input.database,
      Effect.flatMap(JobStore.JobStore, (store) => store.cancel(input.id))
    )
    if (input.json) yield* printJson(result)
    switch (result._tag) {
      case "cancelled":
        return input.json ? undefined : yield* Console.log(`job ${input.id} cancelled`)
      case "requested":
        return input.json
          ? undefined
          : yield* Console.log(
              `job ${input.id} is running${result.owner === null ? "" : ` on ${result.owner}`}; it will be interrupted and end cancelled`
            )
      case "final":
        return yield* Effect.fail(
          failure(`job ${input.id} already finished (${result.state}); nothing to cancel`)
        )
      case "not-found":
        return yield* Effect.fail(notFound(input.id))
    }
  })
).pipe(Command.withDescription("Cancel a queued job, or interrupt a running one wherever it runs."))

/** `nightshift jobs …`. */
export const command = Command.make("jobs").pipe(
  Command.withDescription("Inspect and control jobs."),
  Command.withSubcommands([list, show, retry, cancel])
)
