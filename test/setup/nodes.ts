/**
 * Node processes for the multi-process tests: a fixture run with tsx, its
 * output kept (the last 8,000 characters) to print when a test fails.
 */
import * as ChildProcess from "node:child_process"
import * as Effect from "effect/Effect"

/** A node process started by `spawnFixture`. */
export interface Node {
  readonly name: string
  readonly process: ChildProcess.ChildProcess
  /** Settles with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>
  readonly output: () => string
}

/** Has the node neither exited nor been killed? */
export const running = (node: Node) => node.process.exitCode === null && node.process.signalCode === null

/** Start `fixture` as node `name` with `env` added; it is SIGKILLed when the scope closes if still running. */
export const spawnFixture = (fixture: string, name: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync((): Node => {
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", fixture], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const collect = (chunk: unknown) => {
        output = (output + String(chunk)).slice(-8000)
      }
      child.stdout?.on("data", collect)
      child.stderr?.on("data", collect)
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return { name, process: child, exited, output: () => output }
    }),
    (node) =>
      Effect.promise(async () => {
        if (running(node)) node.process.kill("SIGKILL")
        await node.exited
      })
  )
