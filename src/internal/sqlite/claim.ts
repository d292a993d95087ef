/**
 * The claim: today's one-statement claim when flow control has nothing to
 * say about the request, and the flow-controlled claim, in one write
 * transaction, when it has.
 *
 * The plain statement carries its own guard: it claims nothing when a rule
 * holds for one of the requested queues or kinds, or a due job of one of
 * the queues has a partition key. The guard is read in the statement that
 * claims, so a rule another process declares is never missed between a
 * check and the claim. When the statement claims nothing, one cheap read
 * tells an empty queue from one flow control applies to; only the latter
 * takes the flow-controlled path, and the instance's next claims of the
 * same queues and kinds go to it directly while flow control applies.
 *
 * The flow-controlled claim holds SQLite's write lock from its first
 * statement, so what it counts (running jobs, rate starts) cannot change
 * before it commits: processes sharing the file never exceed a limit. It
 * builds a `Budget` from the running jobs and rate starts of the rules'
 * scopes, walks the partition keys with due work in ring order after the
 * key this instance served last (jobs without a key are one more key), and
 * takes one job per key per round until the batch is full or no key has an
 * admissible job left.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as FlowControl from "../../FlowControl.js"
import * as JobStore from "../../JobStore.js"
import * as Core from "../store/core.js"
import { Budget, keepStartsMs, paceOf, Rules, ratePartition } from "../store/flow.js"
import * as FlowStatements from "../store/flowStatements.js"
import { claimableFence, fenceExhausted, storableLease } from "../store/leases.js"
import type { Exec } from "./db.js"
import { errorList } from "./leases.js"
import * as Plans from "./plans.js"
import { decode, jobColumns } from "./rows.js"

const marks = (n: number) => Array.from({ length: n }, () => "?").join(", ")

/** A row the claim can take: its fence can still be incremented. */
const claimable = `fence < ${JobStore.maxCounter}`

/** A due job (one parameter: now). */
const due = `state IN ${Core.waitingList} AND (run_at <= ? OR state = 'available')`

/**
 * A bound row limit. SQLite's planner reads the value of a plain `LIMIT ?`,
 * so every new binding expires the statement and it is compiled again at
 * each execution (measured: one prepare per claim, about a tenth of the
 * claim's instructions); `? + 0` is an expression the planner leaves alone.
 */
const boundLimit = "? + 0"

/** The kinds of a claim, bound as one JSON list. */
const kindsIn = "kind IN (SELECT value FROM json_each(?))"

/**
 * The columns a claim changes. A picked row whose fence is at
 * `JobStore.maxCounter` is discarded instead of claimed (as on PostgreSQL,
 * whose integer column ends there), and an attempt at that maximum stays
 * there. Parameters: now, owner, lease end, now, now, error message.
 */
const claimSet = `SET state = CASE WHEN ${claimable} THEN 'running' ELSE 'discarded' END,
    attempt = CASE WHEN ${claimable} AND attempt < ${JobStore.maxCounter} THEN attempt + 1 ELSE attempt END,
    fence = CASE WHEN ${claimable} THEN fence + 1 ELSE fence END,
    attempted_at = CASE WHEN ${claimable} THEN ? ELSE attempted_at END,
    lease_owner = CASE WHEN ${claimable} THEN ? END,
    lease_expires_at = CASE WHEN ${claimable} THEN ? END,
    finalized_at = CASE WHEN ${claimable} THEN finalized_at ELSE ? END,
    errors = CASE WHEN ${claimable} THEN errors ELSE json_insert(${errorList}, '$[#]',
      json_object('attempt', attempt, 'at', ?, 'kind', '${fenceExhausted.kind}', 'message', ?)) END`

/**
 * Whether flow control has a say in a claim of these queues and kinds: a
 * rule holds for one of them, or a due job of one of the queues has a
 * partition key. Parameters: the queues, the kinds, the queues, now.
 */
const flowApplies = (queues: number, kinds: number) =>
  `(EXISTS (SELECT 1 FROM nightshift_flow_rules
      WHERE (scope = 'queue' AND name IN (${marks(queues)})) OR (scope = 'kind' AND name IN (${marks(kinds)})))
    OR EXISTS (SELECT 1 FROM nightshift_jobs WHERE queue IN (${marks(queues)}) AND partition_key IS NOT NULL
      AND ${due}))`

/**
 * The plain claim statement for a request shape (queue count, kind count,
 * guarded or not), built once: the hot path binds parameters to a cached
 * text instead of compiling a template. One arm per queue walks that
 * queue's jobs without a key in `nightshift_jobs_partition` (queue, then
 * key, then claim order) and stops at the limit; several arms are merged
 * and cut to the limit again. The guarded form claims nothing when
 * `flowApplies`, so the arms never pass over a due job with a key.
 */
const plainStatements = () => {
  const cache = new Map<string, string>()
  const arm = (kinds: number, columns: string) =>
    `SELECT ${columns} FROM nightshift_jobs
      WHERE queue = ? AND partition_key IS NULL AND state IN ${Core.waitingList} AND (run_at <= ? OR state = 'available')
        AND kind IN (${marks(kinds)})
        AND NOT EXISTS (SELECT 1 FROM nightshift_paused_queues WHERE queue = ?)
      ORDER BY priority, run_at, id LIMIT ${boundLimit}`
  const build = (queues: number, kinds: number, guarded: boolean) => {
    const candidates =
      queues === 1
        ? arm(kinds, "id")
        : `SELECT id FROM (${Array.from(
            { length: queues },
            () => `SELECT * FROM (${arm(kinds, "id, priority, run_at")})`
          ).join(" UNION ALL ")}) ORDER BY priority, run_at, id LIMIT ${boundLimit}`
    // Parameters: claimSet's, then the arms', then the guard's.
    return `UPDATE nightshift_jobs ${claimSet}
      WHERE id IN (${candidates})${guarded ? ` AND NOT ${flowApplies(queues, kinds)}` : ""}
      RETURNING ${jobColumns}`
  }
  return (queues: number, kinds: number, guarded: boolean): string => {
    const key = `${queues}:${kinds}:${guarded ? "g" : ""}`
    let text = cache.get(key)
    if (text === undefined) cache.set(key, (text = build(queues, kinds, guarded)))
    return text
  }
}

/** The parameters of a plain claim after `claimSet`'s. */
const plainParams = (
  params: Array<unknown>,
  queues: ReadonlyArray<string>,
  kinds: ReadonlyArray<string>,
  now: number,
  limit: number
) => {
  for (const queue of queues) params.push(queue, now, ...kinds, queue, limit)
  if (queues.length > 1) params.push(limit)
  return params
}

const checkTexts = new Map<string, string>()
const checkText = (queues: number, kinds: number) => {
  const key = `${queues}:${kinds}`
  let text = checkTexts.get(key)
  if (text === undefined) checkTexts.set(key, (text = `SELECT ${flowApplies(queues, kinds)}`))
  return text
}

// ---------------------------------------------------------------------------
// The flow-controlled claim's statements (fixed texts: lists are bound as JSON).

/** Takes the write lock at once: a deferred transaction would only take it at its first write. */
const lockText = "UPDATE nightshift_counters SET value = value WHERE 0"

/** Take the write lock at once, as the first statement of a transaction (see `lockText`). */
export const writeLock = (exec: Exec) => exec.raw(lockText, [])

const pausedText =
  "SELECT queue FROM nightshift_paused_queues WHERE queue IN (SELECT value FROM json_each(?))"

/** A queue's best due job of the kinds without a key (parameters: queue, now, kinds). */
const bestUnkeyedText = `SELECT priority, run_at, id FROM nightshift_jobs
  WHERE queue = ? AND partition_key IS NULL AND ${due} AND ${kindsIn} ORDER BY priority, run_at, id LIMIT 1`

/** Does a due job of the queue have a partition key (parameters: queue, now)? */
const keyedText = `SELECT 1 FROM nightshift_jobs WHERE queue = ? AND partition_key IS NOT NULL AND ${due} LIMIT 1`

/** Running jobs whose lease holds, of some queues or kinds (parameters: now, queues, kinds). */
const runningText = `SELECT queue, kind, partition_key, count(*) FROM nightshift_jobs
  WHERE state = 'running' AND lease_expires_at > ?
    AND (queue IN (SELECT value FROM json_each(?)) OR kind IN (SELECT value FROM json_each(?)))
  GROUP BY queue, kind, partition_key`

/** Starts in the window and in the pace span of each rate limit (parameter: `[[scope, name, window start, span start], …]`). */
const rateText = `SELECT s.scope, s.name, s.partition_key, count(*), sum(s.started_at > r.value ->> 3)
  FROM json_each(?) AS r JOIN nightshift_flow_starts AS s
    ON s.scope = r.value ->> 0 AND s.name = r.value ->> 1 AND s.started_at > r.value ->> 2
  GROUP BY s.scope, s.name, s.partition_key`

/** The next key after `walk.key` with due jobs of the kinds (parameters: queue, now, kinds). */
const stepKey = `SELECT partition_key FROM nightshift_jobs
    WHERE queue = ? AND partition_key > walk.key AND ${due} AND ${kindsIn} ORDER BY partition_key LIMIT 1`

/**
 * Up to n keys with due jobs of the kinds, in key order, in one statement:
 * each step is one seek in `nightshift_jobs_partition` past the key before.
 * Fewer than n rows: the last key has been reached.
 */
const keysText = (first: string) => `WITH RECURSIVE walk(key, n) AS (
    SELECT (${first}), 1
    UNION ALL
    SELECT (${stepKey}), n + 1 FROM walk WHERE walk.key IS NOT NULL AND n < ${boundLimit})
  SELECT key FROM walk WHERE key IS NOT NULL`

/** Keys from the first (parameters: queue, now, kinds, then queue, now, kinds, n). */
const firstKeysText = keysText(`SELECT partition_key FROM nightshift_jobs
    WHERE queue = ? AND partition_key IS NOT NULL AND ${due} AND ${kindsIn} ORDER BY partition_key LIMIT 1`)

/** Keys after one (parameters: queue, key, now, kinds, then queue, now, kinds, n). */
const nextKeysText = keysText(`SELECT partition_key FROM nightshift_jobs
    WHERE queue = ? AND partition_key > ? AND ${due} AND ${kindsIn} ORDER BY partition_key LIMIT 1`)

/** Are there due jobs of the kinds without a key (parameters: queue, now, kinds)? */
const unkeyedText = `SELECT 1 FROM nightshift_jobs
  WHERE queue = ? AND partition_key IS NULL AND ${due} AND ${kindsIn} LIMIT 1`

/**
 * The first due jobs of several keys in claim order, in one statement: the
 * position of the key in the list, then the job (parameters: the keys as a
 * JSON list, queue, now, kinds, jobs per key).
 */
const pagesText = `SELECT k.key, j.id, j.kind, j.priority, j.run_at, j.fence
  FROM json_each(?) AS k, nightshift_jobs AS j
  WHERE j.id IN (SELECT id FROM nightshift_jobs
    WHERE queue = ? AND partition_key IS k.value AND ${due} AND ${kindsIn}
    ORDER BY priority, run_at, id LIMIT ${boundLimit})
  ORDER BY k.key, j.priority, j.run_at, j.id`

/** A key's next due jobs after one (parameters: queue, key, now, kinds, priority, run-at, id, limit). */
const nextPageText = `SELECT id, kind, priority, run_at, fence FROM nightshift_jobs
  WHERE queue = ? AND partition_key IS ? AND ${due} AND ${kindsIn} AND (priority, run_at, id) > (?, ?, ?)
  ORDER BY priority, run_at, id LIMIT ${boundLimit}`

const updateText = `UPDATE nightshift_jobs ${claimSet}
  WHERE id IN (SELECT value FROM json_each(?))
  RETURNING ${jobColumns}`

/** One row per start (parameters: now, `[[scope, name, key], …]`). */
const startText = `INSERT INTO nightshift_flow_starts (scope, name, partition_key, started_at)
  SELECT value ->> 0, value ->> 1, value ->> 2, ? FROM json_each(?)`

/** Starts no window counts any more, of the keys just written (parameter: `[[scope, name, key, cutoff], …]`). */
const expireText = `DELETE FROM nightshift_flow_starts WHERE rowid IN (
  SELECT s.rowid FROM json_each(?) AS k JOIN nightshift_flow_starts AS s
    ON s.scope = k.value ->> 0 AND s.name = k.value ->> 1 AND s.partition_key = k.value ->> 2
      AND s.started_at <= k.value ->> 3)`

/**
 * Keys a claim looks at beyond `limit` when whole keys are held back (at
 * their `perPartition` limit): the walk stops after `limit` keys with room,
 * or after this many more steps, whichever comes first. A claim that found
 * no room moves its cursor to the last key it looked at, so successive
 * claims go round the ring.
 */
const extraSteps = 64

/** A due job as the walk reads it. */
interface Candidate {
  readonly id: number
  readonly kind: string
  readonly priority: number
  readonly runAt: number
  readonly fence: number
}

/** A key with due work, and what the claim has read of it. */
interface KeyWork {
  readonly key: string | null
  buffer: Array<Candidate>
  /** The last page read was full: the key may have more. */
  more: boolean
  last: Candidate | undefined
  reads: number
}

/** The most pages the claim reads of one key. */
const maxReads = 4

/** A candidate from a row whose job columns start at `at`. */
const toCandidate = (row: ReadonlyArray<unknown>, at = 0): Candidate => ({
  id: row[at] as number,
  kind: row[at + 1] as string,
  priority: row[at + 2] as number,
  runAt: row[at + 3] as number,
  fence: row[at + 4] as number
})

const compareCandidates = (a: Candidate, b: Candidate) =>
  a.priority - b.priority || a.runAt - b.runAt || a.id - b.id

/** Queues without a due job sort last. */
const compareBest = (a: ReadonlyArray<number> | undefined, b: ReadonlyArray<number> | undefined) =>
  a === undefined
    ? b === undefined
      ? 0
      : 1
    : b === undefined
      ? -1
      : a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!

/** How one queue of a flow-controlled claim is served: as today (`take` undefined), or by its keys. */
interface Plan {
  readonly queue: string
  /** Its best due job (priority, run-at, id), to order the queues by. */
  readonly best: ReadonlyArray<number> | undefined
  readonly take: ((need: number) => Effect.Effect<Array<number>, SqlError>) | undefined
}

/** The claim operation, with its statements cached per request shape and a fairness cursor per queue. */
export const makeClaim = (tables: FlowStatements.FlowTables, exec: Exec) => {
  const plainSql = plainStatements()
  /** The key this instance served last in each queue (`null`: the jobs without a key). */
  const cursors = new Map<string, string | null>()

  const { values } = exec

  /**
   * The flow-controlled claim, to run in a transaction. Each queue is
   * planned first (a queue with neither a rule nor a due job with a key is
   * claimed as today; the others have their keys walked and first pages
   * read), then filled in turn, ordered by each queue's best due job.
   * `flow`: whether a rule or a due job with a key held for any queue.
   */
  const flowClaim = (
    request: JobStore.ClaimRequest,
    queues: ReadonlyArray<string>,
    limit: number,
    now: number,
    setParams: ReadonlyArray<unknown>
  ) =>
    Effect.gen(function* () {
      yield* exec.raw(lockText, [])
      const { kinds } = request
      const rules = new Rules(yield* FlowStatements.rules(tables))
      const paused = new Set(
        (yield* values(pausedText, [JSON.stringify(queues)])).map((row) => row[0] as string)
      )
      const budget = yield* readBudget(rules, queues, kinds, now)
      const plans: Array<Plan> = []
      let flow = false
      for (const queue of queues) {
        const limited = kinds.some((kind) => rules.forJob(queue, kind).length > 0)
        flow ||= limited
        if (paused.has(queue)) continue
        if (!limited && (yield* values(keyedText, [queue, now])).length === 0) {
          if (queues.length === 1) {
            plans.push({ queue, best: undefined, take: undefined })
            continue
          }
          const [best] = yield* values(bestUnkeyedText, [queue, now, JSON.stringify(kinds)])
          if (best !== undefined) plans.push({ queue, best: best as ReadonlyArray<number>, take: undefined })
          continue
        }
        flow = true
        const walked = yield* walk(queue, kinds, limit, now, budget)
        if (walked !== undefined) plans.push({ queue, ...walked })
      }
      if (plans.length > 1) plans.sort((a, b) => compareBest(a.best, b.best))
      const rows: Array<ReadonlyArray<unknown>> = []
      const picked: Array<number> = []
      for (const plan of plans) {
        const need = limit - rows.length - picked.length
        if (need <= 0) break
        if (plan.take === undefined) {
          // Neither a rule nor a key: claimed as today, in this transaction.
          const params = plainParams([...setParams], [plan.queue], kinds, now, need)
          rows.push(...(yield* values(plainSql(1, kinds.length, false), params)))
        } else {
          picked.push(...(yield* plan.take(need)))
        }
      }
      if (picked.length > 0) {
        const claimed = yield* values(updateText, [...setParams, JSON.stringify(picked)])
        yield* recordStarts(rules, claimed, now)
        rows.push(...claimed)
      }
      return { rows, flow }
    })

  /** The budget of the rules that hold for these queues and kinds: running jobs and rate starts. */
  const readBudget = (
    rules: Rules,
    queues: ReadonlyArray<string>,
    kinds: ReadonlyArray<string>,
    now: number
  ) =>
    Effect.gen(function* () {
      const held: Array<FlowControl.Rule> = []
      for (const queue of queues) {
        const rule = rules.get("queue", queue)
        if (rule !== undefined) held.push(rule)
      }
      for (const kind of kinds) {
        const rule = rules.get("kind", kind)
        if (rule !== undefined) held.push(rule)
      }
      const counted = held.filter((rule) => rule.global !== null || rule.perPartition !== null)
      const running =
        counted.length === 0
          ? []
          : (yield* values(runningText, [
              now,
              JSON.stringify(counted.filter((r) => r.scope === "queue").map((r) => r.name)),
              JSON.stringify(counted.filter((r) => r.scope === "kind").map((r) => r.name))
            ])).map(
              (row): JobStore.RunningGroup => ({
                queue: row[0] as string,
                kind: row[1] as string,
                partition: row[2] as string | null,
                running: row[3] as number
              })
            )
      const rated = held.filter((rule) => rule.rateLimit !== null && rule.rateWindowMs !== null)
      const rate =
        rated.length === 0
          ? []
          : (yield* values(rateText, [
              JSON.stringify(
                rated.map((r) => [
                  r.scope,
                  r.name,
                  now - r.rateWindowMs!,
                  now - paceOf(r.rateLimit!, r.rateWindowMs!, r.rateBurst).spanMs
                ])
              )
            ])).map(
              (row): JobStore.RateUsage => ({
                scope: row[0] as "kind" | "queue",
                name: row[1] as string,
                partition: row[2] === "" ? null : (row[2] as string),
                starts: row[3] as number,
                recent: row[4] as number
              })
            )
      return new Budget(rules, running, rate, true)
    })

  /**
   * Plan one queue's flow-controlled claim: walk the keys with due work in
   * ring order after the queue's cursor (at most `want` keys with room:
   * the limit, or less when a global limit or a whole-scope rate leaves less
   * room), and read each key's first jobs. `take` then picks up to `need`
   * jobs, one per key per round, each admitted by the budget, and moves the
   * cursor to the last key served. It returns the ids picked (a job whose
   * fence is exhausted is picked to be discarded, and counts no start).
   *
   * The keys come from one statement per stretch of the ring, and the first
   * pages of all of them from one more: the walk costs a few statements
   * whatever the number of keys.
   */
  const walk = (queue: string, allKinds: ReadonlyArray<string>, limit: number, now: number, budget: Budget) =>
    Effect.gen(function* () {
      // Kinds a global limit or a whole-scope rate holds back in every key are left out of the reads.
      const kinds = allKinds.filter((kind) => !blockedEverywhere(budget, queue, kind))
      if (kinds.length === 0) return undefined
      const kindsJson = JSON.stringify(kinds)
      const hasRoom = (key: string | null) => kinds.some((kind) => budget.blocked(queue, kind, key) === null)
      const admitsNone = () => kinds.every((kind) => blockedEverywhere(budget, queue, kind))
      // No more jobs than this can start: more keys would only be read and passed over.
      const want = Math.min(limit, Math.max(1, Math.max(...kinds.map((kind) => budget.room(queue, kind)))))

      const keys: Array<KeyWork> = []
      const seen = new Set<string>()
      const maxSteps = want + extraSteps
      let steps = 0
      let lastLooked: string | null | undefined
      const full = () => keys.length >= want || steps >= maxSteps
      const look = (key: string | null) => {
        lastLooked = key
        if (hasRoom(key)) keys.push({ key, buffer: [], more: true, last: undefined, reads: 0 })
      }
      const visitUnkeyed = Effect.gen(function* () {
        if (full()) return
        steps++
        if ((yield* values(unkeyedText, [queue, now, kindsJson])).length > 0) look(null)
      })
      /**
       * Step through the keys after `from` (`null`: from the first) until a
       * key seen already or the end, a step per key as one seek each would
       * (the lookup that finds the end counts one too). Each statement reads
       * as many keys as could still be looked at.
       */
      const stepKeys = (from: string | null) =>
        Effect.gen(function* () {
          let previous = from
          while (!full()) {
            const ask = Math.max(1, Math.min(maxSteps - steps, want - keys.length))
            const rows =
              previous === null
                ? yield* values(firstKeysText, [queue, now, kindsJson, queue, now, kindsJson, ask])
                : yield* values(nextKeysText, [queue, previous, now, kindsJson, queue, now, kindsJson, ask])
            for (const row of rows) {
              if (full()) return
              steps++
              const key = row[0] as string
              if (seen.has(key)) return
              seen.add(key)
              look(key)
              previous = key
            }
            if (rows.length < ask) {
              if (!full()) steps++
              return
            }
          }
        })
      const cursor = cursors.get(queue)
      if (cursor === undefined) {
        yield* visitUnkeyed
        yield* stepKeys(null)
      } else if (cursor === null) {
        yield* stepKeys(null)
        yield* visitUnkeyed
      } else {
        yield* stepKeys(cursor)
        yield* visitUnkeyed
        yield* stepKeys(null)
      }
      // Every key looked at was held back: the next claim looks further round the ring.
      const passOn = () => {
        if (lastLooked !== undefined && steps >= maxSteps) cursors.set(queue, lastLooked)
      }
      if (keys.length === 0) {
        passOn()
        return undefined
      }

      /** A key's next page after its last read job. */
      const read = (work: KeyWork, size: number) =>
        Effect.gen(function* () {
          work.reads++
          const last = work.last!
          const rows = yield* values(nextPageText, [
            queue,
            work.key,
            now,
            kindsJson,
            last.priority,
            last.runAt,
            last.id,
            size
          ])
          work.buffer = rows.map((row) => toCandidate(row))
          work.more = rows.length === size
          work.last = work.buffer.at(-1) ?? last
        })
      /** The key's next job the budget admits, reading on when its page runs out. */
      const next = (work: KeyWork, size: number) =>
        Effect.gen(function* () {
          for (;;) {
            if (work.buffer.length === 0) {
              if (!work.more || work.reads >= maxReads) return undefined
              yield* read(work, size)
              continue
            }
            const job = work.buffer.shift()!
            if (budget.blocked(queue, job.kind, work.key) === null) return job
          }
        })

      // Every key's first page, in one statement.
      const firstPage = Math.min(want, Math.ceil(want / keys.length) + 1)
      const pages = yield* values(pagesText, [
        JSON.stringify(keys.map((work) => work.key)),
        queue,
        now,
        kindsJson,
        firstPage
      ])
      for (const row of pages) keys[row[0] as number]!.buffer.push(toCandidate(row, 1))
      let best: Candidate | undefined
      for (const work of keys) {
        work.reads = 1
        work.more = work.buffer.length === firstPage
        work.last = work.buffer.at(-1)
        const first = work.buffer[0]
        if (first !== undefined && (best === undefined || compareCandidates(first, best) < 0)) best = first
      }

      const take = (need: number) =>
        Effect.gen(function* () {
          const picked: Array<number> = []
          let served: string | null | undefined
          let live = keys
          // Stops as well once no kind can start anywhere (a global limit or a whole-scope rate used up).
          while (picked.length < need && live.length > 0 && !admitsNone()) {
            const still: Array<KeyWork> = []
            for (const work of live) {
              if (picked.length >= need) break
              const job = yield* next(work, need - picked.length)
              if (job === undefined) continue
              picked.push(job.id)
              if (claimableFence(job.fence)) budget.take(queue, job.kind, work.key)
              served = work.key
              still.push(work)
              if (admitsNone()) break
            }
            live = still
          }
          if (served !== undefined) cursors.set(queue, served)
          else passOn()
          return picked
        })
      return {
        best: best === undefined ? undefined : [best.priority, best.runAt, best.id],
        take
      }
    })

  /** Write one start per claimed job and rate-limited rule, and drop those keys' starts no window counts. */
  const recordStarts = (rules: Rules, claimed: ReadonlyArray<ReadonlyArray<unknown>>, now: number) =>
    Effect.gen(function* () {
      const starts: Array<readonly [string, string, string]> = []
      const expire = new Map<string, readonly [string, string, string, number]>()
      for (const row of claimed) {
        if (row[4] !== "running") continue
        const queue = row[2] as string
        const kind = row[1] as string
        const partition = row[20] as string | null
        for (const rule of rules.forJob(queue, kind)) {
          if (rule.rateLimit === null || rule.rateWindowMs === null) continue
          const start = [
            rule.scope,
            rule.scope === "queue" ? queue : kind,
            ratePartition(rule, partition) ?? ""
          ] as const
          starts.push(start)
          expire.set(JSON.stringify(start), [...start, now - rule.rateWindowMs - keepStartsMs])
        }
      }
      if (starts.length === 0) return
      yield* exec.raw(startText, [now, JSON.stringify(starts)])
      yield* exec.raw(expireText, [JSON.stringify([...expire.values()])])
    })

  /**
   * Without the write lock, from committed state: does every rule-bound
   * kind of the request sit behind a full global limit or a used-up rate
   * over its whole scope (and no requested kind go free)? A count that
   * misses later commits can only see less room than there is, so a claim
   * it turns away finds the scope full or nearly so; one it lets through is
   * counted again under the lock.
   */
  const fullEverywhere = (queues: ReadonlyArray<string>, kinds: ReadonlyArray<string>, now: number) =>
    Effect.gen(function* () {
      const rules = new Rules(yield* FlowStatements.rules(tables))
      // Only a global limit or a rate over a whole scope can hold back every key at once.
      for (const queue of queues)
        for (const kind of kinds)
          if (
            !rules
              .forJob(queue, kind)
              .some((r) => r.global !== null || (r.rateLimit !== null && !r.rateByPartition))
          )
            return false
      const budget = yield* readBudget(rules, queues, kinds, now)
      for (const queue of queues)
        for (const kind of kinds) if (!blockedEverywhere(budget, queue, kind)) return false
      return true
    })

  /**
   * Request shapes (queues and kinds) whose last claim took the
   * flow-controlled path. Their next claim skips the plain statement (an
   * `UPDATE`, so it would wait for the write lock only to claim nothing) and
   * is turned away without the lock when `fullEverywhere`; a runner a
   * limit holds back then no longer queues for the lock behind the runner
   * that holds the places. A shape leaves the set when a flow-controlled
   * claim finds neither a rule nor a key for it.
   */
  const flowShapes = new Set<string>()

  /** `locked`: the caller's transaction already holds the write lock (`settleAndClaim`). */
  return (request: JobStore.ClaimRequest, locked = false) =>
    Effect.gen(function* () {
      const limit = Math.floor(request.limit)
      if (limit <= 0 || request.queues.length === 0 || request.kinds.length === 0) return []
      const now = yield* Clock.currentTimeMillis
      const queues = request.queues.length === 1 ? request.queues : Array.from(new Set(request.queues))
      const { kinds } = request
      const leaseEnd = Plans.after(now, storableLease(request.leaseMs))
      const setParams = [now, request.owner, leaseEnd, now, now, fenceExhausted.message]
      const shape = JSON.stringify([queues, kinds])
      if (!flowShapes.has(shape)) {
        const params = plainParams([...setParams], queues, kinds, now, limit)
        params.push(...queues, ...kinds, ...queues, now)
        const rows = yield* values(plainSql(queues.length, kinds.length, true), params)
        if (rows.length > 0) return yield* claimedJobs(rows)
        // Nothing claimed: no due job, or flow control has a say.
        const [check] = yield* values(checkText(queues.length, kinds.length), [
          ...queues,
          ...kinds,
          ...queues,
          now
        ])
        if (check?.[0] !== 1) return []
        flowShapes.add(shape)
      }
      if (!locked && (yield* fullEverywhere(queues, kinds, now))) return []
      const claimed = yield* exec.transaction(flowClaim(request, queues, limit, now, setParams))
      // Neither a rule nor a key held any more (a rule removed, the keyed jobs done): the plain
      // statement again next time. The flow-controlled path claimed what it would have meanwhile.
      if (!claimed.flow) flowShapes.delete(shape)
      return yield* claimedJobs(claimed.rows)
    })
}

/** The jobs of claimed rows in claim order; rows the claim discarded (fence at the maximum) are left out. */
const claimedJobs = (rows: ReadonlyArray<ReadonlyArray<unknown>>) =>
  Effect.map(decode(rows.filter((row) => row[4] === "running")), (jobs) =>
    jobs.length > 1 ? jobs.sort(Core.claimOrder) : jobs
  )

/**
 * Does a rule hold a kind back in every key of the queue: a global limit
 * reached, or a rate counted over the whole scope used up? (`blocked` with
 * no key skips `perPartition`; a rate counted by key is left to the keys.)
 */
const blockedEverywhere = (budget: Budget, queue: string, kind: string): boolean => {
  const reason = budget.blocked(queue, kind, null)
  if (reason === "global limit") return true
  if (reason !== "rate limited") return false
  return !budget.rules.forJob(queue, kind).some((rule) => rule.rateLimit !== null && rule.rateByPartition)
}
