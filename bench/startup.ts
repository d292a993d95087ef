/**
 * Start-up time and memory of the `nightshift` CLI, for one or more
 * installations side by side in one run (e.g. before and after a change to
 * how the CLI is shipped):
 *
 *   npx tsx bench/startup.ts \
 *     --cli "before=node /tmp/ns-before/bin/nightshift.js" \
 *     --cli "after=node /work/main/dist/bin.js" \
 *     [--rounds 10] [--warmup 1] [--root label=<dir>] [--only help,app.mjs,app.ts]
 *
 * Installations. `--cli label=<command prefix>`: the prefix is split on
 * whitespace (no quoting) and spawned directly, without a shell or npx; a
 * leading `node` is replaced by the node running this script, so every
 * installation runs on the same node. The first `--cli` is the baseline of the
 * ratio columns. The installation's root is the nearest directory above the
 * first existing file of the prefix whose package.json is named "nightshift"
 * (`--root label=<dir>` overrides it).
 *
 * Apps. bench/startup/app.mjs (plain JavaScript) and bench/startup/app.ts
 * (TypeScript) are the same minimal app: one periodic worker and one job
 * handler, importing `effect/...` and `nightshift/...` like an application with
 * the package installed. For each installation this script makes a project
 * directory under os.tmpdir(): a package.json ("type": "module"), copies of
 * both apps, and a node_modules holding a symlink to every entry of
 * <root>/node_modules plus `nightshift` -> <root>. So `nightshift/Worker`
 * resolves through that installation's own package.json `exports` (src/*.ts
 * before, dist/*.js after), and `effect` to the very files its CLI loads (one
 * module instance). Nothing is written into the installations: every
 * temporary file (projects, SQLite files, GNU time output) is under
 * os.tmpdir() and removed at the end. Children run in their project
 * directory, without NODE_OPTIONS, NIGHTSHIFT_* or OTEL_* variables.
 *
 * Measurements, each in a fresh process:
 * - `--help`: wall time from spawn to exit, measured here, and peak RSS from
 *   GNU time: the command runs as `/usr/bin/time -f %M -o <file> <prefix>
 *   --help` (Debian package `time`). %M is ru_maxrss from wait4: the peak
 *   resident set of the CLI's node process (of its largest process; a child
 *   such as tsx's esbuild service is not added in). The wall time includes
 *   exec'ing /usr/bin/time, about 1 ms, the same for every installation.
 * - `run <app>`: `<prefix> run --database <fresh SQLite file> --admin-port 0
 *   <app>`. Ready: spawn until stdout has the line containing "press Ctrl-C to
 *   stop" (the app's layer is built and the admin server listens). At that
 *   moment VmRSS and VmHWM (peak so far) are read from /proc/<pid>/status of
 *   the node process, and VmRSS is summed over its descendants (found by
 *   scanning /proc/<pid>/stat parents), e.g. tsx's esbuild service. Then
 *   SIGINT; stop: SIGINT until exit.
 *
 * Order: every round runs `--help`, then `run app.mjs`, then `run app.ts`,
 * and each of these for every installation, starting with a different
 * installation each round. `--warmup` rounds (default 1: file cache, tsx's
 * transform cache) are not counted. Figures are medians with min–max over the
 * rounds; ratios (installation ÷ baseline) are paired round by round, median
 * with min–max. Prints a Markdown report to stdout; progress goes to stderr.
 */
import { type ChildProcess, spawn } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { machine } from "./lib/env.js"
import { pairedRatio, type Summary, summarize } from "./lib/stats.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const appsDir = join(benchDir, "startup")
const gnuTime = "/usr/bin/time"
const readyLine = "press Ctrl-C to stop"
const readyTimeoutMs = 120_000
const stopTimeoutMs = 60_000

// ---------------------------------------------------------------------------
// Arguments

const args = process.argv.slice(2)
const options = (name: string): Array<string> =>
  args.flatMap((a, i) => (a === `--${name}` && args[i + 1] !== undefined ? [args[i + 1]!] : []))
const option = (name: string) => options(name).at(-1)

const usage = (problem: string): never => {
  process.stderr.write(
    `${problem}\nusage: npx tsx bench/startup.ts --cli "label=<command prefix>" [--cli ...] [--rounds 10] [--warmup 1] [--root label=<dir>] [--only help,app.mjs,app.ts]\n`
  )
  process.exit(2)
}

const labelled = (spec: string, flag: string) => {
  const eq = spec.indexOf("=")
  if (eq <= 0) return usage(`--${flag} ${spec}: expected label=...`)
  const label = spec.slice(0, eq)
  if (!/^[\w.-]+$/.test(label))
    return usage(`--${flag} ${spec}: the label may only have letters, digits, _ . -`)
  return { label, value: spec.slice(eq + 1).trim() }
}

const count = (name: string, fallback: number) => {
  const raw = option(name)
  const n = raw === undefined ? fallback : Number(raw)
  return Number.isInteger(n) && n >= 0 ? n : usage(`--${name} ${raw}: expected a whole number`)
}

const rounds = count("rounds", 10)
const warmup = count("warmup", 1)
if (rounds < 1) usage("--rounds must be at least 1")

const measures = ["help", "app.mjs", "app.ts"] as const
type Measure = (typeof measures)[number]
const only = option("only")?.split(",")
for (const m of only ?? [])
  if (!(measures as ReadonlyArray<string>).includes(m)) usage(`--only: unknown ${m}`)
const enabled = measures.filter((m) => only === undefined || only.includes(m))

const roots = new Map(
  options("root").map((spec) => {
    const { label, value } = labelled(spec, "root")
    return [label, value] as const
  })
)

/** The directory holding the package.json named "nightshift" above `file`. */
const packageRoot = (file: string): string | undefined => {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json")
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === "nightshift")
          return dir
      } catch {}
    }
    if (dirname(dir) === dir) return undefined
  }
}

interface Installation {
  readonly label: string
  /** Executable and leading arguments. */
  readonly command: ReadonlyArray<string>
  readonly root: string
  /** The project directory the apps run from. */
  readonly project: string
}

const specs = options("cli").map((spec) => {
  const { label, value } = labelled(spec, "cli")
  const words = value.split(/\s+/).filter((w) => w !== "")
  if (words.length === 0) return usage(`--cli ${spec}: empty command`)
  if (words[0] === "node") words[0] = process.execPath
  const file = words.slice(1).find((w) => !w.startsWith("-") && existsSync(w) && statSync(w).isFile())
  const given = roots.get(label)
  const root =
    given !== undefined ? resolve(given) : file === undefined ? undefined : packageRoot(resolve(file))
  if (root === undefined)
    return usage(`--cli ${spec}: cannot tell the installation's root; pass --root ${label}=<dir>`)
  return { label, command: words, root }
})
if (specs.length === 0) usage("no --cli given")
if (new Set(specs.map((s) => s.label)).size !== specs.length) usage("the --cli labels must differ")
if (!existsSync(gnuTime)) usage(`${gnuTime} is missing (peak RSS of --help): apt-get install time`)

// ---------------------------------------------------------------------------
// Temporary projects

const tmpBase = mkdtempSync(join(tmpdir(), "nightshift-startup-"))
const live = new Set<ChildProcess>()

const cleanUp = () => {
  for (const child of live) child.kill("SIGKILL")
  if (!existsSync(tmpBase)) return
  // Unlink the node_modules symlinks one by one first: nothing they point to may be touched.
  for (const spec of specs) {
    const modules = join(tmpBase, spec.label, "node_modules")
    if (!existsSync(modules)) continue
    for (const entry of readdirSync(modules)) {
      const path = join(modules, entry)
      if (lstatSync(path).isSymbolicLink()) unlinkSync(path)
    }
  }
  rmSync(tmpBase, { recursive: true, force: true })
}
process.on("exit", cleanUp)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping\n`)
    process.exit(130)
  })
}

const installations: ReadonlyArray<Installation> = specs.map(({ label, command, root }) => {
  const project = join(tmpBase, label)
  const modules = join(project, "node_modules")
  mkdirSync(modules, { recursive: true })
  writeFileSync(
    join(project, "package.json"),
    `${JSON.stringify({ name: "nightshift-startup-app", private: true, type: "module" }, null, 2)}\n`
  )
  for (const app of ["app.mjs", "app.ts"]) copyFileSync(join(appsDir, app), join(project, app))
  const rootModules = join(root, "node_modules")
  if (existsSync(rootModules)) {
    for (const entry of readdirSync(rootModules)) {
      if (entry.startsWith(".") || entry === "nightshift") continue
      symlinkSync(join(rootModules, entry), join(modules, entry))
    }
  }
  symlinkSync(root, join(modules, "nightshift"))
  return { label, command, root, project }
})

const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "NODE_OPTIONS" || k.startsWith("NIGHTSHIFT_") || k.startsWith("OTEL_")) continue
    env[k] = v
  }
  return env
}
const env = childEnv()

// ---------------------------------------------------------------------------
// Measuring one process

/** One process's figures (times in ms, memory in KiB), or why it failed. */
type Sample = { readonly figures: Readonly<Record<string, number>> } | { readonly error: string }

const tail = (text: string) => text.trim().split("\n").slice(-6).join("\n")

const exitOf = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((done) =>
    child.once("exit", (code, signal) => {
      live.delete(child)
      done({ code, signal, at: performance.now() })
    })
  )

const closed = (child: ChildProcess) => new Promise<void>((done) => child.once("close", () => done()))

const start = (command: ReadonlyArray<string>, cwd: string) => {
  const started = performance.now()
  const child = spawn(command[0]!, command.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
  live.add(child)
  const output = { stdout: "", stderr: "" }
  child.stdout!.setEncoding("utf8").on("data", (s: string) => (output.stdout += s))
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (output.stderr += s))
  const failedToStart = new Promise<string>((done) => child.once("error", (e) => done(e.message)))
  return { started, child, output, exit: exitOf(child), closed: closed(child), failedToStart }
}

let sequence = 0

const measureHelp = async (installation: Installation): Promise<Sample> => {
  const rssFile = join(tmpBase, `time-${++sequence}.txt`)
  const proc = start(
    [gnuTime, "-f", "%M", "-o", rssFile, ...installation.command, "--help"],
    installation.project
  )
  const exit = await Promise.race([proc.exit, proc.failedToStart])
  if (typeof exit === "string") return { error: exit }
  await proc.closed
  if (exit.code !== 0)
    return { error: `--help exited with ${exit.code ?? exit.signal}: ${tail(proc.output.stderr)}` }
  if (!proc.output.stdout.includes("USAGE"))
    return { error: `--help printed no usage: ${tail(proc.output.stdout)}` }
  const maxRss = Number(readFileSync(rssFile, "utf8").trim().split("\n").at(-1))
  return { figures: { wallMs: exit.at - proc.started, peakRssKb: maxRss } }
}

const statusKb = (pid: number, field: string) => {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return match === null ? Number.NaN : Number(match[1])
}

/** Pids of every descendant of `pid`, from the parents in /proc/<pid>/stat. */
const descendants = (pid: number): Array<number> => {
  const children = new Map<number, Array<number>>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {}
  }
  const found: Array<number> = []
  const visit = (p: number) => {
    for (const c of children.get(p) ?? []) {
      found.push(c)
      visit(c)
    }
  }
  visit(pid)
  return found
}

const measureRun = async (installation: Installation, app: string): Promise<Sample> => {
  const database = join(tmpBase, `run-${++sequence}.db`)
  const proc = start(
    [
      ...installation.command,
      "run",
      "--database",
      database,
      "--admin-port",
      "0",
      join(installation.project, app)
    ],
    installation.project
  )
  let onReady: (at: number) => void = () => {}
  const ready = new Promise<number>((done) => (onReady = done))
  proc.child.stdout!.on("data", () => {
    if (proc.output.stdout.includes(readyLine)) onReady(performance.now())
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<"timeout">(
    (done) => (timer = setTimeout(() => done("timeout"), readyTimeoutMs))
  )
  const first = await Promise.race([ready, proc.exit, proc.failedToStart, timeout])
  clearTimeout(timer)
  if (typeof first !== "number") {
    proc.child.kill("SIGKILL")
    await proc.exit
    await proc.closed
    const why =
      first === "timeout"
        ? `no "${readyLine}" within ${readyTimeoutMs / 1000} s`
        : typeof first === "string"
          ? first
          : `exited with ${first.code ?? first.signal} before it was ready`
    return { error: `${why}: ${tail(proc.output.stderr || proc.output.stdout)}` }
  }
  const pid = proc.child.pid!
  const rssKb = statusKb(pid, "VmRSS")
  const hwmKb = statusKb(pid, "VmHWM")
  const others = descendants(pid)
  let childrenRssKb = 0
  for (const p of others) {
    try {
      childrenRssKb += statusKb(p, "VmRSS") || 0
    } catch {}
  }
  const interrupted = performance.now()
  proc.child.kill("SIGINT")
  const kill = setTimeout(() => proc.child.kill("SIGKILL"), stopTimeoutMs)
  const exit = await proc.exit
  clearTimeout(kill)
  await proc.closed
  if (exit.signal === "SIGKILL") return { error: `did not stop within ${stopTimeoutMs / 1000} s of SIGINT` }
  if (exit.code !== 0 && exit.code !== 130) {
    return { error: `exited with ${exit.code ?? exit.signal} after SIGINT: ${tail(proc.output.stderr)}` }
  }
  const figures = {
    readyMs: first - proc.started,
    rssKb,
    hwmKb,
    treeRssKb: rssKb + childrenRssKb,
    children: others.length,
    stopMs: exit.at - interrupted,
    exitCode: exit.code ?? Number.NaN
  }
  return { figures }
}

// ---------------------------------------------------------------------------
// Rounds

/** samples[measure][label][round] */
const samples = new Map<Measure, Map<string, Map<number, Sample>>>(
  measures.map((m) => [m, new Map(installations.map((i) => [i.label, new Map()]))])
)

const measure = (m: Measure, installation: Installation) =>
  m === "help" ? measureHelp(installation) : measureRun(installation, m)

const describe = (sample: Sample) =>
  "error" in sample
    ? `FAILED ${sample.error.split("\n")[0]}`
    : Object.entries(sample.figures)
        .filter(([k]) => k !== "exitCode" && k !== "children")
        .map(([k, v]) => `${k} ${k.endsWith("Kb") ? `${(v / 1024).toFixed(1)}MB` : `${Math.round(v)}ms`}`)
        .join(" ")

const log = (line: string) => process.stderr.write(`${line}\n`)

log(`installations (projects under ${tmpBase}):`)
for (const i of installations) log(`  ${i.label}: ${i.command.join(" ")}  [root ${i.root}]`)

for (let round = -warmup; round < rounds; round++) {
  const name = round < 0 ? `warm-up ${round + warmup + 1}/${warmup}` : `round ${round + 1}/${rounds}`
  const offset = ((round % installations.length) + installations.length) % installations.length
  const order = installations.map((_, i) => installations[(i + offset) % installations.length]!)
  for (const m of enabled) {
    for (const installation of order) {
      const sample = await measure(m, installation)
      log(`${name}  ${m.padEnd(7)} ${installation.label.padEnd(10)} ${describe(sample)}`)
      if (round >= 0) samples.get(m)!.get(installation.label)!.set(round, sample)
    }
  }
}

// ---------------------------------------------------------------------------
// Report

const figure = (m: Measure, label: string, key: string): Map<number, number> => {
  const out = new Map<number, number>()
  for (const [round, s] of samples.get(m)!.get(label)!) if (!("error" in s)) out.set(round, s.figures[key]!)
  return out
}

const failures = (m: Measure, label: string) =>
  [...samples.get(m)!.get(label)!.values()].flatMap((s) => ("error" in s ? [s.error] : []))

const ms = (x: number) => Math.round(x).toLocaleString("en-US")
const mb = (kb: number) => (kb / 1024).toFixed(1)
const ratio = (x: number) => x.toFixed(2)

const cell = (s: Summary, f: (x: number) => string) =>
  s.n === 0 ? "–" : s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`

const rows: ReadonlyArray<{ measure: Measure; key: string; title: string; format: (x: number) => string }> = [
  { measure: "help", key: "wallMs", title: "`--help` wall time, ms", format: ms },
  { measure: "help", key: "peakRssKb", title: "`--help` peak RSS (GNU time %M), MB", format: mb },
  ...(["app.mjs", "app.ts"] as const).flatMap((app) => [
    { measure: app, key: "readyMs", title: `\`run ${app}\` spawn → ready, ms`, format: ms },
    { measure: app, key: "rssKb", title: `\`run ${app}\` VmRSS at ready, MB`, format: mb },
    { measure: app, key: "hwmKb", title: `\`run ${app}\` VmHWM at ready, MB`, format: mb },
    { measure: app, key: "treeRssKb", title: `\`run ${app}\` VmRSS with child processes, MB`, format: mb },
    { measure: app, key: "stopMs", title: `\`run ${app}\` SIGINT → exit, ms`, format: ms }
  ])
]

const [baseline, ...others] = installations
const header = [
  "Measure",
  ...installations.map((i) => i.label),
  ...others.map((i) => `${i.label} ÷ ${baseline!.label}`)
]
const tableRows = rows
  .filter((r) => enabled.includes(r.measure))
  .map((r) => [
    r.title,
    ...installations.map((i) => {
      const s = summarize([...figure(r.measure, i.label, r.key).values()])
      const failed = failures(r.measure, i.label).length
      return failed === 0 ? cell(s, r.format) : `${cell(s, r.format)} · ${failed}/${rounds} failed`
    }),
    ...others.map((i) =>
      cell(pairedRatio(figure(r.measure, i.label, r.key), figure(r.measure, baseline!.label, r.key)), ratio)
    )
  ])

const host = machine()
const lines = [
  `## CLI start-up: ${installations.map((i) => i.label).join(" vs ")}`,
  "",
  `${new Date().toISOString()} · ${host.cpu} × ${host.cores} · ${host.memoryGb} GB · ${host.os} · node ${host.node} · load ${host.loadAverage.join(" ")}`,
  `${rounds} round(s) after ${warmup} warm-up round(s), installations interleaved; median (min–max); ratios paired by round.`,
  "",
  ...installations.map((i) => `- **${i.label}**: \`${i.command.join(" ")}\` (root ${i.root})`),
  "",
  `| ${header.join(" | ")} |`,
  `| ${header.map(() => "---").join(" | ")} |`,
  ...tableRows.map((r) => `| ${r.join(" | ")} |`)
]

const childCounts = installations.flatMap((i) =>
  (["app.mjs", "app.ts"] as const)
    .filter((app) => enabled.includes(app))
    .map((app) => {
      const counts = [...new Set(figure(app, i.label, "children").values())].sort((a, b) => a - b)
      return `${i.label} ${app}: ${counts.length === 0 ? "–" : counts.join("/")}`
    })
)
if (childCounts.length > 0) lines.push("", `Child processes at ready: ${childCounts.join("; ")}.`)

const exitCodes = installations.flatMap((i) =>
  (["app.mjs", "app.ts"] as const)
    .filter((app) => enabled.includes(app))
    .map((app) => {
      const codes = [...new Set(figure(app, i.label, "exitCode").values())].sort((a, b) => a - b)
      return `${i.label} ${app}: ${codes.length === 0 ? "–" : codes.join("/")}`
    })
)
if (exitCodes.length > 0) lines.push(`Exit codes after SIGINT: ${exitCodes.join("; ")}.`)

const failureNotes = installations.flatMap((i) =>
  enabled.flatMap((m) => {
    const errors = failures(m, i.label)
    return errors.length === 0
      ? []
      : [`- ${i.label} ${m}: ${errors.length} failed; first: ${errors[0]!.replace(/\s*\n\s*/g, " ⏎ ")}`]
  })
)
if (failureNotes.length > 0) lines.push("", "Failures:", "", ...failureNotes)

process.stdout.write(`${lines.join("\n")}\n`)
