/**
 * `nightshift workers`: the live status table of a running node, read from
 * its admin API.
 */
import * as Command from "@effect/cli/Command"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as WorkerStatus from "../../WorkerStatus.js"
import * as Admin from "./admin.js"
import { failure, json, printJson, usageError } from "./common.js"
import { table, time } from "./format.js"

const Response = Schema.Struct({
  workers: Schema.Array(WorkerStatus.WorkerStatus),
  runner: Schema.NullOr(
    Schema.Struct({
      id: Schema.String,
      concurrency: Schema.Number,
      running: Schema.Number,
      // absent from nodes older than the prefetch option
      prefetched: Schema.optionalWith(Schema.Number, { default: () => 0 }),
      healthy: Schema.Boolean
    })
  )
})

const statusTable = (response: typeof Response.Type) => {
  const rows = table(
    [
      "NAME",
      "KIND",
      "STATE",
      "SCHEDULE",
      "NEXT TICK",
      "LAST SUCCESS",
      "RUNS",
      "FAILS",
      "RESTARTS",
      "LAST ERROR"
    ],
    response.workers.map((w) => [
      w.name,
      w.kind,
      w.state,
      w.schedule ?? "-",
      time(w.nextTickAt),
      time(w.lastSuccessAt),
      String(w.runs),
      String(w.failures),
      String(w.restarts),
      w.lastError ?? ""
    ])
  )
  const runner = response.runner
  return runner === null
    ? rows
    : `${rows}\n\nrunner ${runner.id}: ${runner.running}/${runner.concurrency} jobs running, ${runner.prefetched} prefetched, ${runner.healthy ? "healthy" : "store unreachable"}`
}

const fetchStatus = (base: string, token: Option.Option<Redacted.Redacted>) =>
  Effect.gen(function* () {
    const url = yield* Effect.try({
      try: () => new URL("workers", base.endsWith("/") ? base : `${base}/`),
      catch: () => usageError(`--admin-url: ${JSON.stringify(base)} is not a URL; e.g. http://127.0.0.1:4280`)
    })
    const request = Option.match(token, {
      onNone: () => HttpClientRequest.get(url),
      onSome: (t) => HttpClientRequest.bearerToken(HttpClientRequest.get(url), Redacted.value(t))
    })
    const response = yield* HttpClient.execute(request).pipe(
      Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () => failure(`the admin API at ${base} did not answer within 10 seconds`)
      }),
      Effect.catchTag("ResponseError", (e) =>
        Effect.fail(failure(`the admin API at ${base} failed: ${e.message}`))
      ),
      Effect.catchTag("RequestError", (e) =>
        Effect.fail(
          failure(
            `cannot reach the admin API at ${base} (${e.cause instanceof Error ? e.cause.message : e.reason}). Is a node running with its admin server on? Point --admin-url (or NIGHTSHIFT_ADMIN_URL) at it.`
          )
        )
      )
    )
    if (response.status === 401 || response.status === 403) {
      return yield* Effect.fail(
        failure(
          `the admin API at ${base} refused the request (${response.status}); pass its token with --admin-token or NIGHTSHIFT_ADMIN_TOKEN`
        )
      )
    }
    if (response.status !== 200) {
      return yield* Effect.fail(
        failure(`the admin API at ${base} answered ${response.status} to GET /workers`)
      )
    }
    return yield* HttpClientResponse.schemaBodyJson(Response)(response).pipe(
      Effect.mapError(() =>
        failure(`the admin API at ${base} sent a status table this CLI does not understand`)
      )
    )
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** `nightshift workers`. */
export const command = Command.make("workers", { ...Admin.clientOptions, json }, (input) =>
  Effect.gen(function* () {
    const status = yield* fetchStatus(input.adminUrl, input.adminToken)
    yield* input.json ? printJson(status) : Console.log(statusTable(status))
  })
).pipe(Command.withDescription("The live status table of a running node's workers, from its admin API."))
