/** The workers view: every worker's state, with forced tick and restart, and the job runner's status. */
import { act, api, on, post } from "./api.js"
import { el, firstLine, notice, stateCell, type View, when } from "./dom.js"
import type { TickResponse, WorkerStatus, WorkersResponse } from "./types.js"

const workers = new Map<string, WorkerStatus>()
const rows = el("tbody", { id: "workers" })
const runner = el("div", { id: "runner", class: "muted", "data-testid": "runner" })

const path = (w: WorkerStatus, action: string) => `workers/${encodeURIComponent(w.name)}/${action}`

const row = (w: WorkerStatus) =>
  el(
    "tr",
    { "data-testid": "worker-row", "data-name": w.name, "data-state": w.state },
    el("td", {}, w.name),
    el("td", {}, w.kind),
    stateCell(w.state),
    el("td", { class: "muted" }, w.schedule ?? ""),
    el("td", {}, when(w.nextTickAt)),
    el("td", {}, w.runs),
    el("td", {}, w.failures),
    el("td", { class: "err" }, firstLine(w.lastError)),
    el(
      "td",
      {},
      w.kind === "periodic"
        ? el(
            "button",
            {
              "data-testid": "tick",
              onclick: () =>
                act("tick", async () => {
                  const r = await post<TickResponse>(path(w, "tick"))
                  const o = r.outcome
                  const detail = o._tag === "failure" ? ` ${firstLine(o.error)}` : ""
                  notice(`${w.name}: ${o._tag}${detail}`)
                })
            },
            "Tick"
          )
        : "",
      el(
        "button",
        { "data-testid": "restart", onclick: () => act("restart", () => post(path(w, "restart"))) },
        "Restart"
      )
    )
  )

const render = () => rows.replaceChildren(...Array.from(workers.values(), row))

const load = async () => {
  const r = await api<WorkersResponse>("workers")
  workers.clear()
  for (const w of r.workers) workers.set(w.name, w)
  render()
  const p = r.runner
  runner.textContent = p
    ? `Runner ${p.id}: ${p.running}/${p.concurrency} running on ${p.queues.join(", ")}` +
      (p.healthy ? "" : ` — unhealthy: ${p.lastError ?? ""}`)
    : "No job runner in this process."
}

on<WorkerStatus>("worker", (w) => {
  workers.set(w.name, w)
  render()
})

const head = ["Name", "Kind", "State", "Schedule", "Next tick", "Runs", "Failures", "Last error", ""]

export const view: View = {
  section: el(
    "section",
    { id: "v-workers", "aria-labelledby": "h-workers" },
    el("h2", { id: "h-workers" }, "Workers"),
    runner,
    el(
      "table",
      { "data-testid": "workers" },
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
      rows
    )
  ),
  load
}
