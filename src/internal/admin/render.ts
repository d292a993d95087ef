/**
 * Stored jobs as the admin API and the CLI show them. A row that does not
 * look as the store contract says (written by hand, by an older version, or
 * by a faulty engine) is shown as far as it can be, with a list of what
 * could not be read or does not add up, instead of failing the whole page.
 */
import * as FlowControl from "../../FlowControl.js"
import * as JobStore from "../../JobStore.js"
import { tooDeep } from "../input.js"
import type * as S from "./schema.js"

/** A job as shown, with what could not be read about it (empty when all is well). */
export interface Shown {
  readonly detail: typeof S.JobDetail.Type
  readonly problems: ReadonlyArray<string>
}

/** Deepest payload rendered; anything deeper is replaced with `null` and a problem. */
const maxPayloadDepth = 256

const firstLine = (s: string) => s.split("\n", 1)[0] ?? ""

const describe = (v: unknown): string => {
  if (v === null) return "null"
  if (Array.isArray(v)) return "a list"
  if (typeof v === "string") return `the text ${JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v)}`
  if (typeof v === "object") return "an object"
  return `${typeof v} ${String(v)}`
}

const isMs = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)

/** Is this a time `new Date(ms).toISOString()` can print? */
export const isPrintableTime = (v: unknown): v is number => isMs(v) && Math.abs(v) <= 8.64e15

const states: ReadonlySet<string> = new Set(JobStore.JobState.literals)
const reasons: ReadonlySet<string> = new Set(FlowControl.Waiting.literals)

/**
 * Read one stored job into the API's shape. Fails (with the reason) only when
 * it has no usable id or state: without those there is nothing to act on.
 */
export const show = (job: JobStore.JobRecord): Shown | { readonly unreadable: string } => {
  const raw = job as unknown as Record<string, unknown>
  const problems: Array<string> = []
  const id = typeof raw.id === "string" ? raw.id : typeof raw.id === "number" ? String(raw.id) : undefined
  if (id === undefined) return { unreadable: `its id is ${describe(raw.id)}` }
  if (typeof raw.state !== "string" || !states.has(raw.state))
    return {
      unreadable: `its state is ${describe(raw.state)}, not one of ${JobStore.JobState.literals.join(", ")}`
    }
  const state = raw.state as JobStore.JobState

  const text = (field: string, fallback: string): string => {
    const v = raw[field]
    if (typeof v === "string") return v
    problems.push(`${field} is ${describe(v)}, not text`)
    return fallback
  }
  const textOrNull = (field: string): string | null => {
    const v = raw[field]
    if (v === null || v === undefined || typeof v === "string") return v ?? null
    problems.push(`${field} is ${describe(v)}, not text`)
    return null
  }
  const int = (field: string): number => {
    const v = raw[field]
    if (isMs(v)) return v
    if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v)
    problems.push(`${field} is ${describe(v)}, not a number`)
    return 0
  }
  const time = (field: string): number => {
    const v = raw[field]
    if (isPrintableTime(v)) return v
    problems.push(`${field} is ${describe(v)}, not a time`)
    return 0
  }
  const timeOrNull = (field: string): number | null => {
    const v = raw[field]
    if (v === null || v === undefined) return null
    if (isPrintableTime(v)) return v
    problems.push(`${field} is ${describe(v)}, not a time`)
    return null
  }

  const errors: Array<typeof S.AttemptError.Type> = []
  const rawErrors = raw.errors
  if (Array.isArray(rawErrors)) {
    rawErrors.forEach((e, i) => {
      const o =
        typeof e === "object" && e !== null && !Array.isArray(e) ? (e as Record<string, unknown>) : undefined
      const ok =
        o !== undefined &&
        isMs(o.attempt) &&
        isPrintableTime(o.at) &&
        typeof o.kind === "string" &&
        typeof o.message === "string"
      if (ok) {
        errors.push({
          attempt: o.attempt as number,
          at: o.at as number,
          kind: o.kind as string,
          message: o.message as string,
          // Absent on errors stored before attempts recorded them.
          startedAt: isPrintableTime(o.startedAt) ? o.startedAt : null,
          node: typeof o.node === "string" ? o.node : null
        })
        return
      }
      problems.push(`error ${i + 1} is not a well-formed attempt error (${describe(e)})`)
      errors.push({
        attempt: isMs(o?.attempt) ? o.attempt : 0,
        at: isPrintableTime(o?.at) ? o.at : 0,
        kind: typeof o?.kind === "string" ? o.kind : "unreadable",
        message: typeof o?.message === "string" ? o.message : safeJson(e),
        startedAt: null,
        node: null
      })
    })
  } else {
    problems.push(`errors is ${describe(rawErrors)}, not a list`)
    if (typeof rawErrors === "string")
      errors.push({ attempt: 0, at: 0, kind: "unreadable", message: rawErrors, startedAt: null, node: null })
  }

  let payload: unknown = raw.payload
  if (tooDeep(payload, maxPayloadDepth)) {
    problems.push(`the payload is nested more than ${maxPayloadDepth} levels deep and is not shown`)
    payload = null
  }

  // Filled by JobQueue.get/list (and the CLI) from the store's flow state; absent on a bare store read.
  let waiting: FlowControl.Waiting | null = null
  if (typeof raw.waiting === "string" && reasons.has(raw.waiting))
    waiting = raw.waiting as FlowControl.Waiting
  else if (raw.waiting !== null && raw.waiting !== undefined)
    problems.push(
      `waiting is ${describe(raw.waiting)}, not one of ${FlowControl.Waiting.literals.join(", ")}`
    )

  const cancel = raw.cancelRequested
  if (typeof cancel !== "boolean") problems.push(`cancelRequested is ${describe(cancel)}, not true or false`)

  const detail: typeof S.JobDetail.Type = {
    id,
    kind: text("kind", "(unreadable)"),
    queue: text("queue", "(unreadable)"),
    state,
    priority: int("priority"),
    attempt: int("attempt"),
    maxAttempts: int("maxAttempts"),
    runAt: time("runAt"),
    createdAt: time("createdAt"),
    attemptedAt: timeOrNull("attemptedAt"),
    finalizedAt: timeOrNull("finalizedAt"),
    leaseOwner: textOrNull("leaseOwner"),
    leaseExpiresAt: timeOrNull("leaseExpiresAt"),
    dedupeKey: textOrNull("dedupeKey"),
    partition: textOrNull("partition"),
    waiting,
    cancelRequested: cancel === true,
    payload,
    payloadRedacted: false,
    fence: int("fence"),
    errors,
    traceId: textOrNull("traceId"),
    spanId: textOrNull("spanId")
  }

  // Values that read fine but do not add up.
  const final = JobStore.finalStates.includes(state)
  if (final && raw.finalizedAt == null) problems.push(`it is ${state} but has no finish time`)
  if (!final && detail.finalizedAt !== null) problems.push(`it is ${state} but has a finish time`)
  // A completed job names the runner that ran its last attempt.
  if (state !== "running" && state !== "completed" && detail.leaseOwner !== null)
    problems.push(`it is ${state} but names a lease owner (${detail.leaseOwner})`)
  if (state === "running" && raw.leaseOwner == null) problems.push("it is running but has no lease owner")
  if (detail.fence < 0) problems.push(`its fence is negative (${detail.fence})`)
  if (detail.attempt < 0) problems.push(`its attempt is negative (${detail.attempt})`)
  if (detail.attempt > detail.maxAttempts && state !== "running" && !final)
    problems.push(`its attempt (${detail.attempt}) is past its maximum (${detail.maxAttempts})`)

  return { detail: problems.length === 0 ? detail : { ...detail, problems }, problems }
}

/** A job in a list. */
export const summary = (shown: Shown): typeof S.JobSummary.Type => {
  const { payload: _p, fence: _f, errors, traceId: _t, spanId: _s, ...rest } = shown.detail
  const last = errors[errors.length - 1]
  return {
    ...rest,
    errorCount: errors.length,
    lastError: last === undefined ? null : `${last.kind}: ${firstLine(last.message).slice(0, 300)}`
  }
}

/** JSON text of any value, never throwing (cycles, BigInt, depth). */
export const safeJson = (v: unknown): string => {
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    try {
      return String(v)
    } catch {
      return "(unprintable)"
    }
  }
}
