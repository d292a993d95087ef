import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Events from "nightshift/Events"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"
import * as Metrics from "nightshift/Metrics"

const Email = Job.make("send_email", {
  payload: Schema.Struct({ to: Schema.String.pipe(Schema.pattern(/@/)), at: Schema.DateFromString }),
  queue: "mail",
  priority: 5,
  retry: { maxAttempts: 3 }
})

/** Whether a flat encoded payload survives JSON and a database: well-formed text without NUL, finite numbers. */
const storable = (value: unknown) =>
  Object.values(value as object).every((v) =>
    typeof v === "string"
      ? !v.includes("\u0000") &&
        !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(v)
      : typeof v !== "number" || Number.isFinite(v)
  )

const TestLayer = JobQueue.layer.pipe(Layer.provideMerge(MemoryStore.layer), Layer.provideMerge(Events.layer))

describe("JobQueue", () => {
  it.effect("encodes the payload with its schema and stores the kind's defaults", () =>
    Effect.gen(function* () {
      const { id, deduped } = yield* JobQueue.enqueue(Email, { to: "a@b.c", at: new Date(5000) })
      expect(deduped).toBe(false)
      const job = Option.getOrThrow(yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.get(id)))
      expect(job.payload).toEqual({ to: "a@b.c", at: "1970-01-01T00:00:05.000Z" })
      expect(job.queue).toBe("mail")
      expect(job.priority).toBe(5)
      expect(job.maxAttempts).toBe(3)
      expect(job.state).toBe("available")
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("rejects a bad payload with a typed error and writes nothing", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(JobQueue.enqueue(Email, { to: "nobody", at: new Date(0) }))
      expect(error._tag).toBe("InvalidPayload")
      expect(error.message).toContain("send_email")
      const page = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.list())
      expect(page.jobs).toHaveLength(0)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("a payload schema that needs a service or runs asynchronously is encoded too", () =>
    Effect.gen(function* () {
      class Prefix extends Context.Tag("test/Prefix")<Prefix, string>() {}
      const Tagged = Schema.transformOrFail(Schema.String, Schema.String, {
        strict: true,
        decode: (s) => ParseResult.succeed(s),
        encode: (s, _, ast) =>
          Effect.flatMap(Prefix, (prefix) =>
            s.length > 0
              ? Effect.as(Effect.sleep(0), `${prefix}${s}`)
              : ParseResult.fail(new ParseResult.Type(ast, s))
          )
      })
      const Note = Job.make("note", { payload: Schema.Struct({ text: Tagged }) })
      const { id } = yield* JobQueue.enqueue(Note, { text: "hello" }).pipe(
        Effect.provideService(Prefix, "> ")
      )
      const job = Option.getOrThrow(yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.get(id)))
      expect(job.payload).toEqual({ text: "> hello" })
      const error = yield* Effect.flip(
        JobQueue.enqueue(Note, { text: "" }).pipe(Effect.provideService(Prefix, "> "))
      )
      expect(error._tag).toBe("InvalidPayload")
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("enqueueMany is all or nothing when one payload is bad", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        JobQueue.enqueueMany([
          JobQueue.item(Email, { to: "a@b.c", at: new Date(0) }),
          JobQueue.item(Email, { to: "bad", at: new Date(0) })
        ])
      )
      expect(error._tag).toBe("InvalidPayload")
      const counts = yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.counts)
      expect(counts.reduce((n, c) => n + c.count, 0)).toBe(0)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("options override the kind's defaults; delay and runAt schedule the job", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_000_000)
      const q = yield* JobQueue.JobQueue
      const a = yield* q.enqueue(
        Email,
        { to: "a@b.c", at: new Date(0) },
        { delay: "1 minute", priority: -1, queue: "urgent", maxAttempts: 9 }
      )
      const b = yield* q.enqueue(Email, { to: "a@b.c", at: new Date(0) }, { runAt: new Date(2_000_000) })
      const ja = Option.getOrThrow(yield* q.get(a.id))
      const jb = Option.getOrThrow(yield* q.get(b.id))
      expect([ja.state, ja.runAt, ja.priority, ja.queue, ja.maxAttempts]).toEqual([
        "scheduled",
        1_060_000,
        -1,
        "urgent",
        9
      ])
      expect([jb.state, jb.runAt]).toEqual(["scheduled", 2_000_000])
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("rejects invalid options with a typed error", () =>
    Effect.gen(function* () {
      const q = yield* JobQueue.JobQueue
      const payload = { to: "a@b.c", at: new Date(0) }
      for (const options of [
        { queue: "" },
        { queue: "a b" },
        { queue: "x".repeat(200) },
        { priority: 1.5 },
        { maxAttempts: 0 },
        { delay: -5 },
        { runAt: Number.NaN },
        { dedupeKey: "" }
      ]) {
        const error = yield* Effect.flip(q.enqueue(Email, payload, options))
        expect(error._tag).toBe("InvalidOptions")
      }
      expect((yield* q.list()).jobs).toHaveLength(0)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("folds an enqueue with a live dedupe key into the existing job", () =>
    Effect.gen(function* () {
      const first = yield* JobQueue.enqueue(
        Email,
        { to: "a@b.c", at: new Date(0) },
        { dedupeKey: "welcome:a" }
      )
      const second = yield* JobQueue.enqueue(
        Email,
        { to: "a@b.c", at: new Date(1) },
        { dedupeKey: "welcome:a" }
      )
      expect(second).toEqual({ id: first.id, deduped: true })
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("a bulk enqueue counts its jobs per kind and deduped in the enqueued counter", () =>
    Effect.gen(function* () {
      const A = Job.make("bulk_count_a", { payload: Schema.Struct({ n: Schema.Number }) })
      const B = Job.make("bulk_count_b", { payload: Schema.Struct({ n: Schema.Number }) })
      const count = (kind: string, deduped: boolean) =>
        Effect.map(
          Metric.value(
            Metrics.jobsEnqueued.pipe(Metric.tagged("kind", kind), Metric.tagged("deduped", String(deduped)))
          ),
          (state) => state.count
        )
      yield* JobQueue.enqueueMany([
        JobQueue.item(A, { n: 1 }),
        JobQueue.item(A, { n: 2 }, { dedupeKey: "k" }),
        JobQueue.item(B, { n: 3 }),
        JobQueue.item(A, { n: 4 }, { dedupeKey: "k" }),
        JobQueue.item(A, { n: 5 })
      ])
      expect(yield* count(A.name, false)).toBe(3)
      expect(yield* count(A.name, true)).toBe(1)
      expect(yield* count(B.name, false)).toBe(1)
      expect(yield* count(B.name, true)).toBe(0)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("stores the enqueuing span's trace context on the job", () =>
    Effect.gen(function* () {
      const { id, span } = yield* Effect.gen(function* () {
        const span = yield* Effect.currentSpan
        const { id } = yield* JobQueue.enqueue(Email, { to: "a@b.c", at: new Date(0) })
        return { id, span }
      }).pipe(Effect.withSpan("request"))
      const job = Option.getOrThrow(yield* Effect.flatMap(JobQueue.JobQueue, (q) => q.get(id)))
      expect(job.traceId).toBe(span.traceId)
      expect(job.spanId).not.toBeNull()
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("publishes an enqueued event", () =>
    Effect.gen(function* () {
      const events = yield* Events.Events
      const subscription = yield* events.subscribe
      const fiber = yield* subscription.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      const { id } = yield* JobQueue.enqueue(Email, { to: "a@b.c", at: new Date(0) })
      const [event] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(event).toMatchObject({ _tag: "enqueued", id, kind: "send_email", queue: "mail" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("pause, resume and paused go to the store; bad queue names are refused", () =>
    Effect.gen(function* () {
      const q = yield* JobQueue.JobQueue
      yield* q.pause("mail")
      expect(yield* q.paused).toEqual(["mail"])
      yield* q.resume("mail")
      expect(yield* q.paused).toEqual([])
      expect((yield* Effect.flip(q.pause("no such queue!")))._tag).toBe("InvalidOptions")
      const store = yield* JobStore.JobStore
      expect(store.engine).toBe("memory")
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("run times outside 1970..9999-12-31 are InvalidOptions in every form, before the store", () =>
    Effect.gen(function* () {
      const q = yield* JobQueue.JobQueue
      const Plain = Job.make("plain", { payload: Schema.Struct({ n: Schema.Number }) })
      const refused: ReadonlyArray<JobQueue.EnqueueOptions> = [
        { runAt: -1e17 },
        { runAt: 1e17 },
        { runAt: -1 },
        { runAt: JobQueue.maxRunAt + 1 },
        { runAt: new Date(8.64e15) },
        { runAt: new Date(Number.NaN) },
        { delay: "99999999999 weeks" },
        { delay: 1e300 },
        { delay: JobQueue.maxRunAt + 1 },
        { delay: "nonsense" as never },
        { delay: -5 }
      ]
      for (const options of refused) {
        const error = yield* Effect.flip(q.enqueue(Plain, { n: 1 }, options))
        expect(error._tag, JSON.stringify(options)).toBe("InvalidOptions")
        expect(error.message.length, JSON.stringify(options)).toBeGreaterThan(10)
      }
      expect((yield* q.list()).jobs).toEqual([])
      // The edges are accepted.
      yield* q.enqueue(Plain, { n: 1 }, { runAt: JobQueue.minRunAt })
      yield* q.enqueue(Plain, { n: 2 }, { runAt: new Date(JobQueue.maxRunAt) })
      yield* q.enqueue(Plain, { n: 3 }, { delay: "1000 weeks" })
      expect((yield* q.list()).jobs).toHaveLength(3)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("a payload nested too deeply for its schema's encoder is InvalidPayload, not a crash", () =>
    Effect.gen(function* () {
      interface Tree {
        readonly children: ReadonlyArray<Tree>
      }
      const Tree: Schema.Schema<Tree> = Schema.Struct({
        children: Schema.Array(Schema.suspend(() => Tree))
      })
      const Deep = Job.make("deep", { payload: Tree })
      let tree: Tree = { children: [] }
      for (let i = 0; i < 100_000; i++) tree = { children: [tree] }
      const error = yield* Effect.flip(JobQueue.enqueue(Deep, tree))
      expect(error._tag).toBe("InvalidPayload")
      expect(error.message).toMatch(/nested/)
      // A failing decode of a deep value formats without overflowing too.
      const bad = yield* Effect.flip(JobQueue.enqueue(Deep, { children: [tree, 5 as never] }))
      expect(bad._tag).toBe("InvalidPayload")
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("list filters no name can hold match nothing and never reach the store", () =>
    Effect.gen(function* () {
      const q = yield* JobQueue.JobQueue
      yield* q.enqueue(Email, { to: "a@b.c", at: new Date(0) })
      expect((yield* q.list({ kinds: ["x\u0000y"] })).jobs).toEqual([])
      expect((yield* q.list({ queues: ["\uD800"] })).jobs).toEqual([])
      expect((yield* q.list({ kinds: ["send_email", "x\u0000"] })).jobs).toHaveLength(1)
      expect((yield* q.list({ cursor: "1\u0000" })).jobs).toEqual([])
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect(
    "a struct of plain fields is stored as its schema encodes it, and refused as the schema refuses it",
    () =>
      Effect.gen(function* () {
        // A plain struct (required string, number, boolean and literal fields) is copied without
        // running the schema's encoder: what is stored, and what is refused, must be the same.
        const Plain = Job.make("plain_fields", {
          payload: Schema.Struct({
            s: Schema.String,
            n: Schema.Number,
            b: Schema.Boolean,
            l: Schema.Literal("x", 1)
          })
        })
        const encode = Schema.encodeUnknownEither(Plain.payload)
        const q = yield* JobQueue.JobQueue
        const cases = fc.sample(
          fc.oneof(
            fc.record(
              {
                s: fc.oneof(
                  fc.string(),
                  fc.fullUnicodeString(),
                  fc.constantFrom("\u0000", "\uD800", "a\uDC00")
                ),
                n: fc.oneof(
                  fc.double(),
                  fc.integer(),
                  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0)
                ),
                b: fc.oneof(fc.boolean(), fc.constant("true")),
                l: fc.constantFrom("x", 1, "y", 2, null)
              },
              { requiredKeys: ["s", "n"] }
            ),
            fc
              .tuple(
                fc.record({ s: fc.string(), n: fc.integer(), b: fc.boolean(), l: fc.constant("x") }),
                fc.dictionary(fc.string(), fc.anything())
              )
              .map(([v, extra]) => ({ ...extra, ...v })),
            fc.anything()
          ),
          { numRuns: 400, seed: 13 }
        )
        let stored = 0
        for (const payload of cases) {
          const exit = yield* Effect.exit(q.enqueue(Plain, payload as never))
          const expected = encode(payload)
          if (exit._tag === "Success") {
            stored++
            expect(Either.isRight(expected)).toBe(true)
            const job = Option.getOrThrow(yield* q.get(exit.value.id))
            expect(job.payload).toStrictEqual(Either.getOrThrow(expected))
            expect(storable(Either.getOrThrow(expected))).toBe(true)
          } else {
            const error = Option.getOrThrow(Cause.failureOption(exit.cause))
            expect(error._tag).toBe("InvalidPayload")
            // Refused: either the schema refuses it, or its encoding is not storable as JSON.
            if (Either.isRight(expected)) {
              expect(error.message).toMatch(/cannot be stored as JSON/)
              expect(storable(expected.right)).toBe(false)
            }
          }
        }
        expect(stored).toBeGreaterThan(20)
        // The same through enqueueMany, all or nothing.
        const good = { s: "a", n: 1, b: true, l: 1 as const }
        const results = yield* q.enqueueMany([
          JobQueue.item(Plain, good),
          JobQueue.item(Plain, { ...good, extra: 1 } as typeof good)
        ])
        for (const r of results) expect(Option.getOrThrow(yield* q.get(r.id)).payload).toStrictEqual(good)
        const before = (yield* q.list({ limit: 1000 })).jobs.length
        const bad = yield* Effect.flip(
          q.enqueueMany([JobQueue.item(Plain, good), JobQueue.item(Plain, { ...good, n: Number.NaN })])
        )
        expect(bad._tag).toBe("InvalidPayload")
        expect((yield* q.list({ limit: 1000 })).jobs.length).toBe(before)
      }).pipe(Effect.provide(TestLayer))
  )
})
