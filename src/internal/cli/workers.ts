/**
 * `nightshift workers [name]`: the live status table of a running node, or
 * one worker's status and recent history, read from its admin API.
 */
import * as Args from "@effect/cli/Args"
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
import type { HistoryResponse, WorkerNotFound, WorkersResponse } from "../admin/schema.js"
import * as Admin from "./admin.js"
import { failure, json, printJson, usageError } from "./common.js"
import { fields, indent, table, time } from "./format.js"

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

const makeClient = (baseUrl: string, token: Option.Option<Redacted.Redacted>) =>
  HttpApiClient.make(Api, {
    baseUrl,
    transformClient: Option.match(token, {
      onNone: () => identity,
      onSome: (t) => HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(t)))
    })
  })

type Client = Effect.Effect.Success<ReturnType<typeof makeClient>>

/**
 * Ask the node at `base`, through a client derived from the admin API's own
 * definition (`HttpApiClient`): the same routes and schemas the server
 * serves. `route` names the request in messages.
 */
const ask = <A, E>(
  base: string,
  token: Option.Option<Redacted.Redacted>,
  route: string,
  request: (client: Client) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const baseUrl = yield* Effect.try({
      try: () => new URL(base.endsWith("/") ? base : `${base}/`),
      catch: () => usageError(`--admin-url: ${JSON.stringify(base)} is not a URL; e.g. http://127.0.0.1:4280`)
    })
    // The admin API may be served under a path prefix: keep it, without a trailing slash.
    const client = yield* makeClient(baseUrl.href.replace(/\/$/, ""), token)
    return yield* (request(client) as Effect.Effect<A, any>).pipe(
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
          Effect.fail(
            failure(`the admin API at ${base} sent an answer to ${route} this CLI does not understand`)
          ),
        ResponseError: (e) =>
          Effect.fail(
            failure(
              e.reason === "StatusCode"
                ? `the admin API at ${base} answered ${e.response.status} to ${route}`
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

const ms = (n: number) => (Number.isInteger(n) || n >= 10 ? `${Math.round(n)} ms` : `${n.toFixed(1)} ms`)

const outcomeText = (o: (typeof HistoryResponse.Type)["ticks"][number]["outcome"]) =>
  o._tag === "failure" ? `failure: ${o.error}` : o._tag === "skipped" ? `skipped: ${o.reason}` : o._tag

const historyText = (
  status: (typeof WorkersResponse.Type)["workers"][number] | undefined,
  h: typeof HistoryResponse.Type
) => {
  const head = fields([
    ["name", h.name],
    ["kind", h.kind],
    ["state", status?.state ?? "-"],
    ["schedule", status?.schedule ?? "-"],
    ["next tick", time(status?.nextTickAt)],
    ["runs", String(status?.runs ?? "-")],
    ["failures", String(status?.failures ?? "-")],
    ["restarts", String(status?.restarts ?? "-")]
  ])
  const ticks =
    h.kind !== "periodic"
      ? ""
      : h.ticks.length === 0
        ? "\n\nticks: none yet"
        : `\n\nticks (the last ${h.ticks.length} of ${h.ticksRecorded}, newest first)\n${indent(
            table(
              ["STARTED", "DURATION", "FORCED", "OUTCOME"],
              h.ticks.map((t) => [
                time(t.startedAt),
                ms(t.durationMs),
                t.forced ? "yes" : "",
                outcomeText(t.outcome)
              ])
            ),
            "  "
          )}`
  const restarts =
    h.restarts.length === 0
      ? "\n\nrestarts: none"
      : `\n\nrestarts (the last ${h.restarts.length}, newest first)\n${indent(
          table(
            ["AT", "REASON", "ATTEMPT", "BACKOFF", "RESTARTED AT", "ERROR"],
            h.restarts.map((r) => [
              time(r.at),
              r.reason,
              String(r.attempt),
              r.backoffMs === null ? "-" : ms(r.backoffMs),
              time(r.restartAt),
              r.error ?? ""
            ])
          ),
          "  "
        )}`
  return head + ticks + restarts
}

const name = Args.text({ name: "name" }).pipe(
  Args.withDescription(
    'A worker\'s full name (as the table lists it, e.g. "app/report"): show its recent ticks and restarts.'
  ),
  Args.optional
)

/** `nightshift workers [name]`. */
export const command = Command.make("workers", { ...Admin.clientOptions, json, name }, (input) =>
  Effect.gen(function* () {
    const status = yield* ask(input.adminUrl, input.adminToken, "GET /workers", (client) =>
      client.workers.list()
    )
    if (Option.isNone(input.name)) {
      return yield* input.json ? printJson(status) : Console.log(statusTable(status))
    }
    const worker = input.name.value
    const history = yield* ask(
      input.adminUrl,
      input.adminToken,
      `GET /workers/${encodeURIComponent(worker)}/history`,
      (client) =>
        Effect.catchTag(
          // The client puts path parameters in as they are; a nested name holds "/".
          client.workers.history({ path: { name: encodeURIComponent(worker) } }),
          "WorkerNotFound",
          (e: WorkerNotFound) => Effect.fail(failure(`${e.message}; \`nightshift workers\` lists the names`))
        )
    )
    const row = status.workers.find((w) => w.name === worker)
    yield* input.json ? printJson({ status: row ?? null, history }) : Console.log(historyText(row, history))
  })
).pipe(
  Command.withDescription(
    "The live status table of a running node's workers, or with a name one worker's status, recent ticks and restarts, from its admin API."
  )
)
