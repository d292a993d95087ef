/**
 * The package as a user gets it: `npm pack` of a copy of this checkout (so
 * `prepack` builds it from source), installed into fresh projects in the OS
 * temp dir with the README's install commands, then used with plain `node`
 * and no loader: every entry point imports, one job runs end to end on SQLite
 * and on PostgreSQL, the `nightshift` command runs an app, and a consumer's
 * TypeScript typechecks against the packed declarations with a strict
 * tsconfig that is not ours. A second project installs the PostgreSQL driver
 * only: it never builds better-sqlite3, and asking it for SQLite says what to
 * install. CI runs this file on Node 22 and 24 as well (`.ci/run`).
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Peer from "../src/internal/peer.js"
import { clientLayer, databaseUrl, dropSchema, freshSchema } from "./setup/pg.js"

const root = Path.join(import.meta.dirname, "..")
const fixtures = Path.join(import.meta.dirname, "fixtures", "package")
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "nightshift-package-"))
const full = Path.join(work, "full")
const pgOnly = Path.join(work, "pg-only")
const manifest = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
const schemas: Array<string> = []

afterAll(async () => {
  for (const schema of schemas) {
    await Effect.runPromise(dropSchema(schema).pipe(Effect.provide(clientLayer()), Effect.ignore))
  }
  Fs.rmSync(work, { recursive: true, force: true })
})

interface Exited {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * The environment of a child: this one's without what a parent npm sets for
 * its own project (the nested npm must see only the temp project), keeping
 * the user's npm settings.
 */
const childEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(env)) {
    const keep = ["npm_config_cache", "npm_config_nodedir", "npm_config_registry", "npm_config_userconfig"]
    if (key.toLowerCase().startsWith("npm_") && !keep.includes(key.toLowerCase())) delete env[key]
    if (key.startsWith("NIGHTSHIFT_") || key === "NODE_OPTIONS" || key === "INIT_CWD") delete env[key]
  }
  // better-sqlite3 builds from source here: ccache, when installed, makes every build after the first quick.
  const ccache =
    env.CC === undefined &&
    env.CXX === undefined &&
    ChildProcess.spawnSync("ccache", ["--version"]).status === 0
      ? { CC: "ccache cc", CXX: "ccache c++" }
      : {}
  return {
    ...env,
    ...ccache,
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    ...extra
  }
}

/** Run a command to completion. */
const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: Record<string, string> }
): Promise<Exited> =>
  new Promise((resolve) => {
    ChildProcess.execFile(
      command,
      args,
      { cwd: options.cwd, env: childEnv(options.env), maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
          stdout: String(stdout),
          stderr: String(stderr)
        })
    )
  })

/** Run a command and fail with its output unless it exits 0. */
const check = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Exited> => {
  const exited = await run(command, args, { cwd })
  if (exited.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} (in ${cwd}) exited ${exited.code}\n${exited.stdout}\n${exited.stderr}`.slice(
        -8000
      )
    )
  }
  return exited
}

/**
 * npm, run by this process's Node (so native addons build for it): the npm
 * that started this run when there is one, else the first on PATH.
 */
const npmCli = process.env.npm_execpath?.match(/npm-cli\.[cm]?js$/) ? process.env.npm_execpath : undefined
const npm = (args: ReadonlyArray<string>, cwd: string) =>
  npmCli === undefined ? check("npm", args, cwd) : check(process.execPath, [npmCli, ...args], cwd)

/** Plain `node`: the Node running this test, with no loader. */
const node = (args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) =>
  run(process.execPath, args, { cwd, env })

/** The README's install commands, verbatim, one argument list each. */
const readmeInstall = (): Array<Array<string>> => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("\n## Install\n"))
  const block = section.slice(
    section.indexOf("```sh\n") + 6,
    section.indexOf("\n```", section.indexOf("```sh\n"))
  )
  const commands = block
    .split("\n")
    .filter((line) => line.startsWith("npm install "))
    .map((line) => line.split(/\s+/).slice(1))
  if (commands.length === 0) throw new Error("README.md has no `npm install` lines in its Install section")
  return commands
}

/** Public entry points: every module at the top of `src/` but the executable. */
const entryPoints = Fs.readdirSync(Path.join(root, "src"))
  .filter((file) => file.endsWith(".ts") && file !== "bin.ts" && file !== "index.ts")
  .map((file) => `nightshift/${file.slice(0, -3)}`)

let tarball = ""

/** A fresh project in the temp dir; `installs` are npm argument lists, `nightshift` stands for the tarball. */
const project = async (dir: string, installs: ReadonlyArray<ReadonlyArray<string>>) => {
  Fs.mkdirSync(dir, { recursive: true })
  Fs.writeFileSync(
    Path.join(dir, "package.json"),
    JSON.stringify({ name: Path.basename(dir), version: "1.0.0", private: true, type: "module" }, null, 2)
  )
  for (const fixture of Fs.readdirSync(fixtures)) {
    Fs.copyFileSync(Path.join(fixtures, fixture), Path.join(dir, fixture))
  }
  for (const args of installs) {
    await npm(
      args.map((arg) => (arg === "nightshift" ? tarball : arg)),
      dir
    )
  }
}

beforeAll(async () => {
  // Pack a copy of the checkout (tracked and new files, no build output), so
  // `prepack` builds dist/ from source without touching this checkout's.
  const copy = Path.join(work, "checkout")
  const listed = await check("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root)
  for (const file of listed.stdout.split("\0").filter((f) => f !== "")) {
    if (!Fs.existsSync(Path.join(root, file))) continue
    Fs.mkdirSync(Path.dirname(Path.join(copy, file)), { recursive: true })
    Fs.copyFileSync(Path.join(root, file), Path.join(copy, file))
  }
  Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(copy, "node_modules"))
  const packed = await npm(["pack", "--json", "--pack-destination", work], copy)
  tarball = Path.join(work, JSON.parse(packed.stdout)[0].filename)

  const commands = readmeInstall()
  // What a TypeScript app with skipLibCheck off needs besides: Node's types, and
  // those of pg and ws, which @effect/sql-pg's and @effect/platform-node's declarations import.
  const typeDeclarations = ["install", "--save-dev", "@types/node@^20.19.0", "@types/pg@^8", "@types/ws@^8"]
  const sqliteDriver = (arg: string) => arg.startsWith("@effect/sql-sqlite-node")
  await Promise.all([
    project(full, [...commands, typeDeclarations]),
    project(pgOnly, [
      commands[0]!.filter((arg) => !sqliteDriver(arg)),
      ...commands.slice(1).filter((args) => args.some((arg) => arg.startsWith("@effect/sql-pg")))
    ])
  ])
}, 900_000)

describe("the packed tarball", () => {
  it("holds the compiled package, its sources, docs, README and LICENSE, and nothing else", async () => {
    const listed = (await check("tar", ["-tzf", tarball], work)).stdout.split("\n").filter((l) => l !== "")
    const files = listed.map((entry) => entry.replace(/^package\//, ""))
    for (const required of [
      "package.json",
      "README.md",
      "LICENSE",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/index.js.map",
      "dist/index.d.ts.map",
      "dist/bin.js",
      "dist/Testing.js",
      "dist/demo/app.js",
      "dist/internal/admin/dashboard-page.js",
      "src/index.ts"
    ]) {
      expect(files, required).toContain(required)
    }
    const stray = files.filter(
      (file) =>
        !/^(package\.json|README\.md|LICENSE|(dist|src|docs)\/.+)$/.test(file) ||
        /\.tsbuildinfo$|\.db$|(^|\/)(test|bench|examples|node_modules)\//.test(file) ||
        (/\.[cm]?tsx?$/.test(file) && !file.startsWith("src/") && !/^dist\/.+\.d\.ts$/.test(file))
    )
    expect(stray).toEqual([])
  })

  it("declares effect and @effect/* as peers, the drivers as optional ones, and no tsx", () => {
    const installed = JSON.parse(
      Fs.readFileSync(Path.join(full, "node_modules/nightshift/package.json"), "utf8")
    )
    expect(installed.dependencies ?? {}).toEqual({})
    expect(Object.keys(installed.peerDependencies).sort()).toEqual(
      expect.arrayContaining([
        "effect",
        "@effect/platform",
        "@effect/sql",
        ...Object.keys(Peer.optionalPeers)
      ])
    )
    for (const [name, { range }] of Object.entries(Peer.optionalPeers)) {
      expect(installed.peerDependencies[name], name).toBe(range)
      expect(installed.peerDependenciesMeta[name], name).toEqual({ optional: true })
    }
  })
})

describe("installed with the README's commands, run with plain node", () => {
  it("imports every public entry point, shares the app's effect, and keeps internals closed", async () => {
    const script = [
      'import { createRequire } from "node:module"',
      "const loaded = {}",
      ...["nightshift", ...entryPoints].map(
        (entry) =>
          `loaded[${JSON.stringify(entry)}] = Object.keys(await import(${JSON.stringify(entry)})).length`
      ),
      "const mine = createRequire(import.meta.url).resolve('effect')",
      "const theirs = createRequire(createRequire(import.meta.url).resolve('nightshift/package.json')).resolve('effect')",
      "let internal = 'open'",
      "try { await import('nightshift/internal/peer') } catch (e) { internal = e.code }",
      "console.log(JSON.stringify({ loaded, sameEffect: mine === theirs, internal }))"
    ].join("\n")
    Fs.writeFileSync(Path.join(full, "imports.mjs"), script)
    const exited = await node(["imports.mjs"], full)
    expect(exited.stderr).toBe("")
    const result = JSON.parse(exited.stdout)
    for (const entry of ["nightshift", ...entryPoints]) expect(result.loaded[entry], entry).toBeGreaterThan(0)
    expect(result.sameEffect).toBe(true)
    expect(result.internal).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
  })

  it("runs a job end to end on SQLite", async () => {
    const exited = await node(["job.mjs", "sqlite", Path.join(work, "job.db")], full)
    expect(exited.stdout.trim(), exited.stderr).toBe("done 42 completed")
  })

  it("runs a job end to end on PostgreSQL", async () => {
    const schema = freshSchema("pkg")
    schemas.push(schema)
    const exited = await node(["job.mjs", "postgres", databaseUrl(), schema], full)
    expect(exited.stdout.trim(), exited.stderr).toBe("done 42 completed")
  })

  it("runs `npx nightshift --help`", async () => {
    const exited = await npm(["exec", "--", "nightshift", "--help"], full)
    expect(exited.stdout).toContain(`nightshift ${manifest.version}`)
    expect(exited.stdout).toMatch(/- run .*<module>/)
  })

  it("runs an app with `nightshift run app.mjs`, serves the dashboard with its bundled script, and drains on SIGINT", async () => {
    const ran = await runApp(full, "app.mjs")
    expect(ran.stdout).toContain("handled hello 1")
    expect(ran.code, ran.stderr).toBe(0)
    if (typeof ran.dashboard === "string") throw new Error(ran.dashboard)
    expect(ran.dashboard.status).toBe(200)
    const script = /<script>([\s\S]+)<\/script>/.exec(ran.dashboard.html)?.[1] ?? ""
    expect(script).toContain("nightshift-token")
    const hash = `'sha256-${Crypto.createHash("sha256").update(script, "utf8").digest("base64")}'`
    expect(ran.dashboard.csp).toContain(`script-src ${hash}`)
  })

  it("runs `nightshift run app.ts` with Node's type stripping, or says what to install", async () => {
    if ((process.features as { typescript?: unknown }).typescript) {
      const ran = await runApp(full, "app.ts")
      expect(ran.stdout).toContain("handled hello 1")
      expect(ran.code, ran.stderr).toBe(0)
    } else {
      const exited = await node([bin(full), "run", "app.ts", "-d", Path.join(work, "ts.db")], full)
      expect(exited.code).toBe(2)
      expect(exited.stderr).toContain("npm install --save-dev tsx")
    }
  })

  it("typechecks a consumer's TypeScript against the packed declarations with a plain strict tsconfig", async () => {
    Fs.copyFileSync(Path.join(root, "examples", "quickstart.ts"), Path.join(full, "quickstart.ts"))
    Fs.writeFileSync(
      Path.join(full, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ["node"]
        },
        files: ["consumer.ts", "quickstart.ts"]
      })
    )
    const tsc = Path.join(root, "node_modules", "typescript", "bin", "tsc")
    const exited = await node([tsc, "-p", "tsconfig.json"], full)
    expect(exited.stdout + exited.stderr).toBe("")
    expect(exited.code).toBe(0)
  })
})

describe("a project with the PostgreSQL driver only", () => {
  it("never installs better-sqlite3 and runs a job on PostgreSQL", async () => {
    expect(Fs.existsSync(Path.join(pgOnly, "node_modules", "better-sqlite3"))).toBe(false)
    expect(Fs.existsSync(Path.join(pgOnly, "node_modules", "@effect", "sql-sqlite-node"))).toBe(false)
    const schema = freshSchema("pkgpg")
    schemas.push(schema)
    const exited = await node(["job.mjs", "postgres", databaseUrl(), schema], pgOnly)
    expect(exited.stdout.trim(), exited.stderr).toBe("done 42 completed")
  })

  it("answers `nightshift --help`, and asked for SQLite, names the package to install", async () => {
    expect((await node([bin(pgOnly), "--help"], pgOnly)).code).toBe(0)
    const exited = await node([bin(pgOnly), "run", "app.mjs", "-d", Path.join(work, "nodriver.db")], pgOnly)
    expect(exited.code).toBe(1)
    expect(exited.stderr).toContain(Peer.installCommand("@effect/sql-sqlite-node"))
  })
})

/** The installed `nightshift` executable of a project. */
const bin = (dir: string) => Path.join(dir, "node_modules", ".bin", "nightshift")

/** `nightshift run <app>` until it has handled a job, then SIGINT; its output and exit code. */
/** What `runApp` saw: the exit, and the dashboard page the node served meanwhile. */
interface Ran extends Exited {
  readonly dashboard: { readonly status: number; readonly html: string; readonly csp: string } | string
}

const runApp = (dir: string, app: string): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(
      process.execPath,
      [bin(dir), "run", app, "-d", Path.join(work, `${app}.db`), "--admin-port", "0"],
      { cwd: dir, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] }
    )
    let stdout = ""
    let stderr = ""
    let stopping = false
    let dashboard: Ran["dashboard"] | undefined
    let fetching = false
    const deadline = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`nightshift run ${app} handled no job in 60 s\n${stdout}\n${stderr}`))
    }, 60_000)
    const stopWhenDone = () => {
      if (stdout.includes("handled hello 1") && dashboard !== undefined && !stopping) {
        stopping = true
        child.kill("SIGINT")
      }
    }
    child.stdout.on("data", (chunk) => {
      stdout += String(chunk)
      const url = /dashboard (http:\/\/\S+)/.exec(stdout)?.[1]
      if (url !== undefined && !fetching) {
        fetching = true
        fetch(url).then(
          async (res) => {
            dashboard = {
              status: res.status,
              html: await res.text(),
              csp: res.headers.get("content-security-policy") ?? ""
            }
            stopWhenDone()
          },
          (error) => {
            dashboard = `GET ${url} failed: ${error}`
            stopWhenDone()
          }
        )
      }
      stopWhenDone()
    })
    child.stderr.on("data", (chunk) => {
      stderr += String(chunk)
    })
    child.on("close", (code) => {
      clearTimeout(deadline)
      resolve({ code, stdout, stderr, dashboard: dashboard ?? "the node printed no dashboard URL" })
    })
  })
