import fs from "node:fs"
const p = JSON.parse(fs.readFileSync(process.argv[2]))
const byId = new Map(p.nodes.map(n => [n.id, n]))
const parent = new Map(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const selfT = new Map(); p.samples.forEach((s, i) => selfT.set(s, (selfT.get(s) ?? 0) + (p.timeDeltas[i] ?? 0)))
const incl = new Map()
for (const [id, t] of selfT) {
  const seen = new Set(); let cur = id
  while (cur !== undefined) { const n = byId.get(cur); const cf = n.callFrame; const key = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`; if (!seen.has(key)) { seen.add(key); incl.set(key, (incl.get(key) ?? 0) + t) } cur = parent.get(cur) }
}
const pat = new RegExp(process.argv[3] ?? ".")
console.log([...incl].filter(([k]) => pat.test(k)).sort((a,b)=>b[1]-a[1]).slice(0, 60).map(([k,t]) => `${(t/1000).toFixed(0).padStart(6)} ms ${k}`).join("\n"))
