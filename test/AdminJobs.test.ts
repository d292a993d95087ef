/**
 * The admin API's job search and bulk routes, on SQLite and PostgreSQL:
 * filters of GET /jobs, GET /jobs/count, POST /jobs/bulk/{retry,cancel,delete},
 * POST /jobs/:id/run; bad input is 4xx with a message and writes nothing.
 */
import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Admin from "../src/Admin.js"
import * as Render from "../src/internal/admin/render.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as Nightshift from "../src/Nightshift.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { storeLayer } from "./setup/pg.js"

const token = "jobs-token"
const Order = Job.make("order", {
  payload: Schema.Struct({ tenantId: Schema.String, n: Schema.Number })
})

interface Reply {
  readonly status: number
  readonly text: string
  readonly json: any
}

const call = (base: string, method: string, path: string, body?: unknown) =>
  Effect.async<Reply>((resume) => {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)
    const req = http.request(
      new URL(path, base),
      {
        method,
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          ...(text === undefined ? {} : { "content-type": "application/json" })
        }
      },
      (res) => {
        let data = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => {
          data += chunk
        })
        res.on("end", () => {
          let json: any
          try {
            json = JSON.parse(data)
          } catch {
            json = undefined
          }
          resume(Effect.succeed({ status: res.statusCode ?? 0, text: data, json }))
        })
      }
    )
    req.on("error", (e) => resume(Effect.succeed({ status: -1, text: String(e), json: undefined })))
    req.end(text)
    return Effect.sync(() => req.destroy())
  })

const engines: ReadonlyArray<readonly [string, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["SQLite", () => SqliteStore.layer({ filename: ":memory:" })],
  ["PostgreSQL", () => storeLayer({ label: "adminjobs", maxConnections: 4, listen: false })]
]

const serve = (store: Layer.Layer<JobStore.JobStore, unknown>) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Admin.layer({ port: 0, token: Redacted.make(token) }).pipe(
        Layer.provideMerge(
          Nightshift.layer(
            Nightshift.define({
              workers: [],
              runner: false,
              handlers: Job.handlers(Job.handle(Order, () => Effect.void))
            })
          )
        ),
        Layer.provideMerge(store)
      )
    )
    return {
      base: Context.get(context, Admin.Server).url,
      store: Context.get(context, JobStore.JobStore),
      queue: Context.get(context, JobQueue.JobQueue)
    }
  })

/** Enqueue `n` orders and discard them all (claimed and settled by hand). */
const discarded = (store: JobStore.Service, queue: JobQueue.JobQueue["Type"], n: number, tenant = "t-1") =>
  Effect.gen(function* () {
    const enqueued = yield* queue.enqueueMany(
      Array.from({ length: n }, (_, i) => JobQueue.item(Order, { tenantId: tenant, n: i }))
    )
    const claimed = yield* store.claim({
      queues: ["default"],
      kinds: ["order"],
      limit: n,
      leaseMs: 60_000,
      owner: "node-a"
    })
    yield* store.settle(
      claimed.map((job) => ({
        id: job.id,
        fence: job.fence,
        outcome: { _tag: "discard", error: { kind: "failure", message: "Error: no stock" } } as const
      }))
    )
    return enqueued.map((e) => e.id)
  })

for (const [engine, layer] of engines) {
  describe(`admin API job search and bulk routes (${engine})`, () => {
    it.scoped(
      "a payload search and the other filters find the right jobs; count agrees",
      () =>
        Effect.gen(function* () {
          const { base, queue } = yield* serve(layer())
          const ids: Array<string> = []
          for (let i = 0; i < 30; i++)
            ids.push(
              (yield* queue.enqueue(Order, { tenantId: `t-${i}`, n: i }, { dedupeKey: `order-${i}` })).id
            )
          const found = yield* call(base, "GET", "/jobs?payload=tenantId&value=t-17")
          expect(found.status, found.text).toBe(200)
          expect(found.json.jobs.map((j: any) => j.id)).toEqual([ids[17]])
          const dotted = yield* call(base, "GET", `/jobs?payload=${encodeURIComponent("payload.n")}&value=17`)
          expect(dotted.json.jobs.map((j: any) => j.id)).toEqual([ids[17]])
          // "17" as JSON text is the text 17, which no payload holds at n.
          const text = yield* call(base, "GET", `/jobs?payload=n&value=${encodeURIComponent('"17"')}`)
          expect(text.json.jobs).toEqual([])
          const byKey = yield* call(base, "GET", "/jobs?dedupeKey=order-3")
          expect(byKey.json.jobs.map((j: any) => j.id)).toEqual([ids[3]])
          const range = yield* call(base, "GET", `/jobs?idFrom=${ids[10]}&idTo=${ids[12]}`)
          expect(range.json.jobs.map((j: any) => j.id)).toEqual([ids[12], ids[11], ids[10]])
          const future = yield* call(base, "GET", "/jobs?createdFrom=2999-01-01T00:00:00Z")
          expect(future.json.jobs).toEqual([])
          const past = yield* call(base, "GET", "/jobs?createdTo=2999-01-01T00:00:00Z&limit=5")
          expect(past.json.jobs).toHaveLength(5)
          const count = yield* call(base, "GET", `/jobs/count?idFrom=${ids[10]}&state=available`)
          expect(count.json).toEqual({ count: 20, capped: false })
        }),
      { timeout: 60_000 }
    )

    it.scoped(
      "a bulk retry of 100 discarded jobs by filter makes them available",
      () =>
        Effect.gen(function* () {
          const { base, queue, store } = yield* serve(layer())
          const ids = yield* discarded(store, queue, 100)
          const other = yield* queue.enqueue(Order, { tenantId: "t-1", n: -1 })
          const count = yield* call(base, "GET", "/jobs/count?state=discarded")
          expect(count.json).toEqual({ count: 100, capped: false })
          const reply = yield* call(base, "POST", "/jobs/bulk/retry", { filter: { state: ["discarded"] } })
          expect(reply.status, reply.text).toBe(200)
          expect(reply.json).toEqual({
            action: "retry",
            changed: 100,
            requested: 0,
            skipped: [],
            nextCursor: null
          })
          const counts = yield* store.counts
          expect(counts).toEqual([{ queue: "default", state: "available", count: 101 }])
          // By ids: the waiting one is skipped and says why.
          const again = yield* call(base, "POST", "/jobs/bulk/retry", { ids: [ids[0], other.id, "999999"] })
          expect(again.json.changed).toBe(0)
          expect(again.json.skipped).toEqual([
            { reason: "state", state: "available", count: 2 },
            { reason: "not-found", state: null, count: 1 }
          ])
        }),
      { timeout: 60_000 }
    )

    it.scoped(
      "bulk cancel and delete by payload search, with max and cursor; run now",
      () =>
        Effect.gen(function* () {
          const { base, queue, store } = yield* serve(layer())
          for (let i = 0; i < 12; i++)
            yield* queue.enqueue(Order, { tenantId: i % 2 === 0 ? "even" : "odd", n: i })
          const filter = { payload: { path: "tenantId", value: "even" } }
          const first = yield* call(base, "POST", "/jobs/bulk/cancel", { filter, max: 4 })
          expect(first.json).toMatchObject({ action: "cancel", changed: 4 })
          expect(first.json.nextCursor).not.toBeNull()
          const rest = yield* call(base, "POST", "/jobs/bulk/cancel", {
            filter,
            cursor: first.json.nextCursor
          })
          expect(rest.json).toMatchObject({ changed: 2, nextCursor: null })
          const gone = yield* call(base, "POST", "/jobs/bulk/delete", { filter: { state: ["cancelled"] } })
          expect(gone.json).toMatchObject({ action: "delete", changed: 6, skipped: [] })
          expect((yield* store.counts).reduce((n, c) => n + c.count, 0)).toBe(6)
          const later = yield* queue.enqueue(Order, { tenantId: "x", n: 0 }, { delay: "1 hour" })
          const ran = yield* call(base, "POST", `/jobs/${later.id}/run`)
          expect(ran.status, ran.text).toBe(200)
          expect(ran.json).toEqual({ id: later.id, result: "moved" })
          expect((yield* store.get(later.id))?.state).toBe("available")
          expect((yield* call(base, "POST", `/jobs/${later.id}/run`)).json.result).toBe("due")
          const cancelled = yield* queue.enqueue(Order, { tenantId: "x", n: 1 })
          yield* queue.cancel(cancelled.id)
          const refused = yield* call(base, "POST", `/jobs/${cancelled.id}/run`)
          expect(refused.status).toBe(409)
          expect(refused.json.message).toMatch(/scheduled or retryable/)
          expect((yield* call(base, "POST", "/jobs/424242/run")).status).toBe(404)
        }),
      { timeout: 60_000 }
    )

    it.scoped(
      "bad bulk bodies and filters are 400 with a message, and write nothing",
      () =>
        Effect.gen(function* () {
          const { base, queue, store } = yield* serve(layer())
          yield* discarded(store, queue, 3)
          const before = yield* store.counts
          const bodies: ReadonlyArray<readonly [unknown, RegExp]> = [
            [{}, /either ids .* or filter/],
            [{ ids: ["1"], filter: {} }, /either ids/],
            [{ ids: [] }, /ids/],
            [{ ids: ["x"] }, /job id/],
            [{ ids: Array.from({ length: 1001 }, (_, i) => String(i + 1)) }, /ids/],
            [{ ids: ["1"], max: 3 }, /max and cursor go with filter/],
            [{ filter: { state: ["nope"] } }, /state/],
            [{ filter: { payload: { path: "a'b", value: "x" } } }, /payload path/],
            [{ filter: { payload: { path: "a", value: { o: 1 } } } }, /payload value/],
            [{ filter: { createdFrom: "yesterday" } }, /time/],
            [{ filter: { kind: ["a\u0000"] } }, /NUL/],
            [{ filter: {}, max: 0 }, /max/],
            ["{not json", /not valid JSON/]
          ]
          const wrong: Array<string> = []
          for (const [body, says] of bodies) {
            for (const action of ["retry", "cancel", "delete"]) {
              const reply = yield* call(base, "POST", `/jobs/bulk/${action}`, body)
              if (!(reply.status === 400 && says.test(String(reply.json?.message))))
                wrong.push(
                  `${action} ${JSON.stringify(body).slice(0, 60)} -> ${reply.status} ${reply.text.slice(0, 200)}`
                )
            }
          }
          for (const [query, says] of [
            ["payload=tenantId", /both payload .* and value/],
            ["value=x", /both payload/],
            ["payload=a..b&value=1", /payload path/],
            ["idFrom=0", /job id/],
            ["createdTo=soon", /time/],
            ["dedupeKey=a%00", /NUL/]
          ] as const) {
            for (const path of ["/jobs", "/jobs/count"]) {
              const reply = yield* call(base, "GET", `${path}?${query}`)
              if (!(reply.status === 400 && says.test(String(reply.json?.message))))
                wrong.push(`GET ${path}?${query} -> ${reply.status} ${reply.text.slice(0, 200)}`)
            }
          }
          expect(wrong).toEqual([])
          expect(yield* store.counts).toEqual(before)
        }),
      { timeout: 60_000 }
    )

    it.scoped(
      "random bulk bodies are never a 5xx and always say why they are refused",
      () =>
        Effect.gen(function* () {
          const { base } = yield* serve(layer())
          const value = fc.oneof(
            fc.jsonValue(),
            fc.constantFrom(
              "1",
              "0",
              "-1",
              "99999999999999999999",
              "a\u0000",
              "2030-01-01",
              "payload.x",
              1e300
            )
          )
          const body = fc.record(
            {
              ids: fc.oneof(fc.array(value, { maxLength: 5 }), value),
              filter: fc.oneof(
                fc.record(
                  {
                    state: fc.oneof(fc.array(fc.constantFrom("available", "discarded", "nope")), value),
                    kind: fc.oneof(fc.array(fc.string()), value),
                    dedupeKey: value,
                    idFrom: value,
                    createdTo: value,
                    payload: fc.oneof(fc.record({ path: fc.oneof(fc.string(), value), value }), value)
                  },
                  { requiredKeys: [] }
                ),
                value
              ),
              max: value,
              cursor: value
            },
            { requiredKeys: [] }
          )
          const bad: Array<string> = []
          for (const sample of fc.sample(body, 150)) {
            const reply = yield* call(base, "POST", "/jobs/bulk/delete", sample)
            if (reply.status >= 500 || (reply.status >= 400 && typeof reply.json?.message !== "string"))
              bad.push(
                `${JSON.stringify(sample).slice(0, 120)} -> ${reply.status} ${reply.text.slice(0, 120)}`
              )
          }
          expect(bad).toEqual([])
        }),
      { timeout: 120_000 }
    )
  })
}

describe("attempt errors stored before 0.3", () => {
  it("render without start and node, and with no problem", () => {
    const record: JobStore.JobRecord = {
      id: "7",
      kind: "order",
      queue: "default",
      payload: { tenantId: "t", n: 1 },
      state: "discarded",
      priority: 0,
      attempt: 1,
      maxAttempts: 1,
      runAt: 1_000,
      createdAt: 1_000,
      attemptedAt: 1_000,
      finalizedAt: 2_000,
      leaseOwner: null,
      leaseExpiresAt: null,
      fence: 1,
      dedupeKey: null,
      partition: null,
      cancelRequested: false,
      errors: [{ attempt: 1, at: 2_000, kind: "failure", message: "Error: old" }],
      traceId: null,
      spanId: null
    }
    const shown = Render.show(record)
    expect("detail" in shown && shown.detail.errors).toEqual([
      { attempt: 1, at: 2_000, kind: "failure", message: "Error: old", startedAt: null, node: null }
    ])
    expect("detail" in shown && shown.problems).toEqual([])
  })
})
