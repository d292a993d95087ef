// A minimal Nightshift app for bench/startup.ts, in plain JavaScript: one
// periodic worker and one job handler. It imports "nightshift/..." like an
// application that has the package installed; the benchmark runs a copy whose
// node_modules/nightshift links to the installation under test.
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Job from "nightshift/Job"
import * as Nightshift from "nightshift/Nightshift"
import * as Worker from "nightshift/Worker"

const Ping = Job.make("ping", { payload: Schema.Struct({ n: Schema.Number }) })

const handlers = Job.handlers(Job.handle(Ping, () => Effect.void))

const tick = Worker.periodic("tick", { schedule: "1 minute" }, Effect.void)

export default Nightshift.define({ name: "startup-bench", workers: [tick], handlers })
