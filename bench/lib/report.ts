/**
 * Turning a run's results into Markdown tables, the targets table and the
 * one-line JSON summary.
 */
import type { Results } from "./results.js"
import { pairedRatio, type Summary } from "./stats.js"

/** Display names, with the settings that matter. */
export const labels: Record<string, string> = {
  "nightshift-pg": "Nightshift · PostgreSQL",
  "nightshift-pg-prefetch": "Nightshift · PostgreSQL · prefetch 500",
  "nightshift-sqlite": "Nightshift · SQLite",
  "nightshift-sqlite-2p": "Nightshift · SQLite · two processes",
  "nightshift-memory": "Nightshift · memory",
  graphile: "graphile-worker · defaults",
  "graphile-batched": "graphile-worker · perfTest batching",
  "pg-boss": "pg-boss · NOTIFY, batch 50",
  bullmq: "BullMQ · Redis",
  plainjob: "plainjob · SQLite",
  sidequest: "Sidequest · SQLite",
  "ceiling-b1": "raw pg · SKIP LOCKED claim + delete, batch 1",
  "ceiling-b50": "raw pg · SKIP LOCKED claim + delete, batch 50",
  "backlog-10k": "Nightshift · PostgreSQL, 10,000 waiting",
  "backlog-1m": "Nightshift · PostgreSQL, 1,000,000 waiting",
  "scale-nightshift-memory": "Nightshift · memory",
  "scale-raw-memory": "baseline: Effect Queue + a fiber per job",
  "scale-nightshift-sqlite": "Nightshift · SQLite",
  "scale-raw-sqlite": "baseline: better-sqlite3 claim 50 / delete 50"
}

const label = (c: string) => labels[c] ?? c

const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const ms1 = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "–")
const times = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "–")

const cell = (s: Summary, f: (x: number) => string, range: (x: number) => string = f) =>
  s.n === 0 ? "–" : s.n === 1 ? f(s.median) : `${f(s.median)} (${range(s.min)}–${range(s.max)})`

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`)
  ].join("\n")

const faultCell = (results: Results, workload: string, c: string) => {
  const f = results.faults(workload, c)
  const parts = [`${f.duplicates} / ${f.lost}`]
  if (f.errors.length > 0) parts.push(`${f.errors.length} failed run(s)`)
  return parts.join(", ")
}

/** A table of one or more figures per contestant of a workload. */
export const workloadTable = (
  results: Results,
  workload: string,
  columns: ReadonlyArray<{ readonly key: string; readonly title: string; readonly format: "int" | "ms" }>,
  faults = true
) => {
  const rows = results
    .contestants(workload)
    .map((c) => [
      results.ranked(workload, c) || !faults ? label(c) : `${label(c)} (not ranked)`,
      ...columns.map((col) => cell(results.summary(workload, c, col.key), col.format === "int" ? int : ms1)),
      ...(faults ? [faultCell(results, workload, c)] : [])
    ])
  return table(["contestant", ...columns.map((c) => c.title), ...(faults ? ["duplicates / lost"] : [])], rows)
}

/** One figure of a run: a workload, a contestant and a key of its values. */
export interface Figure {
  readonly workload: string
  readonly contestant: string
  readonly key: string
}

/**
 * A target: a ratio of two figures, and the side of the goal it must be on.
 * `b` may list several figures (the largest of them in each round counts,
 * e.g. the fastest peer), or be left out for a goal on `a` itself, in `unit`.
 */
export interface Target {
  readonly name: string
  readonly a: Figure
  readonly b?: Figure | ReadonlyArray<Figure>
  readonly goal: number
  readonly atMost?: boolean
  /** The unit of an absolute goal (no `b`). */
  readonly unit?: string
}

export interface TargetOutcome {
  readonly name: string
  readonly ratio: Summary
  readonly goal: string
  readonly unit: string | undefined
  readonly status: "met in every round" | "met (median)" | "missed" | "not measured" | "not ranked"
}

/** Per round, the largest of several figures (rounds where any of them is missing are left out). */
const largest = (results: Results, figures: ReadonlyArray<Figure>): Map<number, number> => {
  const maps = figures.map((f) => results.byRound(f.workload, f.contestant, f.key))
  const out = new Map<number, number>()
  for (const round of maps[0]?.keys() ?? []) {
    const values = maps.map((m) => m.get(round))
    if (values.every((v) => v !== undefined && Number.isFinite(v)))
      out.set(round, Math.max(...(values as Array<number>)))
  }
  return out
}

export const evaluate = (results: Results, t: Target): TargetOutcome => {
  const others = t.b === undefined ? [] : "workload" in t.b ? [t.b] : t.b
  const a = results.byRound(t.a.workload, t.a.contestant, t.a.key)
  const b = t.b === undefined ? new Map([...a.keys()].map((round) => [round, 1])) : largest(results, others)
  const ratio = pairedRatio(a, b)
  const goal = `${t.atMost ? "≤" : "≥"} ${t.unit === undefined ? `${t.goal.toFixed(1)}×` : `${t.goal} ${t.unit}`}`
  const ok = (x: number) => (t.atMost ? x <= t.goal : x >= t.goal)
  const ranked = [t.a, ...others].every((f) => results.ranked(f.workload, f.contestant))
  const status =
    ratio.n === 0
      ? "not measured"
      : !ranked
        ? "not ranked"
        : ok(t.atMost ? ratio.max : ratio.min)
          ? "met in every round"
          : ok(ratio.median)
            ? "met (median)"
            : "missed"
  return { name: t.name, ratio, goal, unit: t.unit, status }
}

export const targetsTable = (outcomes: ReadonlyArray<TargetOutcome>) =>
  table(
    ["target", "measured: median of per-round ratios or values (min–max)", "goal", "status"],
    outcomes.map((o) => [
      o.name,
      o.unit === undefined
        ? cell(o.ratio, times, (x) => x.toFixed(2))
        : cell(o.ratio, (x) => `${ms1(x)} ${o.unit}`, ms1),
      o.goal,
      o.status
    ])
  )

const json = (s: Summary) => ({ median: round3(s.median), min: round3(s.min), max: round3(s.max), n: s.n })
const round3 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null)

/** Every workload's per-contestant summaries of every figure, for the JSON line. */
export const summaryJson = (results: Results) => {
  const out: Record<string, Record<string, unknown>> = {}
  for (const s of results.samples) {
    const w = (out[s.workload] ??= {})
    if (w[s.contestant] !== undefined) continue
    const figures: Record<string, unknown> = {}
    for (const key of Object.keys(s.values))
      figures[key] = json(results.summary(s.workload, s.contestant, key))
    w[s.contestant] = { ...figures, ...results.faults(s.workload, s.contestant) }
  }
  return out
}

export const targetJson = (o: TargetOutcome) => ({
  name: o.name,
  ratio: json(o.ratio),
  goal: o.goal,
  ...(o.unit === undefined ? {} : { unit: o.unit }),
  status: o.status
})
