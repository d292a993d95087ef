/**
 * End-to-end: the dashboard's overview charts in headless Chromium, on
 * SQLite and on PostgreSQL, against a real admin server and a running app
 * (real time: a browser cannot follow TestClock). Screenshots of the
 * overview (light, dark, phone width) go to the OS temp dir.
 */
import * as Os from "node:os"
import * as Path from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Admin from "nightshift/Admin"
import * as Job from "nightshift/Job"
import type * as JobStore from "nightshift/JobStore"
import * as Nightshift from "nightshift/Nightshift"
import * as SqliteStore from "nightshift/SqliteStore"
import * as Worker from "nightshift/Worker"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchChromium } from "./setup/browser.js"
import { storeLayer } from "./setup/pg.js"

const token = "overview-token"

const Render = Job.make("render", { payload: Schema.Struct({ n: Schema.Number }) })
const Import = Job.make("import", {
  queue: "imports",
  payload: Schema.Struct({ n: Schema.Number }),
  retry: { maxAttempts: 2, backoff: Schedule.spaced("300 millis") }
})

const app = Nightshift.define({
  workers: [Worker.periodic("cleanup", { schedule: "1 minute" }, Effect.void)],
  handlers: Job.handlers(
    Job.handle(Render, () => Effect.sleep("50 millis")),
    Job.handle(Import, ({ n }) => (n % 2 === 0 ? Effect.fail(new Error("bad row")) : Effect.void))
  ),
  runner: { pollInterval: "100 millis" }
})

let browser: Browser

beforeAll(async () => {
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
})

/** Serve the app on `store` with the admin server (samples every 500 ms); returns its URL and a closer. */
const serve = async (store: Layer.Layer<JobStore.JobStore, unknown>, prefix?: string) => {
  const scope = Effect.runSync(Scope.make())
  const layer = Admin.layer({
    port: 0,
    token: Redacted.make(token),
    sampleInterval: "500 millis",
    ...(prefix === undefined ? {} : { prefix })
  }).pipe(Layer.provideMerge(Nightshift.layer(app)), Layer.provideMerge(store))
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return {
    url: Context.get(context, Admin.Server).url,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** A tab that records console errors and every request that is not to `origin`. */
const open = async (origin: string) => {
  const page = await browser.newPage()
  page.setDefaultTimeout(20_000)
  const problems: Array<string> = []
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`)
  })
  page.on("pageerror", (e) => problems.push(`page error: ${e}`))
  page.on("request", (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) problems.push(`request to ${r.url()}`)
  })
  return { page, problems }
}

const enqueue = (url: string, kind: string, n: number, delay?: string) =>
  fetch(`${url.replace(/\/?$/, "/")}jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ kind, payload: { n }, ...(delay === undefined ? {} : { delay }) })
  }).then((r) => expect(r.status).toBe(201))

const legendValue = (page: Page, chart: string, series: string) =>
  page.getByTestId(`${chart}-legend`).locator(`li[data-series="${series}"] strong`)

const points = async (page: Page, chart: string) =>
  Number(await page.getByTestId(chart).locator("svg").getAttribute("data-points"))

const screenshots = (label: string) => Path.join(Os.tmpdir(), `nightshift-overview-${label}`)

/** Open the overview, run jobs, and see every chart draw them. */
const chartsMove = async (url: string, label: string) => {
  const origin = new URL(url).origin
  const { page, problems } = await open(origin)
  try {
    await drive(page, url, label)
  } finally {
    await page.close()
  }
  expect(problems).toEqual([])
}

const drive = async (page: Page, url: string, label: string) => {
  await page.setViewportSize({ width: 1280, height: 900 })
  await page.goto(`${url}?token=${token}`)
  await page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()
  const throughput = page.getByTestId("chart-throughput")
  await throughput.locator("svg").waitFor()
  const before = await points(page, "chart-throughput")

  // Scheduled ahead, so that several samples (every 500 ms) see them wait in their queues: a
  // queue gets its line once a sample has seen jobs waiting or running in it. The render jobs
  // fall due 150 ms apart over 3 s, so that every sample in that span counts completions: the
  // legend shows the latest sample of each poll (every second), which a single burst can miss.
  for (let i = 0; i < 20; i++) await enqueue(url, "render", i, `${1500 + i * 150} millis`)
  for (let i = 0; i < 6; i++) await enqueue(url, "import", i, "2 seconds")

  // Completions and retries show as rates, then fall back to 0 once the work is done.
  await legendValue(page, "chart-throughput", "completed")
    .filter({ hasNotText: /^0\/s$|^–$/ })
    .waitFor()
  await legendValue(page, "chart-latency", "p50").filter({ hasText: /ms|s$/ }).waitFor()
  await page.getByTestId("chart-depth").locator(`path[data-series="imports"]`).waitFor({ state: "attached" })
  await expect
    .poll(
      () => page.getByTestId("chart-throughput").locator('path[data-series="completed"]').getAttribute("d"),
      {
        timeout: 20_000
      }
    )
    .toMatch(/L/)
  await expect.poll(() => points(page, "chart-throughput"), { timeout: 20_000 }).toBeGreaterThan(before)
  // Every job ran: no depth left in `default` once they are done.
  await legendValue(page, "chart-depth", "default").filter({ hasText: /^0$/ }).waitFor()

  // The window selector reloads the chart over a longer span.
  await page.locator("#o-window").selectOption("1h")
  await expect.poll(() => page.getByTestId("overview-status").textContent()).toMatch(/one per/)

  await page.locator("#o-window").selectOption("5m")
  await page.waitForTimeout(600)
  await page.screenshot({ path: `${screenshots(label)}-light.png`, fullPage: false })
  await page.emulateMedia({ colorScheme: "dark" })
  await page.screenshot({ path: `${screenshots(label)}-dark.png`, fullPage: false })
  await page.emulateMedia({ colorScheme: "light" })
  await page.setViewportSize({ width: 375, height: 800 })
  await page.waitForTimeout(300)
  const svgWidth = Number(await throughput.locator("svg").getAttribute("width"))
  expect(svgWidth).toBeLessThanOrEqual(375)
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375)
  await page.screenshot({ path: `${screenshots(label)}-phone.png`, fullPage: false })
}

describe("dashboard overview", () => {
  it("charts move when jobs run, on SQLite", async () => {
    const server = await serve(SqliteStore.layer({ filename: ":memory:" }))
    try {
      await chartsMove(server.url, "sqlite")
    } finally {
      await server.close()
    }
  }, 120_000)

  it("charts move when jobs run, on PostgreSQL", async () => {
    const server = await serve(storeLayer({ label: "overview" }))
    try {
      await chartsMove(server.url, "postgres")
    } finally {
      await server.close()
    }
  }, 120_000)

  it("under a path prefix, reached by keyboard: window selector, labelled charts, no request off the origin", async () => {
    const server = await serve(SqliteStore.layer({ filename: ":memory:" }), "/ops/nightshift")
    let onExit = () => Promise.resolve()
    try {
      const { page, problems } = await open(new URL(server.url).origin)
      onExit = () => page.close()
      await page.goto(`${server.url}?token=${token}`)
      await page.getByTestId("chart-throughput").locator("svg").waitFor()
      expect(await page.getByRole("img", { name: /Jobs per second/ }).count()).toBe(1)
      expect(await page.getByRole("combobox", { name: "Window" }).count()).toBe(1)
      // Tab from the top reaches the nav links, then the window selector.
      const order: Array<string> = []
      for (let i = 0; i < 8; i++) {
        await page.keyboard.press("Tab")
        order.push(
          await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent || "")
        )
      }
      expect(order.slice(0, 4)).toEqual(["Overview", "Jobs", "Queues", "Workers"])
      expect(order).toContain("o-window")
      await page.keyboard.press("Escape")
      await page.locator("#o-window").focus()
      await page.keyboard.press("ArrowDown")
      await expect.poll(() => page.locator("#o-window").inputValue()).toBe("15m")
      expect(problems).toEqual([])
    } finally {
      await onExit()
      await server.close()
    }
  }, 60_000)
})
