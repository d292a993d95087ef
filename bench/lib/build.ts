/**
 * Getting the children ready: install the peers (bench/package.json) when
 * bench/node_modules is missing, and bundle the child entry with esbuild so
 * children run on plain `node`, as a deployed app would, without a
 * TypeScript loader. Packages stay external: the library's dependencies
 * resolve from the root node_modules, the peers from bench/node_modules.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"

const npm = (benchDir: string, command: string) =>
  execFileSync("npm", [command, "--prefix", benchDir, "--no-audit", "--no-fund"], { stdio: ["ignore", 2, 2] })

/**
 * Install bench/package-lock.json unless every peer is already there. Some
 * npm versions leave other platforms' optional binaries out of the lock file
 * and then refuse `npm ci`; `npm install` from the same lock is the fallback.
 */
export const ensurePeers = (benchDir: string) => {
  const peers = ["graphile-worker", "pg-boss", "bullmq", "ioredis", "pg"]
  if (peers.every((p) => existsSync(join(benchDir, "node_modules", p, "package.json")))) return
  console.error("bench: installing the peers (npm ci --prefix bench) …")
  try {
    npm(benchDir, "ci")
  } catch {
    console.error("bench: npm ci refused the lock file; running npm install instead …")
    npm(benchDir, "install")
  }
}

/** Bundle `bench/contestants/child.ts` to `bench/.tmp/child.mjs`; returns its path. */
export const bundleChild = (rootDir: string, benchDir: string) => {
  const outDir = join(benchDir, ".tmp")
  mkdirSync(outDir, { recursive: true })
  const out = join(outDir, "child.mjs")
  execFileSync(
    join(rootDir, "node_modules", ".bin", "esbuild"),
    [
      join(benchDir, "contestants", "child.ts"),
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
  return out
}
