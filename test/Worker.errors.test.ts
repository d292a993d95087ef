import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Admin from "../src/Admin.js"
import * as Crew from "../src/Crew.js"
import * as CronJob from "../src/CronJob.js"
import * as Job from "../src/Job.js"
import * as Worker from "../src/Worker.js"

const Report = Job.make("report", { payload: Schema.Struct({ scope: Schema.String }) })

/** Every exported class with a static `_tag` (the tagged errors), by module. */
const taggedClasses = (modules: Record<string, Record<string, unknown>>) =>
  Object.entries(modules).flatMap(([module, exports]) =>
    Object.entries(exports).flatMap(([name, value]) =>
      typeof value === "function" && typeof (value as { _tag?: unknown })._tag === "string"
        ? [{ where: `${module}.${name}`, tag: (value as unknown as { _tag: string })._tag, cls: value }]
        : []
    )
  )

describe("error tags", () => {
  it("the worker and crew errors have one class per tag across the public modules", () => {
    const all = taggedClasses({ Admin, Crew, CronJob, Worker })
    const byTag = new Map<string, Set<unknown>>()
    for (const { tag, cls } of all) byTag.set(tag, (byTag.get(tag) ?? new Set()).add(cls))
    const ours = ["WorkerNotFound", "NotPeriodic", "DuplicateWorker", "InvalidCron", "InvalidWorkerName"]
    for (const tag of ours) expect([tag, byTag.get(tag)?.size]).toEqual([tag, 1])
    expect(Admin.WorkerNotFound).toBe(Crew.WorkerNotFound)
    expect(Admin.NotPeriodic).toBe(Crew.NotPeriodic)
    expect(CronJob.InvalidCron).toBe(Worker.InvalidCron)
    // the deprecated name is the same class
    expect(CronJob.InvalidCronJob).toBe(Worker.InvalidCron)
    expect(byTag.has("InvalidCronJob")).toBe(false)
  })

  it.effect("the crew's errors carry the worker's full name and a message saying what to do", () =>
    Effect.gen(function* () {
      const handle = yield* Crew.start(Crew.make("app", [Worker.make("loop", Effect.never)]))
      const missing = yield* Effect.flip(handle.tick("loop"))
      expect(missing).toBeInstanceOf(Crew.WorkerNotFound)
      expect(missing).toMatchObject({ _tag: "WorkerNotFound", worker: "loop" })
      expect(missing.message).toContain('"app/parent/child"')
      const notPeriodic = yield* Effect.flip(handle.tick("app/loop"))
      expect(notPeriodic).toMatchObject({ _tag: "NotPeriodic", worker: "app/loop", kind: "long-running" })
      expect(notPeriodic.message).toContain("only periodic workers can be ticked")
      const duplicate = yield* Effect.flip(handle.add(Worker.make("loop", Effect.never)))
      expect(duplicate).toMatchObject({ _tag: "DuplicateWorker", worker: "app/loop" })
      // `name` is the error's own name, not a field that shadows it
      expect([missing.name, notPeriodic.name, duplicate.name]).toEqual([
        "WorkerNotFound",
        "NotPeriodic",
        "DuplicateWorker"
      ])
    }).pipe(Effect.scoped)
  )
})

describe("definition-time failures", () => {
  it("a cron worker and a cron job return the same InvalidCron, naming what was defined", () => {
    const worker = Worker.cron("nightly", "61 * * * *", {}, Effect.void)
    const job = CronJob.make(Report, { scope: "all" }, "0 3 * * *", { tz: "Mars/Olympus", name: "r2" })
    if (Either.isRight(worker) || Either.isRight(job)) throw new Error("expected both to be invalid")
    expect(worker.left).toBeInstanceOf(Worker.InvalidCron)
    expect(job.left).toBeInstanceOf(Worker.InvalidCron)
    expect(worker.left).toMatchObject({ _tag: "InvalidCron", worker: "nightly", expression: "61 * * * *" })
    expect(job.left).toMatchObject({ _tag: "InvalidCron", cronJob: "r2", tz: "Mars/Olympus" })
    expect(worker.left.message).toContain('worker "nightly"')
    expect(job.left.message).toContain('cron job "r2"')
  })

  it("mistakes in code throw tagged errors, not plain Errors", () => {
    const thrown = (f: () => unknown) => {
      try {
        f()
      } catch (error) {
        return error
      }
      throw new Error("expected a throw")
    }
    const badName = thrown(() => Worker.make("a/b", Effect.void))
    expect(badName).toBeInstanceOf(Worker.InvalidWorkerName)
    expect(badName).toMatchObject({ _tag: "InvalidWorkerName", worker: "a/b" })
    const empty = thrown(() => Worker.periodic("", { schedule: "1 second" }, Effect.void))
    expect(empty).toBeInstanceOf(Worker.InvalidWorkerName)
    const twice = thrown(() =>
      Crew.make("app", [Worker.make("a", Effect.never), Worker.make("a", Effect.void)])
    )
    expect(twice).toBeInstanceOf(Crew.DuplicateWorker)
    expect(twice).toMatchObject({ _tag: "DuplicateWorker", worker: "app/a" })
  })
})
