/**
 * The one JobStore conformance suite. Every engine runs it unchanged:
 *
 * ```ts
 * conformance("memory", { layer: MemoryStore.layer })
 * ```
 *
 * Each test builds `harness.layer` afresh, so tests never see each other's
 * jobs. Time is read from `store.now` and moved with `harness.advance`
 * (default `TestClock.adjust`); assertions on times allow for a clock that
 * also moves on its own while a test runs.
 */
import { describe } from "@effect/vitest"
import { type Harness, storeTest } from "./helpers.js"
import { attemptSuite, bulkSuite, searchSuite } from "./suite/bulk.js"
import { claimSuite } from "./suite/claim.js"
import { cancelSuite, retrySuite } from "./suite/control.js"
import { cronSuite, wakeupSuite } from "./suite/cron.js"
import { dedupeSuite } from "./suite/dedupe.js"
import { enqueueSuite } from "./suite/enqueue.js"
import { flowSuite } from "./suite/flow.js"
import { idSuite, rescueMessageSuite } from "./suite/ids.js"
import { activitySuite, countsSuite, listSuite, pruneSuite } from "./suite/inspect.js"
import { heartbeatSuite, rescueSuite } from "./suite/leases.js"
import { fencingSuite, settleSuite } from "./suite/settle.js"

export type { Harness } from "./helpers.js"

/** Register the conformance suite for one engine. */
export const conformance = (engine: string, harness: Harness): void => {
  describe(`JobStore conformance: ${engine}`, () => {
    const test = storeTest(harness)
    enqueueSuite(test)
    claimSuite(test)
    dedupeSuite(test)
    settleSuite(test)
    fencingSuite(test)
    heartbeatSuite(test)
    rescueSuite(test)
    rescueMessageSuite(test)
    cancelSuite(test)
    retrySuite(test)
    pruneSuite(test)
    countsSuite(test)
    activitySuite(test)
    listSuite(test)
    cronSuite(test)
    wakeupSuite(test)
    idSuite(test)
    flowSuite(test)
    attemptSuite(test)
    searchSuite(test)
    bulkSuite(test)
  })
}
