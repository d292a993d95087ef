/**
 * The dashboard page's script: its TypeScript sources under `page/` bundled
 * by esbuild into one browser script. `npm run build` writes it to
 * `dist/internal/admin/dashboard-page.js` (scripts/bundle-page.ts), which the
 * compiled server reads, so the installed package never needs esbuild; run
 * from the sources (tests, tsx), the server bundles them on first use.
 */
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

/** The page script's entry point in the sources. */
export const entry = fileURLToPath(new URL("./page/main.ts", import.meta.url))

/** Where the build puts the bundle, relative to the compiled `dashboard.js`. */
export const builtName = "dashboard-page.js"

interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => {
    readonly outputFiles?: ReadonlyArray<{ readonly text: string }>
  }
}

/** Bundle the page's sources with esbuild (a development dependency). */
export const bundle = (): string => {
  let esbuild: Esbuild
  try {
    esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
  } catch (cause) {
    throw new Error(
      `The dashboard script must be bundled from ${entry}, and esbuild is not installed: run \`npm install\` in the nightshift checkout, or \`npm run build\` and use dist/.`,
      { cause }
    )
  }
  const result = esbuild.buildSync({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    charset: "utf8"
  })
  const text = result.outputFiles?.[0]?.text
  if (text === undefined) throw new Error(`esbuild produced no output for ${entry}`)
  // The script is inlined into the page's <script> element.
  if (/<\/script/i.test(text)) throw new Error("the bundled dashboard script contains </script")
  return text
}

/**
 * The page script: the bundle the build wrote beside the compiled module
 * (`dir` is that module's URL), or, when the server runs from its TypeScript
 * sources, a fresh bundle of them.
 */
export const load = (moduleUrl: string): string => {
  if (moduleUrl.endsWith(".ts")) return bundle()
  const built = new URL(`./${builtName}`, moduleUrl)
  try {
    return Fs.readFileSync(built, "utf8")
  } catch (cause) {
    throw new Error(
      `The dashboard script ${fileURLToPath(built)} is missing: the package was not built completely (run \`npm run build\`).`,
      { cause }
    )
  }
}
