/**
 * The jobs view (`#/jobs`): filters (state, kind, queue, dedupe key, id
 * range, time range, payload path = value), the matching jobs newest first,
 * selection and bulk retry/cancel/delete (of the selected jobs, or of all
 * that match) behind a confirmation that says how many; enqueue; and one
 * job's detail at its own address (`#/jobs/<id>`): its fields, payload,
 * every attempt, and the actions that apply. Opening a job from a list puts
 * its address in the history without leaving the current route, so the
 * overview stays as it is; opening the address shows the jobs view with the
 * detail above the list.
 */
import { act, api, emit, on, post } from "./api.js"
import { $, el, firstLine, notice, STATES, stateCell, type View, when } from "./dom.js"
import type {
  AttemptError,
  BulkResponse,
  Enqueued,
  JobCount,
  JobDetail,
  JobPage,
  JobSummary,
  KindsResponse,
  RanNow
} from "./types.js"

let cursor: string | null = null
/** The job the detail shows, when the address names one. */
let openJob: string | null = null
/** The filters of the list as last applied (the query string of `GET /jobs`, without limit and cursor). */
let applied = new URLSearchParams()
/** Ids of the selected jobs (kept across reloads while they stay listed). */
const selected = new Set<string>()

const input = (id: string) => $<HTMLInputElement>(id)
const select = (id: string) => $<HTMLSelectElement>(id)

// ---- filters ---------------------------------------------------------------

const field = (label: string, control: HTMLElement) => el("label", {}, label, control)
const text = (id: string, placeholder = "", size = 10) =>
  el("input", { id, size, placeholder, autocomplete: "off" })

const filters = el(
  "form",
  {
    id: "filters",
    "data-testid": "filters",
    onsubmit: (ev) => {
      ev.preventDefault()
      act("jobs", async () => {
        applied = filterQuery()
        selected.clear()
        // On the jobs page the filters go into the address, so a search can be bookmarked or shared.
        if (hashPath() === "jobs") {
          const address = `#/jobs${applied.size > 0 ? `?${applied}` : ""}`
          if (location.hash !== address) history.replaceState(history.state, "", address)
        }
        await loadJobs(false)
      })
    }
  },
  field(
    "State",
    el(
      "select",
      { id: "f-state" },
      el("option", { value: "" }, "any"),
      ...STATES.map((s) => el("option", { value: s }, s))
    )
  ),
  field("Kind", el("select", { id: "f-kind" }, el("option", { value: "" }, "any"))),
  field("Queue", text("f-queue", "", 10)),
  field("Dedupe key", text("f-dedupe", "", 12)),
  field("ID from", text("f-id-from", "", 7)),
  field("ID to", text("f-id-to", "", 7)),
  el("span", { class: "break" }),
  field("Created from", el("input", { id: "f-created-from", type: "datetime-local", step: 1 })),
  field("Created before", el("input", { id: "f-created-to", type: "datetime-local", step: 1 })),
  field("Payload path", text("f-path", "tenantId", 12)),
  field("= value", text("f-value", "t-42", 12)),
  el("button", {}, "Filter"),
  el(
    "button",
    {
      type: "button",
      onclick: () => {
        for (const f of filters.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input, select"))
          f.value = ""
        filters.requestSubmit()
      }
    },
    "Clear"
  )
)

/** The address's path after `#/`, without its query. */
const hashPath = () => location.hash.replace(/^#\/?/, "").replace(/\?.*$/, "")

/** Epoch ms as a `datetime-local` value (local time, to the second). */
const toLocalInput = (ms: number) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000)
  return d.toISOString().slice(0, 19)
}

/**
 * Filters from the address (`#/jobs?state=discarded&payload=tenantId&value=t-42`):
 * into the form and applied. True when the address had any.
 */
const filtersFromAddress = (): boolean => {
  const at = location.hash.indexOf("?")
  if (at < 0) return false
  const q = new URLSearchParams(location.hash.slice(at + 1))
  const fields: ReadonlyArray<readonly [key: string, id: string]> = [
    ["state", "f-state"],
    ["kind", "f-kind"],
    ["queue", "f-queue"],
    ["dedupeKey", "f-dedupe"],
    ["idFrom", "f-id-from"],
    ["idTo", "f-id-to"],
    ["payload", "f-path"],
    ["value", "f-value"]
  ]
  for (const [key, id] of fields) {
    const control = $(id) as HTMLInputElement | HTMLSelectElement
    if (
      control instanceof HTMLSelectElement &&
      q.has(key) &&
      ![...control.options].some((o) => o.value === q.get(key))
    )
      control.append(el("option", { value: q.get(key)! }, q.get(key)!))
    control.value = q.get(key) ?? ""
  }
  for (const [key, id] of [
    ["createdFrom", "f-created-from"],
    ["createdTo", "f-created-to"]
  ] as const) {
    const ms = Number(q.get(key))
    input(id).value = q.has(key) && Number.isFinite(ms) ? toLocalInput(ms) : ""
  }
  applied = filterQuery()
  return true
}

/** A `datetime-local` value (local time) as epoch ms, or undefined. */
const localTime = (id: string): string | undefined => {
  const v = input(id).value
  if (!v) return undefined
  const ms = new Date(v).getTime()
  return Number.isFinite(ms) ? String(ms) : undefined
}

/** The filters as the list's query string. */
const filterQuery = () => {
  const q = new URLSearchParams()
  const set = (key: string, value: string | undefined) => {
    if (value !== undefined && value.trim() !== "") q.set(key, value.trim())
  }
  set("state", select("f-state").value)
  set("kind", select("f-kind").value)
  set("queue", input("f-queue").value)
  set("dedupeKey", input("f-dedupe").value)
  set("idFrom", input("f-id-from").value)
  set("idTo", input("f-id-to").value)
  set("createdFrom", localTime("f-created-from"))
  set("createdTo", localTime("f-created-to"))
  const path = input("f-path").value.trim()
  const value = input("f-value").value
  if (path || value.trim()) {
    q.set("payload", path)
    q.set("value", value)
  }
  return q
}

/** The applied filters as a bulk request's JSON filter. */
const bulkFilter = (): Record<string, unknown> => {
  const f: Record<string, unknown> = {}
  for (const [key, value] of applied) {
    if (key === "state" || key === "kind" || key === "queue") f[key] = [value]
    else if (key === "createdFrom" || key === "createdTo") f[key] = Number(value)
    else if (key === "payload") f.payload = { path: value, value: payloadValue(applied.get("value") ?? "") }
    else if (key !== "value") f[key] = value
  }
  return f
}

/** A payload value as the list reads it from the query string: JSON text of a scalar, else the text itself. */
const payloadValue = (s: string): unknown => {
  try {
    const v: unknown = JSON.parse(s)
    if (v === null || ["string", "number", "boolean"].includes(typeof v)) return v
  } catch {
    // text as it is
  }
  return s
}

// ---- the list --------------------------------------------------------------

const rows = el("tbody", { id: "jobs" })
const more = el(
  "button",
  { id: "more", hidden: true, onclick: () => act("jobs", () => loadJobs(true)) },
  "Older jobs"
)
const shown = el("span", { class: "muted", "data-testid": "shown" })
const all = el("input", {
  type: "checkbox",
  "aria-label": "Select every listed job",
  "data-testid": "select-page",
  onchange: () => {
    for (const box of rows.querySelectorAll<HTMLInputElement>("input[type=checkbox]")) {
      box.checked = all.checked
      if (all.checked) selected.add(box.value)
      else selected.delete(box.value)
    }
    bulkBar()
  }
})

/** A confirmation in a modal dialog (keyboard: Enter confirms, Escape cancels); true when confirmed. */
const confirmDialog = (message: string, confirmLabel: string): Promise<boolean> => {
  const dialog = el(
    "dialog",
    { "data-testid": "confirm", "aria-label": "Confirm" },
    el("p", { "data-testid": "confirm-message" }, message),
    el(
      "form",
      { method: "dialog" },
      el("button", { value: "cancel", "data-testid": "confirm-cancel" }, "Cancel"),
      el(
        "button",
        { value: "ok", class: "danger", "data-testid": "confirm-ok", autofocus: true },
        confirmLabel
      )
    )
  )
  document.body.append(dialog)
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok")
      dialog.remove()
    })
    // `method="dialog"` closes the dialog with the pressed button's value, without a request.
    dialog.querySelector("form")!.addEventListener("submit", (ev) => {
      ev.preventDefault()
      dialog.close((ev as SubmitEvent).submitter?.getAttribute("value") ?? "cancel")
    })
    dialog.showModal()
  })
}

const verbs = { retry: "Retry", cancel: "Cancel", delete: "Delete" } as const
type Action = keyof typeof verbs

const plural = (n: number, what = "job") => `${n.toLocaleString()} ${what}${n === 1 ? "" : "s"}`

/** What a bulk action did, in a sentence. */
const summary = (r: BulkResponse): string => {
  const done = { retry: "retried", cancel: "cancelled", delete: "deleted" }[r.action]
  const parts = [`${plural(r.changed)} ${done}`]
  if (r.requested > 0) parts.push(`${plural(r.requested, "running job")} asked to stop`)
  for (const s of r.skipped)
    parts.push(
      `${plural(s.count)} skipped (${s.reason === "state" ? `${s.state}` : s.reason === "dedupe" ? "another live job holds its dedupe key" : "not found"})`
    )
  if (r.nextCursor !== null) parts.push("more match: run it again for the rest")
  return `${parts.join("; ")}.`
}

const outcome = el("p", { class: "outcome", role: "status", "data-testid": "bulk-outcome" })

/** Run a bulk action on the selected jobs, after a confirmation that says how many. */
const bulkSelected = (action: Action) =>
  act(action, async () => {
    const ids = [...selected]
    if (ids.length === 0) return
    if (!(await confirmDialog(`${verbs[action]} ${plural(ids.length)} (selected)?`, verbs[action]))) return
    const r = await post<BulkResponse>(`jobs/bulk/${action}`, { ids })
    selected.clear()
    outcome.textContent = summary(r)
    await changed()
  })

/** Run a bulk action on every job the applied filters match, after counting them. */
const bulkMatching = (action: Action) =>
  act(action, async () => {
    const c = await api<JobCount>(`jobs/count?${applied}`)
    if (c.count === 0) {
      outcome.textContent = "No job matches the filters."
      return
    }
    const n = c.capped ? `more than ${plural(c.count)} (at most 100,000 at a time)` : plural(c.count)
    const message =
      applied.size === 0
        ? `${verbs[action]} every job, ${n}? No filter is applied.`
        : `${verbs[action]} ${n} that match the filters?`
    if (!(await confirmDialog(message, verbs[action]))) return
    const r = await post<BulkResponse>(`jobs/bulk/${action}`, { filter: bulkFilter() })
    selected.clear()
    outcome.textContent = summary(r)
    await changed()
  })

const bulkButtons = (scope: "selected" | "matching") =>
  (Object.keys(verbs) as Array<Action>).map((action) =>
    el(
      "button",
      {
        type: "button",
        class: action === "delete" ? "danger" : "",
        "data-testid": `bulk-${action}-${scope}`,
        onclick: () => (scope === "selected" ? bulkSelected(action) : bulkMatching(action))
      },
      verbs[action]
    )
  )

const selectedCount = el("span", { "data-testid": "selected-count" })
const selectedButtons = bulkButtons("selected")
const bar = el(
  "div",
  { class: "bulk", role: "group", "aria-label": "Bulk actions", "data-testid": "bulk" },
  el("span", {}, "Selected: ", selectedCount),
  ...selectedButtons,
  el("span", { class: "sep" }, "All that match the filters:"),
  ...bulkButtons("matching")
)

/** Update the bulk bar to the selection. */
const bulkBar = () => {
  selectedCount.textContent = String(selected.size)
  for (const b of selectedButtons) b.disabled = selected.size === 0
}

const jobActions = (j: JobSummary | JobDetail, where: "row" | "detail") => {
  const final = ["completed", "discarded", "cancelled"].includes(j.state)
  const button = (action: "retry" | "cancel" | "run", label: string) =>
    el(
      "button",
      {
        type: "button",
        "data-testid": action,
        onclick: (ev) => {
          ev.stopPropagation()
          act(action === "run" ? "run now" : action, async () => {
            if (action === "run") {
              const r = await post<RanNow>(`jobs/${j.id}/run`)
              notice(r.result === "due" ? `job ${j.id} was already due` : "")
            } else await post(`jobs/${j.id}/${action}`)
            await changed()
          })
        }
      },
      label
    )
  const runNow = where === "detail" && (j.state === "scheduled" || j.state === "retryable")
  return [
    final ? button("retry", "Retry") : button("cancel", "Cancel"),
    runNow ? button("run", "Run now") : ""
  ]
}

const jobRow = (j: JobSummary) => {
  const box = el("input", {
    type: "checkbox",
    value: j.id,
    "aria-label": `Select job ${j.id}`,
    "data-testid": "select",
    onclick: (ev) => ev.stopPropagation(),
    onchange: (ev) => {
      if ((ev.target as HTMLInputElement).checked) selected.add(j.id)
      else selected.delete(j.id)
      bulkBar()
    }
  })
  box.checked = selected.has(j.id)
  return el(
    "tr",
    {
      class: "job",
      "data-testid": "job-row",
      "data-id": j.id,
      "data-state": j.state,
      onclick: () => openJobHere(j.id)
    },
    el("td", {}, box),
    el(
      "td",
      {},
      el(
        "a",
        {
          href: `#/jobs/${encodeURIComponent(j.id)}`,
          onclick: (ev) => {
            ev.stopPropagation()
            const click = ev as MouseEvent
            // A new tab or window: let the browser follow the link.
            if (click.ctrlKey || click.metaKey || click.shiftKey || click.button !== 0) return
            ev.preventDefault()
            openJobHere(j.id)
          }
        },
        j.id
      ),
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
    el("td", { class: "err clip" }, firstLine(j.lastError)),
    el("td", {}, ...jobActions(j, "row"))
  )
}

/** Bumped by every list load: an answer that a later load overtook is dropped. */
let listLoads = 0

const loadJobs = async (older: boolean) => {
  const q = new URLSearchParams(applied)
  q.set("limit", "50")
  if (older && cursor) q.set("cursor", cursor)
  const mine = ++listLoads
  const r = await api<JobPage>(`jobs?${q}`)
  if (mine !== listLoads) return
  cursor = r.nextCursor
  more.hidden = !cursor
  if (older) rows.append(...r.jobs.map(jobRow))
  else rows.replaceChildren(...r.jobs.map(jobRow))
  const listed = new Set(Array.from(rows.children, (tr) => (tr as HTMLElement).dataset.id ?? ""))
  for (const id of selected) if (!listed.has(id)) selected.delete(id)
  all.checked = false
  shown.textContent =
    rows.children.length === 0
      ? cursor
        ? "No match among the newest jobs searched: search older ones."
        : "No job matches."
      : `${plural(rows.children.length)} listed${cursor ? "" : ", all that match"}`
  more.textContent = rows.children.length === 0 ? "Search older jobs" : "Older jobs"
  bulkBar()
}

const loadKinds = async () => {
  const r = await api<KindsResponse>("kinds")
  const opts = () => r.kinds.map((k) => el("option", { value: k.name }, k.name))
  const current = select("f-kind").value
  select("e-kind").replaceChildren(...opts())
  select("f-kind").replaceChildren(el("option", { value: "" }, "any"), ...opts())
  select("f-kind").value = current
}

// ---- enqueue ---------------------------------------------------------------

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

// ---- one job ---------------------------------------------------------------

const detail = el("section", {
  id: "detail",
  hidden: true,
  "data-testid": "job-detail",
  "aria-labelledby": "h-job"
})

/** A duration in ms as text: "850 ms", "2.4 s", "3 min 5 s". */
const duration = (ms: number | null): string => {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return ""
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
}

/** An attempt as the detail lists it. */
interface Attempt {
  readonly attempt: number
  readonly startedAt: number | null
  readonly endedAt: number | null
  readonly node: string | null
  readonly outcome: string
  readonly error: string | null
}

/**
 * Every attempt the job records: one per stored error (failed, rescued,
 * cancelled), then the attempt that is running or that completed it (read
 * from the job itself: its start, finish and runner).
 */
const attempts = (j: JobDetail): Array<Attempt> => {
  const list: Array<Attempt> = j.errors.map((e: AttemptError) => ({
    attempt: e.attempt,
    startedAt: e.startedAt ?? null,
    endedAt: e.at,
    node: e.node ?? null,
    outcome: e.kind,
    error: e.message
  }))
  if (j.state === "running" || j.state === "completed")
    list.push({
      attempt: j.attempt,
      startedAt: j.attemptedAt,
      endedAt: j.state === "completed" ? j.finalizedAt : null,
      node: j.leaseOwner,
      outcome: j.state,
      error: null
    })
  return list
}

/** An error: its first line, and the rest (the stack, the rest of the Cause) folded. */
const errorCell = (message: string | null, key: number) => {
  if (message === null) return el("td", {})
  const [head = "", ...rest] = message.split("\n")
  return el(
    "td",
    { class: "err", "data-testid": "attempt-error" },
    rest.length === 0
      ? head
      : el(
          "details",
          { "data-key": `error-${key}` },
          el("summary", {}, head),
          el("pre", { class: "err", "data-testid": "stack" }, rest.join("\n"))
        )
  )
}

/** A table in a box that scrolls sideways on a narrow screen, so the page keeps its width. */
const scroll = (...args: Parameters<typeof el<"table">>) => el("div", { class: "scroll" }, el(...args))

const row = (label: string, value: Node | string, name: string) =>
  el("tr", {}, el("th", { scope: "row" }, label), el("td", { "data-field": name }, value))

/** Bumped by every detail load: an answer that a later load overtook is dropped. */
let detailLoads = 0

const showJob = async (id: string) => {
  let j: JobDetail
  const mine = ++detailLoads
  try {
    j = await api<JobDetail>(`jobs/${encodeURIComponent(id)}`)
  } catch (e) {
    if (openJob !== id || mine !== detailLoads) return
    detail.replaceChildren(
      el("h2", { id: "h-job" }, `Job ${id} `, closeButton()),
      el("p", { class: "err", "data-testid": "detail-error" }, e instanceof Error ? e.message : String(e))
    )
    return
  }
  if (openJob !== id || mine !== detailLoads) return
  const list = attempts(j)
  // A reload keeps what the reader opened or closed (the payload, a stack) as it was.
  const folds = new Map(
    Array.from(detail.querySelectorAll<HTMLDetailsElement>("details[data-key]"), (d) => [
      d.dataset.key,
      d.open
    ])
  )
  const same = detail.dataset.job === id
  detail.dataset.job = id
  detail.replaceChildren(
    el(
      "h2",
      { id: "h-job" },
      `Job ${j.id} `,
      el("span", { class: `state s-${j.state}` }, j.state),
      " ",
      closeButton()
    ),
    el("div", { class: "actions", "data-testid": "detail-actions" }, ...jobActions(j, "detail")),
    el(
      "table",
      { class: "fields" },
      el(
        "tbody",
        {},
        row("Kind", j.kind, "kind"),
        row("Queue", j.queue, "queue"),
        row("State", j.state, "state"),
        ...(j.waiting ? [row("Waiting", j.waiting, "waiting")] : []),
        row("Priority", String(j.priority), "priority"),
        row("Dedupe key", j.dedupeKey ?? "—", "dedupeKey"),
        row("Partition", j.partition ?? "—", "partition"),
        row("Attempt", `${j.attempt} of ${j.maxAttempts}`, "attempt"),
        row("Run at", when(j.runAt), "runAt"),
        row("Created", when(j.createdAt), "createdAt"),
        ...(j.finalizedAt !== null ? [row("Finished", when(j.finalizedAt), "finalizedAt")] : []),
        ...(j.cancelRequested ? [row("Cancel", "requested", "cancelRequested")] : []),
        row(
          "Trace",
          j.traceId === null ? "—" : `${j.traceId}${j.spanId ? ` (span ${j.spanId})` : ""}`,
          "trace"
        )
      )
    ),
    ...(j.problems
      ? [
          el("h3", {}, "Problems with this stored job"),
          el("ul", { class: "err", "data-testid": "problems" }, ...j.problems.map((p) => el("li", {}, p)))
        ]
      : []),
    el(
      "details",
      { open: true, "data-testid": "payload-box", "data-key": "payload" },
      el(
        "summary",
        {},
        "Payload ",
        el(
          "span",
          { class: "muted", "data-testid": "payload-note" },
          j.payloadRedacted
            ? "(secret fields, Schema.Redacted, are not shown)"
            : "(as stored: this app cannot decode it, so nothing is redacted)"
        )
      ),
      el("pre", { "data-testid": "payload" }, JSON.stringify(j.payload, null, 2))
    ),
    el("h3", {}, "Attempts"),
    list.length === 0
      ? el("p", { class: "muted" }, "Not started yet.")
      : scroll(
          "table",
          { "data-testid": "attempts" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ...["#", "Started", "Ended", "Took", "Node", "Outcome", "Error"].map((h) =>
                el("th", { scope: "col" }, h)
              )
            )
          ),
          el(
            "tbody",
            { "data-testid": "errors" },
            ...list.map((a, i) =>
              el(
                "tr",
                // A stored error is an "error"; the running or completing attempt, read from the job, is not.
                { "data-testid": a.error === null ? "attempt-current" : "error" },
                el("td", {}, String(a.attempt)),
                el("td", {}, when(a.startedAt)),
                el(
                  "td",
                  {},
                  a.endedAt === null ? (a.outcome === "running" ? "running…" : "") : when(a.endedAt)
                ),
                el("td", {}, duration(a.startedAt === null ? null : (a.endedAt ?? Date.now()) - a.startedAt)),
                el("td", {}, a.node ?? ""),
                el("td", { class: `state s-${a.outcome}` }, a.outcome),
                errorCell(a.error, i)
              )
            )
          )
        )
  )
  if (same)
    for (const d of detail.querySelectorAll<HTMLDetailsElement>("details[data-key]")) {
      const open = folds.get(d.dataset.key)
      if (open !== undefined) d.open = open
    }
}

const list = el(
  "div",
  { id: "jobs-list" },
  filters,
  el("details", {}, el("summary", {}, "Enqueue a job"), enqueue),
  bar,
  outcome,
  scroll(
    "table",
    { "data-testid": "jobs" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", {}, all),
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
        ].map((h) => el("th", { scope: "col" }, h))
      )
    ),
    rows
  ),
  el("p", {}, shown, " ", more)
)

/**
 * Run `f` 150 ms after a call, once for all the calls meanwhile. Unlike
 * `coalesce`, a call made while a run is under way schedules another run, so
 * what a change of this page did is always read after the change.
 */
const soon = (f: () => Promise<unknown>): (() => Promise<void>) => {
  let scheduled: Promise<void> | null = null
  return () =>
    (scheduled ??= new Promise((resolve) => setTimeout(resolve, 150))
      .then(() => {
        scheduled = null
        return f()
      })
      .then(
        () => undefined,
        () => undefined
      ))
}

const refresh = soon(() => Promise.all([loadJobs(false), openJob !== null ? showJob(openJob) : null]))
const refreshList = soon(() => loadJobs(false))

/** After this page changed a job: reload the jobs here, and tell the other views. */
const changed = () => {
  emit("job")
  return refresh()
}

// A job event reloads the list, and the detail only when it is about the job shown.
on<{ readonly id?: string } | undefined>("job", (event) =>
  event?.id === undefined || event.id === openJob ? refresh() : refreshList()
)

/** Show a job's detail above the list (and scroll to it). */
const openDetail = (id: string) => {
  openJob = id
  const first = detail.hidden
  detail.hidden = false
  detail.replaceChildren(el("p", { class: "muted" }, `Loading job ${id}…`))
  if (first) detail.scrollIntoView({ block: "nearest" })
  return act("job", () => showJob(id))
}

/**
 * Open a job from a list: its address goes into the history (so it can be
 * copied, and Back closes it) without a route change, so the views shown
 * stay as they are.
 */
const openJobHere = (id: string) => {
  const address = `#/jobs/${encodeURIComponent(id)}`
  if (location.hash !== address) history.pushState({ from: location.hash }, "", address)
  return openDetail(id)
}

const closeDetail = () => {
  openJob = null
  detail.hidden = true
  detail.replaceChildren()
  delete detail.dataset.job
}

/** Close the detail: back to the address it was opened from. */
const closeButton = () =>
  el(
    "button",
    {
      type: "button",
      "data-testid": "close-detail",
      onclick: () => {
        const from = (history.state as { from?: string } | null)?.from
        closeDetail()
        history.pushState(null, "", from ?? "#/jobs")
      }
    },
    "Close"
  )

// Back from an address this view pushed: show what that address shows.
window.addEventListener("popstate", () => {
  const [path, id] = hashPath().split("/")
  if (path === "jobs" && id) openDetail(decodeURIComponent(id))
  else closeDetail()
})

export const view: View = {
  section: el(
    "section",
    { id: "v-jobs", "aria-labelledby": "h-jobs" },
    el("h2", { id: "h-jobs" }, "Jobs"),
    detail,
    list
  ),
  load: () =>
    loadKinds().then(() => {
      filtersFromAddress()
      return refresh()
    }),
  show: (rest) => {
    if (rest[0]) return openDetail(rest[0])
    closeDetail()
    if (filtersFromAddress()) refreshList()
  }
}
