/**
 * W6, first half: the 10,000 periodic workers benchmark lives in
 * bench/workers.ts (another part of the project). The harness runs it as is
 * and keeps its medians table.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"

export interface WorkersOutcome {
  /** Its Markdown medians table, or why there is none. */
  readonly table: string | undefined
  readonly note: string | undefined
  readonly rows: ReadonlyArray<Record<string, string>>
  /** Each child's figures with its round: CPU as a share of one core, median RSS in MB. */
  readonly rounds: ReadonlyArray<WorkersRound>
}

export interface WorkersRound {
  readonly round: number
  readonly contestant: string
  readonly cpu: number
  readonly rssMb: number
}

/** The per-round line `bench/workers.ts` prints last, or none. */
const parseRounds = (lines: ReadonlyArray<string>): ReadonlyArray<WorkersRound> => {
  const last = [...lines].reverse().find((l) => l.startsWith('{"rounds"'))
  if (last === undefined) return []
  try {
    return (JSON.parse(last) as { rounds: ReadonlyArray<WorkersRound> }).rounds
  } catch {
    return []
  }
}

const parseTable = (lines: ReadonlyArray<string>) => {
  const [header, , ...body] = lines
  if (header === undefined) return []
  const cols = (line: string) =>
    line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim())
  const names = cols(header)
  return body.map((line) => Object.fromEntries(cols(line).map((v, i) => [names[i] ?? `c${i}`, v])))
}

/** Run `tsx bench/workers.ts --rounds <rounds> --seconds <seconds>` and pick up its table. */
export const runWorkers = (rootDir: string, rounds: number, seconds: number): Promise<WorkersOutcome> => {
  const script = join(rootDir, "bench", "workers.ts")
  if (!existsSync(script)) {
    return Promise.resolve({
      table: undefined,
      note: "bench/workers.ts does not exist yet",
      rows: [],
      rounds: []
    })
  }
  return new Promise((resolve) => {
    const tsx = join(rootDir, "node_modules", ".bin", "tsx")
    const proc = spawn(tsx, [script, "--rounds", String(rounds), "--seconds", String(seconds)], {
      cwd: rootDir,
      stdio: ["ignore", "pipe", 2]
    })
    let out = ""
    proc.stdout?.on("data", (chunk: Buffer) => {
      out += chunk
      process.stderr.write(chunk)
    })
    proc.on("exit", (code) => {
      const lines = out.split("\n")
      const from = lines.findIndex((l) => l.trim() === "medians")
      const tableLines = lines.slice(from + 1).filter((l) => l.startsWith("|"))
      if (code !== 0 || from < 0 || tableLines.length < 3) {
        resolve({
          table: undefined,
          note: `bench/workers.ts exited with ${code} without a medians table`,
          rows: [],
          rounds: []
        })
      } else {
        resolve({
          table: tableLines.join("\n"),
          note: undefined,
          rows: parseTable(tableLines),
          rounds: parseRounds(lines)
        })
      }
    })
  })
}
