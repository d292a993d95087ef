/**
 * Talking to the admin API: requests with the bearer token, relative to
 * wherever the page is mounted, and the live event stream.
 */
import { notice } from "./dom.js"

// The API lives beside the page, wherever the page is mounted ("/", "/ops/nightshift", ...).
const base = location.pathname.endsWith("/") ? location.pathname : `${location.pathname}/`

const tokenKey = "nightshift-token"

/** Take a `?token=` from the address into session storage, and out of the address bar and history. */
const params = new URLSearchParams(location.search)
const given = params.get("token")
if (given !== null) {
  sessionStorage.setItem(tokenKey, given)
  params.delete("token")
  history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : "") + location.hash)
}
let token = sessionStorage.getItem(tokenKey) ?? ""

/** Use this token from now on (and for the rest of the browser session). */
export const setToken = (value: string): void => {
  token = value
  sessionStorage.setItem(tokenKey, value)
}

/**
 * What happens on the connection, for the views to follow: `ready` (the
 * stream is up: load everything), `job` and `worker` (an event of the
 * stream, its JSON in `detail`), `down` (the stream dropped; reconnecting)
 * and `unauthorized` (a request was refused for want of a valid token).
 */
export const bus = new EventTarget()

/** Tell the views about something (a stream event, or a change this page made). */
export const emit = (type: string, detail?: unknown): void => {
  bus.dispatchEvent(new CustomEvent(type, { detail }))
}

/** Follow one kind of event; `detail` is the event's data, if any. */
export const on = <A = unknown>(type: string, f: (detail: A) => void): void => {
  bus.addEventListener(type, (e) => f((e as CustomEvent<A>).detail))
}

/** A request refused for want of a valid token; the page asks for one. */
export class Unauthorized extends Error {}

const authorization = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {})

/** Call the admin API at `path` (relative: "jobs?state=running"); the JSON (or text) answer, or the error's message. */
export const api = async <A = any>(path: string, init: RequestInit = {}): Promise<A> => {
  const headers = { ...(init.headers as Record<string, string> | undefined), ...authorization() }
  const res = await fetch(base + path, { ...init, headers, cache: "no-store" })
  if (res.status === 401) {
    emit("unauthorized")
    throw new Unauthorized("unauthorized")
  }
  const type = res.headers.get("content-type") ?? ""
  const body = type.includes("json") ? await res.json() : await res.text()
  if (!res.ok) throw new Error(body?.message ?? `${res.status} ${res.statusText}`)
  return body as A
}

/** POST to the admin API, with a JSON body when there is a payload. */
export const post = <A = any>(path: string, payload?: unknown): Promise<A> =>
  api<A>(
    path,
    payload === undefined
      ? { method: "POST" }
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) }
  )

/** Run an action of the user; a failure shows as `label: message` in the header. */
export const act = async (label: string, f: () => Promise<unknown>): Promise<void> => {
  try {
    notice("")
    await f()
  } catch (e) {
    if (!(e instanceof Unauthorized)) notice(`${label}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

const onFrame = (frame: string): void => {
  let event = "message"
  let data = ""
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim()
    else if (line.startsWith("data:")) data += line.slice(5).trim()
  }
  emit(event, data === "" ? undefined : JSON.parse(data))
}

/**
 * Read the server-sent event stream for as long as the page lives (fetch,
 * not EventSource, so the token goes in a header), reconnecting after 2
 * seconds when it drops; stops when the token is refused.
 */
export const listen = async (): Promise<void> => {
  for (;;) {
    try {
      const res = await fetch(`${base}events`, { headers: authorization(), cache: "no-store" })
      if (res.status === 401) return emit("unauthorized")
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`)
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ""
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let i = buf.indexOf("\n\n")
        while (i >= 0) {
          onFrame(buf.slice(0, i))
          buf = buf.slice(i + 2)
          i = buf.indexOf("\n\n")
        }
      }
    } catch {
      // reconnect below
    }
    emit("down")
    await new Promise((r) => setTimeout(r, 2000))
  }
}
