import { createHash, timingSafeEqual } from "node:crypto"
import { isIP } from "node:net"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Authorization } from "./api.js"
import { Forbidden, Unauthorized } from "./schema.js"

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest()

/** Compare a presented token with the expected digest in constant time (both are hashed to one length). */
export const tokenMatches = (expected: Buffer, presented: string): boolean =>
  timingSafeEqual(expected, digest(presented))

const stripBrackets = (host: string) =>
  host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host

/** Is this host name or address on the loopback interface only? */
export const isLoopback = (host: string): boolean => {
  const h = stripBrackets(host.trim().toLowerCase())
  if (h === "localhost" || h.endsWith(".localhost")) return true
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true
  if (h.startsWith("::ffff:")) return isLoopback(h.slice(7))
  return isIP(h) === 4 && h.startsWith("127.")
}

/** The host name of a `Host` header or an origin, without the port. */
export const hostName = (hostHeader: string): string => {
  const h = hostHeader.trim()
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1)
  const colon = h.lastIndexOf(":")
  return colon > 0 && h.indexOf(":") === colon ? h.slice(0, colon) : h
}

const originHost = (origin: string): string | undefined => {
  try {
    return new URL(origin).host
  } catch {
    return undefined
  }
}

/**
 * Refuse requests a browser sends on behalf of another site: an `Origin`
 * that is not this server's host. Without a token the server is only safe on
 * loopback, so the `Host` must then be a loopback name too (a DNS-rebinding
 * page would send its own host name).
 */
const checkSameSite = (request: HttpServerRequest.HttpServerRequest, tokenless: boolean) => {
  const host = request.headers.host ?? ""
  const origin = request.headers.origin
  if (origin !== undefined && origin !== "null" && originHost(origin) !== host) {
    return Effect.fail(
      new Forbidden({
        message: `cross-site request refused: Origin ${origin} does not match Host ${host}`
      })
    )
  }
  if (origin === "null") {
    return Effect.fail(new Forbidden({ message: "cross-site request refused: opaque Origin" }))
  }
  if (tokenless && !isLoopback(hostName(host))) {
    return Effect.fail(
      new Forbidden({
        message: `Host ${JSON.stringify(host)} is not a loopback name; without a token the admin API answers only to localhost`
      })
    )
  }
  return Effect.void
}

const bearer = /^bearer\s+(.+)$/i

/**
 * The `Authorization` middleware: checks the bearer token when one is
 * configured, and the same-site rules always.
 */
export const layer = (token: Redacted.Redacted | undefined): Layer.Layer<Authorization> => {
  const expected = token === undefined ? undefined : digest(Redacted.value(token))
  return Layer.succeed(Authorization, {
    bearer: () =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        yield* checkSameSite(request, expected === undefined)
        if (expected === undefined) return
        const match = bearer.exec(request.headers.authorization ?? "")
        if (match === null) {
          return yield* new Unauthorized({
            message: "missing bearer token: send the header `Authorization: Bearer <token>`"
          })
        }
        if (!tokenMatches(expected, match[1]!.trim())) {
          return yield* new Unauthorized({ message: "wrong bearer token" })
        }
      })
  })
}
