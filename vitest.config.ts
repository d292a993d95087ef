import { defineConfig } from "vitest/config"
import { alias } from "./vitest.shared.js"

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // expect.poll's default deadline is 1 s: a dashboard list that goes through HTTP, the store
    // and a render can take longer while other test files load both cores.
    expect: { poll: { timeout: 15_000 } },
    pool: "forks",
    globalSetup: ["./test/setup/globalSetup.ts"]
  }
})
