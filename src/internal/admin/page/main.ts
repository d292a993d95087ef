/**
 * The dashboard page's entry: the token prompt, the connection state, and
 * hash routing between views (`#/`, `#/jobs`, `#/jobs/42`, `#/queues`,
 * `#/workers`, `#/workers/<name>`, `#/api`). Bundled into one script at build time (see
 * `../pageBundle.ts`) and inlined into the page by `../dashboard.ts`.
 */
import { act, listen, on, setToken } from "./api.js"
import * as apiref from "./apiref.js"
import { $, el, type View } from "./dom.js"
import * as jobs from "./jobs.js"
import * as overview from "./overview.js"
import * as queues from "./queues.js"
import * as workers from "./workers.js"

/** A route: `#/<path>` (and `#/<path>/<rest>`) shows these views, in this order. */
interface Route {
  readonly path: string
  readonly label: string
  readonly views: ReadonlyArray<View>
}

const routes: ReadonlyArray<Route> = [
  { path: "", label: "Overview", views: [overview.view, workers.view, queues.view, jobs.view] },
  { path: "jobs", label: "Jobs", views: [jobs.view] },
  { path: "queues", label: "Queues", views: [queues.view] },
  { path: "workers", label: "Workers", views: [workers.view] },
  { path: "api", label: "API", views: [apiref.view] }
]

const views = Array.from(new Set(routes.flatMap((r) => r.views)))
const links = routes.map((r) => el("a", { href: `#/${r.path}`, "data-route": r.path }, r.label))

$("nav").replaceChildren(...links)
$("main").replaceChildren(...views.map((v) => v.section))

/** Show the views of the route in the address's hash; an unknown route shows the overview. */
const route = () => {
  // A query after the path (`#/jobs?state=failed`) belongs to the view, which reads it.
  const [path = "", ...rest] = location.hash
    .replace(/^#\/?/, "")
    .replace(/\?.*$/, "")
    .split("/")
    .map(decodeURIComponent)
  const current = routes.find((r) => r.path === path) ?? routes[0]!
  for (const v of views) v.section.hidden = !current.views.includes(v)
  for (const a of links) {
    if (a.dataset.route === current.path) a.setAttribute("aria-current", "page")
    else a.removeAttribute("aria-current")
  }
  for (const v of current.views) v.show?.(rest)
}

const setConn = (text: string, cls = "") => {
  const conn = $("conn")
  conn.textContent = text
  conn.className = cls
}

const showAuth = () => {
  $("auth").hidden = false
  $("main").hidden = true
  setConn("token required", "down")
}

const loadAll = () => Promise.all(views.map((v) => v.load()))

let started = false
const start = () => {
  if (started) return act("load", loadAll)
  started = true
  listen()
}

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault()
  setToken($<HTMLInputElement>("token").value.trim())
  $("auth").hidden = true
  $("main").hidden = false
  start()
})

on("unauthorized", showAuth)
on("down", () => setConn("reconnecting…", "down"))
on("ready", () => {
  setConn("live", "live")
  act("load", loadAll)
})

window.addEventListener("hashchange", route)
route()
start()
