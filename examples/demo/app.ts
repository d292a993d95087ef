/**
 * The Nightshift demo: `npm start` (or `nightshift demo`) runs it on the
 * embedded SQLite store and prints the dashboard URL.
 *
 * It is modelled on the background work of a small platform team:
 *
 * - `garbage-collector`: reaps orphaned resources older than a grace
 *   period, capped per tick, one tenant's failure isolated from the others;
 *   a singleton, so one replica collects at a time;
 * - `reconciler`: drives deployments back to their desired replica counts;
 * - `health-checks`: a nested crew with one periodic probe per service;
 * - `certificate-renewer`: a cron worker enqueueing renewals of certificates
 *   close to expiry, deduplicated per domain;
 * - `telemetry-collector`: a batch consumer exporting samples;
 * - `event-source`: a long-running worker fanning events out as
 *   `deliver_webhook` jobs (retries with backoff, dedupe keys, discards);
 * - `scan-scheduler`: bursts of `scan_image` jobs; the runner's pool
 *   autoscales with the queue depth;
 * - a `usage_report` cron job, enqueued once per slot however many nodes
 *   run this app;
 * - a 30-day retention sweep of finished jobs by the runner's pruner.
 *
 * Run it yourself: `nightshift run examples/demo/app.ts`. The default export
 * is the app; `layer` provides what its workers and handlers need.
 */
import * as Either from "effect/Either"
import * as CronJob from "nightshift/CronJob"
import * as Nightshift from "nightshift/Nightshift"
import { handlers, UsageReport } from "./jobs.js"
import {
  certificateRenewer,
  eventSource,
  garbageCollector,
  healthChecks,
  reconciler,
  scanScheduler,
  simulator,
  telemetryCollector
} from "./workers.js"
import * as World from "./world.js"

/** Nightly at 03:00 in production; every two minutes here. */
const usageReport = Either.getOrThrow(CronJob.make(UsageReport, { period: "last 2 minutes" }, "*/2 * * * *"))

export default Nightshift.define({
  name: "demo",
  workers: [
    simulator,
    garbageCollector,
    reconciler,
    healthChecks,
    certificateRenewer,
    telemetryCollector,
    eventSource,
    scanScheduler
  ],
  handlers,
  cron: [usageReport],
  runner: {
    autoscale: { min: 2, max: 12 },
    pollInterval: "500 millis",
    shutdownTimeout: "5 seconds",
    retention: { completed: "30 days", discarded: "30 days", cancelled: "30 days", interval: "10 minutes" }
  }
})

/** The simulated world the workers and handlers act on. */
export const layer = World.layer
