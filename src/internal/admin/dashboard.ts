import { createHash } from "node:crypto"

const style = `
:root { color-scheme: light dark; --muted: #888; --bad: #c0392b; --ok: #2e8b57; --warn: #b7791f; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 3rem; }
header { display: flex; gap: 1rem; align-items: baseline; border-bottom: 1px solid #8884; padding: .8rem 0; }
h1 { font-size: 1.3rem; margin: 0; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #8883; vertical-align: top; }
th { font-weight: 600; font-size: 12px; color: var(--muted); }
tr.job { cursor: pointer; } tr.job:hover { background: #8881; }
.state { font-weight: 600; } .s-failed, .s-discarded { color: var(--bad); } .s-running, .s-completed { color: var(--ok); }
.s-retryable, .s-backing-off { color: var(--warn); } .s-cancelled, .s-stopped { color: var(--muted); }
td.err, .err { color: var(--bad); font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; max-width: 40rem; }
pre { background: #8881; padding: .5rem; overflow: auto; max-height: 20rem; }
button { font: inherit; padding: .1rem .5rem; } td { white-space: nowrap; } form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; margin: .5rem 0; }
label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
#conn { font-size: 12px; } #conn.live { color: var(--ok); } #conn.down { color: var(--bad); }
#notice { color: var(--bad); min-height: 1.2em; } .muted { color: var(--muted); } [hidden] { display: none !important; }
`

const body = `
<header><h1>Nightshift</h1><span id="conn" data-testid="connection">connecting…</span><span id="notice" role="alert"></span></header>
<section id="auth" hidden data-testid="auth">
  <h2>Token required</h2>
  <form id="auth-form"><label>Admin token<input id="token" type="password" autocomplete="off" required></label><button>Use token</button></form>
</section>
<main id="main">
  <h2>Workers</h2>
  <div id="runner" class="muted" data-testid="runner"></div>
  <table data-testid="workers"><thead><tr><th>Name</th><th>Kind</th><th>State</th><th>Schedule</th><th>Next tick</th><th>Runs</th><th>Failures</th><th>Last error</th><th></th></tr></thead><tbody id="workers"></tbody></table>
  <h2>Queues</h2>
  <table data-testid="queues"><thead><tr id="queue-head"><th>Queue</th></tr></thead><tbody id="queues"></tbody></table>
  <h3>Busiest partitions</h3>
  <p id="no-partitions" class="muted">No partition keys with running or due jobs.</p>
  <table data-testid="partitions" id="partitions-table" hidden><thead><tr><th>Queue</th><th>Partition</th><th>Running</th><th>Due</th><th>Throttled</th><th>Waiting</th></tr></thead><tbody id="partitions"></tbody></table>
  <h2>Jobs</h2>
  <form id="filters" data-testid="filters">
    <label>State<select id="f-state"><option value="">any</option></select></label>
    <label>Kind<select id="f-kind"><option value="">any</option></select></label>
    <label>Queue<input id="f-queue" size="12"></label>
    <button>Filter</button>
  </form>
  <details><summary>Enqueue a job</summary>
    <form id="enqueue" data-testid="enqueue">
      <label>Kind<select id="e-kind" required></select></label>
      <label>Payload (JSON)<textarea id="e-payload" rows="2" cols="40">{}</textarea></label>
      <label>Delay<input id="e-delay" size="10" placeholder="e.g. 10 seconds"></label>
      <label>Partition<input id="e-partition" size="12" placeholder="optional key"></label>
      <button>Enqueue</button>
    </form>
  </details>
  <table data-testid="jobs"><thead><tr><th>ID</th><th>Kind</th><th>Queue</th><th>Partition</th><th>State</th><th>Waiting</th><th>Attempt</th><th>Run at</th><th>Last error</th><th></th></tr></thead><tbody id="jobs"></tbody></table>
  <button id="more" hidden>Older jobs</button>
  <section id="detail" hidden data-testid="job-detail"></section>
</main>
`

const script = `
"use strict";
const $ = (id) => document.getElementById(id);
const STATES = ["scheduled", "available", "running", "retryable", "completed", "discarded", "cancelled"];
const params = new URLSearchParams(location.search);
// The API lives beside the page, wherever the page is mounted ("/", "/ops/nightshift", ...).
const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
if (params.has("token")) {
  sessionStorage.setItem("nightshift-token", params.get("token"));
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.size ? "?" + params : "") + location.hash);
}
let token = sessionStorage.getItem("nightshift-token") || "";
const workers = new Map();
let cursor = null;
let openJob = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function when(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
const stateCell = (s) => el("td", { class: "state s-" + s.replace(/ /g, "-"), "data-testid": "state" }, s);
function notice(msg) { $("notice").textContent = msg || ""; }

class Unauthorized extends Error {}
async function api(path, init) {
  const headers = Object.assign({}, init && init.headers);
  if (token) headers.authorization = "Bearer " + token;
  const res = await fetch(base + path, Object.assign({}, init, { headers, cache: "no-store" }));
  if (res.status === 401) { showAuth(); throw new Unauthorized("unauthorized"); }
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error((body && body.message) || res.status + " " + res.statusText);
  return body;
}
const post = (path, payload) => api(path, payload === undefined ? { method: "POST" } :
  { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
async function act(label, f) {
  try { notice(""); await f(); } catch (e) { if (!(e instanceof Unauthorized)) notice(label + ": " + e.message); }
}

function showAuth() { $("auth").hidden = false; $("main").hidden = true; setConn("token required", "down"); }
$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("nightshift-token", token);
  $("auth").hidden = true; $("main").hidden = false;
  start();
});

function renderWorkers() {
  const rows = Array.from(workers.values()).map((w) => el("tr", { "data-testid": "worker-row", "data-name": w.name, "data-state": w.state },
    el("td", {}, w.name), el("td", {}, w.kind), stateCell(w.state), el("td", { class: "muted" }, w.schedule || ""),
    el("td", {}, when(w.nextTickAt)), el("td", {}, w.runs), el("td", {}, w.failures),
    el("td", { class: "err" }, (w.lastError || "").split("\\n")[0]),
    el("td", {},
      w.kind === "periodic" ? el("button", { "data-testid": "tick", onclick: () => act("tick", async () => {
        const r = await post("workers/" + encodeURIComponent(w.name) + "/tick");
        notice(w.name + ": " + r.outcome._tag + (r.outcome.error ? " " + r.outcome.error.split("\\n")[0] : ""));
      }) }, "Tick") : "",
      el("button", { "data-testid": "restart", onclick: () => act("restart", () => post("workers/" + encodeURIComponent(w.name) + "/restart")) }, "Restart"))));
  $("workers").replaceChildren(...rows);
}
async function loadWorkers() {
  const r = await api("workers");
  workers.clear();
  for (const w of r.workers) workers.set(w.name, w);
  renderWorkers();
  $("runner").textContent = r.runner ? "Runner " + r.runner.id + ": " + r.runner.running + "/" + r.runner.concurrency +
    " running on " + r.runner.queues.join(", ") + (r.runner.healthy ? "" : " — unhealthy: " + (r.runner.lastError || "")) : "No job runner in this process.";
}

function windowText(ms) {
  for (const [u, n] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]]) if (ms >= n && ms % n === 0) return ms / n + u;
  return ms + "ms";
}
function ruleText(r) {
  const parts = [];
  if (r.perPartition != null) parts.push(r.perPartition + " per partition");
  if (r.global != null) parts.push(r.global + " in all");
  if (r.rateLimit != null) parts.push(r.rateLimit + " starts per " + windowText(r.rateWindowMs || 0) + (r.rateByPartition ? " per partition" : ""));
  return r.scope + " " + r.name + ": " + (parts.length ? parts.join(", ") : "no limits");
}
async function loadQueues() {
  const r = await api("queues");
  $("queue-head").replaceChildren(el("th", {}, "Queue"), el("th", {}, "Paused"), ...STATES.map((s) => el("th", {}, s)),
    el("th", {}, "throttled"), el("th", {}, "Limits"), el("th", {}));
  $("queues").replaceChildren(...r.queues.map((q) => el("tr", { "data-testid": "queue-row", "data-name": q.name },
    el("td", {}, q.name), el("td", {}, q.paused ? "paused" : ""), ...STATES.map((s) => el("td", { "data-state": s }, q.counts[s])),
    el("td", { "data-testid": "throttled" }, q.flow.throttled),
    el("td", { class: "muted", "data-testid": "limits" }, ...q.flow.rules.map((rule) => el("div", {}, ruleText(rule)))),
    el("td", {}, el("button", { onclick: () => act("queue", async () => {
      await post("queues/" + encodeURIComponent(q.name) + (q.paused ? "/resume" : "/pause")); await loadQueues();
    }) }, q.paused ? "Resume" : "Pause")))));
  const rows = [];
  for (const q of r.queues) {
    for (const p of q.flow.partitions) rows.push(el("tr", { "data-testid": "partition-row", "data-queue": q.name, "data-partition": p.partition },
      el("td", {}, q.name), el("td", {}, p.partition), el("td", { "data-field": "running" }, p.running), el("td", { "data-field": "due" }, p.due),
      el("td", { "data-field": "throttled" }, p.throttled), el("td", { "data-field": "waiting" }, p.waiting || "")));
    if (q.flow.keys > q.flow.partitions.length) rows.push(el("tr", {}, el("td", {}, q.name),
      el("td", { class: "muted", colspan: "5" }, "and " + (q.flow.keys - q.flow.partitions.length) + " more keys (GET queues/" + q.name + "/partitions)")));
  }
  $("partitions").replaceChildren(...rows);
  $("partitions-table").hidden = rows.length === 0;
  $("no-partitions").hidden = rows.length > 0;
}

async function loadKinds() {
  const r = await api("kinds");
  const opts = () => r.kinds.map((k) => el("option", { value: k.name }, k.name));
  $("e-kind").replaceChildren(...opts());
  $("f-kind").replaceChildren(el("option", { value: "" }, "any"), ...opts());
}

function jobQuery() {
  const q = new URLSearchParams({ limit: "50" });
  if ($("f-state").value) q.set("state", $("f-state").value);
  if ($("f-kind").value) q.set("kind", $("f-kind").value);
  if ($("f-queue").value.trim()) q.set("queue", $("f-queue").value.trim());
  return q;
}
function jobActions(j) {
  const retry = ["completed", "discarded", "cancelled"].includes(j.state);
  const cancel = !retry;
  return [
    retry ? el("button", { "data-testid": "retry", onclick: (ev) => { ev.stopPropagation(); act("retry", () => post("jobs/" + j.id + "/retry").then(refresh)); } }, "Retry") : "",
    cancel ? el("button", { "data-testid": "cancel", onclick: (ev) => { ev.stopPropagation(); act("cancel", () => post("jobs/" + j.id + "/cancel").then(refresh)); } }, "Cancel") : ""
  ];
}
const jobRow = (j) => el("tr", { class: "job", "data-testid": "job-row", "data-id": j.id, "data-state": j.state, onclick: () => act("job", () => showJob(j.id)) },
  el("td", {}, j.id, j.problems ? el("span", { class: "err", "data-testid": "problems", title: j.problems.join("\\n") }, " ⚠") : ""), el("td", {}, j.kind), el("td", {}, j.queue),
  el("td", { "data-testid": "partition" }, j.partition || ""), stateCell(j.state), el("td", { class: "muted", "data-testid": "waiting" }, j.waiting || ""),
  el("td", { "data-testid": "attempt" }, j.attempt + "/" + j.maxAttempts), el("td", {}, when(j.runAt)),
  el("td", { class: "err" }, j.lastError || ""), el("td", {}, ...jobActions(j)));
async function loadJobs(more) {
  const q = jobQuery();
  if (more && cursor) q.set("cursor", cursor);
  const r = await api("jobs?" + q);
  cursor = r.nextCursor;
  $("more").hidden = !cursor;
  if (more) $("jobs").append(...r.jobs.map(jobRow)); else $("jobs").replaceChildren(...r.jobs.map(jobRow));
}
$("more").addEventListener("click", () => act("jobs", () => loadJobs(true)));
$("filters").addEventListener("submit", (ev) => { ev.preventDefault(); act("jobs", () => loadJobs(false)); });
$("enqueue").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("enqueue", async () => {
    let payload;
    try { payload = JSON.parse($("e-payload").value || "null"); } catch (e) { throw new Error("the payload is not valid JSON"); }
    const body = { kind: $("e-kind").value, payload };
    if ($("e-delay").value.trim()) body.delay = $("e-delay").value.trim();
    if ($("e-partition").value.trim()) body.partition = $("e-partition").value.trim();
    const r = await post("jobs", body);
    notice(r.deduped ? "folded into job " + r.id : "");
    await refresh();
  });
});

async function showJob(id) {
  const j = await api("jobs/" + encodeURIComponent(id));
  openJob = id;
  const fields = ["state", "waiting", "kind", "queue", "partition", "priority", "attempt", "maxAttempts", "dedupeKey", "leaseOwner", "cancelRequested"];
  $("detail").replaceChildren(
    el("h2", {}, "Job " + j.id, " ", el("button", { onclick: () => { openJob = null; $("detail").hidden = true; } }, "Close")),
    el("table", {}, el("tbody", {},
      ...fields.map((f) => el("tr", {}, el("th", {}, f), el("td", { "data-field": f }, j[f] == null ? "" : String(j[f])))),
      ...["runAt", "createdAt", "attemptedAt", "finalizedAt"].map((f) => el("tr", {}, el("th", {}, f), el("td", {}, when(j[f])))))),
    el("div", {}, ...jobActions(j)),
    ...(j.problems ? [el("h3", {}, "Problems with this stored job"),
      el("ul", { class: "err", "data-testid": "problems" }, ...j.problems.map((p) => el("li", {}, p)))] : []),
    el("h3", {}, "Payload"), el("pre", { "data-testid": "payload" }, JSON.stringify(j.payload, null, 2)),
    el("h3", {}, "Attempts and errors"),
    j.errors.length === 0 ? el("p", { class: "muted" }, "No errors.") :
      el("ol", { "data-testid": "errors" }, ...j.errors.map((e) => el("li", { "data-testid": "error" },
        "attempt " + e.attempt + " · " + e.kind + " · " + when(e.at), el("pre", { class: "err" }, e.message)))));
  const first = $("detail").hidden;
  $("detail").hidden = false;
  if (first) $("detail").scrollIntoView({ block: "nearest" });
}

let pending = null;
function refresh() {
  if (pending) return pending;
  pending = new Promise((resolve) => setTimeout(resolve, 150)).then(() =>
    Promise.all([loadJobs(false), loadQueues(), openJob ? showJob(openJob) : null])).catch(() => {}).finally(() => { pending = null; });
  return pending;
}

function setConn(text, cls) { $("conn").textContent = text; $("conn").className = cls || ""; }
function onFrame(frame) {
  let event = "message", data = "";
  for (const line of frame.split("\\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (event === "ready") { setConn("live", "live"); act("load", loadAll); }
  else if (event === "worker") { const w = JSON.parse(data); workers.set(w.name, w); renderWorkers(); }
  else if (event === "job") refresh();
}
async function listen() {
  for (;;) {
    try {
      const headers = token ? { authorization: "Bearer " + token } : {};
      const res = await fetch(base + "events", { headers, cache: "no-store" });
      if (res.status === 401) return showAuth();
      if (!res.ok || !res.body) throw new Error("events: " + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\\n\\n")) >= 0) { onFrame(buf.slice(0, i)); buf = buf.slice(i + 2); }
      }
    } catch (e) { /* reconnect below */ }
    setConn("reconnecting…", "down");
    await new Promise((r) => setTimeout(r, 2000));
  }
}
async function loadAll() { await Promise.all([loadWorkers(), loadQueues(), loadKinds().then(() => loadJobs(false))]); }
let started = false;
function start() { if (started) return act("load", loadAll); started = true; listen(); }
$("f-state").append(...STATES.map((s) => el("option", { value: s }, s)));
start();
`

/** The dashboard page: static, no data in it; everything is fetched with the token. */
export const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nightshift</title><link rel="icon" href="data:,"><style>${style}</style></head>
<body>${body}<script>${script}</script></body></html>
`

const hash = (s: string) => `'sha256-${createHash("sha256").update(s, "utf8").digest("base64")}'`

/** Security headers of the page: only its own inline script and style run, it talks only to this origin and cannot be framed. */
export const headers: Record<string, string> = {
  "content-security-policy": `default-src 'none'; script-src ${hash(script)}; style-src ${hash(style)}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store"
}
