import type * as WorkerStatus from "../../WorkerStatus.js"
import type { TickOutcome } from "./core.js"

/**
 * Bounded per-worker history: the recent ticks of every periodic worker and
 * the recent restarts of every worker of one started tree.
 *
 * Ticks are kept in typed arrays, not objects: a ring of `ticksPerWorker`
 * records per periodic worker, in slabs of `slabWorkers` workers (start and
 * duration as doubles and floats, the outcome as a byte, the error as the
 * sequence number of its text). Recording a tick allocates nothing. Error
 * texts live in one table of `errorTexts` entries shared by the tree (a tick
 * that fails like the worker's previous tick reuses its entry); a record
 * whose text has been pushed out says so. Restarts are rare: each worker
 * keeps up to `restartsPerWorker` restart records, as objects, made on its
 * first restart.
 */

/** Ticks kept per periodic worker (the newest). */
export const ticksPerWorker = 16

/** Error texts kept per started tree, across all its workers (the newest). */
export const errorTexts = 256

/** The longest error text kept, in characters; a longer one is cut there. */
export const maxErrorLength = 4000

/** Restarts kept per worker (the newest). */
export const restartsPerWorker = 10

/** Workers per slab of tick rings. */
const slabWorkers = 1024

/** Outcome codes (the low 7 bits of a record's code byte); 0 is an empty record. */
const Code = {
  success: 1,
  failure: 2,
  timeout: 3,
  interrupted: 4,
  /** Skipped by a reason other than the two below: its text is in the error table. */
  skipped: 5,
  gated: 6,
  locked: 7
} as const

/** The code byte's flag for a forced tick. */
const forcedFlag = 0x80

/** The reasons of the two common skips, as `Worker.TickOutcome` spells them. */
export const gatedReason = "shouldRun returned false"
export const lockedReason = "another replica holds the singleton lock"

/** What is said in place of an error text that has been pushed out of the table. */
export const droppedText = `(the error text is no longer kept: a tree keeps the latest ${errorTexts})`

interface Slab {
  /** Start of each record, as a cell time (ms since the registry's base). */
  readonly start: Float64Array
  /** Duration of each record in ms. */
  readonly duration: Float32Array
  /** Outcome code and forced flag; 0: no record. */
  readonly code: Uint8Array
  /** Sequence number of the record's text in the error table; 0: none. */
  readonly text: Int32Array
  /** Ticks recorded per worker since its ring was handed out (the ring's head is `count % ticksPerWorker`). */
  readonly count: Float64Array
}

const makeSlab = (): Slab => ({
  start: new Float64Array(slabWorkers * ticksPerWorker),
  duration: new Float32Array(slabWorkers * ticksPerWorker),
  code: new Uint8Array(slabWorkers * ticksPerWorker),
  text: new Int32Array(slabWorkers * ticksPerWorker),
  count: new Float64Array(slabWorkers)
})

/** A fresh copy of a string, so that a cut text does not keep its (longer) original alive. */
const cut = (text: string): string =>
  text.length <= maxErrorLength ? text : `${Buffer.from(text.slice(0, maxErrorLength)).toString()}…`

/** One restart of a worker, or its giving up, as kept. Times are cell times. */
export interface Restart {
  readonly at: number
  readonly reason: WorkerStatus.RestartReason
  readonly error: string | null
  readonly attempt: number
  backoff: number | null
  restartAt: number | null
}

/** The tick rings and error texts of one started tree. */
export class TickLog {
  private readonly slabs: Array<Slab> = []
  private readonly free: Array<number> = []
  private fresh = 0
  private readonly texts: Array<string | undefined> = new Array(errorTexts)
  private readonly seqs = new Int32Array(errorTexts)
  private seq = 0

  /** Hand out a tick ring (an empty one). */
  allocate(): number {
    const slot = this.free.pop() ?? this.fresh++
    const s = slot / slabWorkers
    const slabIndex = Math.floor(s)
    while (this.slabs.length <= slabIndex) this.slabs.push(makeSlab())
    const slab = this.slabs[slabIndex]!
    const i = slot - slabIndex * slabWorkers
    slab.count[i] = 0
    slab.code.fill(0, i * ticksPerWorker, (i + 1) * ticksPerWorker)
    return slot
  }

  /** Give a ring back. */
  release(slot: number): void {
    if (slot >= 0) this.free.push(slot)
  }

  /** Keep `text` (or reuse `previous`, the worker's last text, when it is the same); returns its sequence number. */
  private keep(text: string, previous: number): number {
    if (previous !== 0) {
      const at = previous % errorTexts
      if (this.seqs[at] === previous && this.texts[at] === text) return previous
    }
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1
    const at = this.seq % errorTexts
    this.seqs[at] = this.seq
    this.texts[at] = cut(text)
    return this.seq
  }

  private textOf(seq: number): string {
    if (seq === 0) return ""
    const at = seq % errorTexts
    return this.seqs[at] === seq ? this.texts[at]! : droppedText
  }

  /** Record a finished tick in ring `slot`; `start` and `end` are cell times. */
  record(slot: number, outcome: TickOutcome, start: number, end: number, forced: boolean): void {
    if (slot < 0) return
    const slabIndex = Math.floor(slot / slabWorkers)
    const slab = this.slabs[slabIndex]!
    const i = slot - slabIndex * slabWorkers
    const count = slab.count[i]!
    const base = i * ticksPerWorker
    const at = base + (count % ticksPerWorker)
    let code: number
    let text = 0
    switch (outcome._tag) {
      case "success":
        code = Code.success
        break
      case "timeout":
        code = Code.timeout
        break
      case "interrupted":
        code = Code.interrupted
        break
      case "failure": {
        code = Code.failure
        const last = count === 0 ? 0 : slab.text[base + ((count - 1) % ticksPerWorker)]!
        text = this.keep(outcome.error, last)
        break
      }
      case "skipped":
        if (outcome.reason === gatedReason) code = Code.gated
        else if (outcome.reason === lockedReason) code = Code.locked
        else {
          code = Code.skipped
          text = this.keep(outcome.reason, 0)
        }
    }
    slab.start[at] = start
    slab.duration[at] = end - start
    slab.code[at] = forced ? code | forcedFlag : code
    slab.text[at] = text
    slab.count[i] = count + 1
  }

  /** The ticks of ring `slot`, newest first; times are epoch ms (cell time + `base`). */
  read(slot: number, base: number): Array<WorkerStatus.TickRecord> {
    if (slot < 0) return []
    const slabIndex = Math.floor(slot / slabWorkers)
    const slab = this.slabs[slabIndex]!
    const i = slot - slabIndex * slabWorkers
    const count = slab.count[i]!
    const out: Array<WorkerStatus.TickRecord> = []
    const n = Math.min(count, ticksPerWorker)
    for (let k = 1; k <= n; k++) {
      const at = i * ticksPerWorker + ((count - k) % ticksPerWorker)
      const byte = slab.code[at]!
      const code = byte & ~forcedFlag
      let outcome: TickOutcome
      switch (code) {
        case Code.success:
          outcome = { _tag: "success" }
          break
        case Code.failure:
          outcome = { _tag: "failure", error: this.textOf(slab.text[at]!) }
          break
        case Code.timeout:
          outcome = { _tag: "timeout" }
          break
        case Code.interrupted:
          outcome = { _tag: "interrupted" }
          break
        case Code.gated:
          outcome = { _tag: "skipped", reason: gatedReason }
          break
        case Code.locked:
          outcome = { _tag: "skipped", reason: lockedReason }
          break
        default:
          outcome = { _tag: "skipped", reason: this.textOf(slab.text[at]!) }
      }
      out.push({
        startedAt: slab.start[at]! + base,
        durationMs: slab.duration[at]!,
        forced: (byte & forcedFlag) !== 0,
        outcome
      })
    }
    return out
  }

  /** Ticks recorded in ring `slot` since it was handed out. */
  total(slot: number): number {
    if (slot < 0) return 0
    const slabIndex = Math.floor(slot / slabWorkers)
    return this.slabs[slabIndex]!.count[slot - slabIndex * slabWorkers]!
  }

  /** Bytes held by the tick rings (the error texts aside). */
  get bytes(): number {
    return this.slabs.length * slabWorkers * (ticksPerWorker * (8 + 4 + 1 + 4) + 8) + errorTexts * 4
  }
}

/** Keep `restart` in `list` (made when absent), dropping the oldest beyond the bound; returns the list. */
export const keepRestart = (list: Array<Restart> | undefined, restart: Restart): Array<Restart> => {
  const kept = list ?? []
  if (kept.length >= restartsPerWorker) kept.shift()
  kept.push({ ...restart, error: restart.error === null ? null : cut(restart.error) })
  return kept
}
