/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium`
 * (or `CHROMIUM_PATH`) driven by playwright-core, with nothing that reaches
 * the network on its own.
 */
import { existsSync } from "node:fs"
import { type Browser, chromium } from "playwright-core"

export const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** Launch Chromium; fails with how to install it when it is missing. */
export const launchChromium = (): Promise<Browser> => {
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}. Install it with \`apt-get update && apt-get install -y chromium\` (Debian), or set CHROMIUM_PATH.`
    )
  }
  return chromium.launch({
    executablePath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--headless"
    ]
  })
}
