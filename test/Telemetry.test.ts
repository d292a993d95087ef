import * as http from "node:http"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Events from "nightshift/Events"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as MemoryStore from "nightshift/MemoryStore"
import * as Nightshift from "nightshift/Nightshift"
import * as SqliteStore from "nightshift/SqliteStore"
import * as Telemetry from "nightshift/Telemetry"

const Invoice = Job.make("invoice", { payload: Schema.Struct({ customer: Schema.String }) })
const app = Nightshift.define({ handlers: Job.handlers(Job.handle(Invoice, () => Effect.void)) })

/** Enqueue one invoice inside a caller's span and wait until the runner completes it. */
const enqueueAndRun = Effect.gen(function* () {
  const events = yield* Events.Events
  const done = yield* Effect.flatMap(events.subscribe, (s) =>
    s.pipe(
      Stream.filter((e) => e._tag === "completed"),
      Stream.take(1),
      Stream.runDrain,
      Effect.fork
    )
  )
  const { id } = yield* JobQueue.enqueue(Invoice, { customer: "acme" }).pipe(
    Effect.withSpan("POST /invoices")
  )
  while (done.unsafePoll() === null) yield* TestClock.adjust("1 second")
  yield* Fiber.join(done)
  return id
})

describe("Telemetry", () => {
  it.scoped("the job's execution span links to its enqueue span across a store round trip", () =>
    Effect.gen(function* () {
      const exporter = new InMemorySpanExporter()
      const tracing = NodeSdk.layer(() => ({
        resource: { serviceName: "nightshift-test" },
        spanProcessor: new SimpleSpanProcessor(exporter)
      }))
      const context = yield* Layer.build(
        Nightshift.layer(app).pipe(
          Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" })),
          Layer.provideMerge(tracing)
        )
      )
      const id = yield* Effect.provide(enqueueAndRun, context)
      const spans = exporter.getFinishedSpans()
      const request = spans.find((s) => s.name === "POST /invoices")!
      const enqueue = spans.find((s) => s.name === "nightshift.enqueue")!
      const run = spans.find((s) => s.name === "nightshift.job invoice")!
      expect(enqueue.parentSpanContext?.spanId).toBe(request.spanContext().spanId)
      expect(run.attributes["job.id"]).toBe(id)
      expect(run.parentSpanContext).toBeUndefined()
      expect(run.spanContext().traceId).not.toBe(enqueue.spanContext().traceId)
      expect(run.links).toHaveLength(1)
      expect(run.links[0]!.context.traceId).toBe(enqueue.spanContext().traceId)
      expect(run.links[0]!.context.spanId).toBe(enqueue.spanContext().spanId)
      // With a tracer installed, the store's operations are spans too, under the enqueue.
      const stored = spans.find((s) => s.name === "SqliteStore.enqueue")!
      expect(stored.parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId)
      expect(spans.some((s) => s.name === "SqliteStore.claim")).toBe(true)
    })
  )

  it.scoped("layerConfig exports spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set", () =>
    Effect.gen(function* () {
      const received: Array<{ path: string; body: any }> = []
      const collector = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const server = http.createServer((req, res) => {
            let body = ""
            req.on("data", (c) => {
              body += c
            })
            req.on("end", () => {
              received.push({ path: req.url ?? "", body: JSON.parse(body) })
              res.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const port = (collector.address() as { port: number }).port
      const env = ConfigProvider.fromMap(
        new Map([
          ["OTEL_EXPORTER_OTLP_ENDPOINT", `http://127.0.0.1:${port}`],
          ["OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"],
          ["OTEL_SERVICE_NAME", "billing"],
          ["OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=pay%20ments"]
        ])
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Nightshift.layer(app).pipe(
          Layer.provideMerge(MemoryStore.layer),
          Layer.provideMerge(Telemetry.layerConfig()),
          Layer.provide(Layer.setConfigProvider(env))
        ),
        scope
      )
      const id = yield* Effect.provide(enqueueAndRun, context)
      yield* Scope.close(scope, Exit.void)

      const traces = received.filter((r) => r.path === "/v1/traces").map((r) => r.body)
      const resourceSpans = traces.flatMap((b) => b.resourceSpans)
      const attributes = Object.fromEntries(
        resourceSpans[0].resource.attributes.map((a: any) => [a.key, a.value.stringValue])
      )
      expect(attributes).toMatchObject({
        "service.name": "billing",
        "deployment.environment": "test",
        team: "pay ments"
      })
      const spans = resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans))
      const enqueue = spans.find((s: any) => s.name === "nightshift.enqueue")
      const run = spans.find((s: any) => s.name === "nightshift.job invoice")
      expect(run.attributes).toContainEqual({ key: "job.id", value: { stringValue: id } })
      expect(run.links).toEqual([
        expect.objectContaining({ traceId: enqueue.traceId, spanId: enqueue.spanId })
      ])
      const metrics = JSON.stringify(received.filter((r) => r.path === "/v1/metrics").map((r) => r.body))
      expect(metrics).toContain("nightshift_jobs_enqueued_total")
    })
  )

  it.effect("layerConfig is a no-op without an endpoint, and explains bad settings", () =>
    Effect.gen(function* () {
      const withEnv = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.exit(
          Layer.build(Telemetry.layerConfig()).pipe(
            Effect.scoped,
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))
          )
        )
      expect(Exit.isSuccess(yield* withEnv([]))).toBe(true)
      expect(
        Exit.isSuccess(
          yield* withEnv([
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"],
            ["OTEL_SDK_DISABLED", "true"]
          ])
        )
      ).toBe(true)
      const grpc = yield* withEnv([
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"],
        ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"]
      ])
      expect(Exit.isFailure(grpc) && String(grpc.cause)).toContain("gRPC is not supported")
      const noScheme = yield* withEnv([["OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"]])
      expect(Exit.isFailure(noScheme) && String(noScheme.cause)).toContain("must be http:// or https://")
    })
  )

  it("parses the OTEL list variables", () => {
    expect(Telemetry.parseList("api-key=abc%3D%3D, x = y ,broken,=nokey")).toEqual({
      "api-key": "abc==",
      x: "y"
    })
  })
})
