/**
 * Where a job lives in a sharded store: its id carries its shard, and its
 * shard key picks the shard by rendezvous hashing.
 *
 * @internal
 */
import type * as JobStore from "../../JobStore.js"
import { parseId } from "../store/core.js"

/**
 * Shard numbers run from 0 to `shardSlots - 1`. A sharded id is the shard's
 * own id times `shardSlots` plus the shard number, so it names its shard
 * without a lookup, keeps ids whole numbers (every engine's rule), and does
 * not change when shards are added. A shard's own ids may then reach
 * `Number.MAX_SAFE_INTEGER / shardSlots`, about 3.5 × 10¹³.
 */
export const shardSlots = 256

/** The sharded id of a shard's own id; undefined when it would pass `Number.MAX_SAFE_INTEGER`. */
export const globalId = (shard: number, local: string): string | undefined => {
  const n = parseId(local)
  if (n === undefined) return undefined
  const g = n * shardSlots + shard
  return Number.isSafeInteger(g) ? String(g) : undefined
}

/** The shard number and the shard's own id that a sharded id names; undefined for text no job could have. */
export const localId = (id: string): { readonly shard: number; readonly id: string } | undefined => {
  const n = parseId(id)
  if (n === undefined) return undefined
  const local = Math.floor(n / shardSlots)
  return local === 0 ? undefined : { shard: n % shardSlots, id: String(local) }
}

/**
 * The exclusive upper bound, in a shard's own ids, of the jobs of `shard`
 * whose sharded id is below `below`: `local * slots + shard < below` holds
 * exactly when `local < ceil((below - shard) / slots)`.
 */
export const localBound = (shard: number, below: number): number => Math.ceil((below - shard) / shardSlots)

/**
 * A stable 53-bit hash of a text (cyrb53): the same on every node, across
 * restarts and Node versions, and well spread for short keys.
 */
export const hash53 = (text: string, seed: number): number => {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

/**
 * The shard a key belongs to among `shards` (their numbers), by rendezvous
 * hashing: the shard whose hash of the key is highest. Adding a shard moves
 * only the keys the new shard now wins (about 1 / (n + 1) of them), and
 * removing one moves only its own keys.
 */
export const shardOf = (key: string, shards: ReadonlyArray<number>): number => {
  let best = shards[0]!
  let bestHash = -1
  for (const shard of shards) {
    const h = hash53(key, shard)
    if (h > bestHash || (h === bestHash && shard < best)) {
      best = shard
      bestHash = h
    }
  }
  return best
}

/**
 * The key a job is placed by: its partition key when it has one (so one
 * key's jobs, and its `perPartition` limit, live on one shard), else its
 * dedupe key (so the key is unique on the one shard that holds it), else its
 * queue. Each is prefixed with what it is, so a queue and a partition key of
 * the same text need not land together.
 */
export const shardKey = (job: JobStore.EnqueueInput): string =>
  job.partition !== undefined
    ? `p:${job.partition}`
    : job.dedupeKey !== undefined
      ? `d:${job.kind}:${job.dedupeKey}`
      : `q:${job.queue}`
