/**
 * Odd rows on any engine (here a store whose reads return what a faulty
 * engine or a hand edit might): the job list and the job page render what
 * they can, name each problem, and list rows they cannot show at all
 * instead of failing the page; the dashboard shows the problems.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Admin from "../src/Admin.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Nightshift from "../src/Nightshift.js"
import { launchChromium } from "./setup/browser.js"

const token = "odd-rows-token"
const Email = Job.make("email", { payload: Schema.Struct({ to: Schema.String }) })

/** How each job id is damaged on the way out of the store. */
const damage: Record<string, (job: Record<string, unknown>) => Record<string, unknown>> = {
  "1": (j) => ({ ...j, errors: "boom" }),
  "2": (j) => ({ ...j, errors: { attempt: 1 } }),
  "3": (j) => ({ ...j, errors: [1, "x", null], fence: -3 }),
  "4": (j) => ({ ...j, state: "discarded", leaseOwner: "node-1", finalizedAt: null }),
  "5": (j) => ({ ...j, state: "exploded" }),
  "6": (j) => ({ ...j, runAt: 1e20, createdAt: "yesterday", priority: "high", kind: 42 })
}

const corrupt = (job: JobStore.JobRecord): JobStore.JobRecord =>
  (damage[job.id]?.(job as unknown as Record<string, unknown>) ?? job) as unknown as JobStore.JobRecord

const OddStore = Layer.effect(
  JobStore.JobStore,
  Effect.map(JobStore.JobStore, (store) => ({
    ...store,
    get: (id: string) => Effect.map(store.get(id), (job) => (job === undefined ? job : corrupt(job))),
    list: (filter: JobStore.ListFilter) =>
      Effect.map(store.list(filter), (page) => ({ ...page, jobs: page.jobs.map(corrupt) }))
  }))
).pipe(Layer.provide(MemoryStore.layer))

const app = Nightshift.define({
  workers: [],
  runner: false,
  handlers: Job.handlers(Job.handle(Email, () => Effect.void))
})

const serve = Effect.gen(function* () {
  const context = yield* Layer.build(
    Admin.layer({ port: 0, token: Redacted.make(token) }).pipe(
      Layer.provideMerge(Nightshift.layer(app)),
      Layer.provideMerge(OddStore)
    )
  )
  const queue = Context.get(context, JobQueue.JobQueue)
  for (let n = 1; n <= 7; n++) yield* queue.enqueue(Email, { to: `${n}@x` })
  return Context.get(context, Admin.Server).url
})

const get = (base: string, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(new URL(path, base), { headers: { authorization: `Bearer ${token}` } })
    return { status: response.status, json: (await response.json()) as any }
  })

describe("odd rows", () => {
  it.scopedLive("the list shows every readable job with its problems and names the unreadable ones", () =>
    Effect.gen(function* () {
      const base = yield* serve
      const list = yield* get(base, "jobs")
      expect(list.status).toBe(200)
      const byId = new Map<string, any>(list.json.jobs.map((j: any) => [j.id, j]))
      expect(Array.from(byId.keys()).sort()).toEqual(["1", "2", "3", "4", "6", "7"])
      expect(list.json.unreadable).toEqual([
        { id: "5", problem: expect.stringContaining('its state is the text "exploded"') }
      ])
      expect(byId.get("1").problems).toEqual(['errors is the text "boom", not a list'])
      expect(byId.get("1").lastError).toBe("unreadable: boom")
      expect(byId.get("2").problems).toEqual(["errors is an object, not a list"])
      expect(byId.get("3").problems).toEqual([
        "error 1 is not a well-formed attempt error (number 1)",
        'error 2 is not a well-formed attempt error (the text "x")',
        "error 3 is not a well-formed attempt error (null)",
        "its fence is negative (-3)"
      ])
      expect(byId.get("4").problems).toEqual([
        "it is discarded but has no finish time",
        "it is discarded but names a lease owner (node-1)"
      ])
      expect(byId.get("6").problems).toEqual([
        "kind is number 42, not text",
        'priority is the text "high", not a number',
        "runAt is number 100000000000000000000, not a time",
        'createdAt is the text "yesterday", not a time'
      ])
      expect(byId.get("7").problems).toBeUndefined()
      const shown = yield* get(base, "jobs/3")
      expect(shown.status).toBe(200)
      expect(shown.json.errors).toHaveLength(3)
      expect(shown.json.payload).toEqual({ to: "3@x" })
      const unreadable = yield* get(base, "jobs/5")
      expect(unreadable.status).toBe(503)
      expect(unreadable.json.message).toContain("cannot show")
    })
  )

  it.scopedLive(
    "the dashboard marks odd jobs and lists their problems",
    () =>
      Effect.gen(function* () {
        const base = yield* serve
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() => launchChromium()),
          (b) => Effect.promise(() => b.close())
        )
        yield* Effect.promise(async () => {
          const page = await browser.newPage()
          page.setDefaultTimeout(20_000)
          await page.goto(`${base}?token=${token}`)
          const row = page.locator('tr[data-testid="job-row"][data-id="1"]')
          await row.getByTestId("problems").waitFor()
          expect(
            await page.locator('tr[data-testid="job-row"][data-id="7"]').getByTestId("problems").count()
          ).toBe(0)
          await row.click()
          const problems = page.getByTestId("job-detail").getByTestId("problems")
          await problems.waitFor()
          expect(await problems.textContent()).toContain('errors is the text "boom", not a list')
        })
      }),
    60_000
  )
})
