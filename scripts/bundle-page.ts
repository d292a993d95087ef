/**
 * Build step (part of `npm run build`, after tsc): bundle the dashboard page's
 * script into dist/, where the compiled server reads it.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { builtName, bundle } from "../src/internal/admin/pageBundle.js"

const out = Path.join(import.meta.dirname, "..", "dist", "internal", "admin", builtName)
Fs.mkdirSync(Path.dirname(out), { recursive: true })
// Silent, as tsc is: `npm pack --json` prints its JSON after the build's output.
Fs.writeFileSync(out, bundle())
