/**
 * The workers view: every worker's state, with forced tick and restart, the
 * job runner's status, the supervision tree, and one worker's recent ticks
 * and restarts at `#/workers/<name>`.
 */
import { act, api, on, post } from "./api.js"
import { coalesce, el, firstLine, notice, stateCell, type View, when } from "./dom.js"
import type {
  TickOutcome,
  TickResponse,
  TreeNode,
  TreeResponse,
  WorkerHistory,
  WorkerStatus,
  WorkersResponse
} from "./types.js"

const workers = new Map<string, WorkerStatus>()
const rows = el("tbody", { id: "workers" })
const runner = el("div", { id: "runner", class: "muted", "data-testid": "runner" })

const path = (name: string, action: string) => `workers/${encodeURIComponent(name)}/${action}`

/** The address of a worker's history. */
const href = (name: string) => `#/workers/${encodeURIComponent(name)}`

/** The worker whose history is open, if any. */
let open: string | null = null

const tick = (name: string) =>
  act("tick", async () => {
    const r = await post<TickResponse>(path(name, "tick"))
    const o = r.outcome
    const detail = o._tag === "failure" ? ` ${firstLine(o.error)}` : ""
    notice(`${name}: ${o._tag}${detail}`)
    if (open === name) await loadHistory()
  })

const restart = (name: string) =>
  act("restart", async () => {
    await post(path(name, "restart"))
    if (open === name) await loadHistory()
  })

const actions = (w: WorkerStatus) =>
  el(
    "td",
    { class: "actions" },
    w.kind === "periodic"
      ? el("button", { "data-testid": "tick", type: "button", onclick: () => tick(w.name) }, "Tick")
      : "",
    el("button", { "data-testid": "restart", type: "button", onclick: () => restart(w.name) }, "Restart")
  )

const row = (w: WorkerStatus) =>
  el(
    "tr",
    { "data-testid": "worker-row", "data-name": w.name, "data-state": w.state },
    el("td", {}, el("a", { href: href(w.name), "data-testid": "worker-link" }, w.name)),
    el("td", {}, w.kind),
    stateCell(w.state),
    el("td", { class: "muted" }, w.schedule ?? ""),
    el("td", {}, when(w.nextTickAt)),
    el("td", {}, w.runs),
    el("td", {}, w.failures),
    el("td", { class: "err" }, firstLine(w.lastError)),
    actions(w)
  )

const render = () => rows.replaceChildren(...Array.from(workers.values(), row))

// ---- the supervision tree ---------------------------------------------------

let tree: ReadonlyArray<TreeNode> = []
const treeRoot = el("div", { id: "worker-tree", "data-testid": "worker-tree" })

const shortName = (name: string) => name.slice(name.lastIndexOf("/") + 1)

const policy = (n: TreeNode) =>
  n.restart === "temporary"
    ? "temporary"
    : `${n.restart}, ${n.maxRestarts} restarts in ${Math.round(n.restartWindowMs / 1000)} s, then ${n.onMaxRestarts}`

const treeItem = (n: TreeNode, top = false): HTMLLIElement => {
  const state = workers.get(n.name)?.state ?? n.state
  return el(
    "li",
    { "data-testid": "tree-node", "data-name": n.name, "data-kind": n.kind, "data-state": state },
    el(
      "span",
      { class: "node" },
      el("a", { href: href(n.name), title: n.name }, shortName(n.name)),
      " ",
      el("span", { class: "kind" }, n.kind),
      " ",
      el("span", { class: `state s-${state.replace(/ /g, "-")}` }, state),
      " ",
      // The started crew has no supervisor: a child's escalation stops the whole tree.
      el("span", { class: "muted" }, top && n.kind === "crew" ? "top of the tree" : policy(n))
    ),
    n.children.length === 0 ? "" : el("ul", {}, ...n.children.map((c) => treeItem(c)))
  )
}

const renderTree = () => {
  // The tree is drawn anew on every worker update: a link that had the keyboard's focus gets
  // it back in the new drawing, or focus would fall to the page between two key presses.
  const focused = document.activeElement
  const name =
    focused instanceof HTMLAnchorElement && treeRoot.contains(focused)
      ? focused.closest("li")?.getAttribute("data-name")
      : undefined
  treeRoot.replaceChildren(
    tree.length === 0
      ? el("p", { class: "muted" }, "No workers.")
      : el("ul", { class: "tree", "aria-label": "Supervision tree" }, ...tree.map((n) => treeItem(n, true)))
  )
  if (name == null) return
  for (const li of treeRoot.querySelectorAll("li")) {
    if (li.getAttribute("data-name") === name) {
      li.querySelector("a")?.focus()
      return
    }
  }
}

const loadTree = async () => {
  tree = (await api<TreeResponse>("workers/tree")).tree
  renderTree()
}

/** Reload the tree's shape at most once a second (workers come and go: dynamic children). */
const refreshTree = coalesce(1000, loadTree)

const known = (name: string, nodes: ReadonlyArray<TreeNode>): boolean =>
  nodes.some((n) => n.name === name || known(name, n.children))

// ---- one worker's history ---------------------------------------------------

const panel = el("section", {
  id: "worker-detail",
  "data-testid": "worker-detail",
  "aria-labelledby": "h-worker-detail",
  hidden: true
})

const ms = (n: number) => (Number.isInteger(n) || n >= 10 ? `${Math.round(n)} ms` : `${n.toFixed(1)} ms`)

/** The errors unfolded by the reader (by worker, record kind and time), kept open across live re-renders. */
const unfolded = new Set<string>()

/** A long text (a pretty cause): its first line, the rest folded; `key` names it in `unfolded`. */
const errorText = (text: string | null, testid: string, key: string) => {
  if (text === null || text === "") return ""
  const first = firstLine(text)
  if (text === first) return el("span", { class: "err", "data-testid": testid }, text)
  const details = el(
    "details",
    { class: "err", "data-testid": testid, open: unfolded.has(key) },
    el("summary", {}, first),
    el("pre", {}, text.slice(first.length + 1))
  )
  details.addEventListener("toggle", () => {
    if (details.open) unfolded.add(key)
    else unfolded.delete(key)
  })
  return details
}

const outcomeCell = (o: TickOutcome) =>
  el(
    "td",
    { "data-testid": "outcome", "data-outcome": o._tag },
    el("span", { class: `state o-${o._tag}` }, o._tag),
    o._tag === "skipped" ? el("span", { class: "muted" }, ` ${o.reason}`) : ""
  )

const historyTables = (h: WorkerHistory) => {
  const ticks =
    h.kind !== "periodic"
      ? ""
      : el(
          "div",
          {},
          el("h3", {}, "Recent ticks"),
          el(
            "p",
            { class: "muted" },
            h.ticks.length === 0
              ? "No ticks yet."
              : `The last ${h.ticks.length} of ${h.ticksRecorded}, newest first (${h.ticksKept} are kept).`
          ),
          h.ticks.length === 0
            ? ""
            : el(
                "table",
                { "data-testid": "ticks" },
                el(
                  "thead",
                  {},
                  el(
                    "tr",
                    {},
                    ...["Started", "Duration", "Outcome", "Error"].map((t) => el("th", { scope: "col" }, t))
                  )
                ),
                el(
                  "tbody",
                  {},
                  ...h.ticks.map((t) =>
                    el(
                      "tr",
                      { "data-testid": "tick-row", "data-outcome": t.outcome._tag },
                      el(
                        "td",
                        {},
                        when(t.startedAt),
                        t.forced ? el("span", { class: "muted" }, " (forced)") : ""
                      ),
                      el("td", {}, ms(t.durationMs)),
                      outcomeCell(t.outcome),
                      el(
                        "td",
                        { class: "wrap" },
                        errorText(
                          t.outcome._tag === "failure" ? t.outcome.error : null,
                          "tick-error",
                          `${h.name} tick ${t.startedAt}`
                        )
                      )
                    )
                  )
                )
              )
        )
  const restarts = el(
    "div",
    {},
    el("h3", {}, "Restarts"),
    h.restarts.length === 0
      ? el("p", { class: "muted", "data-testid": "no-restarts" }, "No restarts.")
      : el(
          "table",
          { "data-testid": "restarts" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ...["At", "Why", "Attempt", "Backoff", "Restarted at", "Error"].map((t) =>
                el("th", { scope: "col" }, t)
              )
            )
          ),
          el(
            "tbody",
            {},
            ...h.restarts.map((r) =>
              el(
                "tr",
                { "data-testid": "restart-row", "data-reason": r.reason },
                el("td", {}, when(r.at)),
                el("td", { class: `state r-${r.reason.replace(/ /g, "-")}` }, r.reason),
                el("td", {}, r.attempt),
                el("td", {}, r.backoffMs === null ? "—" : ms(r.backoffMs)),
                el("td", {}, r.restartAt === null ? "—" : when(r.restartAt)),
                el("td", { class: "wrap" }, errorText(r.error, "restart-error", `${h.name} restart ${r.at}`))
              )
            )
          )
        ),
    el("p", { class: "muted" }, `The last ${h.restartsKept} restarts are kept.`)
  )
  return [ticks, restarts]
}

const renderHistory = (h: WorkerHistory) => {
  const w = workers.get(h.name)
  panel.replaceChildren(
    el(
      "h2",
      { id: "h-worker-detail" },
      "Worker ",
      el("code", {}, h.name),
      " ",
      w
        ? el(
            "span",
            { class: `state s-${w.state.replace(/ /g, "-")}`, "data-testid": "detail-state" },
            w.state
          )
        : ""
    ),
    el(
      "p",
      {},
      el("a", { href: "#/workers" }, "← All workers"),
      " ",
      h.kind === "periodic"
        ? el(
            "button",
            { type: "button", "data-testid": "detail-tick", onclick: () => tick(h.name) },
            "Tick now"
          )
        : "",
      " ",
      el(
        "button",
        { type: "button", "data-testid": "detail-restart", onclick: () => restart(h.name) },
        "Restart"
      )
    ),
    w
      ? el(
          "p",
          { class: "muted" },
          `${w.kind}${w.schedule ? `, ${w.schedule}` : ""}; ${w.runs} runs, ${w.failures} failures`,
          w.nextTickAt ? `; next tick ${when(w.nextTickAt)}` : ""
        )
      : "",
    ...historyTables(h)
  )
}

const loadHistory = async () => {
  const name = open
  if (name === null) return
  try {
    const h = await api<WorkerHistory>(path(name, "history"))
    if (open === name) renderHistory(h)
  } catch (e) {
    if (open === name)
      panel.replaceChildren(
        el("h2", { id: "h-worker-detail" }, "Worker ", el("code", {}, name)),
        el("p", { class: "err" }, e instanceof Error ? e.message : String(e)),
        el("p", {}, el("a", { href: "#/workers" }, "← All workers"))
      )
  }
}

/** Reload the open history at most every 500 ms while its worker changes. */
const refreshHistory = coalesce(500, loadHistory)

// ---- loading and live updates -----------------------------------------------

const load = async () => {
  const [r] = await Promise.all([api<WorkersResponse>("workers"), loadTree()])
  workers.clear()
  for (const w of r.workers) workers.set(w.name, w)
  render()
  renderTree()
  const p = r.runner
  runner.textContent = p
    ? `Runner ${p.id}: ${p.running}/${p.concurrency} running on ${p.queues.join(", ")}` +
      (p.healthy ? "" : ` — unhealthy: ${p.lastError ?? ""}`)
    : "No job runner in this process."
  await loadHistory()
}

on<WorkerStatus>("worker", (w) => {
  workers.set(w.name, w)
  render()
  if (known(w.name, tree)) renderTree()
  else void refreshTree()
  if (w.name === open) void refreshHistory()
})

const head = ["Name", "Kind", "State", "Schedule", "Next tick", "Runs", "Failures", "Last error", ""]

const list = el(
  "div",
  {},
  el("h2", { id: "h-workers" }, "Workers"),
  runner,
  el(
    "table",
    { "data-testid": "workers" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    rows
  ),
  el("h3", {}, "Supervision tree"),
  treeRoot
)

export const view: View = {
  section: el("section", { id: "v-workers", "aria-label": "Workers" }, panel, list),
  load,
  show: (rest) => {
    const name = rest.length === 0 || rest[0] === "" ? null : rest.join("/")
    open = name
    panel.hidden = name === null
    list.hidden = name !== null
    if (name !== null) {
      panel.replaceChildren(
        el("h2", { id: "h-worker-detail" }, "Worker ", el("code", {}, name)),
        el("p", { class: "muted" }, "Loading…")
      )
      return loadHistory()
    }
  }
}
