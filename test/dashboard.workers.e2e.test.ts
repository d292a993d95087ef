/**
 * End-to-end: the dashboard's workers views (tick and restart history, the
 * supervision tree) and its API reference, in headless Chromium against a
 * real admin server and a running app (real time: a browser cannot follow
 * TestClock). Screenshots go to the OS temp dir.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Admin from "nightshift/Admin"
import * as Crew from "nightshift/Crew"
import * as MemoryStore from "nightshift/MemoryStore"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchChromium } from "./setup/browser.js"

const token = "e2e-workers-token"
const shots = mkdtempSync(join(tmpdir(), "nightshift-dashboard-workers-"))

/** Fails every other tick, with a multi-line error. */
const calls = Effect.runSync(Ref.make(0))
const flakyTick = Effect.flatMap(
  Ref.updateAndGet(calls, (n) => n + 1),
  (n) => (n % 2 === 1 ? Effect.fail(new Error(`disk full on /var/spool (tick ${n})`)) : Effect.void)
)

const app = Nightshift.define({
  workers: [
    Worker.make("mailer", Effect.never),
    Worker.periodic("flaky", { schedule: "1 second" }, flakyTick),
    Crew.make("reports", [
      Worker.periodic("daily", { schedule: "1 hour" }, Effect.void),
      Worker.make("listener", Effect.never)
    ])
  ],
  runner: false
})

interface Served {
  readonly scope: Scope.CloseableScope
  readonly url: string
}

const serve = async (prefix?: string): Promise<Served> => {
  const scope = Effect.runSync(Scope.make())
  const layer = Admin.layer({ port: 0, token: Redacted.make(token), ...(prefix ? { prefix } : {}) }).pipe(
    Layer.provideMerge(Nightshift.layer(app)),
    Layer.provideMerge(MemoryStore.layer)
  )
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return { scope, url: Context.get(context, Admin.Server).url }
}

let served: Served
let browser: Browser

/** A page that records console errors, uncaught exceptions and every request that leaves the server's origin. */
const watched = async (origin: string) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.setDefaultTimeout(20_000)
  const problems: Array<string> = []
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`)
  })
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
  page.on("request", (r) => {
    const u = r.url()
    if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:"))
      problems.push(`external request: ${u}`)
  })
  return { page, problems }
}

const shot = (page: Page, name: string, fullPage = true) =>
  page.screenshot({ path: join(shots, `${name}.png`), fullPage })

beforeAll(async () => {
  served = await serve()
  browser = await launchChromium()
  console.log(`dashboard workers screenshots: ${shots}`)
})

afterAll(async () => {
  await browser?.close()
  if (served !== undefined) await Effect.runPromise(Scope.close(served.scope, Exit.void))
})

const live = (page: Page) => page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()

describe("dashboard: workers", () => {
  it("shows a periodic worker's tick history with a failed tick's error", async () => {
    const { page, problems } = await watched(new URL(served.url).origin)
    await page.goto(`${served.url}?token=${token}#/workers`)
    await live(page)
    await page.locator('tr[data-testid="worker-row"][data-name="nightshift/flaky"]').waitFor()
    await page.getByRole("link", { name: "nightshift/flaky", exact: true }).click()
    expect(new URL(page.url()).hash).toBe("#/workers/nightshift%2Fflaky")
    const detail = page.getByTestId("worker-detail")
    const failed = detail.locator('tr[data-testid="tick-row"][data-outcome="failure"]').first()
    await failed.waitFor()
    await detail.locator('tr[data-testid="tick-row"][data-outcome="success"]').first().waitFor()
    const error = failed.getByTestId("tick-error")
    expect(await error.locator("summary").textContent()).toMatch(/disk full on \/var\/spool \(tick \d+\)/)
    const firstFailure = (await error.locator("summary").textContent()) ?? ""
    await error.locator("summary").click()
    expect(await error.locator("pre").textContent()).toContain("at ")
    // A forced tick shows up as forced; the unfolded error stays unfolded as the history refreshes.
    await detail.getByTestId("detail-tick").click()
    await detail.locator('tr[data-testid="tick-row"]', { hasText: "(forced)" }).first().waitFor()
    await detail
      .locator("details[open]", { has: page.locator("summary", { hasText: firstFailure }) })
      .locator("pre")
      .waitFor()
    await shot(page, "worker-ticks")
    expect(problems).toEqual([])
    await page.close()
  }, 60_000)

  it("shows a forced restart in the worker's restart history", async () => {
    const { page, problems } = await watched(new URL(served.url).origin)
    await page.goto(`${served.url}?token=${token}#/workers/${encodeURIComponent("nightshift/mailer")}`)
    await live(page)
    const detail = page.getByTestId("worker-detail")
    await detail.getByTestId("no-restarts").waitFor()
    expect(await detail.getByTestId("ticks").count()).toBe(0)
    await detail.getByTestId("detail-restart").click()
    const restart = detail.locator('tr[data-testid="restart-row"][data-reason="requested"]')
    await restart.waitFor()
    expect(await restart.locator("td").nth(2).textContent()).toBe("0")
    await detail
      .getByTestId("detail-state")
      .filter({ hasText: /^running$/ })
      .waitFor()
    await shot(page, "worker-restarts")
    expect(problems).toEqual([])
    await page.close()
  }, 60_000)

  it("draws the supervision tree: the crew, its nested crew and their workers; keyboard reaches a worker", async () => {
    const { page, problems } = await watched(new URL(served.url).origin)
    await page.goto(`${served.url}?token=${token}#/workers`)
    await live(page)
    const tree = page.getByTestId("worker-tree")
    const top = tree.locator('li[data-testid="tree-node"][data-name="nightshift"]')
    await top.waitFor()
    expect(await top.getAttribute("data-kind")).toBe("crew")
    const reports = top.locator('li[data-testid="tree-node"][data-name="nightshift/reports"]')
    expect(await reports.getAttribute("data-kind")).toBe("crew")
    const children = reports.locator(':scope > ul > li[data-testid="tree-node"]')
    await children.nth(1).waitFor()
    expect(await children.evaluateAll((ls) => ls.map((l) => l.getAttribute("data-name")))).toEqual([
      "nightshift/reports/daily",
      "nightshift/reports/listener"
    ])
    await top.locator(':scope > ul > li[data-name="nightshift/mailer"][data-state="running"]').waitFor()
    // Keyboard: the tree's links take focus and open the worker's history. The tree is drawn
    // anew on worker updates (the flaky worker ticks every second): focus survives a redraw.
    const link = reports.locator('li[data-name="nightshift/reports/daily"] a').first()
    await link.focus()
    const drawn = await tree.locator(":scope > ul").elementHandle()
    await page.waitForFunction((ul) => ul !== null && !ul.isConnected, drawn)
    expect(await page.evaluate(() => document.activeElement?.closest("li")?.getAttribute("data-name"))).toBe(
      "nightshift/reports/daily"
    )
    await page.keyboard.press("Enter")
    await page.getByTestId("worker-detail").locator("h2", { hasText: "nightshift/reports/daily" }).waitFor()
    await page.goBack()
    await tree.waitFor()
    await shot(page, "worker-tree")
    await page.setViewportSize({ width: 390, height: 844 })
    await shot(page, "worker-tree-phone")
    await page.emulateMedia({ colorScheme: "dark" })
    await shot(page, "worker-tree-phone-dark")
    expect(problems).toEqual([])
    await page.close()
  }, 60_000)
})

/** Check the API page lists the routes, and that an endpoint opens to its parameters and schemas. */
const checkApiPage = async (url: string, name: string) => {
  const { page, problems } = await watched(new URL(url).origin)
  await page.goto(`${url}?token=${token}#/api`)
  await live(page)
  const ref = page.getByTestId("apiref")
  await ref.locator('[data-testid="api-group"][data-tag="workers"]').waitFor()
  const groups = await ref
    .getByTestId("api-group")
    .evaluateAll((gs) => gs.map((g) => g.getAttribute("data-tag")))
  expect(groups).toEqual(["health", "workers", "jobs", "queues", "observe"])
  const endpoints = await ref
    .getByTestId("endpoint")
    .evaluateAll((es) => es.map((e) => `${e.getAttribute("data-method")} ${e.getAttribute("data-path")}`))
  for (const route of [
    "GET /health/live",
    "GET /workers",
    "GET /workers/tree",
    "GET /workers/{name}/history",
    "POST /workers/{name}/tick",
    "GET /jobs",
    "POST /jobs",
    "GET /queues/{name}/partitions",
    "GET /metrics"
  ]) {
    expect(endpoints).toContain(route)
  }
  const history = ref.locator(
    '[data-testid="endpoint"][data-method="GET"][data-path="/workers/{name}/history"]'
  )
  await history.locator("summary").click()
  await history.locator('[data-testid="param"][data-name="name"][data-in="path"]').waitFor()
  const ok = history.locator('[data-testid="response"][data-status="200"] [data-testid="response-schema"]')
  expect(await ok.textContent()).toContain("ticks: {")
  expect(await history.locator('[data-testid="response"][data-status="404"]').textContent()).toContain(
    "WorkerNotFound"
  )
  const list = ref.locator('[data-testid="endpoint"][data-method="GET"][data-path="/jobs"]')
  await list.locator("summary").click()
  await list.locator('[data-testid="param"][data-name="state"][data-in="query"]').waitFor()
  const enqueue = ref.locator('[data-testid="endpoint"][data-method="POST"][data-path="/jobs"]')
  await enqueue.locator("summary").click()
  expect(await enqueue.getByTestId("request-schema").textContent()).toContain("kind: string")
  // The recursive tree schema is named, not expanded forever.
  const tree = ref.locator('[data-testid="endpoint"][data-method="GET"][data-path="/workers/tree"]')
  await tree.locator("summary").click()
  expect(await tree.getByTestId("response-schema").first().textContent()).toContain(
    "WorkerTreeNode (recursive)"
  )
  await shot(page, name)
  await page.evaluate(() => window.scrollTo(0, 0))
  await shot(page, `${name}-top`, false)
  await history.scrollIntoViewIfNeeded()
  await shot(page, `${name}-endpoint`, false)
  await page.setViewportSize({ width: 390, height: 844 })
  await shot(page, `${name}-phone`, false)
  await page.setViewportSize({ width: 1280, height: 900 })
  // The filter narrows the list.
  await page.locator("#api-filter").fill("partitions")
  expect(await ref.locator('[data-testid="endpoint"]:visible').count()).toBe(1)
  expect(problems).toEqual([])
  await page.close()
}

describe("dashboard: API reference", () => {
  it("renders the OpenAPI document fetched with the token", async () => {
    await checkApiPage(served.url, "api-reference")
  }, 60_000)

  it("works under a path prefix", async () => {
    const prefixed = await serve("/ops/nightshift")
    try {
      expect(prefixed.url.endsWith("/ops/nightshift")).toBe(true)
      await checkApiPage(prefixed.url, "api-reference-prefix")
    } finally {
      await Effect.runPromise(Scope.close(prefixed.scope, Exit.void))
    }
  }, 60_000)

  it("asks for the token instead of showing the document without one", async () => {
    const { page, problems } = await watched(new URL(served.url).origin)
    await page.goto(`${served.url}#/api`)
    await page.getByTestId("auth").waitFor({ state: "visible" })
    await page.locator("#token").fill(token)
    await page.getByRole("button", { name: "Use token" }).click()
    await page.getByTestId("apiref").locator('[data-testid="endpoint"]').first().waitFor()
    // 401s before the token is given are the browser's own console errors for failed fetches.
    expect(problems.filter((p) => !/401 \(Unauthorized\)/.test(p))).toEqual([])
    await page.close()
  }, 60_000)
})
