/**
 * The JobStore conformance suite on PostgreSQL. The suite drives time with
 * `TestClock`, so the store reads the application clock here
 * (`clock: "application"`); the database-clock default is covered by
 * test/PgStore.test.ts. It runs on both kinds of client: the one
 * `PgStore.layerPgClient` builds, on whose pool the store sends its hot
 * statements directly, and a plain `PgClient.layer`, on which every
 * statement goes through the SQL client.
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

conformance("postgres on a plain PgClient", {
  layer: sharedStore({
    clock: "application",
    label: "confplain",
    listenerHeartbeat: "1 second",
    maxConnections: 24,
    plain: true
  }),
  editable: true
})
