/**
 * PgLeader against a real server: one leader among candidates on separate
 * pools, handover when the leader leaves, a lease that expires on the
 * database clock, and a leader that notices it lost its lease.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Leader from "../src/Leader.js"
import * as PgLeader from "../src/PgLeader.js"
import * as PgStore from "../src/PgStore.js"
import { clientLayer, dropSchema, eventually, freshSchema } from "./setup/pg.js"

const fast = { ttl: "2 seconds", interval: "150 millis" } as const

/** A candidate on its own pool, in its own scope so that a test can stop it. */
const candidate = (schema: string, id: string, options: PgLeader.Options = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      PgLeader.layer({ schema, id, migrate: false, ...fast, ...options }).pipe(
        Layer.provideMerge(clientLayer({ maxConnections: 3 }))
      ),
      scope
    )
    return {
      leader: Context.get(context, Leader.Leader),
      sql: Context.get(context, SqlClient.SqlClient),
      scope
    }
  })

/** A migrated schema, dropped at the end of the test. */
const schemaFor = (label: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(clientLayer({ maxConnections: 2 }))
    const sql = Context.get(context, SqlClient.SqlClient)
    const schema = freshSchema(label)
    yield* PgStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    yield* Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
    return { schema, sql }
  })

const leaders = (candidates: ReadonlyArray<{ readonly leader: Leader.Service }>) =>
  Effect.map(
    Effect.forEach(candidates, (c) => c.leader.isLeader),
    (flags) => candidates.filter((_, i) => flags[i]).map((c) => c.leader.id)
  )

describe("PgLeader", () => {
  it.live("exactly one of three candidates leads, and another takes over when it leaves", () =>
    Effect.gen(function* () {
      const { schema } = yield* schemaFor("lead")
      const all = [
        yield* candidate(schema, "a"),
        yield* candidate(schema, "b"),
        yield* candidate(schema, "c")
      ]
      yield* eventually(
        "one leader is elected",
        Effect.map(leaders(all), (ids) => ids.length === 1)
      )
      for (let i = 0; i < 5; i++) {
        expect(yield* leaders(all)).toHaveLength(1)
        yield* Effect.sleep("100 millis")
      }
      const [first] = yield* leaders(all)
      const leaving = all.find((c) => c.leader.id === first)!
      yield* Scope.close(leaving.scope, Exit.void)
      expect(yield* leaving.leader.isLeader).toBe(false)
      const rest = all.filter((c) => c !== leaving)
      yield* eventually(
        "another candidate takes over",
        Effect.map(leaders(rest), (ids) => ids.length === 1)
      )
      for (const c of rest) yield* Scope.close(c.scope, Exit.void)
    }).pipe(Effect.scoped)
  )

  it.live("a lease left by a dead leader blocks candidates until it expires on the database clock", () =>
    Effect.gen(function* () {
      const { schema, sql } = yield* schemaFor("dead")
      const [inserted] = yield* sql<{ expires: number }>`
        INSERT INTO ${sql(`${schema}.leaders`)} (name, leader_id, elected_at, expires_at)
        VALUES ('maintenance', 'dead-node', now(), now() + interval '1500 milliseconds')
        RETURNING extract(epoch from expires_at)::float8 AS expires`
      const heir = yield* candidate(schema, "heir")
      expect(yield* heir.leader.isLeader).toBe(false)
      yield* eventually("the heir leads", heir.leader.isLeader)
      const [after] = yield* sql<{ now: number }>`SELECT extract(epoch from now())::float8 AS now`
      expect(after!.now).toBeGreaterThanOrEqual(inserted!.expires)
      const [row] = yield* sql<{ leader_id: string }>`SELECT leader_id FROM ${sql(`${schema}.leaders`)}`
      expect(row?.leader_id).toBe("heir")
      yield* Scope.close(heir.scope, Exit.void)
    }).pipe(Effect.scoped)
  )

  it.live("a leader whose lease was taken steps down, and changes reports it", () =>
    Effect.gen(function* () {
      const { schema, sql } = yield* schemaFor("steal")
      const node = yield* candidate(schema, "victim")
      yield* eventually("the candidate leads", node.leader.isLeader)
      const seen = yield* node.leader.changes.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      yield* node.sql`UPDATE ${node.sql(`${schema}.leaders`)}
        SET leader_id = 'usurper', expires_at = now() + interval '1 hour'`
      yield* eventually(
        "the old leader steps down",
        Effect.map(node.leader.isLeader, (lead) => !lead)
      )
      expect(Chunk.toArray(yield* Fiber.join(seen))).toEqual([true, false])
      yield* Scope.close(node.scope, Exit.void)
      const [row] = yield* sql<{ leader_id: string }>`SELECT leader_id FROM ${sql(`${schema}.leaders`)}`
      expect(row?.leader_id).toBe("usurper")
    }).pipe(Effect.scoped)
  )

  it.live("whileLeader runs maintenance on the leader only", () =>
    Effect.gen(function* () {
      const { schema } = yield* schemaFor("while")
      const all = [yield* candidate(schema, "x"), yield* candidate(schema, "y")]
      const running = yield* Ref.make<ReadonlyArray<string>>([])
      for (const c of all) {
        yield* Leader.whileLeader(
          Effect.zipRight(
            Ref.update(running, (ids) => [...ids, c.leader.id]),
            Effect.never
          ).pipe(Effect.ensuring(Ref.update(running, (ids) => ids.filter((id) => id !== c.leader.id))))
        ).pipe(Effect.provideService(Leader.Leader, c.leader), Effect.forkScoped)
      }
      yield* eventually(
        "maintenance runs somewhere",
        Effect.map(Ref.get(running), (ids) => ids.length === 1)
      )
      const [first] = yield* Ref.get(running)
      expect(yield* leaders(all)).toEqual([first])
      const leaving = all.find((c) => c.leader.id === first)!
      yield* Scope.close(leaving.scope, Exit.void)
      yield* eventually(
        "maintenance moves to the other candidate",
        Effect.map(Ref.get(running), (ids) => ids.length === 1 && ids[0] !== first)
      )
    }).pipe(Effect.scoped)
  )
})
