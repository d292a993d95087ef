/**
 * `nightshift workers`: the live status table of a running node, read from
 * its admin API.
 */
import * as Command from "@effect/cli/Command"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Api } from "../admin/api.js"
import type { WorkersResponse } from "../admin/schema.js"
import * as Admin from "./admin.js"
import { failure, json, printJson, usageError } from "./common.js"
import { table, time } from "./format.js"

const statusTable = (response: typeof WorkersResponse.Type) => {
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

/**
 * The status table of the node at `base`, through a client derived from the
 * admin API's own definition (`HttpApiClient`): the same routes and schemas
 * the server serves.
 */
const fetchStatus = (base: string, token: Option.Option<Redacted.Redacted>) =>
  Effect.gen(function* () {
    const baseUrl = yield* Effect.try({
      try: () => new URL(base.endsWith("/") ? base : `${base}/`),
      catch: () => usageError(`--admin-url: ${JSON.stringify(base)} is not a URL; e.g. http://127.0.0.1:4280`)
    })
    const client = yield* HttpApiClient.make(Api, {
      // The admin API may be served under a path prefix: keep it, without a trailing slash.
      baseUrl: baseUrl.href.replace(/\/$/, ""),
      transformClient: Option.match(token, {
        onNone: () => identity,
        onSome: (t) => HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(t)))
      })
    })
    return yield* client.workers.list().pipe(
      Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () => failure(`the admin API at ${base} did not answer within 10 seconds`)
      }),
      Effect.catchTags({
        Unauthorized: () =>
          Effect.fail(
            failure(
              `the admin API at ${base} refused the request (401); pass its token with --admin-token or NIGHTSHIFT_ADMIN_TOKEN`
            )
          ),
        Forbidden: (e) =>
          Effect.fail(failure(`the admin API at ${base} refused the request (403): ${e.message}`)),
        HttpApiDecodeError: (e) =>
          Effect.fail(failure(`the admin API at ${base} refused the request as malformed: ${e.message}`)),
        ParseError: () =>
          Effect.fail(failure(`the admin API at ${base} sent a status table this CLI does not understand`)),
        ResponseError: (e) =>
          Effect.fail(
            failure(
              e.reason === "StatusCode"
                ? `the admin API at ${base} answered ${e.response.status} to GET /workers`
                : `the admin API at ${base} failed: ${e.message}`
            )
          ),
        RequestError: (e) =>
          Effect.fail(
            failure(
              `cannot reach the admin API at ${base} (${e.cause instanceof Error ? e.cause.message : e.reason}). Is a node running with its admin server on? Point --admin-url (or NIGHTSHIFT_ADMIN_URL) at it.`
            )
          )
      })
    )
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** `nightshift workers`. */
export const command = Command.make("workers", { ...Admin.clientOptions, json }, (input) =>
  Effect.gen(function* () {
    const status = yield* fetchStatus(input.adminUrl, input.adminToken)
    yield* input.json ? printJson(status) : Console.log(statusTable(status))
  })
).pipe(Command.withDescription("The live status table of a running node's workers, from its admin API."))
