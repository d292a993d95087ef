/**
 * End-to-end: the dashboard in headless Chromium against a real admin
 * server and a running app (real time: a browser cannot follow TestClock).
 */
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
import * as MemoryStore from "nightshift/MemoryStore"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchChromium } from "./setup/browser.js"

const token = "e2e-token"

const Charge = Job.make("charge", {
  payload: Schema.Struct({ cents: Schema.Number }),
  retry: { maxAttempts: 3, backoff: Schedule.spaced("1500 millis") }
})
const Report = Job.make("report", { payload: Schema.Struct({ month: Schema.String }) })
const Sync = Job.make("sync", {
  payload: Schema.Struct({ tenant: Schema.String }),
  partition: (p) => p.tenant,
  concurrency: { perPartition: 1 }
})

const app = Nightshift.define({
  workers: [
    Worker.make("mailer", Effect.never),
    Worker.periodic("cleanup", { schedule: "1 minute" }, Effect.void)
  ],
  handlers: Job.handlers(
    Job.handle(Charge, () => Effect.fail(new Error("card declined"))),
    Job.handle(Report, () => Effect.never),
    Job.handle(Sync, () => Effect.never)
  )
})

let scope: Scope.CloseableScope
let url: string
let browser: Browser
let page: Page
/** Errors the page logged or threw, over the whole run. */
const consoleErrors: Array<string> = []

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  const layer = Admin.layer({ port: 0, token: Redacted.make(token) }).pipe(
    Layer.provideMerge(Nightshift.layer(app)),
    Layer.provideMerge(MemoryStore.layer)
  )
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  url = Context.get(context, Admin.Server).url
  browser = await launchChromium()
  page = await browser.newPage()
  page.setDefaultTimeout(20_000)
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text())
  })
  page.on("pageerror", (e) => consoleErrors.push(String(e)))
})

afterAll(async () => {
  await browser?.close()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const jobRow = (kind: string) => page.locator(`tr[data-testid="job-row"]`, { hasText: kind }).first()

describe("dashboard", () => {
  it("asks for the token without one", async () => {
    const fresh = await browser.newPage()
    await fresh.goto(url)
    await fresh.getByTestId("auth").waitFor({ state: "visible" })
    await fresh.close()
  })

  it("shows live workers, a failing job retrying until discarded, its errors, retry and cancel", async () => {
    await page.goto(`${url}?token=${token}`)
    await page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()
    expect(page.url()).not.toContain(token)
    await page
      .locator(`tr[data-testid="worker-row"][data-name="nightshift/mailer"][data-state="running"]`)
      .waitFor()
    await page.locator(`tr[data-testid="worker-row"][data-name="nightshift/cleanup"]`).waitFor()

    await page.locator("summary", { hasText: "Enqueue a job" }).click()
    await page.locator("#e-kind").selectOption("charge")
    await page.locator("#e-payload").fill('{"cents": 1200}')
    await page.getByTestId("enqueue").getByRole("button", { name: "Enqueue" }).click()

    const charge = jobRow("charge")
    await charge.and(page.locator('[data-state="retryable"]')).waitFor()
    await charge.getByTestId("attempt").filter({ hasText: "2/3" }).waitFor()
    await charge.and(page.locator('[data-state="discarded"]')).waitFor()
    expect(await charge.getByTestId("attempt").textContent()).toBe("3/3")

    await charge.click()
    const detail = page.getByTestId("job-detail")
    await detail.getByTestId("error").nth(2).waitFor()
    expect(await detail.getByTestId("error").count()).toBe(3)
    expect(await detail.getByTestId("errors").textContent()).toContain("card declined")
    expect(await detail.getByTestId("payload").textContent()).toContain('"cents": 1200')

    await detail.getByTestId("retry").click()
    await detail.getByTestId("error").nth(3).waitFor()

    await page.locator("#e-kind").selectOption("report")
    await page.locator("#e-payload").fill('{"month": "2030-01"}')
    await page.getByTestId("enqueue").getByRole("button", { name: "Enqueue" }).click()
    const report = jobRow("report")
    await report.and(page.locator('[data-state="running"]')).waitFor()
    await report.getByTestId("cancel").click()
    await report.and(page.locator('[data-state="cancelled"]')).waitFor()
    const queue = page.locator(`tr[data-testid="queue-row"][data-name="default"]`)
    await queue.locator('[data-state="cancelled"]', { hasText: /^1$/ }).waitFor()
  }, 120_000)

  it("says why a held-back job waits, and shows the queue's limits and running per partition", async () => {
    await page.goto(`${url}?token=${token}`)
    await page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()
    const enqueueForm = page.getByTestId("enqueue")
    if (!(await enqueueForm.isVisible())) await page.locator("summary", { hasText: "Enqueue a job" }).click()
    await page.locator("#e-kind").selectOption("sync")
    await page.locator("#e-payload").fill('{"tenant": "acme"}')
    await enqueueForm.getByRole("button", { name: "Enqueue" }).click()
    const syncRow = (state: string) =>
      page.locator(`tr[data-testid="job-row"][data-state="${state}"]`, { hasText: "sync" }).first()
    await syncRow("running")
      .getByTestId("partition")
      .filter({ hasText: /^acme$/ })
      .waitFor()

    // The second job of the key: its partition given in the form, over what the payload would derive.
    await page.locator("#e-payload").fill('{"tenant": "someone-else"}')
    await page.locator("#e-partition").fill("acme")
    await enqueueForm.getByRole("button", { name: "Enqueue" }).click()
    const held = syncRow("available")
    await held
      .getByTestId("waiting")
      .filter({ hasText: /^partition at limit$/ })
      .waitFor()
    expect(await held.getByTestId("partition").textContent()).toBe("acme")

    const queue = page.locator(`tr[data-testid="queue-row"][data-name="default"]`)
    await queue.getByTestId("limits").filter({ hasText: "kind sync: 1 per partition" }).waitFor()
    await queue.getByTestId("throttled").filter({ hasText: /^1$/ }).waitFor()
    const acme = page.locator(`tr[data-testid="partition-row"][data-queue="default"][data-partition="acme"]`)
    await acme.locator('[data-field="waiting"]', { hasText: /^partition at limit$/ }).waitFor()
    expect(await acme.locator('[data-field="running"]').textContent()).toBe("1")
    expect(await acme.locator('[data-field="due"]').textContent()).toBe("1")

    await held.click()
    const detail = page.getByTestId("job-detail")
    await detail.locator('[data-field="waiting"]', { hasText: /^partition at limit$/ }).waitFor()
    expect(await detail.locator('[data-field="partition"]').textContent()).toBe("acme")
  }, 60_000)
})

describe("dashboard routes", () => {
  it("opens a job from its link #/jobs/<id>, shows one view per route, and logs no error", async () => {
    const res = await fetch(`${url}jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ kind: "report", payload: { month: "2031-07" } })
    })
    const { id } = (await res.json()) as { id: string }
    await page.goto(`${url}?token=${token}#/jobs/${id}`)
    const detail = page.getByTestId("job-detail")
    await detail.getByRole("heading", { name: `Job ${id}` }).waitFor()
    expect(await detail.getByTestId("payload").textContent()).toContain("2031-07")
    expect(await page.getByTestId("workers").isVisible()).toBe(false)
    expect(await page.getByRole("link", { name: "Jobs" }).getAttribute("aria-current")).toBe("page")

    await page.getByRole("link", { name: "Workers" }).click()
    await page.getByTestId("workers").waitFor()
    expect(page.url()).toMatch(/#\/workers$/)
    expect(await page.getByTestId("jobs").isVisible()).toBe(false)

    await page.getByRole("link", { name: "Overview" }).click()
    await page.getByTestId("jobs").waitFor()
    await page.getByTestId("queues").waitFor()
    expect(await page.getByTestId("workers").isVisible()).toBe(true)
    expect(consoleErrors).toEqual([])
  }, 60_000)
})

describe("dashboard under a prefix", () => {
  it("works at a path without a trailing slash: live workers, and an enqueued job runs and retries", async () => {
    const local = Effect.runSync(Scope.make())
    try {
      const layer = Admin.layer({ port: 0, token: Redacted.make(token), prefix: "/ops/nightshift" }).pipe(
        Layer.provideMerge(Nightshift.layer(app)),
        Layer.provideMerge(MemoryStore.layer)
      )
      const context = await Effect.runPromise(Layer.buildWithScope(layer, local))
      const prefixed = Context.get(context, Admin.Server).url
      expect(prefixed.endsWith("/ops/nightshift")).toBe(true)
      const tab = await browser.newPage()
      tab.setDefaultTimeout(20_000)
      await tab.goto(`${prefixed}?token=${token}`)
      await tab.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()
      expect(new URL(tab.url()).pathname).toBe("/ops/nightshift")
      await tab
        .locator(`tr[data-testid="worker-row"][data-name="nightshift/mailer"][data-state="running"]`)
        .waitFor()
      await tab.locator("summary", { hasText: "Enqueue a job" }).click()
      await tab.locator("#e-kind").selectOption("charge")
      await tab.locator("#e-payload").fill('{"cents": 700}')
      await tab.getByTestId("enqueue").getByRole("button", { name: "Enqueue" }).click()
      await tab
        .locator(`tr[data-testid="job-row"]`, { hasText: "charge" })
        .and(tab.locator('[data-state="retryable"]'))
        .first()
        .waitFor()
      await tab.close()
    } finally {
      await Effect.runPromise(Scope.close(local, Exit.void))
    }
  }, 60_000)
})
