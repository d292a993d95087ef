/**
 * The `nightshift` command: run an app module, migrate a store, enqueue and
 * inspect jobs, pause queues, read a running node's workers, run the demo.
 *
 * Every command that touches jobs selects its store with `--database`, else
 * `NIGHTSHIFT_DATABASE_URL`, else `./nightshift.db` (see `Store`). Output is
 * an aligned table for people, or JSON with `--json`. Exit codes: 0 done, 1
 * failed (store unreachable, job not found, …), 2 bad input (arguments,
 * flags, environment); the message says what to change.
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import { type CliError, database, failure, json, printJson, target } from "./internal/cli/common.js"
import * as Enqueue from "./internal/cli/enqueue.js"
import * as Jobs from "./internal/cli/jobs.js"
import * as Queues from "./internal/cli/queues.js"
import * as Run from "./internal/cli/run.js"
import * as Workers from "./internal/cli/workers.js"
import * as Store from "./Store.js"

const migrate = Command.make("migrate", { database, json }, (input) =>
  Effect.gen(function* () {
    const selected = yield* target(input.database)
    const ran = yield* Store.migrate(selected).pipe(Effect.mapError((e) => failure(e.message)))
    if (input.json) return yield* printJson({ store: Store.describe(selected), ran })
    yield* Console.log(
      ran.length === 0
        ? `${Store.describe(selected)} is up to date`
        : `migrated ${Store.describe(selected)}: ${ran.map(([id, name]) => `${id} ${name}`).join(", ")}`
    )
  })
).pipe(
  Command.withDescription("Create or upgrade the store's tables (run and enqueue also do this on their own).")
)

/**
 * The root `nightshift` command with all its subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("nightshift").pipe(
  Command.withDescription("Nightshift: supervised workers and durable job queues for Effect."),
  Command.withSubcommands([
    Run.run,
    Run.demo,
    migrate,
    Enqueue.command,
    Jobs.command,
    Workers.command,
    Queues.command
  ])
)

/** The version printed by `--version`. @since 0.1.0 */
export const version = "0.1.0"

const report = (cause: Cause.Cause<CliError | ValidationError.ValidationError>): Effect.Effect<number> => {
  const error = Cause.failureOption(cause)
  if (error._tag === "Some") {
    if (ValidationError.isValidationError(error.value)) {
      // @effect/cli has already printed its usage error, unless it had nothing to say
      // (an unknown option it does not name, for one).
      return HelpDoc.toAnsiText(error.value.error).trim() === ""
        ? Effect.as(
            Console.error(
              "error: the arguments could not be parsed (an unknown option, or a value missing?); see `nightshift <command> --help`"
            ),
            2
          )
        : Effect.succeed(2)
    }
    return Effect.as(Console.error(`error: ${error.value.message}`), error.value.exitCode)
  }
  return Effect.as(Console.error(`nightshift: unexpected error\n${Cause.pretty(cause)}`), 1)
}

/**
 * Run the command line `argv` (as in `process.argv`: the first two entries
 * are skipped) and return the exit code. Errors are printed, never thrown.
 * Interruption (SIGINT/SIGTERM under `main`) closes every scope first, so a
 * running app drains.
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(command, { name: "nightshift", version })(argv).pipe(
    Effect.as(0),
    Effect.catchAllCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.interrupt : report(cause))),
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true })))
  )

/**
 * The process entry point: run `argv` on Node with SIGINT/SIGTERM wired to
 * graceful shutdown, and exit with the command's exit code.
 *
 * @since 0.1.0
 */
export const main = (argv: ReadonlyArray<string> = process.argv): void =>
  NodeRuntime.runMain(run(argv).pipe(Effect.provide(NodeContext.layer)), {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) ? Number(exit.value) : Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
  })
