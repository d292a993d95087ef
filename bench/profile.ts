/**
 * `tsx bench/profile.ts <file.cpuprofile> <jobs> [bundle.mjs]`: a worker's
 * CPU profile (from `BENCH_NODE_ARGS="--cpu-prof …"`) as a per-job budget,
 * as in docs/benchmarks.md. Module loading is left out; every other sample
 * is charged to the nearest frame above it that is Nightshift's bundled code
 * (the child bundle) or a pg package, and otherwise to its own package
 * (Effect's runtime, Node). With the bundle, anonymous functions are named
 * after the nearest named definition above them.
 */
import { readFileSync } from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, jobsArg, bundleFile] = process.argv.slice(2)
if (file === undefined || jobsArg === undefined) {
  console.error("usage: tsx bench/profile.ts <file.cpuprofile> <jobs> [bundle.mjs]")
  process.exit(2)
}
const jobs = Number(jobsArg)
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const bundle = bundleFile === undefined ? [] : readFileSync(bundleFile, "utf8").split("\n")

const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

const packageOf = (url: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
const pgPackages = new Set(["pg", "pg-protocol", "pg-pool", "pg-types", "@effect/sql", "@effect/sql-pg"])
const loading =
  /compileSourceTextModule|Module\._compile|Module\._load|_link|ModuleJob|defaultResolve|wrapSafe|compileForInternalLoader|executeUserEntryPoint/

/** The nearest named definition at or above a (0-based) line of the bundle. */
const enclosing = (line: number) => {
  for (let i = line; i >= 0 && i > line - 400; i--) {
    const m = /^\s*(?:const |let |var )?([A-Za-z_$][\w$]*)\s*=\s*(?:\(|[\w$]+\s*=>|Effect\d*\.)/.exec(
      bundle[i] ?? ""
    )
    if (m) return m[1]!
  }
  return `line ${line + 1}`
}

const groups: ReadonlyArray<readonly [string, RegExp]> = [
  ["log annotations", /^(annotateJob|kindAndAttempt)$/],
  [
    "execute: payload decode, handler wrapping, outcome",
    /^(execute|decoderOf|attempt\d*|traced|fromCause|jobContext)$/
  ],
  [
    "fiber fork per job and the engine (start, finish, fetch loop)",
    /^(startNext|enter|observe|takeStartable|start\d*|finish|onAttemptExit|startBuffered|claimOnce|publishStarted|retarget|startable|wake|fetchLoop)$/
  ],
  ["metrics labels", /^(tags|unsafeAttempt|unsafeRunning|running\d*|depth)$/],
  ["settler", /^(unsafeOffer|offer|write|report|takeAndWrite|track|step|eventTag|errorOf)$/],
  [
    "PgStore code",
    /^(toRecord|claim|settle|claimStatement|settleStatement|settleIsolated|operation|storableOutcome|notApplied)$/
  ],
  ["the benchmark's handler and IPC", /^(startWorker|send|onJob|handle|reset)$/]
]

const owner = new Map<number, string | null>()
/** "load", "pg", "ours:<name>", or null (charged to the sample's own frame). */
const responsible = (id: number): string | null => {
  const known = owner.get(id)
  if (known !== undefined) return known
  const { callFrame: cf } = nodes.get(id)!
  let r: string | null
  if (loading.test(cf.functionName) || cf.url.includes("internal/modules")) r = "load"
  else if (/(child|flow)\.mjs$/.test(cf.url)) r = `ours:${cf.functionName || enclosing(cf.lineNumber)}`
  else if (pgPackages.has(packageOf(cf.url) ?? "")) r = "pg"
  else {
    const up = parent.get(id)
    r = up === undefined ? null : responsible(up)
  }
  owner.set(id, r)
  return r
}

const budget = new Map<string, number>()
const add = (k: string, us: number) => budget.set(k, (budget.get(k) ?? 0) + us)
let busy = 0
let idle = 0
/** The budget row a busy sample is charged to. */
const rowOf = (cf: CallFrame, r: string | null): string => {
  if (cf.functionName === "(garbage collector)") return "garbage collection"
  if (cf.functionName === "(program)") return "(program)"
  if (r === "pg") return "PostgreSQL driver: pg, pg-protocol, socket I/O, @effect/sql"
  if (r === null) {
    return packageOf(cf.url) === "effect" ? "Effect runtime: fibers, run loop, scheduler" : "Node internals"
  }
  const name = r.slice("ours:".length)
  return groups.find(([, pattern]) => pattern.test(name))?.[0] ?? "other library code"
}

for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!
  const us = profile.timeDeltas[i] ?? 0
  const { callFrame: cf } = nodes.get(id)!
  const r = responsible(id)
  if (r === "load") continue
  if (cf.functionName === "(idle)") {
    idle += us
    continue
  }
  busy += us
  add(rowOf(cf, r), us)
}

console.log(
  `work phase: busy ${(busy / 1000).toFixed(0)} ms = ${(busy / jobs).toFixed(1)} µs/job, idle ${(idle / 1000).toFixed(0)} ms`
)
console.log("| where | µs/job |\n| --- | --- |")
for (const [k, us] of [...budget].sort((a, b) => b[1] - a[1]))
  console.log(`| ${k} | ${(us / jobs).toFixed(1)} |`)
