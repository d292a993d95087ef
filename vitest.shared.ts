/**
 * What both vitest configs share: inside this repository `nightshift` and
 * `nightshift/<Module>` are the TypeScript sources (as in tsconfig.json's
 * `paths`), so a test never mixes them with the compiled `dist/` that the
 * package's `exports` point at. The packaging test and the CLI process tests
 * use `dist/` through real child processes.
 */
import * as Path from "node:path"

const src = Path.join(import.meta.dirname, "src")

export const alias = [
  { find: /^nightshift$/, replacement: Path.join(src, "index.ts") },
  { find: /^nightshift\/(.+)$/, replacement: Path.join(src, "$1.ts") }
]
