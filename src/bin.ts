/**
 * The `nightshift` executable (see `Cli`); `bin/nightshift.js` loads it
 * through tsx.
 *
 * @since 0.1.0
 */
import * as Cli from "./Cli.js"

Cli.main(process.argv)
