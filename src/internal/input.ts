/**
 * Checks and messages for untrusted input (HTTP bodies, command-line JSON,
 * payloads), shared by `JobQueue`, the admin API and the CLI.
 */
import type * as ParseResult from "effect/ParseResult"
import * as PR from "effect/ParseResult"

/** The deepest JSON nesting accepted anywhere (a payload, a request body). */
export const maxDepth = 64

/**
 * Whether a value (parsed JSON, or anything else) nests objects or arrays
 * more than `max` levels deep. Iterative, so any depth is measured without
 * recursion; stops at the first branch past the limit.
 */
export const tooDeep = (value: unknown, max: number = maxDepth): boolean => {
  const stack: Array<readonly [unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== "object" || v === null) continue
    if (depth >= max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/**
 * Whether JSON text nests arrays and objects more than `max` levels deep,
 * found by one scan of the text (brackets inside strings do not count), so
 * that nothing recursive ever sees it. Says nothing about validity.
 */
export const jsonTooDeep = (text: string, max: number = maxDepth): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) {
      if (++depth > max) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}

const namePattern = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/

/**
 * A valid queue or kind name: 1–128 characters of letters, digits, `_`, `.`,
 * `:` and `-`, not starting with punctuation other than `_`.
 */
export const isValidName = (name: string): boolean => namePattern.test(name)

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const loneSurrogates = new RegExp(loneSurrogate.source, "g")

/** `String.prototype.isWellFormed` (ES2024, in every Node this package supports), else the pattern. */
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
    ? (s) => (s as string & { isWellFormed(): boolean }).isWellFormed()
    : (s) => !loneSurrogate.test(s)

/** Text a database can store as is: no NUL character, no lone surrogate. */
export const isStorableText = (s: string): boolean => !s.includes("\u0000") && wellFormed(s)

/** `s` with every NUL character and lone surrogate replaced by U+FFFD, so a database can store it. */
export const replaceUnstorable = (s: string): string =>
  s.replaceAll("\u0000", "\uFFFD").replace(loneSurrogates, "\uFFFD")

const isStackOverflow = (e: unknown) => e instanceof RangeError

/**
 * A parse error as text (`TreeFormatter`), or a short message when the
 * formatter cannot render it (a value nested so deeply that printing it
 * would overflow the stack).
 */
export const formatParseError = (error: ParseResult.ParseError): string => {
  try {
    return PR.TreeFormatter.formatErrorSync(error)
  } catch (e) {
    if (isStackOverflow(e))
      return `the value does not match, and is too deeply nested to show (over ${maxDepth} levels)`
    throw e
  }
}

/**
 * Run a synchronous step (a schema's encoder or decoder) that may recurse as
 * deep as its input: a stack overflow becomes `onOverflow()`.
 */
export const guardDepth = <A, B>(f: () => A, onOverflow: () => B): A | B => {
  try {
    return f()
  } catch (e) {
    if (isStackOverflow(e)) return onOverflow()
    throw e
  }
}
