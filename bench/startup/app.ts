/**
 * The same minimal app as app.mjs, in TypeScript: one periodic worker and one
 * job handler. bench/startup.ts runs a copy whose node_modules/nightshift links
 * to the installation under test.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Job from "nightshift/Job"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"

const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }) })

const handlers: Job.Handlers = Job.handlers(
  Job.handle(Ping, ({ n }: { readonly n: number }) => Effect.succeed(n))
)

const tick: Worker.Worker<never> = Worker.periodic("tick", { schedule: "1 minute" }, Effect.void)

export default Nightshift.define({ name: "startup-bench", workers: [tick], handlers })
