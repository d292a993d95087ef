/** The queues view: jobs per state, pause/resume, flow-control limits and the busiest partitions. */

import { ruleWords } from "../../store/ruleWords.js"
import { act, api, on, post } from "./api.js"
import { coalesce, el, STATES, type View } from "./dom.js"
import type { QueueInfo, QueuesResponse } from "./types.js"

const head = el("tr", { id: "queue-head" }, el("th", {}, "Queue"))
const rows = el("tbody", { id: "queues" })
const partitions = el("tbody", { id: "partitions" })
const partitionsTable = el(
  "table",
  { "data-testid": "partitions", id: "partitions-table", hidden: true },
  el(
    "thead",
    {},
    el(
      "tr",
      {},
      ...["Queue", "Partition", "Running", "Due", "Throttled", "Waiting"].map((h) => el("th", {}, h))
    )
  ),
  partitions
)
const noPartitions = el(
  "p",
  { id: "no-partitions", class: "muted" },
  "No partition keys with running or due jobs."
)

const queueRow = (q: QueueInfo) =>
  el(
    "tr",
    { "data-testid": "queue-row", "data-name": q.name },
    el("td", {}, q.name),
    el("td", {}, q.paused ? "paused" : ""),
    ...STATES.map((s) => el("td", { "data-state": s }, q.counts[s])),
    el("td", { "data-testid": "throttled" }, q.flow.throttled),
    el(
      "td",
      { class: "muted", "data-testid": "limits" },
      ...q.flow.rules.map((rule) => el("div", {}, ruleWords(rule)))
    ),
    el(
      "td",
      {},
      el(
        "button",
        {
          onclick: () =>
            act("queue", async () => {
              await post(`queues/${encodeURIComponent(q.name)}${q.paused ? "/resume" : "/pause"}`)
              await load()
            })
        },
        q.paused ? "Resume" : "Pause"
      )
    )
  )

const load = async () => {
  const r = await api<QueuesResponse>("queues")
  head.replaceChildren(
    el("th", {}, "Queue"),
    el("th", {}, "Paused"),
    ...STATES.map((s) => el("th", {}, s)),
    el("th", {}, "throttled"),
    el("th", {}, "Limits"),
    el("th", {})
  )
  rows.replaceChildren(...r.queues.map(queueRow))
  const list: Array<HTMLTableRowElement> = []
  for (const q of r.queues) {
    for (const p of q.flow.partitions)
      list.push(
        el(
          "tr",
          { "data-testid": "partition-row", "data-queue": q.name, "data-partition": p.partition },
          el("td", {}, q.name),
          el("td", {}, p.partition),
          el("td", { "data-field": "running" }, p.running),
          el("td", { "data-field": "due" }, p.due),
          el("td", { "data-field": "throttled" }, p.throttled),
          el("td", { "data-field": "waiting" }, p.waiting ?? "")
        )
      )
    if (q.flow.keys > q.flow.partitions.length)
      list.push(
        el(
          "tr",
          {},
          el("td", {}, q.name),
          el(
            "td",
            { class: "muted", colspan: 5 },
            `and ${q.flow.keys - q.flow.partitions.length} more keys (GET queues/${q.name}/partitions)`
          )
        )
      )
  }
  partitions.replaceChildren(...list)
  partitionsTable.hidden = list.length === 0
  noPartitions.hidden = list.length > 0
}

// Counts change with every job event; reload at most every 150 ms.
on("job", coalesce(150, load))

export const view: View = {
  section: el(
    "section",
    { id: "v-queues", "aria-labelledby": "h-queues" },
    el("h2", { id: "h-queues" }, "Queues"),
    el("table", { "data-testid": "queues" }, el("thead", {}, head), rows),
    el("h3", {}, "Busiest partitions"),
    noPartitions,
    partitionsTable
  ),
  load
}
