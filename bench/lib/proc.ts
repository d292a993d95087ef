/**
 * The harness side of a child process: start it, send it commands, follow
 * its progress notes, and make sure it is gone afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process"
import type { ChildSpec, Command, Message } from "./protocol.js"

type Request = Command extends infer C ? (C extends { id: number } ? Omit<C, "id"> : never) : never

/** A running child hosting one driver. */
export interface Child {
  readonly spec: ChildSpec
  /** Send a command and wait for its reply (fails with the child's error). */
  readonly call: <A = unknown>(request: Request, timeoutMs?: number) => Promise<A>
  /** The latest number of jobs its worker has handled. */
  readonly progress: () => number
  /** Disconnect and wait for the process to exit (killed after a grace period). */
  readonly close: () => Promise<void>
}

const defaultTimeoutMs = 180_000

/**
 * Extra `node` flags for every child, from `BENCH_NODE_ARGS` (split on
 * spaces), e.g. `BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"`.
 */
const nodeArgs = () => (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a.length > 0)

/** Start `node <entry> <spec>` with an IPC channel; resolves once the driver is loaded. */
export const start = (entry: string, spec: ChildSpec): Promise<Child> =>
  new Promise((resolve, reject) => {
    const proc: ChildProcess = spawn(process.execPath, [...nodeArgs(), entry, JSON.stringify(spec)], {
      stdio: ["ignore", 2, 2, "ipc"],
      env: { ...process.env, NO_LOG_SUCCESS: "1" }
    })
    const pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>()
    let nextId = 1
    let handled = 0
    let exited = false
    const exit = new Promise<void>((done) =>
      proc.once("exit", (code, signal) => {
        exited = true
        for (const p of pending.values()) p.fail(new Error(`${spec.driver} exited (${code ?? signal})`))
        pending.clear()
        done()
      })
    )

    proc.on("message", (message: Message) => {
      if ("progress" in message) {
        handled = message.progress
        return
      }
      if (message.id === 0) return
      const p = pending.get(message.id)
      pending.delete(message.id)
      if (p === undefined) return
      if (message.ok) p.ok(message.value)
      else p.fail(new Error(`${spec.driver}: ${message.error}`))
    })

    const call = <A>(request: Request, timeoutMs = defaultTimeoutMs) =>
      new Promise<A>((ok, fail) => {
        if (exited) return fail(new Error(`${spec.driver} has exited`))
        const id = nextId++
        const timer = setTimeout(() => {
          pending.delete(id)
          fail(new Error(`${spec.driver}: "${request.cmd}" took longer than ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, {
          ok: (v) => {
            clearTimeout(timer)
            ok(v as A)
          },
          fail: (e) => {
            clearTimeout(timer)
            fail(e)
          }
        })
        proc.send({ ...request, id })
      })

    const close = async () => {
      if (exited) return
      if (proc.connected) proc.disconnect()
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000)
      await exit
      clearTimeout(timer)
    }

    proc.once("error", reject)
    proc.once("exit", (code) => reject(new Error(`${spec.driver} exited during start (${code})`)))
    proc.on("message", (message: Message) => {
      if ("id" in message && message.id === 0) resolve({ spec, call, progress: () => handled, close })
    })
  })

/** Start several children at once. */
export const startAll = (entry: string, specs: ReadonlyArray<ChildSpec>) =>
  Promise.all(specs.map((spec) => start(entry, spec)))
