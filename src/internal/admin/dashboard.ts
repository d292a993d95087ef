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
