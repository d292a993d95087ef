/**
 * A flow-control rule in words, e.g. `kind sync: 2 per partition, 10 in all,
 * 100 starts per 1s per partition in bursts of 5`. Shared by the CLI
 * (`nightshift queues`) and the dashboard page, which bundles this file for
 * the browser: it imports nothing.
 */

/** The fields of a rule the words need (`FlowControl.Rule`, and the admin API's rule). */
export interface RuleFields {
  readonly scope: string
  readonly name: string
  readonly perPartition: number | null
  readonly global: number | null
  readonly rateLimit: number | null
  readonly rateWindowMs: number | null
  readonly rateByPartition: boolean
  readonly rateBurst: number | null
}

const units: ReadonlyArray<readonly [string, number]> = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000]
]

/** A window as its largest whole unit: `1s`, `15m`, `1500ms`. */
const windowWords = (ms: number): string => {
  for (const [unit, size] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  return `${ms}ms`
}

export const ruleWords = (rule: RuleFields): string => {
  const parts: Array<string> = []
  if (rule.perPartition !== null) parts.push(`${rule.perPartition} per partition`)
  if (rule.global !== null) parts.push(`${rule.global} in all`)
  if (rule.rateLimit !== null)
    parts.push(
      `${rule.rateLimit} starts per ${windowWords(rule.rateWindowMs ?? 0)}${rule.rateByPartition ? " per partition" : ""}${rule.rateBurst === null ? "" : ` in bursts of ${rule.rateBurst}`}`
    )
  return `${rule.scope} ${rule.name}: ${parts.length === 0 ? "no limits" : parts.join(", ")}`
}
