/**
 * End-to-end, in headless Chromium against a real admin server, a running
 * app and a real store (SQLite, then PostgreSQL): the job detail at its own
 * address shows a failed attempt's error, a bulk retry of 100 discarded jobs
 * makes them available, a payload search finds the right job, and a
 * selection is deleted after a confirmation that says how many. Screenshots
 * of the job list and the job detail are saved under the OS temp directory.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Admin from "nightshift/Admin"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as JobStore from "nightshift/JobStore"
import * as Nightshift from "nightshift/Nightshift"
import * as SqliteStore from "nightshift/SqliteStore"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchChromium } from "./setup/browser.js"
import { storeLayer } from "./setup/pg.js"

const token = "jobs-e2e-token"
const shots = mkdtempSync(join(tmpdir(), "nightshift-dashboard-jobs-"))

/** Fails every attempt, with a stack. */
const Charge = Job.make("charge", {
  payload: Schema.Struct({ cents: Schema.Number, card: Schema.Redacted(Schema.String) }),
  retry: { maxAttempts: 1 }
})
/** No handler in this app: its jobs stay where the test puts them. */
const Import = Job.make("import", { payload: Schema.Struct({ tenantId: Schema.String, n: Schema.Number }) })

const app = Nightshift.define({
  workers: [],
  handlers: Job.handlers(Job.handle(Charge, () => Effect.fail(new Error("card declined"))))
})

let browser: Browser

beforeAll(async () => {
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
})

const engines: ReadonlyArray<readonly [string, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["SQLite", () => SqliteStore.layer({ filename: join(shots, `jobs-${Date.now()}.db`) })],
  ["PostgreSQL", () => storeLayer({ label: "dashjobs", maxConnections: 6 })]
]

for (const [engine, storeOf] of engines) {
  describe(`dashboard jobs (${engine})`, () => {
    let scope: Scope.CloseableScope
    let url: string
    let store: JobStore.Service
    let queue: JobQueue.JobQueue["Type"]
    let page: Page
    const errors: Array<string> = []
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

    beforeAll(async () => {
      scope = Effect.runSync(Scope.make())
      const layer = Admin.layer({ port: 0, token: Redacted.make(token) }).pipe(
        Layer.provideMerge(Nightshift.layer(app)),
        Layer.provideMerge(storeOf())
      )
      const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
      url = Context.get(context, Admin.Server).url
      store = Context.get(context, JobStore.JobStore)
      queue = Context.get(context, JobQueue.JobQueue)
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      page.setDefaultTimeout(20_000)
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text())
      })
      page.on("pageerror", (e) => errors.push(String(e)))
    })

    afterAll(async () => {
      await page?.close()
      if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    })

    const open = async (hash = "") => {
      await page.goto(`${url}?token=${token}${hash}`)
      await page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor()
    }

    it("a job's own address shows its failed attempt: error, stack folded, node and times; payload as stored", async () => {
      const { id } = await run(queue.enqueue(Charge, { cents: 1200, card: Redacted.make("4111-secret") }))
      // The runner fails its one attempt.
      await expect.poll(async () => (await run(store.get(id)))?.state, { timeout: 20_000 }).toBe("discarded")
      await open(`#/jobs/${id}`)
      const detail = page.getByTestId("job-detail")
      await detail.getByTestId("error").waitFor()
      expect(await detail.getByTestId("error").count()).toBe(1)
      const error = detail.getByTestId("error").first()
      expect(await error.getByTestId("attempt-error").locator("summary").textContent()).toContain(
        "card declined"
      )
      // The stack is folded until asked for.
      const stack = error.getByTestId("stack")
      expect(await stack.isVisible()).toBe(false)
      await error.locator("summary").click()
      await stack.waitFor()
      expect(await stack.textContent()).toMatch(/at /)
      const job = (await run(store.get(id)))!
      const cells = await error.locator("td").allTextContents()
      expect(cells[0]).toBe("1")
      expect(cells[4]).toBe(job.errors[0]!.node)
      expect(cells[4]).toMatch(/./)
      expect(cells[5]).toBe("failure")
      expect(await detail.locator('[data-field="attempt"]').textContent()).toBe("1 of 1")
      expect(await detail.locator('[data-field="state"]').textContent()).toBe("discarded")
      expect(await detail.locator('[data-field="kind"]').textContent()).toBe("charge")
      // The payload decoded by the kind's schema: its Redacted field is not shown (the store holds it plain).
      const payload = await detail.getByTestId("payload").textContent()
      expect(payload).toContain('"cents": 1200')
      expect(payload).toContain('"card": "<redacted>"')
      expect(payload).not.toContain("4111")
      expect((await run(store.get(id)))?.payload).toEqual({ cents: 1200, card: "4111-secret" })
      await detail.getByTestId("retry").waitFor()
      expect(await detail.getByTestId("cancel").count()).toBe(0)
      await page.screenshot({ path: join(shots, `job-detail-${engine}.png`), fullPage: true })

      // Run now, for a scheduled job: it becomes available.
      const later = await run(queue.enqueue(Import, { tenantId: "later", n: 0 }, { delay: "1 hour" }))
      await page.goto(`${url}#/jobs/${later.id}`)
      await detail.locator('[data-field="state"]', { hasText: /^scheduled$/ }).waitFor()
      await detail.getByTestId("run").click()
      await detail.locator('[data-field="state"]', { hasText: /^available$/ }).waitFor()
      expect((await run(store.get(later.id)))?.state).toBe("available")
      // Close goes back to the jobs list.
      await detail.getByTestId("close-detail").click()
      await detail.waitFor({ state: "hidden" })
      expect(new URL(page.url()).hash).toBe("#/jobs")
    }, 90_000)

    it("a payload search finds the right job", async () => {
      const ids: Array<string> = []
      for (let n = 0; n < 60; n++) ids.push((await run(queue.enqueue(Import, { tenantId: `t-${n}`, n }))).id)
      await open("#/jobs")
      await page.locator("#f-path").fill("tenantId")
      await page.locator("#f-value").fill("t-42")
      await page.getByTestId("filters").getByRole("button", { name: "Filter" }).click()
      const rows = page.getByTestId("jobs").getByTestId("job-row")
      await expect.poll(() => rows.count()).toBe(1)
      expect(await rows.first().getAttribute("data-id")).toBe(ids[42])
      // The search is in the address: opened again from it, it shows the same job and fills the form.
      const address = new URL(page.url()).hash
      expect(address).toBe("#/jobs?payload=tenantId&value=t-42")
      await page.goto("about:blank")
      await open(address)
      await expect.poll(() => rows.count()).toBe(1)
      expect(await rows.first().getAttribute("data-id")).toBe(ids[42])
      expect(await page.locator("#f-value").inputValue()).toBe("t-42")
      // A number is a number: n = 42 finds the same job, "42" as text finds none.
      await page.locator("#f-path").fill("payload.n")
      await page.locator("#f-value").fill("42")
      await page.getByTestId("filters").getByRole("button", { name: "Filter" }).click()
      await expect.poll(async () => rows.first().getAttribute("data-id")).toBe(ids[42])
      await page.locator("#f-value").fill('"42"')
      await page.getByTestId("filters").getByRole("button", { name: "Filter" }).click()
      await expect.poll(() => rows.count()).toBe(0)
      await page.getByTestId("shown").filter({ hasText: "No job matches." }).waitFor()
    }, 60_000)

    it("a bulk retry of 100 discarded jobs makes them available, after a confirmation that says how many", async () => {
      const enqueued = await run(
        queue.enqueueMany(
          Array.from({ length: 100 }, (_, n) =>
            JobQueue.item(Import, { tenantId: "bulk", n }, { queue: "bulk" })
          )
        )
      )
      const claimed = await run(
        store.claim({ queues: ["bulk"], kinds: ["import"], limit: 1000, leaseMs: 60_000, owner: "node-e2e" })
      )
      expect(claimed.map((job) => job.id).sort()).toEqual(enqueued.map((e) => e.id).sort())
      await run(
        store.settle(
          claimed.map((job) => ({
            id: job.id,
            fence: job.fence,
            outcome: { _tag: "discard", error: { kind: "failure", message: "Error: upstream gone" } } as const
          }))
        )
      )
      const discarded = await run(store.list({ states: ["discarded"], queues: ["bulk"], limit: 1000 }))
      expect(discarded.jobs).toHaveLength(100)

      await open("#/jobs")
      await page.locator("#f-state").selectOption("discarded")
      await page.locator("#f-path").fill("tenantId")
      await page.locator("#f-value").fill("bulk")
      await page.getByTestId("filters").getByRole("button", { name: "Filter" }).click()
      const rows = page.getByTestId("jobs").getByTestId("job-row")
      await expect.poll(() => rows.count()).toBe(50)
      await page.screenshot({ path: join(shots, `job-list-${engine}.png`), fullPage: false })
      await page.getByTestId("bulk-retry-matching").click()
      const dialog = page.getByTestId("confirm")
      await dialog.waitFor()
      expect(await dialog.getByTestId("confirm-message").textContent()).toBe(
        "Retry 100 jobs that match the filters?"
      )
      await page.screenshot({ path: join(shots, `job-bulk-confirm-${engine}.png`) })
      await dialog.getByTestId("confirm-ok").click()
      await page.getByTestId("bulk-outcome").filter({ hasText: "100 jobs retried." }).waitFor()
      const after = await run(store.list({ queues: ["bulk"], limit: 1000 }))
      expect(after.jobs).toHaveLength(100)
      expect(new Set(after.jobs.map((j) => j.state))).toEqual(new Set(["available"]))
      await expect.poll(() => rows.count()).toBe(0)
    }, 90_000)

    it("selected jobs are deleted after a confirmation that says how many; cancelling the dialog changes nothing", async () => {
      await open("#/jobs")
      await page.locator("#f-path").fill("tenantId")
      await page.locator("#f-value").fill("bulk")
      await page.getByTestId("filters").getByRole("button", { name: "Filter" }).click()
      const rows = page.getByTestId("jobs").getByTestId("job-row")
      await expect.poll(() => rows.count()).toBe(50)
      const picked = await Promise.all([0, 1, 2].map((n) => rows.nth(n).getAttribute("data-id")))
      for (const n of [0, 1, 2]) await rows.nth(n).getByTestId("select").check()
      await page.getByTestId("selected-count").filter({ hasText: /^3$/ }).waitFor()
      await page.getByTestId("bulk-delete-selected").click()
      const dialog = page.getByTestId("confirm")
      expect(await dialog.getByTestId("confirm-message").textContent()).toBe("Delete 3 jobs (selected)?")
      await dialog.getByTestId("confirm-cancel").click()
      await dialog.waitFor({ state: "detached" })
      for (const id of picked) expect(await run(store.get(id!))).toBeDefined()
      await page.getByTestId("bulk-delete-selected").click()
      await page.getByTestId("confirm").getByTestId("confirm-ok").click()
      await page.getByTestId("bulk-outcome").filter({ hasText: "3 jobs deleted." }).waitFor()
      for (const id of picked) expect(await run(store.get(id!))).toBeUndefined()
      // The list is read again after the change: the deleted jobs are gone from it, the selection is empty.
      await expect
        .poll(async () =>
          (await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-id")))).slice(0, 3)
        )
        .not.toContain(picked[0])
      await page.getByTestId("selected-count").filter({ hasText: /^0$/ }).waitFor()
      await expect.poll(() => rows.count()).toBe(50)

      // A phone's width in the dark scheme: the list and a job's detail.
      await page.setViewportSize({ width: 390, height: 844 })
      await page.emulateMedia({ colorScheme: "dark" })
      await page.screenshot({ path: join(shots, `job-list-phone-dark-${engine}.png`) })
      await rows.first().getByRole("link").click()
      await page.getByTestId("job-detail").locator('[data-field="kind"]').waitFor()
      await page
        .getByTestId("job-detail")
        .screenshot({ path: join(shots, `job-detail-phone-dark-${engine}.png`) })
      // The jobs view keeps the phone's width: wide tables scroll in their own box.
      expect(await page.evaluate(() => document.getElementById("v-jobs")!.scrollWidth)).toBeLessThanOrEqual(
        390
      )
      await page.setViewportSize({ width: 1280, height: 900 })
      await page.emulateMedia({ colorScheme: "light" })
      expect(errors).toEqual([])
    }, 60_000)
  })
}
