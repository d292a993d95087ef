import * as Old from "./functions-old.js"
import * as New from "../src/internal/pg/functions.js"
const a = Old.v6("s"), b = New.v6("s")
let i = 0; while (i < a.length && a[i] === b[i]) i++
console.log(a.length, b.length, i, JSON.stringify(a.slice(i - 40, i + 40)), JSON.stringify(b.slice(i - 40, i + 40)))
