/**
 * Loading an optional peer dependency (a database driver, the OpenTelemetry
 * exporter) only when the feature that needs it is used, with an error that
 * says exactly what to install when it is missing.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/**
 * The optional peers, each with the range package.json declares (a test
 * keeps the two in step) and what needs it.
 */
export const optionalPeers = {
  "@effect/sql-sqlite-node": { range: "^0.53.0", neededBy: "the SQLite store" },
  "@effect/sql-pg": { range: "^0.53.0", neededBy: "the PostgreSQL store" },
  "@effect/opentelemetry": { range: "^0.64.1", neededBy: "OpenTelemetry export" }
} as const

/** An optional peer's package name. */
export type OptionalPeer = keyof typeof optionalPeers

/** An optional peer dependency is not installed, or cannot be loaded. */
export class MissingPeerDependency extends Data.TaggedError("MissingPeerDependency")<{
  readonly package: OptionalPeer
  readonly message: string
  readonly cause?: unknown
}> {}

const isNotFound = (error: unknown, name: string): boolean =>
  typeof error === "object" &&
  error !== null &&
  (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" &&
  String((error as { message?: unknown }).message).includes(`'${name}`)

/** `npm install <package>@<range>` for an optional peer. */
export const installCommand = (name: OptionalPeer): string =>
  `npm install ${name}@"${optionalPeers[name].range}"`

/**
 * Run `load` (a dynamic `import` of a module that needs the peer `name`);
 * when the peer is not installed, fail with the command that installs it.
 */
export const load = <A>(
  name: OptionalPeer,
  load: () => Promise<A>
): Effect.Effect<A, MissingPeerDependency> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) => {
      const { neededBy } = optionalPeers[name]
      return new MissingPeerDependency({
        package: name,
        cause,
        message: isNotFound(cause, name)
          ? `${neededBy} needs the package ${name}, which is not installed: run \`${installCommand(name)}\``
          : `${neededBy} could not load ${name}: ${cause instanceof Error ? cause.message : String(cause)}`
      })
    }
  })
