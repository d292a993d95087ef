import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as CronJob from "nightshift/CronJob"
import * as Job from "nightshift/Job"

const Report = Job.make("report", { payload: Schema.Struct({ scope: Schema.String }) })

describe("CronJob.make", () => {
  it("parses the expression and zone when the job is declared", () => {
    const job = Either.getOrThrow(
      CronJob.make(Report, { scope: "all" }, "0 3 * * *", { tz: "Europe/Paris", backfill: true })
    )
    expect([job.name, job.tz, job.backfill]).toEqual(["report", "Europe/Paris", true])
  })

  it("returns a typed error for a bad expression or zone, naming what to fix", () => {
    const badExpr = CronJob.make(Report, { scope: "all" }, "61 * * * *")
    const badZone = CronJob.make(Report, { scope: "all" }, "0 * * * *", { tz: "Mars/Olympus", name: "r2" })
    expect(Either.isLeft(badExpr) && badExpr.left._tag).toBe("InvalidCron")
    expect(Either.isLeft(badZone) && badZone.left.message).toContain('cron job "r2"')
    expect(Either.isLeft(badZone) && badZone.left.message).toContain("IANA zone")
  })
})
