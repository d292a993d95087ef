import { createHash } from "node:crypto"
import * as PageBundle from "./pageBundle.js"

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
nav { display: flex; gap: .8rem; } nav a[aria-current="page"] { font-weight: 600; text-decoration: none; }
#conn { font-size: 12px; } #conn.live { color: var(--ok); } #conn.down { color: var(--bad); }
#notice { color: var(--bad); min-height: 1.2em; } .muted { color: var(--muted); } [hidden] { display: none !important; }

:root { --c1: #23804d; --c2: #a86a12; --c3: #c0392b; --c4: #2f6fbf; --c5: #7b4fc0; --c6: #14868b; --c7: #b83c7c; --c8: #5f7020; --c9: #6b6b6b; }
@media (prefers-color-scheme: dark) {
  :root { --bad: #ff7b6e; --ok: #5cc98a; --warn: #e0a84a; --muted: #9a9a9a; --c1: #5cc98a; --c2: #e0a84a; --c3: #ff7b6e; --c4: #6aa8ff; --c5: #b99bff; --c6: #4fd1d6; --c7: #f07ab8; --c8: #b5c957; --c9: #b0b0b0; }
}
.c1 { --c: var(--c1); } .c2 { --c: var(--c2); } .c3 { --c: var(--c3); } .c4 { --c: var(--c4); } .c5 { --c: var(--c5); }
.c6 { --c: var(--c6); } .c7 { --c: var(--c7); } .c8 { --c: var(--c8); } .c9 { --c: var(--c9); }
.overview-head { display: flex; align-items: baseline; justify-content: space-between; gap: 1rem; flex-wrap: wrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: .8rem; }
figure.chart { margin: 0; border: 1px solid #8884; border-radius: 6px; padding: .5rem .6rem; min-width: 0; }
figcaption { display: flex; justify-content: space-between; align-items: center; gap: .5rem; flex-wrap: wrap; font-weight: 600; margin-bottom: .3rem; }
.plot { width: 100%; height: 150px; } .plot svg { display: block; overflow: visible; }
path.line { fill: none; stroke: var(--c); stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
line.grid { stroke: #8884; stroke-width: 1; } text.axis { font-size: 11px; fill: currentColor; opacity: .75; }
.legend { list-style: none; padding: 0; margin: .3rem 0 0; display: flex; flex-wrap: wrap; gap: .2rem .9rem; font-size: 12px; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; background: var(--c); margin-right: .3em; vertical-align: -.05em; }
label.inline { flex-direction: row; align-items: center; gap: .3rem; font-weight: normal; }
:focus-visible { outline: 2px solid var(--c4); outline-offset: 2px; }
@media (max-width: 640px) {
  body { margin: 0 .6rem 2rem; } header { flex-wrap: wrap; gap: .3rem .8rem; }
  table { display: block; overflow-x: auto; } textarea { max-width: 100%; }
}
ul.tree, ul.tree ul { list-style: none; margin: 0; padding: 0; } ul.tree ul { margin-left: .6rem; }
ul.tree li { position: relative; padding: .15rem 0 .15rem 1.1rem; } ul.tree > li { padding-left: 0; }
ul.tree ul > li::before { content: ""; position: absolute; left: 0; top: 0; bottom: 0; border-left: 1px solid #8888; }
ul.tree ul > li:last-child::before { bottom: auto; height: .95em; }
ul.tree ul > li::after { content: ""; position: absolute; left: 0; top: .95em; width: .8rem; border-top: 1px solid #8888; }
ul.tree .node { display: inline-flex; flex-wrap: wrap; gap: .1rem .4rem; align-items: baseline; }
.kind { font-size: 12px; border: 1px solid #8886; border-radius: 3px; padding: 0 .3rem; }
a:focus-visible, button:focus-visible, summary:focus-visible, input:focus-visible { outline: 2px solid Highlight; outline-offset: 2px; }
td.wrap { white-space: normal; } details.err summary { cursor: pointer; } details.err pre { color: inherit; max-height: 16rem; }
.o-success { color: var(--ok); } .o-failure, .o-timeout, .r-failed, .r-gave-up { color: var(--bad); } .o-skipped, .o-interrupted, .r-requested { color: var(--muted); } .r-exited { color: var(--warn); }
details.endpoint { border: 1px solid #8884; border-radius: 4px; margin: .3rem 0; }
details.endpoint > summary { cursor: pointer; padding: .35rem .5rem; list-style-position: inside; overflow-wrap: anywhere; }
details.endpoint[open] > summary { border-bottom: 1px solid #8884; }
.endpoint-body { padding: .2rem .8rem .6rem; } .endpoint-body h4 { margin: .8rem 0 .3rem; font-size: 13px; }
.method { display: inline-block; min-width: 3.6rem; text-align: center; font: 600 12px ui-monospace, monospace; border-radius: 3px; padding: .05rem .3rem; color: #fff; background: #666; }
.m-get { background: #2a6f97; } .m-post { background: #2e7d32; } .m-put, .m-patch { background: #b26a00; } .m-delete { background: #b3261e; }
code.path { font-size: 13px; } .summary { font-size: 13px; } pre.schema { font-size: 12px; max-height: none; }
.response { margin: .3rem 0 .6rem; } .ok { color: var(--ok); } .bad { color: var(--bad); }
#api-download { align-self: end; } button + button, a + button { margin-left: .4rem; }
@media (max-width: 640px) { body { margin: 0 .6rem 2rem; } header { flex-wrap: wrap; } .summary { display: none; } table { display: block; overflow-x: auto; } }
.bulk { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin: .5rem 0; } .bulk .sep { margin-left: 1rem; color: var(--muted); }
button.danger { color: var(--bad); } @media (prefers-color-scheme: dark) { button.danger { color: #ff8a7a; } } button:disabled { opacity: .5; } .outcome { min-height: 1.2em; margin: .2rem 0; }
#filters .break { flex-basis: 100%; height: 0; } .scroll { overflow-x: auto; } td.clip { max-width: 24rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#detail { border: 1px solid #8884; border-radius: 6px; padding: 0 1rem 1rem; margin: .5rem 0 1.5rem; }
#detail h2 { display: flex; gap: .6rem; align-items: baseline; } table.fields { width: auto; } table.fields th { min-width: 7rem; }
#detail td { white-space: normal; } #detail details summary { cursor: pointer; } #detail pre.err { margin: .3rem 0 0; }
dialog { border: 1px solid #8886; border-radius: 6px; padding: 1rem 1.2rem; } dialog form { justify-content: flex-end; }
`

const body = `
<header><h1>Nightshift</h1><nav id="nav" aria-label="Views"></nav><span id="conn" data-testid="connection">connecting…</span><span id="notice" role="alert"></span></header>
<section id="auth" hidden data-testid="auth">
  <h2>Token required</h2>
  <form id="auth-form"><label>Admin token<input id="token" type="password" autocomplete="off" required></label><button>Use token</button></form>
</section>
<main id="main"></main>
`

const hash = (s: string) => `'sha256-${createHash("sha256").update(s, "utf8").digest("base64")}'`

/** The page and its headers. */
export interface Page {
  /** Static, no data in it; everything is fetched with the token. */
  readonly html: string
  /** Security headers: only its own inline script and style run, it talks only to this origin and cannot be framed. */
  readonly headers: Record<string, string>
}

let page: Page | undefined

/**
 * The dashboard page, its script (the bundle of `page/*.ts`) inlined; made
 * on first use, so importing the admin modules reads no file.
 */
export const get = (): Page => {
  if (page !== undefined) return page
  const script = PageBundle.load(import.meta.url)
  page = {
    html: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nightshift</title><link rel="icon" href="data:,"><style>${style}</style></head>
<body>${body}<script>${script}</script></body></html>
`,
    headers: {
      "content-security-policy": `default-src 'none'; script-src ${hash(script)}; style-src ${hash(style)}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
      "cache-control": "no-store"
    }
  }
  return page
}
