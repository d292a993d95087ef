/**
 * Text output for people: aligned tables, key/value blocks, times.
 */

const maxCell = 60

const clip = (text: string): string => {
  const line = text.split("\n")[0] ?? ""
  return line.length > maxCell ? `${line.slice(0, maxCell - 1)}…` : line
}

/** An aligned table with a header row; cells are cut to one line of at most 60 characters. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const cells = [header, ...rows].map((row) => row.map(clip))
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)))
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

/** Label/value lines with the values aligned. */
export const fields = (pairs: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(...pairs.map(([label]) => label.length))
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join("\n")
}

/** An epoch-ms time as ISO 8601 UTC to the second, or `-`. */
export const time = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")

/** Indent every line of a block. */
export const indent = (text: string, by: string): string =>
  text
    .split("\n")
    .map((line) => by + line)
    .join("\n")
