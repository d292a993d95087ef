/** The jobs view: filters, enqueue, the newest jobs with retry/cancel, and one job's detail. */
import { act, api, emit, on, post } from "./api.js"
import { $, coalesce, el, notice, STATES, stateCell, type View, when } from "./dom.js"
import type { Enqueued, JobDetail, JobPage, JobSummary, KindsResponse } from "./types.js"

let cursor: string | null = null
let openJob: string | null = null

const input = (id: string) => $<HTMLInputElement>(id)
const select = (id: string) => $<HTMLSelectElement>(id)

const rows = el("tbody", { id: "jobs" })
const more = el(
  "button",
  { id: "more", hidden: true, onclick: () => act("jobs", () => loadJobs(true)) },
  "Older jobs"
)
const detail = el("section", { id: "detail", hidden: true, "data-testid": "job-detail" })

const filters = el(
  "form",
  {
    id: "filters",
    "data-testid": "filters",
    onsubmit: (ev) => {
      ev.preventDefault()
      act("jobs", () => loadJobs(false))
    }
  },
  el(
    "label",
    {},
    "State",
    el(
      "select",
      { id: "f-state" },
      el("option", { value: "" }, "any"),
      ...STATES.map((s) => el("option", { value: s }, s))
    )
  ),
  el("label", {}, "Kind", el("select", { id: "f-kind" }, el("option", { value: "" }, "any"))),
  el("label", {}, "Queue", el("input", { id: "f-queue", size: 12 })),
  el("button", {}, "Filter")
)

const enqueue = el(
  "form",
  {
    id: "enqueue",
    "data-testid": "enqueue",
    onsubmit: (ev) => {
      ev.preventDefault()
      act("enqueue", async () => {
        let payload: unknown
        try {
          payload = JSON.parse(input("e-payload").value || "null")
        } catch {
          throw new Error("the payload is not valid JSON")
        }
        const body: Record<string, unknown> = { kind: select("e-kind").value, payload }
        const delay = input("e-delay").value.trim()
        const partition = input("e-partition").value.trim()
        if (delay) body.delay = delay
        if (partition) body.partition = partition
        const r = await post<Enqueued>("jobs", body)
        notice(r.deduped ? `folded into job ${r.id}` : "")
        await changed()
      })
    }
  },
  el("label", {}, "Kind", el("select", { id: "e-kind", required: true })),
  el("label", {}, "Payload (JSON)", el("textarea", { id: "e-payload", rows: 2, cols: 40 }, "{}")),
  el("label", {}, "Delay", el("input", { id: "e-delay", size: 10, placeholder: "e.g. 10 seconds" })),
  el("label", {}, "Partition", el("input", { id: "e-partition", size: 12, placeholder: "optional key" })),
  el("button", {}, "Enqueue")
)

const jobQuery = () => {
  const q = new URLSearchParams({ limit: "50" })
  const state = select("f-state").value
  const kind = select("f-kind").value
  const queue = input("f-queue").value.trim()
  if (state) q.set("state", state)
  if (kind) q.set("kind", kind)
  if (queue) q.set("queue", queue)
  return q
}

const jobActions = (j: JobSummary | JobDetail) => {
  const retry = ["completed", "discarded", "cancelled"].includes(j.state)
  const button = (action: "retry" | "cancel", label: string) =>
    el(
      "button",
      {
        "data-testid": action,
        onclick: (ev) => {
          ev.stopPropagation()
          act(action, () => post(`jobs/${j.id}/${action}`).then(changed))
        }
      },
      label
    )
  return [retry ? button("retry", "Retry") : "", retry ? "" : button("cancel", "Cancel")]
}

const jobRow = (j: JobSummary) =>
  el(
    "tr",
    {
      class: "job",
      "data-testid": "job-row",
      "data-id": j.id,
      "data-state": j.state,
      onclick: () => act("job", () => showJob(j.id))
    },
    el(
      "td",
      {},
      j.id,
      j.problems
        ? el("span", { class: "err", "data-testid": "problems", title: j.problems.join("\n") }, " ⚠")
        : ""
    ),
    el("td", {}, j.kind),
    el("td", {}, j.queue),
    el("td", { "data-testid": "partition" }, j.partition ?? ""),
    stateCell(j.state),
    el("td", { class: "muted", "data-testid": "waiting" }, j.waiting ?? ""),
    el("td", { "data-testid": "attempt" }, `${j.attempt}/${j.maxAttempts}`),
    el("td", {}, when(j.runAt)),
    el("td", { class: "err" }, j.lastError ?? ""),
    el("td", {}, ...jobActions(j))
  )

const loadJobs = async (older: boolean) => {
  const q = jobQuery()
  if (older && cursor) q.set("cursor", cursor)
  const r = await api<JobPage>(`jobs?${q}`)
  cursor = r.nextCursor
  more.hidden = !cursor
  if (older) rows.append(...r.jobs.map(jobRow))
  else rows.replaceChildren(...r.jobs.map(jobRow))
}

const loadKinds = async () => {
  const r = await api<KindsResponse>("kinds")
  const opts = () => r.kinds.map((k) => el("option", { value: k.name }, k.name))
  select("e-kind").replaceChildren(...opts())
  select("f-kind").replaceChildren(el("option", { value: "" }, "any"), ...opts())
}

const fields = [
  "state",
  "waiting",
  "kind",
  "queue",
  "partition",
  "priority",
  "attempt",
  "maxAttempts",
  "dedupeKey",
  "leaseOwner",
  "cancelRequested"
] as const
const times = ["runAt", "createdAt", "attemptedAt", "finalizedAt"] as const

const showJob = async (id: string) => {
  const j = await api<JobDetail>(`jobs/${encodeURIComponent(id)}`)
  openJob = id
  detail.replaceChildren(
    el(
      "h2",
      {},
      `Job ${j.id}`,
      " ",
      el(
        "button",
        {
          onclick: () => {
            openJob = null
            detail.hidden = true
          }
        },
        "Close"
      )
    ),
    el(
      "table",
      {},
      el(
        "tbody",
        {},
        ...fields.map((f) =>
          el("tr", {}, el("th", {}, f), el("td", { "data-field": f }, j[f] == null ? "" : String(j[f])))
        ),
        ...times.map((f) => el("tr", {}, el("th", {}, f), el("td", {}, when(j[f]))))
      )
    ),
    el("div", {}, ...jobActions(j)),
    ...(j.problems
      ? [
          el("h3", {}, "Problems with this stored job"),
          el("ul", { class: "err", "data-testid": "problems" }, ...j.problems.map((p) => el("li", {}, p)))
        ]
      : []),
    el("h3", {}, "Payload"),
    el("pre", { "data-testid": "payload" }, JSON.stringify(j.payload, null, 2)),
    el("h3", {}, "Attempts and errors"),
    j.errors.length === 0
      ? el("p", { class: "muted" }, "No errors.")
      : el(
          "ol",
          { "data-testid": "errors" },
          ...j.errors.map((e) =>
            el(
              "li",
              { "data-testid": "error" },
              `attempt ${e.attempt} · ${e.kind} · ${when(e.at)}`,
              el("pre", { class: "err" }, e.message)
            )
          )
        )
  )
  const first = detail.hidden
  detail.hidden = false
  if (first) detail.scrollIntoView({ block: "nearest" })
}

const refresh = coalesce(150, () => Promise.all([loadJobs(false), openJob ? showJob(openJob) : null]))

/** After this page changed a job: reload the jobs here, and tell the other views. */
const changed = () => {
  emit("job")
  return refresh()
}

on("job", refresh)

export const view: View = {
  section: el(
    "section",
    { id: "v-jobs", "aria-labelledby": "h-jobs" },
    el("h2", { id: "h-jobs" }, "Jobs"),
    filters,
    el("details", {}, el("summary", {}, "Enqueue a job"), enqueue),
    el(
      "table",
      { "data-testid": "jobs" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...[
            "ID",
            "Kind",
            "Queue",
            "Partition",
            "State",
            "Waiting",
            "Attempt",
            "Run at",
            "Last error",
            ""
          ].map((h) => el("th", {}, h))
        )
      ),
      rows
    ),
    more,
    detail
  ),
  load: () => loadKinds().then(() => loadJobs(false)),
  show: (rest) => (rest[0] ? act("job", () => showJob(rest[0]!)) : undefined)
}
