/**
 * The CPU time a local PostgreSQL server has used, read from `/proc`: the
 * postmaster's own and its reaped children's, plus every live child's
 * (backends, WAL writer, autovacuum). Differences of two readings give the
 * server's CPU over a phase of a benchmark, which on this one-box setup is
 * half of what a drain costs. Undefined when the server is not on this
 * machine or `/proc` is not readable.
 */
import { readdirSync, readFileSync } from "node:fs"
import { newPgClient } from "./pgclient.js"

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux). */
const ticksPerSecond = 100

const statFields = (pid: number): Array<string> | undefined => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name is in parentheses and may hold spaces: split after it.
    return text.slice(text.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** Fields after the command: [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime. */
const ticks = (fields: ReadonlyArray<string>, withChildren: boolean) =>
  Number(fields[11]) + Number(fields[12]) + (withChildren ? Number(fields[13]) + Number(fields[14]) : 0)

/** A reader of the server's cumulative CPU milliseconds, or undefined. */
export const serverCpuReader = async (url: string): Promise<(() => number) | undefined> => {
  const client = await newPgClient(url)
  try {
    await client.connect()
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
    const backend = statFields(rows[0]!.pid)
    const postmaster = backend === undefined ? undefined : Number(backend[1])
    if (postmaster === undefined || statFields(postmaster) === undefined) return undefined
    return () => {
      let total = ticks(statFields(postmaster) ?? [], true)
      for (const entry of readdirSync("/proc")) {
        const pid = Number(entry)
        if (!Number.isInteger(pid) || pid === postmaster) continue
        const fields = statFields(pid)
        if (fields !== undefined && Number(fields[1]) === postmaster) total += ticks(fields, false)
      }
      return (total * 1000) / ticksPerSecond
    }
  } catch {
    return undefined
  } finally {
    await client.end().catch(() => undefined)
  }
}
