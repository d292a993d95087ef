import * as Old from "./functions-old.js"
import * as New from "../src/internal/pg/functions.js"
console.log(Old.v6("s") === New.v6("s"), Old.v5("s") === New.v5("s"))
console.log(New.enqueueV8("s").includes("ORDER BY input.kind, input.dedupe_key NULLS LAST, input.ord"))
