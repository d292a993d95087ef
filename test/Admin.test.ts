import * as http from "node:http"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Admin from "nightshift/Admin"
import * as Events from "nightshift/Events"
import * as FlowControl from "nightshift/FlowControl"
import * as Job from "nightshift/Job"
import * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"
import { makeSampler } from "../src/internal/runner/maintenance.js"

const token = "s3cret-token"

const Email = Job.make("email", { payload: Schema.Struct({ to: Schema.String }) })
const Flaky = Job.make("flaky", {
  payload: Schema.Struct({ n: Schema.Number }),
  retry: { maxAttempts: 3, backoff: Schedule.spaced("1 minute") }
})

// ---- a small HTTP client on node:http (a fresh connection per request, any Host header) ----

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

interface Call {
  readonly token?: string | undefined
  readonly body?: unknown
  readonly headers?: Record<string, string> | undefined
}

const call = (base: string, method: string, path: string, options: Call = {}) =>
  Effect.async<Reply>((resume) => {
    const body =
      options.body === undefined
        ? undefined
        : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body)
    const req = http.request(
      new URL(path, base),
      {
        method,
        agent: false,
        headers: {
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...options.headers
        }
      },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => {
          text += chunk
        })
        res.on("end", () => {
          const type = String(res.headers["content-type"] ?? "")
          resume(
            Effect.succeed({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text,
              json: type.includes("json") && text !== "" ? JSON.parse(text) : undefined
            })
          )
        })
      }
    )
    req.on("error", (e) => resume(Effect.die(e)))
    req.end(body)
    return Effect.sync(() => req.destroy())
  })

interface Frame {
  readonly event: string
  readonly data: any
}

/** Open `/events` and collect its frames; the connection closes with the scope. */
const openEvents = (base: string, bearer?: string) =>
  Effect.gen(function* () {
    const frames = yield* Queue.unbounded<Frame>()
    const ended = yield* Deferred.make<void>()
    const status = yield* Effect.acquireRelease(
      Effect.async<{ status: number; req: http.ClientRequest }>((resume) => {
        const req = http.get(
          new URL("/events", base),
          { agent: false, headers: bearer ? { authorization: `Bearer ${bearer}` } : {} },
          (res) => {
            let buffer = ""
            res.setEncoding("utf8")
            res.on("data", (chunk: string) => {
              buffer += chunk
              for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
                const lines = buffer.slice(0, i).split("\n")
                buffer = buffer.slice(i + 2)
                const event = lines.find((l) => l.startsWith("event: "))?.slice(7)
                const data = lines.find((l) => l.startsWith("data: "))?.slice(6)
                if (event !== undefined) frames.unsafeOffer({ event, data: JSON.parse(data ?? "null") })
              }
            })
            res.on("close", () => Deferred.unsafeDone(ended, Exit.void))
            resume(Effect.succeed({ status: res.statusCode ?? 0, req }))
          }
        )
        req.on("error", () => Deferred.unsafeDone(ended, Exit.void))
      }),
      ({ req }) => Effect.sync(() => req.destroy())
    )
    /** The next frame satisfying `f`, skipping others. */
    const next = (f: (frame: Frame) => boolean): Effect.Effect<Frame> =>
      Effect.flatMap(Queue.take(frames), (frame) => (f(frame) ? Effect.succeed(frame) : next(f)))
    return { status: status.status, next, ended }
  })

// ---- serving an app ----

const build = (
  app: Nightshift.App<never>,
  options: Admin.Options = {},
  store: Layer.Layer<JobStore.JobStore> = MemoryStore.layer
) =>
  Admin.layer({ port: 0, ...options }).pipe(
    Layer.provideMerge(Nightshift.layer(app)),
    Layer.provideMerge(store)
  )

const serve = (
  app: Nightshift.App<never>,
  options: Admin.Options = {},
  store?: Layer.Layer<JobStore.JobStore>
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(build(app, options, store))
    const info = Context.get(context, Admin.Server)
    return {
      info,
      base: info.url,
      events: Context.get(context, Events.Events),
      store: Context.get(context, JobStore.JobStore)
    }
  })

/** Serve `Admin.routes(options)` beside a host's own `routes` on a free port; returns the base URL. */
const serveBeside = <E, R>(routes: Layer.Layer<never, E, R>, options: Admin.Options) =>
  Effect.gen(function* () {
    const layer = HttpLayerRouter.serve(Layer.merge(routes, Admin.routes(options)), {
      disableLogger: true,
      disableListenLog: true
    }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" })),
      Layer.provide(Nightshift.layer(basicApp).pipe(Layer.provideMerge(MemoryStore.layer)))
    )
    const address = Context.get(yield* Layer.build(layer), HttpServer.HttpServer).address
    return `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}/`
  })

/** Fork a wait for `n` events of the given tags (subscribed before this returns). */
const awaitEvents = (events: Events.Service, n: number, tags: ReadonlyArray<Events.JobEvent["_tag"]>) =>
  Effect.flatMap(events.subscribe, (sub) =>
    sub.pipe(
      Stream.filter((e) => tags.includes(e._tag)),
      Stream.take(n),
      Stream.runCollect,
      Effect.fork
    )
  )

const handlers = Job.handlers(
  Job.handle(Email, () => Effect.void),
  Job.handle(Flaky, ({ n }, ctx) => Effect.fail(new Error(`boom ${n} on attempt ${ctx.attempt}`)))
)

const basicApp = Nightshift.define({
  workers: [
    Worker.periodic("cleanup", { schedule: "1 minute" }, Effect.void),
    Worker.make("consumer", Effect.never)
  ],
  handlers
})

const routes: ReadonlyArray<readonly [string, string]> = [
  ["GET", "/health/ready"],
  ["GET", "/workers"],
  ["POST", "/workers/nightshift%2Fcleanup/tick"],
  ["POST", "/workers/nightshift%2Fcleanup/restart"],
  ["GET", "/workers/tree"],
  ["GET", "/workers/nightshift%2Fcleanup/history"],
  ["GET", "/jobs"],
  ["GET", "/jobs/1"],
  ["GET", "/kinds"],
  ["POST", "/jobs"],
  ["POST", "/jobs/1/retry"],
  ["POST", "/jobs/1/cancel"],
  ["GET", "/queues"],
  ["GET", "/queues/default/partitions"],
  ["POST", "/queues/default/pause"],
  ["POST", "/queues/default/resume"],
  ["GET", "/events"],
  ["GET", "/overview"],
  ["GET", "/metrics"],
  ["GET", "/openapi.json"]
]

describe("Admin security", () => {
  it.scoped(
    "liveness needs no token; every other route answers 401 without the token or with a wrong one",
    () =>
      Effect.gen(function* () {
        const { base } = yield* serve(basicApp, { token: Redacted.make(token) })
        const live = yield* call(base, "GET", "/health/live")
        expect(live.status).toBe(200)
        expect(live.json).toEqual({ status: "ok" })
        for (const [method, path] of routes) {
          const none = yield* call(base, method, path, { body: method === "POST" ? {} : undefined })
          expect([path, none.status]).toEqual([path, 401])
          expect(none.json._tag).toBe("Unauthorized")
          expect(none.json.message).toContain("Authorization: Bearer")
          const wrong = yield* call(base, method, path, { token: "s3cret-tokem" })
          expect([path, wrong.status]).toEqual([path, 401])
          const basic = yield* call(base, method, path, { headers: { authorization: `Basic ${token}` } })
          expect([path, basic.status]).toEqual([path, 401])
        }
        const ok = yield* call(base, "GET", "/workers", { token })
        expect(ok.status).toBe(200)
      })
  )

  it.scoped("refuses to bind beyond loopback without a token, and refuses an empty token", () =>
    Effect.gen(function* () {
      const open = yield* Effect.exit(Layer.build(build(basicApp, { host: "0.0.0.0" })))
      expect(Exit.isFailure(open)).toBe(true)
      const error = Exit.isFailure(open) ? JSON.stringify(open.cause) : ""
      expect(error).toContain("without a token")
      expect(error).toContain("NIGHTSHIFT_ADMIN_TOKEN")
      const empty = yield* Effect.exit(Layer.build(build(basicApp, { token: Redacted.make("  ") })))
      expect(Exit.isFailure(empty) && JSON.stringify(empty.cause)).toContain("token is empty")
      const { info } = yield* serve(basicApp, { host: "0.0.0.0", token: Redacted.make(token) })
      expect(info.authenticated).toBe(true)
      const live = yield* call(info.url, "GET", "/health/live")
      expect(live.status).toBe(200)
      const first = yield* serve(basicApp)
      const taken = yield* Effect.exit(Layer.build(build(basicApp, { port: first.info.port })))
      expect(Exit.isFailure(taken) && JSON.stringify(taken.cause)).toContain(
        `could not listen on 127.0.0.1:${first.info.port}`
      )
    })
  )

  it.scoped("refuses cross-site requests, and foreign Host names when there is no token", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(basicApp)
      expect((yield* call(base, "GET", "/workers")).status).toBe(200)
      const crossSite = yield* call(base, "POST", "/queues/default/pause", {
        headers: { origin: "http://evil.example" }
      })
      expect(crossSite.status).toBe(403)
      expect(crossSite.json.message).toContain("cross-site")
      const rebound = yield* call(base, "GET", "/workers", { headers: { host: "evil.example:80" } })
      expect(rebound.status).toBe(403)
      expect(rebound.json.message).toContain("not a loopback name")
      const sameSite = yield* call(base, "GET", "/workers", { headers: { origin: base.replace(/\/$/, "") } })
      expect(sameSite.status).toBe(200)
    })
  )

  it.scopedLive(
    "GET /overview: the sampled history over a window, newer points with after, behind the token",
    () =>
      Effect.gen(function* () {
        const { base, store } = yield* serve(basicApp, {
          token: Redacted.make(token),
          sampleInterval: "500 millis"
        })
        expect((yield* call(base, "GET", "/overview")).status).toBe(401)
        const job = { kind: "manual", queue: "manual", payload: {}, priority: 0, maxAttempts: 1 }
        yield* store.enqueue([job, job])
        const claimed = yield* store.claim({
          queues: ["manual"],
          kinds: ["manual"],
          limit: 1,
          leaseMs: 30_000,
          owner: "test"
        })
        yield* store.settle(
          claimed.map((j) => ({ id: j.id, fence: j.fence, outcome: { _tag: "completed" } }))
        )
        const overview = yield* call(base, "GET", "/overview?window=5m", { token }).pipe(
          Effect.filterOrFail((r) => r.json.points.some((p: { completed: number }) => p.completed > 0)),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("10 seconds")))
        )
        expect(overview.status).toBe(200)
        const body = overview.json
        expect(body).toMatchObject({ window: "5m", intervalMs: 500, resolutionMs: 500 })
        expect(body.queues).toContain("manual")
        const last = body.points[body.points.length - 1]
        expect(last.depth.manual).toEqual({ scheduled: 0, available: 1, running: 0, retryable: 0 })
        const done = body.points.find((p: { completed: number }) => p.completed > 0)
        expect(done.started).toBe(1)
        expect(done.p50).toBeGreaterThanOrEqual(0)
        const newer = yield* call(base, "GET", `/overview?after=${last.at}`, { token })
        expect(newer.json.window).toBe("15m")
        expect(newer.json.points.every((p: { at: number }) => p.at > last.at)).toBe(true)
        expect((yield* call(base, "GET", "/overview?window=2m", { token })).status).toBe(400)
        const busy = yield* Effect.exit(Layer.build(build(basicApp, { sampleInterval: "10 millis" })))
        expect(Exit.isFailure(busy) && JSON.stringify(busy.cause)).toContain(
          "sampleInterval must be at least 100 millis"
        )
      })
  )

  it.scoped("the dashboard page is served without a token and carries no data", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(basicApp, { token: Redacted.make(token) })
      const page = yield* call(base, "GET", "/")
      expect(page.status).toBe(200)
      expect(page.headers["content-type"]).toContain("text/html")
      expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
      expect(page.text).toContain("<title>Nightshift</title>")
      expect(page.text).not.toContain("cleanup")
    })
  )
})

describe("Admin setup", () => {
  it.scoped("layerConfig reads the environment; overrides win", () =>
    Effect.gen(function* () {
      const env = ConfigProvider.fromMap(
        new Map([
          ["NIGHTSHIFT_ADMIN_PORT", "1"],
          ["NIGHTSHIFT_ADMIN_TOKEN", token],
          ["NIGHTSHIFT_ADMIN_PREFIX", "/ops"]
        ])
      )
      const layer = Admin.layerConfig({ port: 0 }).pipe(
        Layer.provideMerge(Nightshift.layer(basicApp)),
        Layer.provideMerge(MemoryStore.layer),
        Layer.provide(Layer.setConfigProvider(env))
      )
      const info = Context.get(yield* Layer.build(layer), Admin.Server)
      expect(info.authenticated).toBe(true)
      expect(info.port).toBeGreaterThan(1)
      expect(info.url.endsWith("/ops")).toBe(true)
      expect((yield* call(info.url, "GET", "/ops/workers")).status).toBe(401)
      expect((yield* call(info.url, "GET", "/ops/workers", { token })).status).toBe(200)

      const badPort = Admin.layerConfig().pipe(
        Layer.provideMerge(Nightshift.layer(basicApp)),
        Layer.provideMerge(MemoryStore.layer),
        Layer.provide(
          Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NIGHTSHIFT_ADMIN_PORT", "http"]])))
        )
      )
      const failed = yield* Effect.exit(Layer.build(badPort))
      expect(Exit.isFailure(failed) && String(failed.cause)).toContain("NIGHTSHIFT_ADMIN_PORT")
    })
  )

  it.scoped("a typed client derived from Admin.Api talks to the server", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(Nightshift.define({ handlers, runner: false }), {
        token: Redacted.make(token)
      })
      const client = yield* HttpApiClient.make(Admin.Api, {
        baseUrl: base,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(token))
      })
      const created = yield* client.jobs.enqueue({
        payload: { kind: "email", payload: { to: "c@example.com" } }
      })
      const page = yield* client.jobs.list({ urlParams: { state: ["available"], kind: ["email"] } })
      expect(page.jobs.map((j) => j.id)).toEqual([created.id])
      const missing = yield* Effect.flip(client.jobs.get({ path: { id: "nope" } }))
      expect(missing._tag).toBe("JobNotFound")
    }).pipe(Effect.provide(FetchHttpClient.layer))
  )

  it.scoped("mounts into a host application's router beside its own routes", () =>
    Effect.gen(function* () {
      const hello = HttpLayerRouter.add("GET", "/hello", HttpServerResponse.text("hi"))
      const base = yield* serveBeside(hello, { token: Redacted.make(token) })
      expect((yield* call(base, "GET", "/hello")).text).toBe("hi")
      expect((yield* call(base, "GET", "/workers")).status).toBe(401)
      const workers = yield* call(base, "GET", "/workers", { token })
      expect(workers.json.workers.map((w: any) => w.name)).toContain("nightshift/cleanup")
      expect((yield* call(base, "GET", "/")).headers["content-type"]).toContain("text/html")
    })
  )

  it.scoped("mounts under a prefix, beside host routes of the same names", () =>
    Effect.gen(function* () {
      const hostJobs = HttpLayerRouter.add("GET", "/jobs", HttpServerResponse.text("the host's jobs"))
      const base = yield* serveBeside(hostJobs, { token: Redacted.make(token), prefix: "/ops/nightshift/" })
      expect((yield* call(base, "GET", "/jobs", { token })).text).toBe("the host's jobs")
      expect((yield* call(base, "GET", "/ops/nightshift/jobs")).status).toBe(401)
      const page = yield* call(base, "GET", "/ops/nightshift/jobs", { token })
      expect(page.status).toBe(200)
      expect(Array.isArray(page.json.jobs)).toBe(true)
      expect((yield* call(base, "GET", "/ops/nightshift")).headers["content-type"]).toContain("text/html")
      expect((yield* call(base, "GET", "/ops/nightshift/health/live")).json).toEqual({ status: "ok" })
      expect((yield* call(base, "GET", "/workers", { token })).status).toBe(404)
    })
  )

  it.scoped(
    "Admin.layer serves under a prefix and reports the dashboard URL with it; a bad prefix is refused",
    () =>
      Effect.gen(function* () {
        const { info, base } = yield* serve(basicApp, { port: 0, prefix: "/nightshift" })
        expect(info.url).toBe(`http://127.0.0.1:${info.port}/nightshift`)
        expect((yield* call(base, "GET", "/nightshift/workers")).status).toBe(200)
        expect((yield* call(base, "GET", "/workers")).status).toBe(404)
        for (const prefix of ["nightshift", "/a/:id", "/a/*", "/a b", "/a//b"]) {
          const exit = yield* Effect.exit(Layer.build(build(basicApp, { port: 0, prefix })))
          expect(Exit.isFailure(exit) && String(Exit.causeOption(exit))).toContain("is not a plain path")
        }
      })
  )
})

describe("Admin workers", () => {
  it.scoped("lists workers and the runner, ticks a periodic worker and restarts a worker", () =>
    Effect.gen(function* () {
      const ticks = yield* Ref.make(0)
      const app = Nightshift.define({
        workers: [
          Worker.periodic(
            "cleanup",
            { schedule: "1 hour" },
            Ref.update(ticks, (n) => n + 1)
          ),
          Worker.make("consumer", Effect.never)
        ],
        handlers
      })
      const { base } = yield* serve(app, { token: Redacted.make(token) })
      const list = yield* call(base, "GET", "/workers", { token })
      expect(list.status).toBe(200)
      const names = list.json.workers.map((w: any) => w.name)
      expect(names).toContain("nightshift/cleanup")
      expect(names).toContain("nightshift/jobs/fetcher")
      const consumer = list.json.workers.find((w: any) => w.name === "nightshift/consumer")
      expect(consumer.state).toBe("running")
      expect(list.json.runner.healthy).toBe(true)
      expect(list.json.runner.queues).toContain("default")

      const tick = yield* call(base, "POST", "/workers/nightshift%2Fcleanup/tick", { token })
      expect(tick.status).toBe(200)
      expect(tick.json).toEqual({ worker: "nightshift/cleanup", outcome: { _tag: "success" } })
      expect(yield* Ref.get(ticks)).toBe(1)

      const notPeriodic = yield* call(base, "POST", "/workers/nightshift%2Fconsumer/tick", { token })
      expect(notPeriodic.status).toBe(409)
      expect(notPeriodic.json.message).toContain("only periodic workers can be ticked")
      const unknown = yield* call(base, "POST", "/workers/nope/tick", { token })
      expect(unknown.status).toBe(404)
      expect(unknown.json).toMatchObject({ _tag: "WorkerNotFound", worker: "nope" })

      const restart = yield* call(base, "POST", "/workers/nightshift%2Fconsumer/restart", { token })
      expect(restart.status).toBe(200)
      const after = yield* call(base, "GET", "/workers", { token })
      const restarted = after.json.workers.find((w: any) => w.name === "nightshift/consumer")
      expect(restarted.restarts).toBe(1)
      expect((yield* call(base, "POST", "/workers/nope/restart", { token })).status).toBe(404)

      const history = yield* call(base, "GET", "/workers/nightshift%2Fcleanup/history", { token })
      expect(history.status).toBe(200)
      expect(history.json).toMatchObject({ name: "nightshift/cleanup", kind: "periodic", ticksRecorded: 1 })
      expect(history.json.ticks).toHaveLength(1)
      expect(history.json.ticks[0]).toMatchObject({ forced: true, outcome: { _tag: "success" } })
      const consumerHistory = yield* call(base, "GET", "/workers/nightshift%2Fconsumer/history", { token })
      expect(consumerHistory.json.ticks).toEqual([])
      expect(consumerHistory.json.restarts).toHaveLength(1)
      expect(consumerHistory.json.restarts[0]).toMatchObject({ reason: "requested", attempt: 0 })
      const missing = yield* call(base, "GET", "/workers/nope/history", { token })
      expect(missing.status).toBe(404)
      expect(missing.json).toMatchObject({ _tag: "WorkerNotFound", worker: "nope" })

      const tree = yield* call(base, "GET", "/workers/tree", { token })
      expect(tree.status).toBe(200)
      const top = tree.json.tree[0]
      expect(top).toMatchObject({ name: "nightshift", kind: "crew" })
      const childNames = top.children.map((c: any) => c.name)
      expect(childNames).toEqual(expect.arrayContaining(["nightshift/cleanup", "nightshift/consumer"]))
      const jobsCrew = top.children.find((c: any) => c.name === "nightshift/jobs")
      expect(jobsCrew.children.map((c: any) => c.name)).toContain("nightshift/jobs/fetcher")
    })
  )
})

describe("Admin jobs", () => {
  it.scoped("enqueues by kind name, shows a job, and lists with filters and pages", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(Nightshift.define({ handlers, runner: false }))
      const kinds = yield* call(base, "GET", "/kinds")
      expect(kinds.json.kinds.map((k: any) => k.name)).toEqual(["email", "flaky"])

      const created = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: { to: "a@example.com" }, queue: "mail", priority: 3, dedupeKey: "k1" }
      })
      expect(created.status).toBe(201)
      expect(created.json.deduped).toBe(false)
      const again = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: { to: "a@example.com" }, queue: "mail", dedupeKey: "k1" }
      })
      expect(again.json).toEqual({ id: created.json.id, deduped: true })
      const later = yield* call(base, "POST", "/jobs", {
        body: { kind: "flaky", payload: { n: 1 }, delay: "10 minutes" }
      })
      yield* call(base, "POST", "/jobs", { body: { kind: "flaky", payload: { n: 2 }, runAt: 5_000 } })

      const one = yield* call(base, "GET", `/jobs/${created.json.id}`)
      expect(one.status).toBe(200)
      expect(one.json).toMatchObject({
        id: created.json.id,
        kind: "email",
        queue: "mail",
        priority: 3,
        state: "available",
        payload: { to: "a@example.com" },
        dedupeKey: "k1",
        errors: []
      })
      const delayed = yield* call(base, "GET", `/jobs/${later.json.id}`)
      expect(delayed.json.state).toBe("scheduled")
      expect(delayed.json.runAt).toBe(600_000)

      const byKind = yield* call(base, "GET", "/jobs?kind=flaky")
      expect(byKind.json.jobs.map((j: any) => j.kind)).toEqual(["flaky", "flaky"])
      expect(byKind.json.jobs[0]).not.toHaveProperty("payload")
      const byState = yield* call(base, "GET", "/jobs?state=available,running")
      expect(byState.json.jobs.map((j: any) => j.id)).toEqual([created.json.id])
      const byQueue = yield* call(base, "GET", "/jobs?queue=mail")
      expect(byQueue.json.jobs).toHaveLength(1)

      const first = yield* call(base, "GET", "/jobs?limit=2")
      expect(first.json.jobs).toHaveLength(2)
      expect(first.json.nextCursor).not.toBeNull()
      const second = yield* call(base, "GET", `/jobs?limit=2&cursor=${first.json.nextCursor}`)
      expect(second.json.jobs).toHaveLength(1)
      const ids = [...first.json.jobs, ...second.json.jobs].map((j: any) => j.id)
      expect(new Set(ids).size).toBe(3)
    })
  )

  it.scoped("bad requests get 4xx with a message that says what to fix", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(Nightshift.define({ handlers, runner: false }))
      const unknownKind = yield* call(base, "POST", "/jobs", { body: { kind: "sms", payload: {} } })
      expect(unknownKind.status).toBe(400)
      expect(unknownKind.json.message).toBe('unknown job kind "sms"; this app knows: email, flaky')
      const badPayload = yield* call(base, "POST", "/jobs", { body: { kind: "email", payload: { to: 42 } } })
      expect(badPayload.status).toBe(400)
      expect(badPayload.json.message).toContain("payload for email does not match its schema")
      expect(badPayload.json.message).toContain('["to"]')
      const badDelay = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: {}, delay: "soon" }
      })
      expect(badDelay.status).toBe(400)
      expect(badDelay.json.message).toContain('delay must be milliseconds or a duration such as "30 seconds"')
      const badQueue = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: { to: "x" }, queue: "no spaces" }
      })
      expect(badQueue.status).toBe(400)
      expect(badQueue.json.message).toContain("invalid queue name")
      const notJson = yield* call(base, "POST", "/jobs", { body: "{not json" })
      expect(notJson.status).toBe(400)
      expect(notJson.json.message).toContain("the request body is not valid JSON")
      const form = yield* call(base, "POST", "/jobs", {
        body: "kind=email",
        headers: { "content-type": "application/x-www-form-urlencoded" }
      })
      expect(form.status).toBe(400)
      expect(form.json.message).toContain("Content-Type: application/json")
      const noKind = yield* call(base, "POST", "/jobs", { body: { payload: {} } })
      expect(noKind.status).toBe(400)
      expect(noKind.json.message).toContain('["kind"]')
      const badState = yield* call(base, "GET", "/jobs?state=done")
      expect(badState.status).toBe(400)
      expect(badState.json.message).toContain("state must be a comma-separated list of scheduled, available")
      const badLimit = yield* call(base, "GET", "/jobs?limit=0")
      expect(badLimit.status).toBe(400)
      expect(badLimit.json.message).toContain("limit must be an integer from 1 to 500")
      const missing = yield* call(base, "GET", "/jobs/999")
      expect(missing.status).toBe(404)
      expect(missing.json).toEqual({ _tag: "JobNotFound", id: "999", message: 'no job with id "999"' })
      expect((yield* call(base, "POST", "/jobs/999/cancel")).status).toBe(404)
      expect((yield* call(base, "POST", "/jobs/999/retry")).status).toBe(404)
    })
  )

  it.scoped("a failing job shows every attempt's error; retry and cancel answer by state", () =>
    Effect.gen(function* () {
      const { base, events } = yield* serve(Nightshift.define({ handlers }))
      const firstFailure = yield* awaitEvents(events, 1, ["retried"])
      const { json: job } = yield* call(base, "POST", "/jobs", { body: { kind: "flaky", payload: { n: 7 } } })
      yield* Fiber.join(firstFailure)
      const once = yield* call(base, "GET", `/jobs/${job.id}`)
      expect(once.json.state).toBe("retryable")
      expect(once.json.errors).toHaveLength(1)
      expect(once.json.errors[0]).toMatchObject({ attempt: 1, kind: "failure" })
      expect(once.json.errors[0].message).toContain("boom 7 on attempt 1")
      const listed = yield* call(base, "GET", "/jobs?kind=flaky")
      expect(listed.json.jobs[0].lastError).toContain("boom 7 on attempt 1")
      expect(listed.json.jobs[0].errorCount).toBe(1)

      const notYet = yield* call(base, "POST", `/jobs/${job.id}/retry`)
      expect(notYet.status).toBe(409)
      expect(notYet.json).toMatchObject({ _tag: "JobStateConflict", state: "retryable" })

      const discarded = yield* awaitEvents(events, 1, ["discarded"])
      while (discarded.unsafePoll() === null) yield* TestClock.adjust("1 minute")
      yield* Fiber.join(discarded)
      const done = yield* call(base, "GET", `/jobs/${job.id}`)
      expect(done.json.state).toBe("discarded")
      expect(done.json.errors.map((e: any) => e.attempt)).toEqual([1, 2, 3])

      const cancelFinal = yield* call(base, "POST", `/jobs/${job.id}/cancel`)
      expect(cancelFinal.status).toBe(409)
      expect(cancelFinal.json.message).toContain("already finished (discarded)")

      const retried = yield* call(base, "POST", `/jobs/${job.id}/retry`)
      expect(retried.status).toBe(200)
      expect(retried.json).toEqual({ id: job.id, result: "retried" })

      const { json: scheduled } = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: { to: "b@example.com" }, delay: 3_600_000 }
      })
      const cancelled = yield* call(base, "POST", `/jobs/${scheduled.id}/cancel`)
      expect(cancelled.json).toEqual({ id: scheduled.id, result: "cancelled" })
      expect((yield* call(base, "GET", `/jobs/${scheduled.id}`)).json.state).toBe("cancelled")
    })
  )
})

describe("Admin queues", () => {
  it.scoped("shows depth per state, pauses and resumes", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(Nightshift.define({ handlers, runner: false }))
      yield* call(base, "POST", "/jobs", { body: { kind: "email", payload: { to: "x" } } })
      yield* call(base, "POST", "/jobs", { body: { kind: "email", payload: { to: "y" }, delay: 60_000 } })
      yield* call(base, "POST", "/jobs", { body: { kind: "email", payload: { to: "z" }, queue: "bulk" } })
      const list = yield* call(base, "GET", "/queues")
      expect(list.status).toBe(200)
      const byName = Object.fromEntries(list.json.queues.map((q: any) => [q.name, q]))
      expect(byName.default.counts).toMatchObject({ available: 1, scheduled: 1, running: 0, completed: 0 })
      expect(byName.bulk.counts.available).toBe(1)
      expect(byName.default.paused).toBe(false)

      const paused = yield* call(base, "POST", "/queues/bulk/pause")
      expect(paused.json).toEqual({ queue: "bulk", paused: true })
      const after = yield* call(base, "GET", "/queues")
      expect(after.json.queues.find((q: any) => q.name === "bulk").paused).toBe(true)
      const resumed = yield* call(base, "POST", "/queues/bulk/resume")
      expect(resumed.json).toEqual({ queue: "bulk", paused: false })
      const invalid = yield* call(base, "POST", "/queues/bad%20name/pause")
      expect(invalid.status).toBe(400)
      expect(invalid.json.message).toContain("invalid queue name")
    })
  )
})

const Sync = Job.make("sync", {
  payload: Schema.Struct({ tenant: Schema.String }),
  partition: (p) => p.tenant,
  concurrency: { perPartition: 1 }
})

describe("Admin flow control", () => {
  it.scoped("held-back jobs say why, with their partition; queues show limits and the busiest keys", () =>
    Effect.gen(function* () {
      const { base, store } = yield* serve(
        Nightshift.define({ handlers: Job.handlers(Job.handle(Sync, () => Effect.void)), runner: false })
      )
      yield* store.declareLimits([
        FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 1 } }),
        FlowControl.toRule("queue", "bulk", { concurrency: { global: 3 } })
      ])
      const add = (tenant: string, extra: Record<string, unknown> = {}) =>
        Effect.map(
          call(base, "POST", "/jobs", { body: { kind: "sync", payload: { tenant }, ...extra } }),
          (r) => {
            expect(r.status).toBe(201)
            return r.json.id as string
          }
        )
      const first = yield* add("acme")
      const held = yield* add("acme")
      yield* add("acme")
      const zeta = yield* add("zeta")
      const explicit = yield* add("acme", { partition: "other" })
      const later = yield* add("acme", { delay: "1 hour" })
      const paused = yield* add("acme", { queue: "frozen" })
      yield* call(base, "POST", "/queues/frozen/pause")
      const claimed = yield* store.claim({
        queues: ["default"],
        kinds: ["sync"],
        limit: 10,
        leaseMs: 60_000,
        owner: "elsewhere"
      })
      expect(claimed.map((j) => j.id).sort()).toEqual([first, zeta, explicit].sort())

      const detail = yield* call(base, "GET", `/jobs/${held}`)
      expect(detail.status).toBe(200)
      expect(detail.json).toMatchObject({
        partition: "acme",
        waiting: "partition at limit",
        state: "available"
      })
      expect((yield* call(base, "GET", `/jobs/${explicit}`)).json).toMatchObject({
        partition: "other",
        waiting: null,
        state: "running"
      })
      const list = yield* call(base, "GET", "/jobs?kind=sync")
      const byId = new Map<string, any>(list.json.jobs.map((j: any) => [j.id, j]))
      expect(byId.get(held)).toMatchObject({ partition: "acme", waiting: "partition at limit" })
      expect(byId.get(first)).toMatchObject({ partition: "acme", waiting: null, state: "running" })
      expect(byId.get(later)).toMatchObject({ waiting: "scheduled" })
      expect(byId.get(paused)).toMatchObject({ waiting: "queue paused" })

      const queues = yield* call(base, "GET", "/queues")
      expect(queues.status).toBe(200)
      const byName = new Map<string, any>(queues.json.queues.map((q: any) => [q.name, q]))
      expect(byName.get("default").flow).toEqual({
        rules: [FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 1 } })],
        running: 3,
        due: 2,
        throttled: 2,
        keys: 3,
        partitions: [
          { partition: "acme", running: 1, due: 2, throttled: 2, waiting: "partition at limit" },
          { partition: "other", running: 1, due: 0, throttled: 0, waiting: null },
          { partition: "zeta", running: 1, due: 0, throttled: 0, waiting: null }
        ]
      })
      // A queue with only a rule is listed, with its limit.
      expect(byName.get("bulk").flow).toMatchObject({
        rules: [{ scope: "queue", name: "bulk", global: 3 }],
        running: 0
      })
      expect(byName.get("frozen")).toMatchObject({ paused: true, flow: { throttled: 1, due: 1 } })
      expect(queues.json.throttled).toEqual([
        { queue: "default", kind: "sync", reason: "partition at limit", count: 2 },
        { queue: "frozen", kind: "sync", reason: "queue paused", count: 1 }
      ])
      expect(queues.json.rules).toHaveLength(2)

      const one = yield* call(base, "GET", "/queues/default/partitions?limit=1")
      expect(one.status).toBe(200)
      expect(one.json).toMatchObject({ queue: "default", paused: false, keys: 3, throttled: 2 })
      expect(one.json.partitions).toEqual([
        { partition: "acme", running: 1, due: 2, throttled: 2, waiting: "partition at limit" }
      ])
      const empty = yield* call(base, "GET", "/queues/nothing-here/partitions")
      expect(empty.json).toMatchObject({ queue: "nothing-here", keys: 0, partitions: [], rules: [] })
      expect((yield* call(base, "GET", "/queues/bad%20name/partitions")).status).toBe(400)
      expect((yield* call(base, "GET", "/queues/default/partitions?limit=0")).status).toBe(400)

      // The throttled gauge on /metrics, as the runner's sampler sets it.
      yield* makeSampler(store, ["default"]).sample(true)
      const metrics = yield* call(base, "GET", "/metrics")
      expect(metrics.text).toContain(
        'nightshift_jobs_throttled{queue="default",kind="sync",reason="partition at limit"} 2'
      )
      expect(metrics.text).toContain(
        'nightshift_jobs_throttled{queue="frozen",kind="sync",reason="queue paused"} 1'
      )
    })
  )
})

describe("Admin health", () => {
  it.scoped("readiness is 503 while the store is unreachable", () =>
    Effect.gen(function* () {
      let down = false
      const flakyStore = Layer.effect(
        JobStore.JobStore,
        Effect.map(MemoryStore.make, (store) => ({
          ...store,
          ping: Effect.suspend(() =>
            down ? Effect.fail(new JobStore.JobStoreError({ message: "connection refused" })) : Effect.void
          )
        }))
      )
      const { base } = yield* serve(Nightshift.define({ runner: false }), {}, flakyStore)
      const ready = yield* call(base, "GET", "/health/ready")
      expect(ready.status).toBe(200)
      expect(ready.json.ready).toBe(true)
      down = true
      const notReady = yield* call(base, "GET", "/health/ready")
      expect(notReady.status).toBe(503)
      expect(notReady.json.ready).toBe(false)
      expect(notReady.json.checks).toContainEqual({
        name: "store",
        ok: false,
        detail: "memory store unreachable: connection refused"
      })
      expect((yield* call(base, "GET", "/health/live")).status).toBe(200)
      down = false
      expect((yield* call(base, "GET", "/health/ready")).status).toBe(200)
    })
  )

  it.scoped("readiness is 503 when a periodic worker's tick is overdue by more than the threshold", () =>
    Effect.gen(function* () {
      const app = Nightshift.define({
        workers: [Worker.periodic("stuck", { schedule: "1 minute" }, Effect.never)],
        runner: false
      })
      const { base } = yield* serve(app, { lateAfter: "2 minutes" })
      expect((yield* call(base, "GET", "/health/ready")).status).toBe(200)
      yield* TestClock.adjust("1 minute")
      expect((yield* call(base, "GET", "/health/ready")).status).toBe(200)
      yield* TestClock.adjust("2 minutes")
      expect((yield* call(base, "GET", "/health/ready")).status).toBe(200)
      yield* TestClock.adjust("1 second")
      const late = yield* call(base, "GET", "/health/ready")
      expect(late.status).toBe(503)
      const check = late.json.checks.find((c: any) => c.name === "worker:nightshift/stuck")
      expect(check.ok).toBe(false)
      expect(check.detail).toContain('periodic worker "nightshift/stuck" is 2m 1s late')
      expect(late.json.message).toContain("nightshift/stuck")
    })
  )
})

describe("Admin observability", () => {
  it.scoped("the event stream delivers job lifecycle events and worker changes", () =>
    Effect.gen(function* () {
      const app = Nightshift.define({
        workers: [Worker.periodic("cleanup", { schedule: "1 hour" }, Effect.void)],
        handlers
      })
      const { base } = yield* serve(app, { token: Redacted.make(token) })
      const stream = yield* openEvents(base, token)
      expect(stream.status).toBe(200)
      yield* stream.next((f) => f.event === "ready")
      const { json: job } = yield* call(base, "POST", "/jobs", {
        body: { kind: "email", payload: { to: "q" } },
        token
      })
      const enqueued = yield* stream.next((f) => f.event === "job" && f.data.id === job.id)
      expect(enqueued.data).toMatchObject({ _tag: "enqueued", kind: "email", queue: "default" })
      const completed = yield* stream.next((f) => f.event === "job" && f.data._tag === "completed")
      expect(completed.data.id).toBe(job.id)
      yield* call(base, "POST", "/workers/nightshift%2Fcleanup/tick", { token })
      const worker = yield* stream.next((f) => f.event === "worker" && f.data.name === "nightshift/cleanup")
      expect(worker.data).toHaveProperty("state")
    })
  )

  it.scoped("releasing the server ends open event streams instead of hanging", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(build(Nightshift.define({ runner: false })), scope)
      const base = Context.get(context, Admin.Server).url
      const stream = yield* openEvents(base)
      yield* stream.next((f) => f.event === "ready")
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(stream.ended)
    })
  )

  it.scoped("/metrics serves the job counters in Prometheus text after jobs ran", () =>
    Effect.gen(function* () {
      const Metered = Job.make("metered_admin_test", { payload: Schema.Struct({}) })
      const app = Nightshift.define({ handlers: Job.handlers(Job.handle(Metered, () => Effect.void)) })
      const { base, events } = yield* serve(app)
      const done = yield* awaitEvents(events, 3, ["completed"])
      for (let i = 0; i < 3; i++)
        yield* call(base, "POST", "/jobs", { body: { kind: Metered.name, payload: {} } })
      yield* Fiber.join(done)
      const metrics = yield* call(base, "GET", "/metrics")
      expect(metrics.status).toBe(200)
      expect(metrics.headers["content-type"]).toContain("text/plain; version=0.0.4")
      expect(metrics.text).toContain("# TYPE nightshift_job_attempts_total counter")
      expect(metrics.text).toContain(
        'nightshift_job_attempts_total{kind="metered_admin_test",outcome="completed"} 3'
      )
      expect(metrics.text).toContain(
        'nightshift_jobs_enqueued_total{kind="metered_admin_test",deduped="false"} 3'
      )
      expect(metrics.text).toContain("# TYPE nightshift_job_duration_seconds histogram")
      expect(metrics.text).toContain('nightshift_job_duration_seconds_count{kind="metered_admin_test"} 3')
    })
  )

  it.scoped("serves its OpenAPI document, with the bearer scheme and without the page", () =>
    Effect.gen(function* () {
      const { base } = yield* serve(basicApp, { token: Redacted.make(token) })
      const doc = yield* call(base, "GET", "/openapi.json", { token })
      expect(doc.status).toBe(200)
      expect(doc.json.openapi).toBe("3.1.0")
      expect(doc.json.info.title).toBe("Nightshift admin API")
      const paths = Object.keys(doc.json.paths)
      for (const p of [
        "/health/live",
        "/health/ready",
        "/workers",
        "/jobs",
        "/jobs/{id}",
        "/queues",
        "/queues/{name}/partitions",
        "/events"
      ]) {
        expect(paths).toContain(p)
      }
      expect(paths).not.toContain("/")
      expect(paths).not.toContain("/openapi.json")
      expect(JSON.stringify(doc.json.components.securitySchemes)).toContain('"scheme":"bearer"')
    })
  )
})
