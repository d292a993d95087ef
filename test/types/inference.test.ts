/**
 * Type-level tests of the types a user meets first. They are checked by
 * `tsc --noEmit` (the root tsconfig includes `test/`): a wrong inference is a
 * compile error here, and every `@ts-expect-error` line must stay an error.
 * Vitest also runs the file, so the values built here are checked at run time.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Crew from "nightshift/Crew"
import * as CronJob from "nightshift/CronJob"
import * as Job from "nightshift/Job"
import * as JobQueue from "nightshift/JobQueue"
import type * as JobStore from "nightshift/JobStore"
import type * as Lock from "nightshift/Lock"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"
import type demoApp from "../../examples/demo/app.js"
import type { World } from "../../examples/demo/world.js"

class Mailer extends Context.Tag("test/Mailer")<
  Mailer,
  { readonly send: (to: string) => Effect.Effect<void> }
>() {}
class Billing extends Context.Tag("test/Billing")<
  Billing,
  { readonly charge: (n: number) => Effect.Effect<void> }
>() {}
class Audit extends Context.Tag("test/Audit")<
  Audit,
  { readonly log: (s: string) => Effect.Effect<void> }
>() {}

const SendEmail = Job.make("send_email", { payload: Schema.Struct({ to: Schema.String }) })
const Charge = Job.make("charge", { payload: Schema.Struct({ amount: Schema.Number }) })
const Report = Job.make("report", { payload: Schema.Struct({ scope: Schema.String }) })

const sendEmail = Job.handle(SendEmail, ({ to }) => Effect.flatMap(Mailer, (m) => m.send(to)))
const charge = Job.handle(Charge, ({ amount }) => Effect.flatMap(Billing, (b) => b.charge(amount)))
const report = Job.handle(Report, () => Effect.void)

const audit = Worker.periodic(
  "audit",
  { schedule: "1 minute" },
  Effect.flatMap(Audit, (a) => a.log("tick"))
)
const mailLoop = Worker.make(
  "mail-loop",
  Effect.flatMap(Mailer, (m) => m.send("ops"))
)

describe("Job.handlers", () => {
  it("needs the union of every handler's services", () => {
    const handlers = Job.handlers(sendEmail, charge, report)
    expectTypeOf(handlers).toEqualTypeOf<Job.Handlers<Mailer | Billing>>()
    expectTypeOf(Job.handlers(report, sendEmail)).toEqualTypeOf<Job.Handlers<Mailer>>()
    expectTypeOf(Job.handlers()).toEqualTypeOf<Job.Handlers<never>>()
    // @ts-expect-error a handler needing Billing does not fit handlers that provide Mailer only
    const narrow: Job.Handlers<Mailer> = handlers
    expect([...narrow.byKind.keys()]).toEqual(["send_email", "charge", "report"])
  })
})

describe("Nightshift.define", () => {
  it("needs the union of what its workers and handlers need", () => {
    const app = Nightshift.define({
      workers: [audit, mailLoop],
      handlers: Job.handlers(sendEmail, charge)
    })
    expectTypeOf(app).toEqualTypeOf<Nightshift.App<Audit | Mailer | Billing>>()
    const workersOnly = Nightshift.define({ workers: [audit] })
    expectTypeOf(workersOnly).toEqualTypeOf<Nightshift.App<Audit>>()
    const empty = Nightshift.define({ runner: false })
    expectTypeOf(empty).toEqualTypeOf<Nightshift.App<never>>()
    // @ts-expect-error an unknown option is still an error
    Nightshift.define({ workers: [audit], runer: false })
    expect(app.workers?.map((w) => w.name)).toEqual(["audit", "mail-loop"])
  })

  it("infers the demo app's services without annotations", () => {
    expectTypeOf<typeof demoApp>().toEqualTypeOf<Nightshift.App<World | JobQueue.JobQueue | Lock.Lock>>()
  })

  it("Nightshift.layer needs the same services, besides a JobStore", () => {
    const layer = Nightshift.layer({ workers: [audit], handlers: Job.handlers(sendEmail, charge) })
    expectTypeOf<Layer.Layer.Context<typeof layer>>().toEqualTypeOf<
      JobStore.JobStore | Audit | Mailer | Billing
    >()
  })
})

describe("JobQueue.enqueueMany", () => {
  it("needs the union of every item's services and checks each payload against its kind", () => {
    class Tenant extends Context.Tag("test/Tenant")<Tenant, string>() {}
    const TenantSchema = Schema.String.pipe(
      Schema.transformOrFail(Schema.String, {
        decode: (s) => Effect.succeed(s),
        encode: (s) => Effect.as(Tenant, s)
      })
    )
    const Scoped = Job.make("scoped", { payload: Schema.Struct({ tenant: TenantSchema }) })
    class Other extends Context.Tag("test/Other")<Other, string>() {}
    const OtherSchema = Schema.String.pipe(
      Schema.transformOrFail(Schema.String, {
        decode: (s) => Effect.succeed(s),
        encode: (s) => Effect.as(Other, s)
      })
    )
    const OtherScoped = Job.make("other", { payload: Schema.Struct({ o: OtherSchema }) })

    const many = JobQueue.enqueueMany([
      JobQueue.item(Scoped, { tenant: "acme" }),
      JobQueue.item(OtherScoped, { o: "x" }),
      JobQueue.item(SendEmail, { to: "a@b.c" })
    ])
    expectTypeOf<Effect.Effect.Context<typeof many>>().toEqualTypeOf<JobQueue.JobQueue | Tenant | Other>()

    const literal = JobQueue.enqueueMany([
      { kind: SendEmail, payload: { to: "a@b.c" } },
      { kind: Charge, payload: { amount: 3 }, options: { priority: 1 } }
    ])
    expectTypeOf<Effect.Effect.Context<typeof literal>>().toEqualTypeOf<JobQueue.JobQueue>()

    // @ts-expect-error the payload of a charge is { amount: number }
    JobQueue.enqueueMany([
      { kind: SendEmail, payload: { to: "a@b.c" } },
      { kind: Charge, payload: { to: "x" } }
    ])
    // @ts-expect-error the same through item()
    JobQueue.enqueueMany([JobQueue.item(SendEmail, { to: "a@b.c" }), JobQueue.item(Charge, { to: "x" })])
    // @ts-expect-error the payload of a charge is { amount: number }
    JobQueue.item(Charge, { to: "a@b.c" })

    const fromIterable = JobQueue.enqueueMany(new Set([JobQueue.item(Charge, { amount: 1 })]))
    expectTypeOf<Effect.Effect.Context<typeof fromIterable>>().toEqualTypeOf<JobQueue.JobQueue>()
    expect(Effect.isEffect(many) && Effect.isEffect(literal)).toBe(true)
  })
})

describe("Worker", () => {
  it("is Pipeable", () => {
    const crew = audit.pipe((w) => Crew.make("ops", [w]))
    expectTypeOf(crew).toEqualTypeOf<Worker.Worker<Crew.CrewFailed, Audit>>()
    const same = audit.pipe()
    expectTypeOf(same).toEqualTypeOf<typeof audit>()
    expect(crew.workers).toEqual([audit])
    expect(same).toBe(audit)
  })
})

describe("worker requirements", () => {
  it("a periodic startup adds its failure and services; CurrentRun is provided by the crew", () => {
    const warm = Worker.periodic(
      "warm",
      {
        schedule: "1 minute",
        startup: Effect.zipRight(
          Effect.flatMap(Mailer, (m) => m.send("up")),
          Effect.fail("x")
        )
      },
      Effect.flatMap(Audit, (a) => a.log("tick"))
    )
    expectTypeOf(warm).toEqualTypeOf<Worker.Worker<string, Mailer | Audit>>()
    const counted = Worker.make(
      "counted",
      Effect.flatMap(Worker.attempt, (n) => Effect.log(n))
    )
    expectTypeOf(counted).toEqualTypeOf<Worker.Worker<never, never>>()
    const named = Worker.periodic(
      "named",
      { schedule: "1 minute", startup: Worker.CurrentRun },
      Worker.attempt
    )
    expectTypeOf(named).toEqualTypeOf<Worker.Worker<never, never>>()
    expect([warm.kind, counted.kind, named.kind]).toEqual(["periodic", "long-running", "periodic"])
  })
})

describe("JobStore list pagination", () => {
  it("a page's nextCursor is a valid cursor", () => {
    const next = (page: JobStore.ListPage): JobStore.ListFilter => ({ limit: 10, cursor: page.nextCursor })
    expect(next({ jobs: [], nextCursor: null })).toEqual({ limit: 10, cursor: null })
    const viaQueue = (page: JobStore.ListPage) =>
      Effect.flatMap(JobQueue.JobQueue, (queue) => queue.list({ cursor: page.nextCursor }))
    expectTypeOf(viaQueue).returns.toEqualTypeOf<
      Effect.Effect<JobStore.ListPage, JobStore.JobStoreError, JobQueue.JobQueue>
    >()
  })
})

describe("README examples", () => {
  it("cron jobs in the app's cron list", () => {
    const kind = Report
    const payload = { scope: "all" }
    Nightshift.define({
      // The README text verbatim: CronJob.make returns an Either (an invalid
      // expression is a value, not a throw), so it does not fit as written.
      // @ts-expect-error Either<CronJob, InvalidCronJob> is not a CronJob
      cron: [CronJob.make(kind, payload, "0 3 * * *", { tz: "Europe/Paris", backfill: true })]
    })
    const app = Nightshift.define({
      cron: [
        Either.getOrThrow(CronJob.make(kind, payload, "0 3 * * *", { tz: "Europe/Paris", backfill: true }))
      ]
    })
    expect(app.cron?.map((c) => [c.name, c.tz, c.backfill])).toEqual([["report", "Europe/Paris", true]])
  })
})
