#!/usr/bin/env node
/**
 * The `nightshift` executable (see `Cli`), compiled to `dist/bin.js`.
 *
 * @since 0.1.0
 */
import * as Cli from "./Cli.js"

Cli.main(process.argv)
