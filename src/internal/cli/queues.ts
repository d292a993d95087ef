/**
 * `nightshift queues list|pause|resume`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as JobQueue from "../../JobQueue.js"
import * as JobStore from "../../JobStore.js"
import { database, json, printJson, usageError, withStore } from "./common.js"
import { table } from "./format.js"

/** One queue: whether it is paused and how many jobs it holds per state. */
interface QueueRow {
  readonly queue: string
  readonly paused: boolean
  readonly counts: Record<JobStore.JobState, number>
}

const emptyCounts = (): Record<JobStore.JobState, number> =>
  Object.fromEntries(JobStore.JobState.literals.map((s) => [s, 0])) as Record<JobStore.JobState, number>

const rows = (counts: ReadonlyArray<JobStore.QueueCount>, paused: ReadonlyArray<string>) => {
  const byQueue = new Map<string, QueueRow>()
  const row = (queue: string) => {
    const existing = byQueue.get(queue)
    if (existing !== undefined) return existing
    const fresh = { queue, paused: paused.includes(queue), counts: emptyCounts() }
    byQueue.set(queue, fresh)
    return fresh
  }
  for (const c of counts) row(c.queue).counts[c.state] += c.count
  for (const queue of paused) row(queue)
  return Array.from(byQueue.values()).sort((a, b) => a.queue.localeCompare(b.queue))
}

const listTable = (queues: ReadonlyArray<QueueRow>) =>
  queues.length === 0
    ? "no queues yet (a queue appears with its first job)"
    : table(
        ["QUEUE", "PAUSED", ...JobStore.JobState.literals.map((s) => s.toUpperCase())],
        queues.map((q) => [
          q.queue,
          q.paused ? "yes" : "no",
          ...JobStore.JobState.literals.map((s) => String(q.counts[s]))
        ])
      )

const list = Command.make("list", { database, json }, (input) =>
  Effect.gen(function* () {
    const queues = yield* withStore(
      input.database,
      Effect.flatMap(JobStore.JobStore, (store) => Effect.zipWith(store.counts, store.paused, rows))
    )
    yield* input.json ? printJson(queues) : Console.log(listTable(queues))
  })
).pipe(Command.withDescription("Queues with their job counts per state, and which are paused."))

const queue = Args.text({ name: "queue" }).pipe(Args.withDescription("The queue's name."))

const toggle = (name: "pause" | "resume") =>
  Command.make(name, { queue, database, json }, (input) =>
    Effect.gen(function* () {
      if (!JobQueue.isValidName(input.queue)) {
        return yield* Effect.fail(
          usageError(`invalid queue name ${JSON.stringify(input.queue)}: use 1-128 of [A-Za-z0-9_.:-]`)
        )
      }
      yield* withStore(
        input.database,
        Effect.flatMap(JobStore.JobStore, (store) =>
          name === "pause" ? store.pause(input.queue) : store.resume(input.queue)
        )
      )
      yield* input.json
        ? printJson({ queue: input.queue, paused: name === "pause" })
        : Console.log(`queue ${input.queue} ${name === "pause" ? "paused" : "resumed"}`)
    })
  )

/** `nightshift queues …`. */
export const command = Command.make("queues").pipe(
  Command.withDescription("Inspect, pause and resume queues."),
  Command.withSubcommands([
    list,
    toggle("pause").pipe(
      Command.withDescription("Stop runners from claiming jobs of a queue (running jobs finish).")
    ),
    toggle("resume").pipe(Command.withDescription("Let runners claim jobs of a paused queue again."))
  ])
)
