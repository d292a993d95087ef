import type * as MetricLabel from "effect/MetricLabel"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

type Pair = MetricPair.MetricPair.Untyped

type Family = {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string | undefined
  readonly pairs: Array<Pair>
}

/** A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
export const metricName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(s) ? `_${s}` : s
}

const labelName = (name: string) => {
  const s = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(s) ? `_${s}` : s
}

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value in the text format. */
export const formatValue = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Number.POSITIVE_INFINITY) return "+Inf"
  if (n === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(n)
}

const labels = (tags: ReadonlyArray<MetricLabel.MetricLabel>, extra?: readonly [string, string]) => {
  const all = tags.map((t) => `${labelName(t.key)}="${escapeLabel(t.value)}"`)
  if (extra !== undefined) all.push(`${extra[0]}="${escapeLabel(extra[1])}"`)
  return all.length === 0 ? "" : `{${all.join(",")}}`
}

const typeOf = (state: MetricState.MetricState.Untyped): Family["type"] => {
  if (MetricState.isHistogramState(state)) return "histogram"
  if (MetricState.isSummaryState(state)) return "summary"
  if (MetricState.isGaugeState(state)) return "gauge"
  return "counter"
}

const samples = (name: string, pair: Pair): Array<string> => {
  const state = pair.metricState
  const tags = pair.metricKey.tags
  if (MetricState.isCounterState(state)) return [`${name}${labels(tags)} ${formatValue(state.count)}`]
  if (MetricState.isGaugeState(state)) return [`${name}${labels(tags)} ${formatValue(state.value)}`]
  if (MetricState.isHistogramState(state)) {
    const out = state.buckets
      .filter(([le]) => le !== Number.POSITIVE_INFINITY)
      .map(([le, n]) => `${name}_bucket${labels(tags, ["le", formatValue(le)])} ${n}`)
    out.push(`${name}_bucket${labels(tags, ["le", "+Inf"])} ${state.count}`)
    out.push(`${name}_sum${labels(tags)} ${formatValue(state.sum)}`)
    out.push(`${name}_count${labels(tags)} ${state.count}`)
    return out
  }
  if (MetricState.isSummaryState(state)) {
    const out = state.quantiles.flatMap(([q, v]) =>
      Option.isSome(v) ? [`${name}${labels(tags, ["quantile", String(q)])} ${formatValue(v.value)}`] : []
    )
    out.push(`${name}_sum${labels(tags)} ${formatValue(state.sum)}`)
    out.push(`${name}_count${labels(tags)} ${state.count}`)
    return out
  }
  if (MetricState.isFrequencyState(state)) {
    return Array.from(state.occurrences, ([key, n]) => `${name}${labels(tags, ["key", key])} ${n}`)
  }
  return []
}

/**
 * Render a metric snapshot (`Metric.snapshot`) in the Prometheus text
 * exposition format (version 0.0.4): one family per metric name with its
 * HELP and TYPE, one sample per label set; histograms as cumulative
 * `_bucket{le=…}` series with `_sum` and `_count`, summaries with quantiles,
 * frequencies as counters labelled by `key`.
 */
export const format = (snapshot: ReadonlyArray<Pair>): string => {
  const families = new Map<string, Family>()
  for (const pair of snapshot) {
    const name = metricName(pair.metricKey.name)
    const type = typeOf(pair.metricState)
    let family = families.get(name)
    if (family === undefined) {
      const help = Option.getOrUndefined(pair.metricKey.description)
      family = { name, type, help, pairs: [] }
      families.set(name, family)
    } else if (family.type !== type) {
      continue
    }
    family.pairs.push(pair)
  }
  const out: Array<string> = []
  for (const family of Array.from(families.values()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (family.help !== undefined) out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${family.name} ${family.type}`)
    const sorted = family.pairs
      .map((pair) => ({ pair, key: labels(pair.metricKey.tags) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const { pair } of sorted) out.push(...samples(family.name, pair))
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}
