import fs from "node:fs"
const p = JSON.parse(fs.readFileSync(process.argv[2]))
const byId = new Map(p.nodes.map(n => [n.id, n]))
const self = new Map(); const dt = p.timeDeltas; 
const counts = new Map()
p.samples.forEach((s, i) => counts.set(s, (counts.get(s) ?? 0) + (dt[i] ?? 0)))
const total = [...counts.values()].reduce((a, b) => a + b, 0)
const agg = new Map()
for (const [id, t] of counts) { const n = byId.get(id); const cf = n.callFrame; const key = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-3).join("/")}:${cf.lineNumber}`; agg.set(key, (agg.get(key) ?? 0) + t) }
// by file
const byFile = new Map()
for (const [id, t] of counts) { const n = byId.get(id); const u = n.callFrame.url; const m = u.match(/node_modules\/((@[^/]+\/)?[^/]+)/); const k = m ? m[1] : (u.includes("/src/") ? "src/" + u.split("/src/")[1] : (u || n.callFrame.functionName)); byFile.set(k, (byFile.get(k) ?? 0) + t) }
console.log("total ms", (total/1000).toFixed(0))
console.log([...byFile].sort((a,b)=>b[1]-a[1]).slice(0, 25).map(([k,t]) => `${(t/1000).toFixed(0).padStart(6)} ms ${k}`).join("\n"))
console.log("---")
console.log([...agg].sort((a,b)=>b[1]-a[1]).slice(0, Number(process.argv[3] ?? 40)).map(([k,t]) => `${(t/1000).toFixed(0).padStart(6)} ms ${k}`).join("\n"))
