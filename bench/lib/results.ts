/**
 * The figures of one benchmark run: one sample per workload, contestant and
 * round, and the summaries and paired ratios drawn from them.
 */

import { now } from "./protocol.js"
import { pairedRatio, type Summary, summarize } from "./stats.js"
import type { Integrity } from "./workloads.js"

/** One measurement: a workload, a contestant, a round, some named figures. */
export interface Sample {
  readonly workload: string
  readonly contestant: string
  readonly round: number
  readonly values: Readonly<Record<string, number>>
  readonly integrity?: Integrity | undefined
  readonly error?: string | undefined
}

const firstLine = (e: unknown) =>
  String(e instanceof Error ? e.message : e)
    .split("\n")[0]!
    .slice(0, 300)

const describe = (values: Record<string, number>, integrity: Integrity | undefined) =>
  [
    ...Object.entries(values).map(
      ([k, v]) => `${k} ${Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2)}`
    ),
    ...(integrity ? [`dup ${integrity.duplicates}`, `lost ${integrity.lost}`] : [])
  ].join(", ")

/** All samples of a run. */
export class Results {
  readonly samples: Array<Sample> = []

  /** `before` runs ahead of every measurement, untimed (see `vacuumCatalogs`); its failure is logged. */
  constructor(private readonly before: () => Promise<unknown> = async () => {}) {}

  add(sample: Sample) {
    this.samples.push(sample)
  }

  /** Run one measurement and record it, with progress on stderr (a failure is recorded as such, never thrown). */
  async measure(
    workload: string,
    contestant: string,
    round: number,
    body: () => Promise<{ values: Record<string, number>; integrity?: Integrity }>
  ): Promise<void> {
    await this.before().catch((error) =>
      console.error(`    (before ${workload} ${contestant}: ${firstLine(error)})`)
    )
    const t0 = now()
    try {
      const { values, integrity } = await body()
      this.add({ workload, contestant, round, values, integrity })
      console.error(`[round ${round}] ${workload} ${contestant}: ${describe(values, integrity)}`)
    } catch (error) {
      this.add({ workload, contestant, round, values: {}, error: firstLine(error) })
      console.error(`[round ${round}] ${workload} ${contestant}: FAILED ${firstLine(error)}`)
    }
    console.error(`    (${((now() - t0) / 1000).toFixed(1)} s)`)
  }

  private of(workload: string, contestant: string) {
    return this.samples.filter((s) => s.workload === workload && s.contestant === contestant)
  }

  /** Contestants measured in a workload, in first-seen order. */
  contestants(workload: string): Array<string> {
    return [...new Set(this.samples.filter((s) => s.workload === workload).map((s) => s.contestant))]
  }

  /** Per-round values of one figure (only rounds without error). */
  byRound(workload: string, contestant: string, key: string): Map<number, number> {
    const out = new Map<number, number>()
    for (const s of this.of(workload, contestant)) {
      const v = s.values[key]
      if (s.error === undefined && v !== undefined) out.set(s.round, v)
    }
    return out
  }

  summary(workload: string, contestant: string, key: string): Summary {
    return summarize([...this.byRound(workload, contestant, key).values()])
  }

  /** Duplicates and lost jobs summed over every round, and the errors seen. */
  faults(workload: string, contestant: string) {
    const samples = this.of(workload, contestant)
    return {
      duplicates: samples.reduce((n, s) => n + (s.integrity?.duplicates ?? 0), 0),
      lost: samples.reduce((n, s) => n + (s.integrity?.lost ?? 0), 0),
      errors: samples.filter((s) => s.error !== undefined).map((s) => s.error!)
    }
  }

  /** A contestant is ranked only if it neither lost nor duplicated a job and never failed. */
  ranked(workload: string, contestant: string): boolean {
    const f = this.faults(workload, contestant)
    return (
      f.duplicates === 0 && f.lost === 0 && f.errors.length === 0 && this.of(workload, contestant).length > 0
    )
  }

  /** Paired ratio a/b of a figure, round by round (either side may be another workload). */
  ratio(
    a: { workload: string; contestant: string; key: string },
    b: { workload: string; contestant: string; key: string }
  ): Summary {
    return pairedRatio(
      this.byRound(a.workload, a.contestant, a.key),
      this.byRound(b.workload, b.contestant, b.key)
    )
  }
}
