/**
 * `nightshift queues list` on flow control, against the memory store: the
 * command's own store read (`queueRows`) and text (`listText`), without the
 * store selection (a `memory:` store lives only as long as one command).
 * The same output through the whole command, on SQLite, is in Cli.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FlowControl from "nightshift/FlowControl"
import * as JobStore from "nightshift/JobStore"
import * as MemoryStore from "nightshift/MemoryStore"
import { listText, queueRows } from "../src/internal/cli/queues.js"

const job = (partition: string | undefined, queue = "default"): JobStore.EnqueueInput => ({
  kind: "sync",
  queue,
  payload: {},
  priority: 0,
  maxAttempts: 20,
  partition
})

describe("nightshift queues list, flow control", () => {
  it.effect(
    "shows throttled counts, each queue's limits and running per partition for the busiest keys",
    () =>
      Effect.gen(function* () {
        const store = yield* JobStore.JobStore
        yield* store.declareLimits([
          FlowControl.toRule("kind", "sync", { concurrency: { perPartition: 2 } }),
          FlowControl.toRule("queue", "default", {
            rateLimit: { limit: 100, per: "1 minute", by: "partition" }
          })
        ])
        yield* store.enqueue([
          ...Array.from({ length: 5 }, () => job("acme")),
          job("zeta"),
          job("zeta"),
          job("solo"),
          job(undefined)
        ])
        const claimed = yield* store.claim({
          queues: ["default"],
          kinds: ["sync"],
          limit: 100,
          leaseMs: 60_000,
          owner: "elsewhere"
        })
        expect(claimed).toHaveLength(6) // two acme, two zeta, solo, the job without a key
        yield* store.enqueue([job("zeta")])

        const rows = yield* queueRows(2)
        expect(rows).toHaveLength(1)
        expect(rows[0]!.flow).toMatchObject({ running: 6, due: 4, throttled: 4, keys: 3 })
        const text = listText(rows)
        const lines = text.split("\n")
        expect(lines[0]).toMatch(/^QUEUE\s+PAUSED\s+SCHEDULED\s+AVAILABLE\s+RUNNING\s+.*THROTTLED$/)
        expect(lines[1]).toMatch(/^default\s+no\s+0\s+4\s+6\s+0\s+0\s+0\s+0\s+4$/)
        expect(text).toContain(
          [
            "limits",
            "  default",
            "    queue default: 100 starts per 1m per partition",
            "    kind sync: 2 per partition"
          ].join("\n")
        )
        expect(text).toContain(
          [
            "busiest partitions",
            "QUEUE    PARTITION  RUNNING  DUE  THROTTLED  WAITING",
            "default  acme       2        3    3          partition at limit",
            "default  zeta       2        1    1          partition at limit",
            "default: 1 more keys (--partitions N lists more)"
          ].join("\n")
        )
      }).pipe(Effect.provide(MemoryStore.layer))
  )

  it.effect("a paused queue's due jobs are throttled as queue paused; no keys, no partition table", () =>
    Effect.gen(function* () {
      const store = yield* JobStore.JobStore
      yield* store.enqueue([job(undefined, "mail"), job(undefined, "mail")])
      yield* store.pause("mail")
      const rows = yield* queueRows(5)
      expect(rows[0]).toMatchObject({ queue: "mail", paused: true, flow: { due: 2, throttled: 2, keys: 0 } })
      const text = listText(rows)
      expect(text.split("\n")[1]).toMatch(/^mail\s+yes\s+0\s+2\s.*\s2$/)
      expect(text).not.toContain("busiest partitions")
      expect(text).not.toContain("limits")
    }).pipe(Effect.provide(MemoryStore.layer))
  )
})
