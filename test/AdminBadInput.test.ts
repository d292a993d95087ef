/**
 * The admin API on bad input, on PostgreSQL (the engine that answered 503 and
 * 500 before): hostile enqueue bodies and list filters are 4xx with a message
 * and never reach the database; request bodies have a size limit; odd rows
 * render as far as they can, saying what they cannot.
 */
import * as http from "node:http"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Admin from "../src/Admin.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as Nightshift from "../src/Nightshift.js"
import { storeLayer } from "./setup/pg.js"

const token = "bad-input-token"
const Email = Job.make("email", { payload: Schema.Struct({ to: Schema.String }) })
const Blob = Job.make("blob", { payload: Schema.Struct({ data: Schema.String }) })

interface Reply {
  readonly status: number
  readonly text: string
  readonly json: any
}

/** One request on a fresh connection; `chunked` sends the body without a Content-Length. */
const call = (
  base: string,
  method: string,
  path: string,
  options: { body?: string | Buffer; type?: string; chunked?: boolean } = {}
) =>
  Effect.async<Reply>((resume) => {
    const req = http.request(
      new URL(path, base),
      {
        method,
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          ...(options.body === undefined ? {} : { "content-type": options.type ?? "application/json" }),
          ...(options.body === undefined || options.chunked === true
            ? {}
            : { "content-length": String(Buffer.byteLength(options.body)) })
        }
      },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => {
          text += chunk
        })
        res.on("end", () => {
          let json: any
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resume(Effect.succeed({ status: res.statusCode ?? 0, text, json }))
        })
      }
    )
    // The server may answer (and close) before the whole body is sent.
    req.on("error", (e) => resume(Effect.succeed({ status: -1, text: String(e), json: undefined })))
    if (options.body === undefined) req.end()
    else if (options.chunked === true) {
      const body = Buffer.from(options.body)
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024))
      req.end()
    } else req.end(options.body)
    return Effect.sync(() => req.destroy())
  })

const serve = (options: Admin.Options = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Admin.layer({ port: 0, token: Redacted.make(token), ...options }).pipe(
        Layer.provideMerge(
          Nightshift.layer(
            Nightshift.define({
              workers: [],
              runner: false,
              handlers: Job.handlers(
                Job.handle(Email, () => Effect.void),
                Job.handle(Blob, () => Effect.void)
              )
            })
          )
        ),
        Layer.provideMerge(storeLayer({ label: "badinput", maxConnections: 4, listen: false }))
      )
    )
    return {
      base: Context.get(context, Admin.Server).url,
      store: Context.get(context, JobStore.JobStore),
      queue: Context.get(context, JobQueue.JobQueue),
      sql: Context.get(context, SqlClient.SqlClient)
    }
  })

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

describe("admin API on bad input (PostgreSQL)", () => {
  it.scoped(
    "hostile enqueue bodies are 400 with a message, and nothing reaches the database",
    () =>
      Effect.gen(function* () {
        const { base, store } = yield* serve()
        const bodies: ReadonlyArray<readonly [string, RegExp]> = [
          [`{"kind":"email","payload":${nested(100_000)}}`, /levels deep/],
          [`{"kind":"email","payload":{"to":"a"},"runAt":${nested(100_000)}}`, /levels deep/],
          [`${nested(100_000)}`, /levels deep/],
          ['{"kind":"email","payload":{"to":"a"},"delay":"99999999999 weeks"}', /delay/],
          ['{"kind":"email","payload":{"to":"a"},"delay":1e300}', /delay/],
          ['{"kind":"email","payload":{"to":"a"},"delay":"1e300 millis"}', /delay/],
          ['{"kind":"email","payload":{"to":"a"},"runAt":-1e17}', /runAt/],
          ['{"kind":"email","payload":{"to":"a"},"runAt":1e17}', /runAt/],
          ['{"kind":"email","payload":{"to":"a"},"runAt":-1}', /runAt/],
          ['{"kind":"email","payload":{"to":"a"},"runAt":"+275760-09-13T00:00:00.000Z"}', /runAt/],
          ['{"kind":"email","payload":{"to":"a"},"runAt":"10000-01-01T00:00:00Z"}', /runAt/]
        ]
        const wrong: Array<string> = []
        for (const [body, says] of bodies) {
          const reply = yield* call(base, "POST", "/jobs", { body })
          const message: unknown = reply.json?.message
          if (!(reply.status === 400 && typeof message === "string" && says.test(message)))
            wrong.push(`${body.slice(0, 80)} -> ${reply.status} ${reply.text.slice(0, 200)}`)
        }
        expect(wrong).toEqual([])
        expect((yield* store.list({})).jobs).toEqual([])
        // The edges of the documented range are accepted.
        const edge = yield* call(base, "POST", "/jobs", {
          body: JSON.stringify({ kind: "email", payload: { to: "a" }, runAt: JobQueue.maxRunAt })
        })
        expect(edge.status, edge.text).toBe(201)
        const delayed = yield* call(base, "POST", "/jobs", {
          body: JSON.stringify({ kind: "email", payload: { to: "a" }, delay: "1000 weeks" })
        })
        expect(delayed.status, delayed.text).toBe(201)
      }),
    { timeout: 60_000 }
  )

  it.scoped(
    "random enqueue bodies, deep, huge and out of range included, are never a 5xx and always say why",
    () =>
      Effect.gen(function* () {
        const { base } = yield* serve()
        const deep = fc
          .tuple(fc.integer({ min: 60, max: 120_000 }), fc.constantFrom("[", '{"a":'))
          .map(([n, open]) => open.repeat(n) + (open === "[" ? "]" : "1}").repeat(n))
        const value = fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          deep,
          fc.double().map((d) => (Number.isFinite(d) ? String(d) : "1e999")),
          fc.constantFrom("-1e17", "1e17", "8.64e15", "-8.64e15", "253402300800000", "1e308"),
          fc
            .tuple(
              fc.bigInt({ min: 0n, max: 10n ** 15n }),
              fc.constantFrom("weeks", "days", "millis", "nanos", "hours")
            )
            .map(([n, unit]) => JSON.stringify(`${n} ${unit}`)),
          fc.constantFrom(
            '"+275760-09-13T00:00:00.000Z"',
            '"-271821-04-20T00:00:00Z"',
            '"10000-01-01"',
            '"x\\u0000"'
          )
        )
        const body = fc
          .record(
            {
              kind: fc.constantFrom('"email"', '"blob"', '"nope"', "1"),
              payload: fc.oneof(value, fc.constant('{"to":"a"}')),
              queue: fc.oneof(value, fc.constant('"q\\u0000"')),
              priority: value,
              maxAttempts: value,
              dedupeKey: value,
              runAt: value,
              delay: value
            },
            { requiredKeys: ["kind"] }
          )
          .map(
            (fields) =>
              `{${Object.entries(fields)
                .map(([k, v]) => `"${k}":${v}`)
                .join(",")}}`
          )
        const bad: Array<string> = []
        for (const sample of fc.sample(body, 600)) {
          const reply = yield* call(base, "POST", "/jobs", { body: sample })
          if (
            reply.status >= 500 ||
            reply.status < 200 ||
            (reply.status >= 400 && typeof reply.json?.message !== "string")
          )
            bad.push(`${sample.slice(0, 120)} -> ${reply.status} ${reply.text.slice(0, 120)}`)
        }
        expect(bad).toEqual([])
      }),
    { timeout: 120_000 }
  )

  it.scoped("list filters no name can hold are 400, not a store outage", () =>
    Effect.gen(function* () {
      const { base } = yield* serve()
      for (const query of [
        "kind=x%00y",
        "queue=%00",
        "kind=email,a%00",
        "cursor=1%00",
        "state=running&queue=q%00"
      ]) {
        const reply = yield* call(base, "GET", `/jobs?${query}`)
        expect(`${query} ${reply.status}`).toBe(`${query} 400`)
        expect(reply.json?.message, query).toMatch(/NUL/)
      }
      expect((yield* call(base, "GET", "/jobs?kind=email")).status).toBe(200)
      // Path parameters no job id (or, with NUL, no name) can be: 4xx, never a store outage.
      for (const p of ["%00", "1%00", "%ED%A0%80", "99999999999999999999999", "-1", "1e3", "%E2%80%AE"]) {
        for (const [method, path] of [
          ["GET", `/jobs/${p}`],
          ["POST", `/jobs/${p}/retry`],
          ["POST", `/jobs/${p}/cancel`],
          ["POST", `/queues/${p}/pause`],
          ["POST", `/queues/${p}/resume`]
        ] as const) {
          const reply = yield* call(base, method, path)
          expect(reply.status, `${method} ${path} ${reply.text}`).toBeLessThan(500)
          if (path.startsWith("/jobs") || p.includes("%00"))
            expect(reply.status, `${method} ${path} ${reply.text}`).toBeGreaterThanOrEqual(400)
        }
      }
    })
  )

  it.scoped(
    "request bodies over the limit are 413 with a message, declared or chunked; the limit is configurable",
    () =>
      Effect.gen(function* () {
        const big = JSON.stringify({ kind: "blob", payload: { data: "x".repeat(2 * 1024 * 1024) } })
        const { base, store } = yield* serve()
        for (const chunked of [false, true]) {
          const reply = yield* call(base, "POST", "/jobs", { body: big, chunked })
          expect(`${chunked ? "chunked" : "declared"} ${reply.status}`).toBe(
            `${chunked ? "chunked" : "declared"} 413`
          )
          expect(reply.json?.message).toMatch(/larger than 1048576 bytes/)
        }
        expect((yield* store.list({})).jobs).toEqual([])
        // The server still answers after refusing.
        expect((yield* call(base, "GET", "/health/live")).status).toBe(200)
        const roomy = yield* serve({ maxBodyBytes: 4 * 1024 * 1024 })
        const accepted = yield* call(roomy.base, "POST", "/jobs", { body: big })
        expect(accepted.status, accepted.text.slice(0, 200)).toBe(201)
        const refused = yield* Effect.exit(serve({ maxBodyBytes: 0 }))
        expect(String(refused)).toContain("maxBodyBytes")
      })
  )

  it.scoped("odd rows: list and show render what they can and name what they cannot", () =>
    Effect.gen(function* () {
      const { base, queue, sql } = yield* serve()
      const ids: Array<string> = []
      for (let n = 0; n < 6; n++) ids.push((yield* queue.enqueue(Email, { to: `${n}@x` })).id)
      const [a, b, c, d, e, f] = ids.map((id) => BigInt(id)) as [
        bigint,
        bigint,
        bigint,
        bigint,
        bigint,
        bigint
      ]
      const table = (yield* sql<{ t: string }>`
        SELECT table_schema || '.jobs' AS t FROM information_schema.tables
        WHERE table_name = 'jobs' AND table_schema LIKE 'badinput%' ORDER BY table_schema DESC LIMIT 1`)[0]!.t
      const update = (set: string, id: bigint) => sql.unsafe(`UPDATE ${table} SET ${set} WHERE id = ${id}`)
      yield* update(`errors = '"boom"'::jsonb`, a)
      yield* update(`errors = '{"attempt":1}'::jsonb`, b)
      yield* update(
        `errors = '[1, "x", null, {"attempt":"one","at":0,"kind":"failure","message":"m"}]'::jsonb`,
        c
      )
      // Made final, the row moves to jobs_done (stamped with a finish time): the rest of the edit goes there.
      yield* update(`state = 'discarded'`, d)
      yield* sql.unsafe(
        `UPDATE ${table}_done SET lease_owner = 'node-1', finalized_at = NULL WHERE id = ${d}`
      )
      yield* update(`fence = -5`, e)
      yield* update(`run_at = 'infinity'`, f)
      const list = yield* call(base, "GET", "/jobs")
      expect(list.status, list.text.slice(0, 300)).toBe(200)
      const byId = new Map<string, any>(list.json.jobs.map((j: any) => [j.id, j]))
      expect(Array.from(byId.keys()).sort()).toEqual([...ids].sort())
      expect(byId.get(ids[0]!).problems.join()).toMatch(/errors is the text "boom", not a list/)
      expect(byId.get(ids[1]!).problems.join()).toMatch(/errors is an object, not a list/)
      expect(byId.get(ids[2]!).problems).toHaveLength(4)
      expect(byId.get(ids[3]!).problems.join()).toMatch(/discarded but has no finish time/)
      expect(byId.get(ids[3]!).problems.join()).toMatch(/lease owner/)
      expect(byId.get(ids[4]!).problems.join()).toMatch(/fence is negative/)
      expect(byId.get(ids[5]!).problems.join()).toMatch(/runAt/)
      for (const id of ids) {
        const shown = yield* call(base, "GET", `/jobs/${id}`)
        expect(shown.status, `${id} ${shown.text.slice(0, 300)}`).toBe(200)
        expect(shown.json.problems.length, id).toBeGreaterThan(0)
        expect(shown.json.payload).toEqual({ to: `${ids.indexOf(id)}@x` })
      }
      expect((yield* call(base, "GET", `/jobs/${ids[2]}`)).json.errors).toHaveLength(4)
      // A healthy job says nothing about problems.
      const fine = (yield* queue.enqueue(Email, { to: "fine@x" })).id
      expect((yield* call(base, "GET", `/jobs/${fine}`)).json.problems).toBeUndefined()
    })
  )
})
