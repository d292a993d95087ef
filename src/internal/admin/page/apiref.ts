/**
 * The API reference view (`#/api`): the admin API's OpenAPI document, fetched
 * with the token from `openapi.json` beside the page, rendered here: groups,
 * endpoints with their methods, path and query parameters, request bodies and
 * responses, and their schemas as types. No request leaves this origin.
 */
import { api, Unauthorized } from "./api.js"
import { el, type View } from "./dom.js"

/** The parts of an OpenAPI 3.1 document this view reads. */
interface SchemaObject {
  readonly $ref?: string
  readonly type?: string | ReadonlyArray<string>
  readonly enum?: ReadonlyArray<unknown>
  readonly const?: unknown
  readonly anyOf?: ReadonlyArray<SchemaObject>
  readonly oneOf?: ReadonlyArray<SchemaObject>
  readonly allOf?: ReadonlyArray<SchemaObject>
  readonly properties?: Readonly<Record<string, SchemaObject>>
  readonly required?: ReadonlyArray<string>
  readonly additionalProperties?: boolean | SchemaObject
  readonly items?: SchemaObject | false
  readonly prefixItems?: ReadonlyArray<SchemaObject>
  readonly description?: string
  readonly format?: string
  readonly pattern?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly exclusiveMinimum?: number
  readonly exclusiveMaximum?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly minItems?: number
  readonly maxItems?: number
}

interface Parameter {
  readonly name: string
  readonly in: string
  readonly required?: boolean
  readonly description?: string
  readonly schema?: SchemaObject
}

interface Content {
  readonly [mediaType: string]: { readonly schema?: SchemaObject }
}

interface Operation {
  readonly tags?: ReadonlyArray<string>
  readonly operationId?: string
  readonly summary?: string
  readonly description?: string
  readonly parameters?: ReadonlyArray<Parameter>
  readonly requestBody?: { readonly content?: Content; readonly required?: boolean }
  readonly responses?: Readonly<Record<string, { readonly description?: string; readonly content?: Content }>>
  readonly security?: ReadonlyArray<Readonly<Record<string, ReadonlyArray<string>>>>
}

interface Document {
  readonly info?: { readonly title?: string; readonly version?: string; readonly description?: string }
  readonly paths?: Readonly<Record<string, Readonly<Record<string, Operation>>>>
  readonly components?: { readonly schemas?: Readonly<Record<string, SchemaObject>> }
  readonly security?: ReadonlyArray<Readonly<Record<string, ReadonlyArray<string>>>>
  readonly tags?: ReadonlyArray<{ readonly name: string; readonly description?: string }>
}

const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const

/** The schemas of the document, for `$ref`s. */
let components: Readonly<Record<string, SchemaObject>> = {}

const refName = (ref: string) => decodeURIComponent(ref.split("/").pop() ?? ref)

/** Constraints of a schema worth saying, as a comment. */
const constraints = (s: SchemaObject): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (s.format !== undefined) out.push(s.format)
  if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`)
  if (s.exclusiveMinimum !== undefined) out.push(`> ${s.exclusiveMinimum}`)
  if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`)
  if (s.exclusiveMaximum !== undefined) out.push(`< ${s.exclusiveMaximum}`)
  if (s.minLength !== undefined) out.push(`length ≥ ${s.minLength}`)
  if (s.maxLength !== undefined) out.push(`length ≤ ${s.maxLength}`)
  if (s.minItems !== undefined) out.push(`items ≥ ${s.minItems}`)
  if (s.maxItems !== undefined) out.push(`items ≤ ${s.maxItems}`)
  if (s.pattern !== undefined) out.push(`matches /${s.pattern}/`)
  return out
}

const note = (s: SchemaObject): string => {
  const parts = [...constraints(s)]
  if (s.description !== undefined) parts.push(s.description.replace(/\s+/g, " "))
  return parts.length === 0 ? "" : `  // ${parts.join("; ")}`
}

/** A description, its `backquoted` parts as code. */
const prose = (text: string): ReadonlyArray<Node | string> =>
  text.split("`").map((part, i) => (i % 2 === 1 ? el("code", {}, part) : part))

const isIdentifier = (key: string) => /^[A-Za-z_$][\w$]*$/.test(key)

/**
 * A schema as a type, one line or several (`pad` indents continuation
 * lines). `$ref`s are written out, except a schema inside itself, which is
 * named (`seen`).
 */
const typeOf = (s: SchemaObject | undefined, pad: string, seen: ReadonlyArray<string>): string => {
  if (s === undefined) return "unknown"
  if (s.$ref !== undefined) {
    const name = refName(s.$ref)
    const target = components[name]
    if (target === undefined) return name
    if (seen.includes(name)) return `${name} (recursive)`
    return typeOf(target, pad, [...seen, name])
  }
  if (s.const !== undefined) return JSON.stringify(s.const)
  if (s.enum !== undefined) return s.enum.map((v) => JSON.stringify(v)).join(" | ")
  const union = s.anyOf ?? s.oneOf
  if (union !== undefined) {
    const parts = union.map((u) => typeOf(u, `${pad}  `, seen))
    return parts.some((p) => p.includes("\n")) || parts.join(" | ").length > 70
      ? parts.map((p) => `\n${pad}  | ${p}`).join("")
      : parts.join(" | ")
  }
  if (s.allOf !== undefined) return s.allOf.map((u) => typeOf(u, pad, seen)).join(" & ")
  if (typeof s.type === "object") return s.type.join(" | ")
  const type = s.type ?? (s.properties !== undefined ? "object" : undefined)
  switch (type) {
    case "array": {
      if (s.prefixItems !== undefined)
        return `[${s.prefixItems.map((i) => typeOf(i, pad, seen)).join(", ")}${s.items ? `, ...${typeOf(s.items, pad, seen)}[]` : ""}]`
      const item = s.items === false || s.items === undefined ? "unknown" : typeOf(s.items, pad, seen)
      return item.includes("|") && !item.startsWith("{") ? `Array<${item}>` : `${item}[]`
    }
    case "object": {
      const props = Object.entries(s.properties ?? {})
      const required = new Set(s.required ?? [])
      const fields = props.map(([key, value]) => {
        const name = isIdentifier(key) ? key : JSON.stringify(key)
        return `${name}${required.has(key) ? "" : "?"}: ${typeOf(value, `${pad}  `, seen)}${note(value)}`
      })
      if (typeof s.additionalProperties === "object")
        fields.push(`[key: string]: ${typeOf(s.additionalProperties, `${pad}  `, seen)}`)
      if (fields.length === 0) return s.additionalProperties === false ? "{}" : "object"
      // A small object of plain fields (a tagged variant) on one line.
      const inline = `{ ${fields.join("; ")} }`
      if (fields.length <= 3 && inline.length <= 60 && !/[\n/]/.test(inline)) return inline
      return `{\n${fields.map((f) => `${pad}  ${f}`).join("\n")}\n${pad}}`
    }
    case undefined:
      return "unknown"
    default:
      return type
  }
}

/** A schema block: its media type and its type. */
const schemaBlock = (content: Content | undefined, testid: string) => {
  const entries = Object.entries(content ?? {})
  if (entries.length === 0) return el("p", { class: "muted" }, "No body.")
  return el(
    "div",
    {},
    ...entries.map(([media, { schema }]) =>
      el(
        "div",
        {},
        el("div", { class: "muted" }, media),
        el(
          "pre",
          { class: "schema", "data-testid": testid },
          `${typeOf(schema, "", [])}${schema ? note(schema) : ""}`
        )
      )
    )
  )
}

const paramTable = (params: ReadonlyArray<Parameter>) =>
  el(
    "table",
    { "data-testid": "params" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Name", "In", "Type", "Required", "Description"].map((h) => el("th", { scope: "col" }, h))
      )
    ),
    el(
      "tbody",
      {},
      ...params.map((p) =>
        el(
          "tr",
          { "data-testid": "param", "data-name": p.name, "data-in": p.in },
          el("td", {}, el("code", {}, p.name)),
          el("td", {}, p.in),
          el("td", {}, el("code", {}, typeOf(p.schema, "", []))),
          el("td", {}, p.required ? "yes" : "no"),
          el("td", {}, p.description ?? p.schema?.description ?? "")
        )
      )
    )
  )

const secured = (doc: Document, op: Operation) => {
  const security = op.security ?? doc.security ?? []
  return security.some((req) => Object.keys(req).length > 0)
}

const endpoint = (doc: Document, path: string, method: string, op: Operation) => {
  const params = op.parameters ?? []
  const description = op.description ?? op.summary ?? ""
  const responses = Object.entries(op.responses ?? {})
  return el(
    "details",
    {
      class: "endpoint",
      "data-testid": "endpoint",
      "data-method": method.toUpperCase(),
      "data-path": path,
      "data-search": `${method} ${path} ${op.operationId ?? ""} ${description}`.toLowerCase()
    },
    el(
      "summary",
      {},
      el("span", { class: `method m-${method}` }, method.toUpperCase()),
      " ",
      el("code", { class: "path" }, path),
      description === ""
        ? ""
        : el("span", { class: "muted summary" }, " ", ...prose(description.split(/(?<=\.)\s/)[0] ?? ""))
    ),
    el(
      "div",
      { class: "endpoint-body" },
      description === "" ? "" : el("p", {}, ...prose(description)),
      el(
        "p",
        { class: "muted" },
        secured(doc, op) ? "Needs the bearer token (Authorization: Bearer …)." : "Needs no token.",
        op.operationId === undefined ? "" : ` Operation ${op.operationId}.`
      ),
      params.length === 0 ? "" : el("h4", {}, "Parameters"),
      params.length === 0 ? "" : paramTable(params),
      op.requestBody === undefined ? "" : el("h4", {}, "Request body"),
      op.requestBody === undefined ? "" : schemaBlock(op.requestBody.content, "request-schema"),
      el("h4", {}, "Responses"),
      ...responses.map(([status, r]) =>
        el(
          "div",
          { class: "response", "data-testid": "response", "data-status": status },
          el(
            "div",
            {},
            el("strong", { class: status.startsWith("2") ? "ok" : "bad" }, status),
            " ",
            r.description ?? ""
          ),
          r.content === undefined ? "" : schemaBlock(r.content, "response-schema")
        )
      )
    )
  )
}

const content = el("div", { id: "apiref", "data-testid": "apiref" }, el("p", { class: "muted" }, "Loading…"))
const filter = el("input", {
  id: "api-filter",
  type: "search",
  placeholder: "method, path or words",
  "aria-controls": "apiref",
  size: 30
})
const download = el(
  "a",
  { id: "api-download", download: "openapi.json", hidden: true },
  "Download openapi.json"
)
let loaded: Document | undefined
let blobUrl: string | undefined

const applyFilter = () => {
  const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean)
  for (const group of Array.from(content.querySelectorAll<HTMLElement>("section.api-group"))) {
    let shown = 0
    for (const e of Array.from(group.querySelectorAll<HTMLElement>("details.endpoint"))) {
      const text = e.dataset.search ?? ""
      const match = words.every((w) => text.includes(w))
      e.hidden = !match
      if (match) shown++
    }
    group.hidden = shown === 0
  }
}
filter.addEventListener("input", applyFilter)

const render = (doc: Document) => {
  components = doc.components?.schemas ?? {}
  const byTag = new Map<string, Array<HTMLElement>>()
  for (const t of doc.tags ?? []) byTag.set(t.name, [])
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of methods) {
      const op = item[method]
      if (op === undefined) continue
      const tag = op.tags?.[0] ?? "other"
      if (!byTag.has(tag)) byTag.set(tag, [])
      byTag.get(tag)!.push(endpoint(doc, path, method, op))
    }
  }
  const descriptions = new Map((doc.tags ?? []).map((t) => [t.name, t.description]))
  const groups = Array.from(byTag, ([tag, endpoints]) =>
    el(
      "section",
      {
        class: "api-group",
        "data-testid": "api-group",
        "data-tag": tag,
        "aria-labelledby": `api-tag-${tag}`
      },
      el("h3", { id: `api-tag-${tag}` }, tag, el("span", { class: "muted" }, ` (${endpoints.length})`)),
      descriptions.get(tag) ? el("p", {}, ...prose(descriptions.get(tag)!)) : "",
      ...endpoints
    )
  )
  const info = doc.info ?? {}
  content.replaceChildren(
    el(
      "p",
      { "data-testid": "api-info" },
      el("strong", {}, info.title ?? "API"),
      info.version ? ` ${info.version}` : "",
      info.description ? el("span", { class: "muted" }, " — ", ...prose(info.description)) : ""
    ),
    ...groups
  )
  if (blobUrl !== undefined) URL.revokeObjectURL(blobUrl)
  blobUrl = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }))
  download.href = blobUrl
  download.hidden = false
  applyFilter()
}

/** Whether the view has been shown: the document is fetched (once) only then. */
let wanted = false

const load = async () => {
  // Fetched once per page: the document changes only with the server's version.
  if (!wanted || loaded !== undefined) return
  try {
    loaded = await api<Document>("openapi.json")
    render(loaded)
  } catch (e) {
    // Without a valid token the page asks for one, and loads everything again once it has it.
    if (e instanceof Unauthorized) return
    content.replaceChildren(
      el(
        "p",
        { class: "err" },
        `The OpenAPI document could not be loaded: ${e instanceof Error ? e.message : String(e)}`
      )
    )
    throw e
  }
}

export const view: View = {
  section: el(
    "section",
    { id: "v-api", "aria-labelledby": "h-api" },
    el("h2", { id: "h-api" }, "API reference"),
    el(
      "form",
      { role: "search", onsubmit: (e: Event) => e.preventDefault() },
      el("label", {}, "Filter", filter),
      download
    ),
    content
  ),
  load,
  show: () => {
    wanted = true
    // Its failure is shown in the view itself.
    return load().catch(() => undefined)
  }
}
