/**
 * The fault suite (`npm run test:faults`): real runner processes, killed,
 * stopped and cut off from PostgreSQL. Files are `test/faults/*.fault.ts`, so
 * the default `test/**\/*.test.ts` run never picks them up. One file at a time:
 * the scenarios share two cores and measure recovery.
 */
import { defineConfig } from "vitest/config"
import { alias } from "./vitest.shared.js"

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/faults/**/*.fault.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
    globalSetup: ["./test/setup/globalSetup.ts"]
  }
})
