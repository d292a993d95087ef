/**
 * Getting the children ready: install the peers (bench/package.json) when
 * bench/node_modules is missing, and bundle the child entry with esbuild so
 * children run on plain `node`, as a deployed app would, without a
 * TypeScript loader. Packages stay external: the library's dependencies
 * resolve from the root node_modules, the peers from bench/node_modules.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const npm = (benchDir: string, command: string) =>
  execFileSync("npm", [command, "--prefix", benchDir, "--no-audit", "--no-fund"], { stdio: ["ignore", 2, 2] })

/**
 * Install bench/package-lock.json unless every peer is already there. Some
 * npm versions leave other platforms' optional binaries out of the lock file
 * and then refuse `npm ci`; `npm install` from the same lock is the fallback.
 */
export const ensurePeers = (benchDir: string) => {
  const peers = [
    "graphile-worker",
    "pg-boss",
    "bullmq",
    "ioredis",
    "pg",
    "plainjob",
    "sidequest",
    "@sidequest/sqlite-backend",
    "better-sqlite3"
  ]
  if (peers.every((p) => existsSync(join(benchDir, "node_modules", p, "package.json")))) return
  console.error("bench: installing the peers (npm ci --prefix bench) …")
  try {
    npm(benchDir, "ci")
  } catch {
    console.error("bench: npm ci refused the lock file; running npm install instead …")
    npm(benchDir, "install")
  }
}

/**
 * A `node_modules` for a bundle outside the repository: a symlink to every
 * package of bench/node_modules (the peers), then of the root one (the
 * library's dependencies) where bench has none; scopes are merged.
 */
const linkModules = (target: string, sources: ReadonlyArray<string>) => {
  mkdirSync(target, { recursive: true })
  for (const source of sources) {
    if (!existsSync(source)) continue
    for (const entry of readdirSync(source)) {
      if (entry.startsWith(".")) continue
      const from = join(source, entry)
      const to = join(target, entry)
      if (entry.startsWith("@")) {
        mkdirSync(to, { recursive: true })
        for (const name of readdirSync(from)) {
          if (!existsSync(join(to, name))) symlinkSync(join(from, name), join(to, name))
        }
      } else if (!existsSync(to)) {
        symlinkSync(from, to)
      }
    }
  }
}

/** Bundle one entry point for plain `node` with esbuild, packages left external. */
export const bundle = (rootDir: string, entry: string, out: string) =>
  execFileSync(
    join(rootDir, "node_modules", ".bin", "esbuild"),
    [
      entry,
      "--bundle",
      "--platform=node",
      "--format=esm",
      "--target=node20",
      "--packages=external",
      `--outfile=${out}`,
      "--log-level=warning"
    ],
    { stdio: ["ignore", 2, 2] }
  )

/**
 * Bundle `bench/contestants/child.ts` to `child.mjs` in a fresh directory
 * under the OS temp dir (removed when this process exits), beside a
 * `node_modules` of links to the installed packages; returns its path.
 */
export const bundleChild = (rootDir: string, benchDir: string) => {
  const outDir = mkdtempSync(join(tmpdir(), "nightshift-bench-child-"))
  process.on("exit", () => rmSync(outDir, { recursive: true, force: true }))
  linkModules(join(outDir, "node_modules"), [join(benchDir, "node_modules"), join(rootDir, "node_modules")])
  const out = join(outDir, "child.mjs")
  bundle(rootDir, join(benchDir, "contestants", "child.ts"), out)
  return out
}
