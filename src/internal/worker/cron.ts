import * as Cron from "effect/Cron"
import * as DateTime from "effect/DateTime"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

/**
 * A cron expression (or its time zone) could not be parsed. One error for
 * cron workers (`worker` set) and cron jobs (`cronJob` set).
 */
export class InvalidCron extends Schema.TaggedError<InvalidCron>()("InvalidCron", {
  /** The full name of the cron worker, when a worker was being defined. */
  worker: Schema.optional(Schema.String),
  /** The name of the cron job, when a cron job was being declared. */
  cronJob: Schema.optional(Schema.String),
  expression: Schema.String,
  tz: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    const subject =
      this.worker !== undefined
        ? `worker "${this.worker}"`
        : this.cronJob !== undefined
          ? `cron job "${this.cronJob}"`
          : "cron"
    return `${subject}: invalid cron expression ${JSON.stringify(this.expression)} in time zone ${JSON.stringify(this.tz)}: ${this.reason}. Use 5 fields (minute hour day month weekday) or 6 with seconds first, and an IANA zone such as "Europe/Paris".`
  }
}

/** The name of a zone given as a string or a `DateTime.TimeZone` (`"Asia/Tokyo"`, `"+09:00"`). */
export const zoneName = (tz: string | DateTime.TimeZone): string =>
  typeof tz === "string" ? tz : DateTime.zoneToString(tz)

/** Parse a cron expression in `tz` for `subject`, or say why it is invalid. */
export const parse = (
  expression: string,
  tz: string | DateTime.TimeZone,
  subject: { readonly worker: string } | { readonly cronJob: string }
): Either.Either<Cron.Cron, InvalidCron> =>
  Either.mapLeft(
    Cron.parse(expression, tz),
    (error) => new InvalidCron({ ...subject, expression, tz: zoneName(tz), reason: error.message })
  )
