/**
 * Writing a benchmark's section of BENCHMARKS.md: replace (or append) one
 * `## <title>` section, or only some of its `### ` subsections, so that a
 * run of one part of a benchmark keeps the figures of the other parts.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Where the `## <title>` section of `text` starts and ends (end exclusive), if present. */
const locate = (text: string, title: string) => {
  const start = text.search(new RegExp(`^## ${escape(title)}\\b.*$`, "m"))
  if (start < 0) return undefined
  const next = text.slice(start + 1).search(/^## /m)
  return { start, end: next < 0 ? text.length : start + 1 + next }
}

/** Replace (or append) the `## <title>` section of a Markdown file. */
export const replaceSection = (file: string, title: string, section: string) => {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n"
  const at = locate(text, title)
  if (at === undefined) return writeFileSync(file, `${text.trimEnd()}\n\n${section.trimEnd()}\n`)
  const after = text.slice(at.end).trimEnd()
  writeFileSync(file, `${text.slice(0, at.start)}${section.trimEnd()}\n${after === "" ? "" : `\n${after}\n`}`)
}

/** The `### ` subsections of the `## <title>` section of a file, by title, in order. */
export const subsections = (file: string, title: string): Map<string, string> => {
  const found = new Map<string, string>()
  if (!existsSync(file)) return found
  const text = readFileSync(file, "utf8")
  const at = locate(text, title)
  if (at === undefined) return found
  const parts = text.slice(at.start, at.end).split(/^(?=### )/m)
  for (const part of parts.slice(1)) {
    const heading = /^### (.*)$/m.exec(part)?.[1]?.trim()
    if (heading !== undefined) found.set(heading, part.trimEnd())
  }
  return found
}

/**
 * Write `## <title>`: `intro`, then one subsection per title of `order`,
 * taken from `fresh` when this run measured it, else kept from the file.
 */
export const writeSubsections = (
  file: string,
  title: string,
  intro: string,
  order: ReadonlyArray<string>,
  fresh: ReadonlyMap<string, string>
) => {
  const kept = subsections(file, title)
  const parts = order.flatMap((t) => {
    const text = fresh.get(t) ?? kept.get(t)
    return text === undefined ? [] : [text.trimEnd()]
  })
  replaceSection(file, title, [`## ${title}`, "", intro.trimEnd(), ...parts.map((p) => `\n${p}`)].join("\n"))
}
