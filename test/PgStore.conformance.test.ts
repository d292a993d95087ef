/**
 * The JobStore conformance suite on PostgreSQL. The suite drives time with
 * `TestClock`, so the store reads the application clock here
 * (`clock: "application"`); the database-clock default is covered by
 * test/PgStore.test.ts.
 */

import { sharedStore } from "./setup/pg.js"
import { conformance } from "./store/conformance.js"

conformance("postgres", {
  layer: sharedStore({
    clock: "application",
    label: "conf",
    listenerHeartbeat: "1 second",
    maxConnections: 24
  }),
  editable: true
})
