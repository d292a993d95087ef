/** DOM helpers shared by the dashboard's views. */

/** The element with this id; the page's markup guarantees it exists. */
export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`the dashboard has no element #${id}`)
  return found as T
}

type Child = Node | string | number | null | undefined
type Attr = string | number | boolean | null | undefined | ((event: Event) => void)

/**
 * Create an element: `class` sets the class name, `on<event>` adds a listener,
 * other attributes are set unless null, undefined or false (true sets them empty).
 */
export const el = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Readonly<Record<string, Attr>> = {},
  ...children: ReadonlyArray<Child>
): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") e.addEventListener(k.slice(2), v)
    else if (k === "class") e.className = String(v)
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v))
  }
  for (const c of children)
    e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)))
  return e
}

/** A time: the time of day when it is today, else the date and time. */
export const when = (ms: number | null | undefined): string => {
  if (ms == null) return ""
  const d = new Date(ms)
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString()
}

/** A table cell showing a job's or worker's state, coloured by it. */
export const stateCell = (s: string): HTMLTableCellElement =>
  el("td", { class: `state s-${s.replace(/ /g, "-")}`, "data-testid": "state" }, s)

/** Show a message in the header (an error or an outcome); empty clears it. */
export const notice = (msg?: string): void => {
  $("notice").textContent = msg ?? ""
}

/** The first line of a text. */
export const firstLine = (s: string | null | undefined): string => (s ?? "").split("\n")[0] ?? ""

/** A job's states, in the order the tables show them. */
export const STATES = [
  "scheduled",
  "available",
  "running",
  "retryable",
  "completed",
  "discarded",
  "cancelled"
] as const

/**
 * One view (or part of a view) of the page: its section, built by its module,
 * and how it loads its data. `main.ts` shows it for the routes it belongs to.
 */
export interface View {
  /** The view's section; main.ts places it and hides it on other routes. */
  readonly section: HTMLElement
  /** Load (or reload) its data; called when the event stream (re)connects. */
  readonly load: () => Promise<void>
  /** Called when the route shows the view; `rest` is the hash path after the route, e.g. ["42"] for `#/jobs/42`. */
  readonly show?: (rest: ReadonlyArray<string>) => Promise<void> | void
}

/** Run `f` at most once per `ms`: calls meanwhile share the pending run. */
export const coalesce = (ms: number, f: () => Promise<unknown>): (() => Promise<void>) => {
  let pending: Promise<void> | null = null
  return () => {
    if (pending) return pending
    pending = new Promise((resolve) => setTimeout(resolve, ms))
      .then(f)
      .then(
        () => undefined,
        () => undefined
      )
      .finally(() => {
        pending = null
      })
    return pending
  }
}
