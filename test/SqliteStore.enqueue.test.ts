/**
 * SqliteStore's bulk insert: rows are bound as statement parameters in
 * chunks (128 rows, then powers of two; 512 rows for a uniform batch, whose
 * shared columns are bound once), so batches are checked across the chunk
 * boundaries, uniform or mixed, with and without dedupe keys, and for
 * payloads that JSON cannot hold.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as JobStore from "../src/JobStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { input as job } from "./store/helpers.js"

const store = SqliteStore.layer({ filename: ":memory:" })

const countRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number }>`SELECT count(*) AS n FROM nightshift_jobs`, (rows) => rows[0]!.n)
)

describe("SqliteStore bulk insert", () => {
  it.effect("batches of every size up to 300 read back whole, in input order, with consecutive ids", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      let previous = 0
      for (const n of [1, 2, 3, 127, 128, 129, 255, 256, 257, 300]) {
        const results = yield* s.enqueue(Array.from({ length: n }, (_, i) => job({ payload: { n, i } })))
        expect(results).toHaveLength(n)
        const ids = results.map((r) => Number(r.id))
        expect(ids).toEqual(Array.from({ length: n }, (_, i) => previous + 1 + i))
        expect(results.every((r) => !r.deduped)).toBe(true)
        for (const i of [0, n >> 1, n - 1]) {
          expect((yield* s.get(results[i]!.id))?.payload).toEqual({ n, i })
        }
        previous = ids[n - 1]!
      }
      expect(yield* countRows).toBe(previous)
    }).pipe(Effect.provide(store))
  )

  it.effect("dedupe keys that hit live jobs on either side of a chunk boundary fold into them", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      // Live jobs holding the keys of positions around the 128 and 256 boundaries of the next batch.
      const held = [0, 126, 127, 128, 129, 255, 256, 299]
      const holders = yield* s.enqueue(held.map((i) => job({ dedupeKey: `key-${i}` })))
      const holderOf = new Map(held.map((i, h) => [i, holders[h]!.id]))
      // 300 jobs: every third without a key, the rest keyed; positions in `held` take the held keys.
      const batch = Array.from({ length: 300 }, (_, i) =>
        job({ payload: { i }, ...(i % 3 === 2 && !holderOf.has(i) ? {} : { dedupeKey: `key-${i}` }) })
      )
      const results = yield* s.enqueue(batch)
      expect(results).toHaveLength(300)
      for (let i = 0; i < 300; i++) {
        const holder = holderOf.get(i)
        if (holder !== undefined) expect(results[i]).toEqual({ id: holder, deduped: true })
        else expect(results[i]!.deduped).toBe(false)
      }
      const fresh = results.filter((r) => !r.deduped).map((r) => Number(r.id))
      expect(new Set(fresh).size).toBe(300 - held.length)
      expect(fresh).toEqual([...fresh].sort((a, b) => a - b))
      expect(yield* countRows).toBe(held.length + 300 - held.length)
      // Input order holds for the inserted ones: each reads back its own payload.
      for (const i of [1, 125, 130, 254, 257, 298]) {
        expect((yield* s.get(results[i]!.id))?.payload).toEqual({ i })
      }
    }).pipe(Effect.provide(store))
  )

  it.effect(
    "partition keys are stored row by row across chunk boundaries, with and without dedupe keys",
    () =>
      Effect.gen(function* () {
        const s = yield* JobStore.JobStore
        const partitionOf = (i: number) => (i % 4 === 3 ? undefined : `tenant-${i % 7}`)
        const batch = Array.from({ length: 300 }, (_, i) =>
          job({ payload: { i }, partition: partitionOf(i), ...(i % 5 === 0 ? { dedupeKey: `p-${i}` } : {}) })
        )
        const results = yield* s.enqueue(batch)
        for (const i of [0, 3, 126, 127, 128, 129, 255, 256, 257, 299]) {
          const stored = yield* s.get(results[i]!.id)
          expect(stored?.payload).toEqual({ i })
          expect(stored?.partition).toBe(partitionOf(i) ?? null)
        }
      }).pipe(Effect.provide(store))
  )

  it.effect("duplicates inside one batch still fold into the first, across chunks", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      const batch = Array.from({ length: 260 }, (_, i) => job({ dedupeKey: `d-${i % 130}` }))
      const results = yield* s.enqueue(batch)
      for (let i = 130; i < 260; i++) expect(results[i]).toEqual({ id: results[i - 130]!.id, deduped: true })
      expect(results.slice(0, 130).every((r) => !r.deduped)).toBe(true)
      expect(yield* countRows).toBe(130)
    }).pipe(Effect.provide(store))
  )

  it.effect("a payload JSON cannot hold fails the call with a JobStoreError and writes nothing", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      const exit = yield* Effect.exit(s.enqueue([job(), job({ payload: { big: 1n } })]))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
        expect(failure).toBeInstanceOf(JobStore.JobStoreError)
        expect(failure?.message).toMatch(/not JSON-serialisable/)
      }
      expect(yield* countRows).toBe(0)
      // The counter was rolled back with the rest: the next job takes id 1.
      const [next] = yield* s.enqueue([job()])
      expect(next!.id).toBe("1")
    }).pipe(Effect.provide(store))
  )

  it.effect("uniform batches across the 512-row boundary, and batches that are uniform only in parts", () =>
    Effect.gen(function* () {
      const s = yield* JobStore.JobStore
      let previous = 0
      for (const n of [511, 512, 513, 1100]) {
        const results = yield* s.enqueue(Array.from({ length: n }, (_, i) => job({ payload: { n, i } })))
        expect(results.map((r) => Number(r.id))).toEqual(
          Array.from({ length: n }, (_, i) => previous + 1 + i)
        )
        for (const i of [0, 510, 511, 512, n - 1].filter((i) => i < n)) {
          expect((yield* s.get(results[i]!.id))?.payload).toEqual({ n, i })
        }
        previous += n
      }
      // Rows 0-199 share everything; from 200 on, queues, priorities, partitions and run times vary.
      const mixed = Array.from({ length: 400 }, (_, i) =>
        i < 200
          ? job({ payload: { i } })
          : job({
              payload: { i },
              queue: `q${i % 3}`,
              priority: i % 5,
              partition: i % 2 === 0 ? `p${i % 7}` : undefined,
              ...(i % 4 === 0 ? { delayMs: 60_000 } : {})
            })
      )
      const results = yield* s.enqueue(mixed)
      for (const i of [0, 127, 128, 199, 200, 255, 256, 300, 399]) {
        const stored = yield* s.get(results[i]!.id)
        const expected = mixed[i]!
        expect(stored?.payload).toEqual({ i })
        expect(stored?.queue).toBe(expected.queue)
        expect(stored?.priority).toBe(expected.priority)
        expect(stored?.partition).toBe(expected.partition ?? null)
        expect(stored?.state).toBe(expected.delayMs === undefined ? "available" : "scheduled")
      }
      // A uniform batch run later: every row scheduled.
      const later = yield* s.enqueue(
        Array.from({ length: 600 }, (_, i) => job({ payload: { i }, delayMs: 60_000 }))
      )
      for (const i of [0, 511, 512, 599]) expect((yield* s.get(later[i]!.id))?.state).toBe("scheduled")
      expect(yield* countRows).toBe(previous + 400 + 600)
    }).pipe(Effect.provide(store))
  )
})
