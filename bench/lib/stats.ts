/**
 * Small statistics for benchmark figures: medians with their range, nearest-rank
 * percentiles, and ratios paired round by round.
 */

/** A median with the smallest and largest sample it was taken from. */
export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

const sorted = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)

/** The median of finite samples (NaN when there are none). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = sorted(xs.filter(Number.isFinite))
  if (s.length === 0) return Number.NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Median, min and max of the finite samples. */
export const summarize = (xs: ReadonlyArray<number>): Summary => {
  const s = sorted(xs.filter(Number.isFinite))
  return {
    median: median(s),
    min: s[0] ?? Number.NaN,
    max: s[s.length - 1] ?? Number.NaN,
    n: s.length
  }
}

/** Nearest-rank percentile (`p` in 0–100) of the samples. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  const s = sorted(xs)
  if (s.length === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil((p / 100) * s.length))
  return s[Math.min(rank, s.length) - 1]!
}

/**
 * Ratios `a[i] / b[i]` over rounds where both sides have a finite figure,
 * summarised. Pairing by round cancels most of the drift between rounds.
 */
export const pairedRatio = (a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Summary => {
  const ratios: Array<number> = []
  for (const [round, x] of a) {
    const y = b.get(round)
    if (y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y !== 0) ratios.push(x / y)
  }
  return summarize(ratios)
}
