import type * as WorkerStatus from "../../WorkerStatus.js"
import type { TickOutcome } from "./core.js"

/**
 * Bounded per-worker history: the recent ticks of every periodic worker and
 * the recent restarts of every worker of one started tree.
 *
 * Ticks are kept in typed arrays, not objects: a ring of `ticksPerWorker`
 * 16-byte records per periodic worker (start, duration, outcome, the number
 * of its error text), in slabs of `slabWorkers` workers. Recording a tick
 * allocates nothing. Error
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

/**
 * One slab: `slabWorkers` blocks of `blockBytes`, one per worker, each a
 * 16-byte header (the count of ticks recorded, a double) and then its ring
 * of 16-byte records (start as a double; duration as a float; outcome code in
 * the low byte and text number above it, in a 32-bit word), so that recording
 * a tick touches one or two cache lines of one block. Three views share the
 * buffer.
 */
interface Slab {
  readonly f64: Float64Array
  readonly f32: Float32Array
  readonly u32: Uint32Array
}

/** Bytes per record and per worker block (a header the size of a record, then the ring). */
const recordBytes = 16
const blockBytes = recordBytes * (ticksPerWorker + 1)

const makeSlab = (): Slab => {
  const buffer = new ArrayBuffer(slabWorkers * blockBytes)
  return { f64: new Float64Array(buffer), f32: new Float32Array(buffer), u32: new Uint32Array(buffer) }
}

/** Text numbers are 24 bits (the word's upper bits); 0 is "none". */
const maxSeq = 0xffffff

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
  /** Per table entry: its text number, and the ring of the worker it was kept for. */
  private readonly seqs = new Int32Array(errorTexts)
  private readonly owners = new Int32Array(errorTexts).fill(-1)
  private seq = 0

  /** Hand out a tick ring (an empty one). */
  allocate(): number {
    const slot = this.free.pop() ?? this.fresh++
    const slabIndex = Math.floor(slot / slabWorkers)
    while (this.slabs.length <= slabIndex) this.slabs.push(makeSlab())
    const block = (slot - slabIndex * slabWorkers) * blockBytes
    this.slabs[slabIndex]!.u32.fill(0, block / 4, (block + blockBytes) / 4)
    return slot
  }

  /** Give a ring back. */
  release(slot: number): void {
    if (slot >= 0) this.free.push(slot)
  }

  /** Keep `text` for ring `slot` (or reuse `previous`, its last text, when it is the same); returns its number. */
  private keep(slot: number, text: string, previous: number): number {
    if (previous !== 0 && this.textOf(slot, previous) === text) return previous
    this.seq = this.seq >= maxSeq ? 1 : this.seq + 1
    const at = this.seq % errorTexts
    this.seqs[at] = this.seq
    this.owners[at] = slot
    this.texts[at] = cut(text)
    return this.seq
  }

  /** The text number `seq` of ring `slot`, or what to say when it is no longer kept. */
  private textOf(slot: number, seq: number): string {
    if (seq === 0) return ""
    const at = seq % errorTexts
    return this.seqs[at] === seq && this.owners[at] === slot ? this.texts[at]! : droppedText
  }

  /** Record a finished tick in ring `slot`; `start` and `end` are cell times. */
  record(slot: number, outcome: TickOutcome, start: number, end: number, forced: boolean): void {
    if (slot < 0) return
    const slabIndex = Math.floor(slot / slabWorkers)
    const { f64, f32, u32 } = this.slabs[slabIndex]!
    const block = (slot - slabIndex * slabWorkers) * blockBytes
    const count = f64[block / 8]!
    const at = block + recordBytes * (1 + (count % ticksPerWorker))
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
        const last =
          count === 0 ? 0 : u32[(block + recordBytes * (1 + ((count - 1) % ticksPerWorker))) / 4 + 3]! >>> 8
        text = this.keep(slot, outcome.error, last)
        break
      }
      case "skipped":
        if (outcome.reason === gatedReason) code = Code.gated
        else if (outcome.reason === lockedReason) code = Code.locked
        else {
          code = Code.skipped
          text = this.keep(slot, outcome.reason, 0)
        }
    }
    f64[at / 8] = start
    f32[at / 4 + 2] = end - start
    u32[at / 4 + 3] = ((text << 8) | (forced ? code | forcedFlag : code)) >>> 0
    f64[block / 8] = count + 1
  }

  /** The ticks of ring `slot`, newest first; times are epoch ms (cell time + `base`). */
  read(slot: number, base: number): Array<WorkerStatus.TickRecord> {
    if (slot < 0) return []
    const slabIndex = Math.floor(slot / slabWorkers)
    const { f64, f32, u32 } = this.slabs[slabIndex]!
    const block = (slot - slabIndex * slabWorkers) * blockBytes
    const count = f64[block / 8]!
    const out: Array<WorkerStatus.TickRecord> = []
    const n = Math.min(count, ticksPerWorker)
    for (let k = 1; k <= n; k++) {
      const at = block + recordBytes * (1 + ((count - k) % ticksPerWorker))
      const word = u32[at / 4 + 3]!
      const code = word & 0x7f
      const text = word >>> 8
      let outcome: TickOutcome
      switch (code) {
        case Code.success:
          outcome = { _tag: "success" }
          break
        case Code.failure:
          outcome = { _tag: "failure", error: this.textOf(slot, text) }
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
          outcome = { _tag: "skipped", reason: this.textOf(slot, text) }
      }
      out.push({
        startedAt: f64[at / 8]! + base,
        durationMs: f32[at / 4 + 2]!,
        forced: (word & forcedFlag) !== 0,
        outcome
      })
    }
    return out
  }

  /** Ticks recorded in ring `slot` since it was handed out. */
  total(slot: number): number {
    if (slot < 0) return 0
    const slabIndex = Math.floor(slot / slabWorkers)
    return this.slabs[slabIndex]!.f64[((slot - slabIndex * slabWorkers) * blockBytes) / 8]!
  }

  /** Bytes held by the tick rings (the error texts aside). */
  get bytes(): number {
    return this.slabs.length * slabWorkers * blockBytes
  }
}

/** Keep `restart` in `list` (made when absent), dropping the oldest beyond the bound; returns the list. */
export const keepRestart = (list: Array<Restart> | undefined, restart: Restart): Array<Restart> => {
  const kept = list ?? []
  if (kept.length >= restartsPerWorker) kept.shift()
  kept.push({ ...restart, error: restart.error === null ? null : cut(restart.error) })
  return kept
}
