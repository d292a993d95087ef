/**
 * Entry point of a benchmark child process: hosts one driver and answers the
 * harness's commands over IPC. Started as `node child.mjs '<ChildSpec JSON>'`.
 */
import type { ChildSpec, Command, DriverName, Message, WorkerReport } from "../lib/protocol.js"
import { now } from "../lib/protocol.js"
import type { Baseline, Driver, Make } from "./driver.js"

const load = async (name: DriverName): Promise<Make> => {
  switch (name) {
    case "nightshift-pg":
    case "nightshift-pg-prefetch":
    case "nightshift-pg-keyed":
    case "nightshift-pg-sharded":
    case "nightshift-sqlite":
    case "nightshift-memory":
      return (await import("./nightshift.js")).make
    case "graphile":
    case "graphile-batched":
      return (await import("./graphile.js")).make
    case "pg-boss":
      return (await import("./pgboss.js")).make
    case "bullmq":
      return (await import("./bullmq.js")).make
    case "plainjob":
      return (await import("./plainjob.js")).make
    case "sidequest":
      return (await import("./sidequest.js")).make
    case "ceiling-pg":
      return (await import("../baselines/ceiling.js")).make
    case "raw-sqlite":
      return (await import("../baselines/sqlite.js")).make
    case "raw-memory":
      return (await import("../baselines/memory.js")).make
  }
}

const send = (message: Message) => process.send?.(message)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Counts handler starts per job and reports progress while a worker runs. */
class Tally {
  counts: Uint8Array = new Uint8Array(0)
  latencies: Float64Array = new Float64Array(0)
  handled = 0
  private cpu: NodeJS.CpuUsage | undefined
  private timer: ReturnType<typeof setInterval> | undefined

  reset(n: number) {
    this.counts = new Uint8Array(n)
    this.latencies = new Float64Array(n).fill(Number.NaN)
    this.handled = 0
    this.cpu = process.cpuUsage()
    let last = -1
    this.timer = setInterval(() => {
      if (this.handled !== last) send({ progress: (last = this.handled) })
    }, 10)
  }

  readonly onJob = (i: number, t: number, at = now()) => {
    this.handled++
    if (i < 0 || i >= this.counts.length) return
    if (this.counts[i]! < 255) this.counts[i]!++
    if (t > 0 && Number.isNaN(this.latencies[i]!)) this.latencies[i] = at - t
  }

  report(): WorkerReport {
    clearInterval(this.timer)
    const cpu = process.cpuUsage(this.cpu)
    return {
      counts: Array.from(this.counts),
      latencies: Array.from(this.latencies),
      cpuMs: (cpu.user + cpu.system) / 1000
    }
  }
}

const produce = async (driver: Driver, n: number, perSecond: number) => {
  const start = now()
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / perSecond
    const wait = due - now()
    if (wait > 0) await sleep(wait)
    await driver.enqueueOne(i, now())
  }
  return n
}

const handle = async (target: Driver | Baseline, tally: Tally, command: Command): Promise<unknown> => {
  if (command.cmd === "clock") return now()
  if ("run" in target) {
    if (command.cmd !== "run") throw new Error(`a baseline only answers "run", not "${command.cmd}"`)
    return target.run(command.args)
  }
  switch (command.cmd) {
    case "setup":
      return target.setup()
    case "enqueueBulk": {
      const t0 = now()
      await target.enqueueBulk(command.n)
      return now() - t0
    }
    case "produce":
      return produce(target, command.n, command.perSecond)
    case "produceOne": {
      // The enqueue call's own duration, for W7's single-enqueue figure.
      const t = now()
      await target.enqueueOne(command.index, t)
      return now() - t
    }
    case "startWorker":
      tally.reset(command.n)
      return target.startWorker(command.concurrency, tally.onJob)
    case "stopWorker":
      await target.stopWorker()
      return tally.report()
    case "committed":
      return target.committed(command.total)
    case "fill":
      if (target.fill === undefined) throw new Error("this driver cannot fill a backlog")
      return target.fill(command.n)
    case "teardown":
      return target.teardown()
    case "run":
      throw new Error("only baselines answer run")
  }
}

const main = async () => {
  const spec = JSON.parse(process.argv[2]!) as ChildSpec
  const target = await (await load(spec.driver))(spec)
  const tally = new Tally()
  process.on("message", (command: Command) => {
    handle(target, tally, command).then(
      (value) => send({ id: command.id, ok: true, value: value ?? null }),
      (error: unknown) =>
        send({
          id: command.id,
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error)
        })
    )
  })
  process.on("disconnect", () => process.exit(0))
  send({ id: 0, ok: true, value: "ready" })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
