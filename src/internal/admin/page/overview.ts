/**
 * The overview: jobs completed, retried and discarded per second, queue
 * depth, and start-latency percentiles over a window (5 minutes to 24
 * hours), from the node's sampled history (`GET /overview`), kept live.
 */
import { act, api } from "./api.js"
import { Chart, type Series } from "./chart.js"
import { el, type View } from "./dom.js"
import type { Overview, OverviewPoint } from "./types.js"

const windows = ["5m", "15m", "1h", "6h", "24h"] as const
const windowMs: Record<(typeof windows)[number], number> = {
  "5m": 300_000,
  "15m": 900_000,
  "1h": 3_600_000,
  "6h": 21_600_000,
  "24h": 86_400_000
}
const depthStates = ["available", "scheduled", "running", "retryable"] as const

const windowSelect = el(
  "select",
  { id: "o-window", onchange: () => act("overview", reload) },
  ...windows.map((w) => el("option", { value: w, selected: w === "5m" }, w))
)
const stateSelect = el(
  "select",
  { id: "o-state", "aria-label": "Queue depth in state", onchange: () => render() },
  ...depthStates.map((s) => el("option", { value: s }, s))
)

const rate = (v: number) =>
  v === 0 ? "0/s" : v < 10 ? `${v.toFixed(v < 1 ? 2 : 1)}/s` : `${Math.round(v)}/s`
const count = (v: number) => (v >= 10_000 ? `${Math.round(v / 1000)}k` : String(Math.round(v)))
const duration = (ms: number) =>
  ms < 1000
    ? `${Math.round(ms)} ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${(ms / 60_000).toFixed(1)} min`

const throughput = new Chart("chart-throughput", "Jobs per second")
const depth = new Chart("chart-depth", "Queue depth", el("label", { class: "inline" }, "state ", stateSelect))
const latency = new Chart("chart-latency", "Start latency (run-at to start)")
const status = el("p", { class: "muted", "data-testid": "overview-status", "aria-live": "polite" })

let points: Array<OverviewPoint> = []
let queues: ReadonlyArray<string> = []
let now = Date.now()
let window: (typeof windows)[number] = "5m"
let poll: ReturnType<typeof setTimeout> | undefined
let lastFull = 0

const render = () => {
  const from = now - windowMs[window]
  const shown = points.filter((p) => p.at > from)
  const times = shown.map((p) => p.at)
  const line = (name: string, color: number, f: (p: OverviewPoint) => number | null): Series => ({
    name,
    color,
    values: shown.map(f)
  })
  throughput.update({
    times,
    from,
    to: now,
    format: rate,
    series: [
      line("completed", 1, (p) => p.completed),
      line("failed, retried", 2, (p) => p.retried),
      line("discarded", 3, (p) => p.discarded)
    ]
  })
  const state = stateSelect.value as (typeof depthStates)[number]
  depth.update({
    times,
    from,
    to: now,
    format: count,
    integer: true,
    series: queues.map((q, i) => line(q, (i % 9) + 1, (p) => p.depth[q]?.[state] ?? null))
  })
  latency.update({
    times,
    from,
    to: now,
    format: duration,
    series: [line("p50", 4, (p) => p.p50), line("p90", 5, (p) => p.p90), line("p99", 3, (p) => p.p99)]
  })
  const last = shown[shown.length - 1]
  status.textContent =
    last === undefined
      ? "No samples yet: the node samples the store every few seconds."
      : `${shown.length} points, one per ${duration(shownResolution)}; latest ${new Date(last.at).toLocaleTimeString()}`
}

let shownResolution = 5000
let intervalMs = 5000

/** Fetch the whole window. */
const reload = async () => {
  window = windowSelect.value as (typeof windows)[number]
  const r = await api<Overview>(`overview?window=${window}`)
  points = [...r.points]
  queues = r.queues
  now = r.now
  intervalMs = r.intervalMs
  shownResolution = r.resolutionMs
  lastFull = Date.now()
  render()
}

/** Fetch the points since the latest one (the whole window again every minute, when minutes close). */
const refresh = async () => {
  const last = points[points.length - 1]
  if (last === undefined || Date.now() - lastFull > 60_000) return reload()
  const r = await api<Overview>(`overview?window=${window}&after=${last.at}`)
  points = points.concat(r.points).filter((p) => p.at > r.now - windowMs[window])
  queues = r.queues
  now = r.now
  render()
}

const section = el(
  "section",
  { id: "v-overview", "aria-labelledby": "h-overview" },
  el(
    "div",
    { class: "overview-head" },
    el("h2", { id: "h-overview" }, "Overview"),
    el("label", { class: "inline" }, "Window ", windowSelect)
  ),
  el("div", { class: "charts" }, throughput.figure, depth.figure, latency.figure),
  status
)

/** Poll while the overview is on screen and the tab is visible. */
const schedule = () => {
  clearTimeout(poll)
  poll = setTimeout(
    () => {
      // offsetParent is null while the section or an ancestor (the token prompt hides main) is hidden.
      const visible = section.offsetParent !== null && document.visibilityState === "visible"
      ;(visible ? act("overview", refresh) : Promise.resolve()).finally(schedule)
    },
    Math.max(1000, intervalMs)
  )
}

export const view: View = {
  section,
  load: async () => {
    await reload()
    schedule()
  }
}
