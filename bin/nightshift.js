#!/usr/bin/env node
// The `nightshift` command. Nightshift ships TypeScript sources, so tsx is
// registered before they load; it also lets `nightshift run ./app.ts` load
// TypeScript.
//
// The heaviest dependencies are imported first, before tsx's loader hooks
// exist: modules already loaded skip the hooks, which halves start-up time.
await Promise.all(
  [
    "effect/Effect",
    "effect/Schema",
    "effect/Layer",
    "effect/Stream",
    "@effect/cli/Command",
    "@effect/cli/Options",
    "@effect/cli/Args",
    "@effect/platform-node/NodeContext",
    "@effect/platform-node/NodeRuntime",
    "@effect/platform/FetchHttpClient",
    "@effect/sql/SqlClient",
    "@effect/sql-sqlite-node/SqliteClient",
    "@effect/experimental/Reactivity"
  ].map((module) => import(module))
)
const { register } = await import("tsx/esm/api")
register()
await import("../src/bin.ts")
