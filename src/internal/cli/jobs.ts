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
import * as Render from "../admin/render.js"
import { isStorableText } from "../input.js"
import * as Flow from "../store/flow.js"
import { database, failure, json, printJson, usageError, withStore } from "./common.js"
import { fields, indent, table, time } from "./format.js"

type Detail = Render.Shown["detail"]

const lastError = (job: Detail) => job.errors.at(-1)?.message ?? ""

/** A page as shown: jobs read as far as they can be, and the ones that cannot be shown at all. */
interface ShownPage {
  readonly jobs: ReadonlyArray<Detail>
  readonly nextCursor: string | null
  readonly unreadable?: ReadonlyArray<{ readonly id: string; readonly problem: string }>
}

const showPage = (page: JobStore.ListPage): ShownPage => {
  const jobs: Array<Detail> = []
  const unreadable: Array<{ id: string; problem: string }> = []
  for (const job of page.jobs) {
    const shown = Render.show(job)
    if ("unreadable" in shown)
      unreadable.push({ id: String((job as { id?: unknown }).id), problem: shown.unreadable })
    else jobs.push(shown.detail)
  }
  return unreadable.length === 0
    ? { jobs, nextCursor: page.nextCursor }
    : { jobs, nextCursor: page.nextCursor, unreadable }
}

const notes = (page: ShownPage) => [
  ...page.jobs.flatMap((job) => (job.problems ?? []).map((p) => `job ${job.id}: ${p}`)),
  ...(page.unreadable ?? []).map((u) => `job ${u.id} cannot be shown: ${u.problem}`)
]

const listTable = (page: ShownPage) => {
  const body =
    page.jobs.length === 0 && page.unreadable === undefined
      ? "no jobs match"
      : table(
          ["ID", "KIND", "QUEUE", "PARTITION", "STATE", "WAITING", "ATTEMPT", "RUN AT", "LAST ERROR"],
          page.jobs.map((job) => [
            job.id,
            job.kind,
            job.queue,
            job.partition ?? "-",
            job.state,
            job.waiting ?? "-",
            `${job.attempt}/${job.maxAttempts}`,
            time(job.runAt),
            lastError(job)
          ])
        )
  const said = notes(page)
  return (
    body +
    (said.length === 0 ? "" : `\n\n${said.join("\n")}`) +
    (page.nextCursor === null ? "" : `\n\nmore: add --cursor ${page.nextCursor}`)
  )
}

/** A filter value no stored name can hold is a usage error, not a store failure. */
const checkFilter = (flag: string, values: ReadonlyArray<string>) => {
  const bad = values.find((v) => !isStorableText(v))
  return bad === undefined
    ? Effect.void
    : Effect.fail(
        usageError(
          `${flag} ${JSON.stringify(bad)} holds a NUL character or a lone surrogate, which no name can`
        )
      )
}

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
      yield* checkFilter("--kind", input.kind)
      yield* checkFilter("--queue", input.queue)
      yield* checkFilter("--cursor", Option.toArray(input.cursor))
      const page = yield* withStore(
        input.database,
        Effect.flatMap(JobStore.JobStore, (store) =>
          Effect.flatMap(store.list(filter), (page) =>
            Effect.map(Flow.withWaiting(store, page.jobs), (jobs) => ({ jobs, nextCursor: page.nextCursor }))
          )
        )
      )
      const shown = showPage(page)
      yield* input.json ? printJson(shown) : Console.log(listTable(shown))
    })
).pipe(Command.withDescription("List jobs, newest first, with filters and pagination."))

const id = Args.text({ name: "id" }).pipe(Args.withDescription("The job's id."))

const notFound = (jobId: string) => failure(`no job with id ${jobId}`)

const showText = (job: Detail) => {
  const lines = fields([
    ["id", job.id],
    ["kind", job.kind],
    ["queue", job.queue],
    ["state", job.state + (job.cancelRequested ? " (cancel requested)" : "")],
    ["waiting", job.waiting ?? "-"],
    ["attempt", `${job.attempt} of ${job.maxAttempts}`],
    ["priority", String(job.priority)],
    ["run at", time(job.runAt)],
    ["created", time(job.createdAt)],
    ["attempted", time(job.attemptedAt)],
    ["finalized", time(job.finalizedAt)],
    [
      "lease",
      job.leaseOwner === null
        ? "-"
        : job.state === "running"
          ? `${job.leaseOwner} until ${time(job.leaseExpiresAt)}`
          : `ended (last attempt ran on ${job.leaseOwner})`
    ],
    ["dedupe key", job.dedupeKey ?? "-"],
    ["partition", job.partition ?? "-"],
    ["payload", Render.safeJson(job.payload)]
  ])
  const errors = job.errors.map(
    (e) =>
      `attempt ${e.attempt} at ${time(e.at)} (${e.kind}${e.node == null ? "" : `, on ${e.node}`}${
        e.startedAt == null ? "" : `, after ${Math.max(0, e.at - e.startedAt)} ms`
      }):\n${indent(e.message, "    ")}`
  )
  const shown =
    errors.length === 0
      ? `${lines}\nerrors      none`
      : `${lines}\nerrors\n${indent(errors.join("\n"), "  ")}`
  return job.problems === undefined
    ? shown
    : `${shown}\nproblems (what could not be read, or does not add up)\n${indent(job.problems.join("\n"), "  ")}`
}

const show = Command.make("show", { id, database, json }, (input) =>
  Effect.gen(function* () {
    const job = yield* withStore(
      input.database,
      Effect.flatMap(JobStore.JobStore, (store) =>
        Effect.flatMap(store.get(input.id), (found) =>
          found === undefined
            ? Effect.succeed(undefined)
            : Effect.map(Flow.withWaiting(store, [found]), ([j]) => j)
        )
      )
    )
    if (job === undefined) return yield* Effect.fail(notFound(input.id))
    const shown = Render.show(job)
    if ("unreadable" in shown)
      return yield* Effect.fail(failure(`job ${input.id} cannot be shown: ${shown.unreadable}`))
    yield* input.json ? printJson(shown.detail) : Console.log(showText(shown.detail))
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
