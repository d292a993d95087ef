/**
 * Bad input, generated: random payloads against a job schema (valid ones
 * round-trip, invalid ones are a typed error and nothing is written), random
 * strings as queue, kind and dedupe key names and as ids and filters of the
 * inspection calls, on SQLite and PostgreSQL.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Events from "../src/Events.js"
import * as Job from "../src/Job.js"
import * as JobQueue from "../src/JobQueue.js"
import * as JobStore from "../src/JobStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { storeLayer } from "./setup/pg.js"

const Payload = Schema.Struct({
  name: Schema.String,
  count: Schema.Int,
  ratio: Schema.Finite,
  tags: Schema.Array(Schema.String),
  at: Schema.Date,
  big: Schema.BigInt,
  choice: Schema.Literal("a", "b"),
  nested: Schema.optional(Schema.Struct({ flag: Schema.Boolean, note: Schema.NullOr(Schema.String) })),
  amount: Schema.optional(Schema.NumberFromString)
})
const Typed = Job.make("typed", { payload: Payload })

const keys = ["name", "count", "ratio", "tags", "at", "big", "choice", "nested", "amount"] as const
const valid = Arbitrary.make(Payload)
/** Anything at all, or a valid payload with one field replaced or removed. */
const invalid = fc.oneof(
  fc.anything(),
  fc.tuple(valid, fc.constantFrom(...keys), fc.anything()).map(([v, k, x]) => ({ ...v, [k]: x })),
  fc.tuple(valid, fc.constantFrom(...keys)).map(([v, k]) => {
    const copy: Record<string, unknown> = { ...v }
    delete copy[k]
    return copy
  })
)
/** Batches of 100, half valid on average: 100 runs make 10,000 payloads. */
const batches = fc.array(fc.oneof(valid, invalid), { minLength: 100, maxLength: 100 })

const isPayload = Schema.is(Payload)

/** Calls that reached the store's `enqueue`, so a refused payload is seen to write nothing. */
let storeWrites = 0
const CountingWrites = Layer.effect(
  JobStore.JobStore,
  Effect.map(
    JobStore.JobStore,
    (store): JobStore.Service => ({
      ...store,
      enqueue: (jobs) =>
        Effect.suspend(() => {
          storeWrites++
          return store.enqueue(jobs)
        })
    })
  )
)

/** The typed failure of an exit, if it failed with one. */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
/**
 * Enqueue a batch of payloads. A batch with an invalid payload is refused
 * whole by `enqueueMany`; each invalid payload alone is refused by `enqueue`;
 * neither writes anything. The valid ones, enqueued together, are stored
 * exactly as encoded and decode back.
 */
const checkPayloads = (values: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const store = yield* JobStore.JobStore
    const good = values.filter(isPayload)
    const bad = values.filter((v) => !isPayload(v))
    const writes = storeWrites
    const items = (vs: ReadonlyArray<unknown>) =>
      vs.map((v) => JobQueue.item(Typed, v as typeof Payload.Type))
    if (bad.length > 0)
      expect(failureOf(yield* Effect.exit(JobQueue.enqueueMany(items(values))))).toBeInstanceOf(
        JobQueue.InvalidPayload
      )
    for (const value of bad) {
      const error = failureOf(yield* Effect.exit(JobQueue.enqueue(Typed, value as typeof Payload.Type)))
      expect(error).toBeInstanceOf(JobQueue.InvalidPayload)
      expect(error?.message).toContain("payload for typed does not match its schema")
    }
    expect(storeWrites).toBe(writes)
    const enqueued = yield* JobQueue.enqueueMany(items(good))
    for (let i = 0; i < good.length; i++) {
      const stored = yield* store.get(enqueued[i]!.id)
      const encoded = JSON.parse(JSON.stringify(Schema.encodeSync(Payload)(good[i] as typeof Payload.Type)))
      expect(stored?.payload).toStrictEqual(encoded)
      // It decodes to the value it was, up to what JSON keeps (-0 comes back 0, an undefined field absent).
      expect(Schema.encodeSync(Payload)(Schema.decodeUnknownSync(Payload)(stored?.payload))).toEqual(encoded)
    }
  })

/**
 * A name is accepted and stored verbatim, or refused with nothing written: a
 * kind name by `Job.make` (`InvalidJobKind`), a queue name or dedupe key by
 * the enqueue (`InvalidOptions`).
 */
const checkNames = (queue: string, kind: string, dedupeKey: string) =>
  Effect.gen(function* () {
    const store = yield* JobStore.JobStore
    const writes = storeWrites
    const defined = Either.try(() => Job.make(kind, { payload: Schema.Struct({}) }))
    if (Either.isLeft(defined)) {
      expect(JobQueue.isValidName(kind)).toBe(false)
      expect(defined.left).toBeInstanceOf(Job.InvalidJobKind)
      expect(storeWrites).toBe(writes)
      return
    }
    const Kind = defined.right
    const exit = yield* Effect.exit(JobQueue.enqueue(Kind, {}, { queue, dedupeKey }))
    const wellFormed =
      !dedupeKey.includes("\u0000") &&
      !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(dedupeKey)
    const acceptable =
      JobQueue.isValidName(queue) && JobQueue.isValidName(kind) && dedupeKey.length > 0 && wellFormed
    if (Exit.isSuccess(exit)) {
      expect(acceptable).toBe(true)
      const stored = yield* store.get(exit.value.id)
      // A kind and key drawn twice (short strings come up often) fold into the first job,
      // which keeps its own queue.
      if (exit.value.deduped) expect([stored?.kind, stored?.dedupeKey]).toStrictEqual([kind, dedupeKey])
      else expect([stored?.queue, stored?.kind, stored?.dedupeKey]).toStrictEqual([queue, kind, dedupeKey])
    } else {
      expect(acceptable && dedupeKey.length <= 1000).toBe(false)
      expect(failureOf(exit)).toBeInstanceOf(JobQueue.InvalidOptions)
      expect(storeWrites).toBe(writes)
    }
  })

/** Random ids and filters never make the inspection and control calls fail. */
const checkLookups = (text: string) =>
  Effect.gen(function* () {
    const queue = yield* JobQueue.JobQueue
    const calls: ReadonlyArray<Effect.Effect<unknown, JobStore.JobStoreError>> = [
      queue.get(text),
      queue.cancel(text),
      queue.retry(text),
      queue.list({ kinds: [text], queues: [text], cursor: text, limit: 5 }),
      queue.list({ cursor: text, limit: 1 })
    ]
    for (const call of calls) expect(Exit.isSuccess(yield* Effect.exit(call))).toBe(true)
    const paused = yield* Effect.exit(queue.pause(text))
    if (Exit.isSuccess(paused)) yield* queue.resume(text)
    else expect(failureOf(paused)).toBeInstanceOf(JobQueue.InvalidOptions)
  })

/** Strings with no NUL and no lone surrogate: what every engine can store as text. */
const text = fc.fullUnicodeString({ maxLength: 40 }).filter((s) => !s.includes("\u0000"))
const nameLike = fc.oneof(text, fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,20}$/))

const sqlite = JobQueue.layer.pipe(
  Layer.provideMerge(CountingWrites.pipe(Layer.provideMerge(SqliteStore.layer({ filename: ":memory:" })))),
  Layer.provideMerge(Events.layer)
)
const postgres = JobQueue.layer.pipe(
  Layer.provideMerge(
    CountingWrites.pipe(
      Layer.provideMerge(
        storeLayer({ label: "props", clock: "application", listen: false, maxConnections: 4 })
      )
    )
  ),
  Layer.provideMerge(Events.layer)
)

describe("bad input, generated", () => {
  layer(sqlite, { timeout: "60 seconds" })("SQLite", (it) => {
    it.effect.prop(
      "10,000 payloads: valid ones round-trip, invalid ones are refused and write nothing",
      [batches],
      ([values]) => checkPayloads(values),
      { timeout: 120_000, fastCheck: { numRuns: 100 } }
    )
    it.effect.prop(
      "queue, kind and dedupe key names: stored verbatim or refused",
      [nameLike, nameLike, text],
      ([q, k, d]) => checkNames(q, k, d),
      {
        fastCheck: { numRuns: 1_000 }
      }
    )
    it.effect.prop(
      "random ids and filters never fail a lookup",
      [fc.oneof(text, fc.string16bits())],
      ([s]) => checkLookups(s),
      {
        fastCheck: { numRuns: 500 }
      }
    )
  })

  layer(postgres, { timeout: "60 seconds" })("PostgreSQL", (it) => {
    it.effect.prop(
      "1,000 payloads: valid ones round-trip, invalid ones are refused and write nothing",
      [batches],
      ([values]) => checkPayloads(values),
      { timeout: 120_000, fastCheck: { numRuns: 10 } }
    )
    it.effect.prop(
      "queue, kind and dedupe key names: stored verbatim or refused",
      [nameLike, nameLike, text],
      ([q, k, d]) => checkNames(q, k, d),
      {
        fastCheck: { numRuns: 200 }
      }
    )
    it.effect.prop(
      "random ids and filters never fail a lookup",
      [fc.oneof(text, fc.string16bits())],
      ([s]) => checkLookups(s),
      {
        fastCheck: { numRuns: 100 }
      }
    )
  })

  // Payloads whose encoded form would not survive JSON and the database
  // (NaN, ±Infinity, bigint, NUL, lone surrogates) are refused at enqueue
  // with `InvalidPayload`, and a dedupe key that cannot be stored verbatim
  // with `InvalidOptions`, instead of being stored altered or failing later.
  describe("values JSON cannot carry", () => {
    const Loose = Job.make("loose", {
      payload: Schema.Struct({ n: Schema.Number, s: Schema.String, u: Schema.optional(Schema.Unknown) })
    })
    const refused = (payload: Job.Payload<typeof Loose>) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(JobQueue.enqueue(Loose, payload))
        expect(failureOf(exit)).toBeInstanceOf(JobQueue.InvalidPayload)
      })

    for (const [name, payload] of [
      ["NaN", { n: Number.NaN, s: "" }],
      ["Infinity", { n: Number.POSITIVE_INFINITY, s: "" }],
      ["a bigint", { n: 1, s: "", u: 10n }]
    ] as const) {
      it.effect(`a payload holding ${name} is refused at enqueue (SQLite)`, () =>
        refused(payload).pipe(Effect.provide(sqlite))
      )
    }
    for (const [name, payload] of [
      ["a NUL character", { n: 1, s: "a\u0000b" }],
      ["a lone surrogate", { n: 1, s: "\ud800" }]
    ] as const) {
      it.effect(`a payload holding ${name} is refused at enqueue (PostgreSQL)`, () =>
        refused(payload).pipe(Effect.provide(postgres))
      )
    }
    it.effect("dedupe keys with lone surrogates are refused or kept verbatim (SQLite)", () =>
      checkNames("default", "k", "\ud800").pipe(Effect.provide(sqlite))
    )
  })
})
