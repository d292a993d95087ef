/**
 * `nightshift queues list|pause|resume`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as JobQueue from "../../JobQueue.js"
import * as JobStore from "../../JobStore.js"
import * as FlowReport from "../store/flowReport.js"
import { ruleWords } from "../store/ruleWords.js"
import { database, json, printJson, usageError, withStore } from "./common.js"
import { table } from "./format.js"

/** One queue: whether it is paused, how many jobs it holds per state, and its flow control. */
export interface QueueRow {
  readonly queue: string
  readonly paused: boolean
  readonly counts: Record<JobStore.JobState, number>
  readonly flow: Omit<FlowReport.QueueFlow, "queue" | "paused">
}

const emptyCounts = (): Record<JobStore.JobState, number> =>
  Object.fromEntries(JobStore.JobState.literals.map((s) => [s, 0])) as Record<JobStore.JobState, number>

const rows = (
  counts: ReadonlyArray<JobStore.QueueCount>,
  paused: ReadonlyArray<string>,
  report: FlowReport.FlowReport
): Array<QueueRow> => {
  const byQueue = new Map<string, Record<JobStore.JobState, number>>()
  const row = (queue: string) => {
    let existing = byQueue.get(queue)
    if (existing === undefined) byQueue.set(queue, (existing = emptyCounts()))
    return existing
  }
  for (const c of counts) row(c.queue)[c.state] += c.count
  for (const queue of paused) row(queue)
  const flows = new Map(report.queues.map((f) => [f.queue, f]))
  for (const queue of flows.keys()) row(queue)
  return Array.from(byQueue, ([queue, counts]): QueueRow => {
    const flow = flows.get(queue)
    return {
      queue,
      paused: paused.includes(queue),
      counts,
      flow: FlowReport.flowOf(flow ?? FlowReport.emptyFlow(queue, false))
    }
  }).sort((a, b) => a.queue.localeCompare(b.queue))
}

/**
 * Every queue with its counts, pause state and flow control (its limits,
 * throttled jobs and at most `top` busiest partition keys), read from the
 * store in the context.
 */
export const queueRows = (
  top: number
): Effect.Effect<ReadonlyArray<QueueRow>, JobStore.JobStoreError, JobStore.JobStore> =>
  Effect.flatMap(JobStore.JobStore, (store) =>
    Effect.map(
      Effect.all([store.counts, store.paused, store.flowState({ due: true })]),
      ([counts, paused, state]) => rows(counts, paused, FlowReport.report(state, { top }))
    )
  )

/**
 * The text of `queues list`: the counts table, then the limits that hold
 * in each queue, then the busiest partition keys of every queue.
 */
export const listText = (queues: ReadonlyArray<QueueRow>): string => {
  if (queues.length === 0) return "no queues yet (a queue appears with its first job)"
  const out = [
    table(
      ["QUEUE", "PAUSED", ...JobStore.JobState.literals.map((s) => s.toUpperCase()), "THROTTLED"],
      queues.map((q) => [
        q.queue,
        q.paused ? "yes" : "no",
        ...JobStore.JobState.literals.map((s) => String(q.counts[s])),
        String(q.flow.throttled)
      ])
    )
  ]
  const limits = queues.filter((q) => q.flow.rules.length > 0)
  if (limits.length > 0) {
    out.push(
      `limits\n${limits
        .map((q) => `  ${q.queue}\n${q.flow.rules.map((r) => `    ${ruleWords(r)}`).join("\n")}`)
        .join("\n")}`
    )
  }
  const keyed = queues.filter((q) => q.flow.partitions.length > 0)
  if (keyed.length > 0) {
    const more = keyed
      .filter((q) => q.flow.keys > q.flow.partitions.length)
      .map(
        (q) => `${q.queue}: ${q.flow.keys - q.flow.partitions.length} more keys (--partitions N lists more)`
      )
    out.push(
      `busiest partitions\n${table(
        ["QUEUE", "PARTITION", "RUNNING", "DUE", "THROTTLED", "WAITING"],
        keyed.flatMap((q) =>
          q.flow.partitions.map((p) => [
            q.queue,
            p.partition,
            String(p.running),
            String(p.due),
            String(p.throttled),
            p.waiting ?? "-"
          ])
        )
      )}${more.length === 0 ? "" : `\n${more.join("\n")}`}`
    )
  }
  return out.join("\n\n")
}

const partitions = Options.integer("partitions").pipe(
  Options.withDescription(
    "Partition keys listed per queue, busiest first (most running, then most due); 0 lists none."
  ),
  Options.withDefault(FlowReport.defaultTop)
)

const list = Command.make("list", { partitions, database, json }, (input) =>
  Effect.gen(function* () {
    if (
      !(Number.isInteger(input.partitions) && input.partitions >= 0 && input.partitions <= FlowReport.maxTop)
    ) {
      return yield* Effect.fail(usageError(`--partitions must be from 0 to ${FlowReport.maxTop}`))
    }
    const queues = yield* withStore(input.database, queueRows(input.partitions))
    yield* input.json ? printJson(queues) : Console.log(listText(queues))
  })
).pipe(
  Command.withDescription(
    "Queues with their job counts per state, which are paused, their limits, throttled jobs and busiest partition keys."
  )
)

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
