/**
 * What flow control holds back, from one `FlowState` read with due groups:
 * throttled jobs per queue, kind and reason (the metric), and per queue the
 * busiest partition keys with what runs, what is due and why it waits (the
 * admin API, the dashboard and `nightshift queues`). Pure: the callers read
 * the state, this only counts.
 *
 * "Throttled" means due but unable to start now. Due jobs of a paused queue
 * are all throttled (`queue paused`). Elsewhere, the room the limits leave
 * is handed out as a claim would hand it out (the keys in turn, one job
 * each per round, every start counted against every rule that holds for
 * it), and the due jobs beyond that room are throttled, each with the
 * reason that stopped its group (`partition at limit`, `global limit`,
 * `rate limited`). Due jobs that no rule holds back are not throttled: they
 * wait only for a runner.
 *
 * @internal
 */
import type * as FlowControl from "../../FlowControl.js"
import type * as JobStore from "../../JobStore.js"
import { Budget, Rules } from "./flow.js"

/** Due jobs of one queue and kind that cannot start now, and why. */
export interface ThrottledCount {
  readonly queue: string
  readonly kind: string
  readonly reason: FlowControl.Waiting
  readonly count: number
}

/** One partition key of a queue: running and due jobs (every kind), how many are throttled and why. */
export interface PartitionFlow {
  readonly partition: string
  readonly running: number
  readonly due: number
  readonly throttled: number
  /** Why its throttled jobs wait (the reason of most of them); `null` when none is throttled. */
  readonly waiting: FlowControl.Waiting | null
}

/** One queue's flow: its limits, its totals and its busiest partition keys. */
export interface QueueFlow {
  readonly queue: string
  readonly paused: boolean
  /** The queue's own rule and the rules of the kinds that have running or due jobs in it. */
  readonly rules: ReadonlyArray<FlowControl.Rule>
  /** Running jobs whose lease holds (every kind, with or without a key). */
  readonly running: number
  readonly due: number
  readonly throttled: number
  /** Partition keys with running or due jobs. */
  readonly keys: number
  /** The busiest keys: most running first, then most due, then by key; at most `top`. */
  readonly partitions: ReadonlyArray<PartitionFlow>
}

/** A queue's flow without its name and paused flag, as the admin API and the CLI show it. */
export const flowOf = ({ due, keys, partitions, rules, running, throttled }: QueueFlow) => ({
  rules,
  running,
  due,
  throttled,
  keys,
  partitions
})

/** A queue's flow when it has no rule and no running or due job. */
export const emptyFlow = (queue: string, paused: boolean): QueueFlow => ({
  queue,
  paused,
  rules: [],
  running: 0,
  due: 0,
  throttled: 0,
  keys: 0,
  partitions: []
})

/** The whole report. */
export interface FlowReport {
  /** Store clock when the state was read, epoch ms. */
  readonly at: number
  /** Every stored rule, by scope then name. */
  readonly rules: ReadonlyArray<FlowControl.Rule>
  /** Non-zero throttled counts, by queue, kind, reason. */
  readonly throttled: ReadonlyArray<ThrottledCount>
  /** Queues with a rule, running or due jobs, or paused, by name. */
  readonly queues: ReadonlyArray<QueueFlow>
}

/** The busiest keys listed per queue by default. */
export const defaultTop = 5

/** The most keys listed per queue. */
export const maxTop = 1000

const sep = "\u0001"
const groupKey = (queue: string, kind: string, partition: string | null) =>
  partition === null ? `${queue}${sep}${kind}${sep}` : `${queue}${sep}${kind}${sep}${sep}${partition}`

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

interface Group {
  readonly queue: string
  readonly kind: string
  readonly partition: string | null
  running: number
  due: number
  /** Due jobs the simulated claim admitted. */
  admitted: number
  throttled: number
  reason: FlowControl.Waiting | null
}

/**
 * Hand the room the limits leave to the due groups as a claim would: the
 * groups in turn, one job each per round, until every group is served or
 * blocked. A blocked group stays blocked (starts only ever use up room), so
 * the work is one step per admitted job plus one per group.
 */
const admit = (budget: Budget, groups: ReadonlyArray<Group>): void => {
  let active = groups.filter((g) => g.due > 0)
  while (active.length > 0) {
    const next: Array<Group> = []
    for (const g of active) {
      const blocked = budget.blocked(g.queue, g.kind, g.partition)
      if (blocked !== null) {
        g.throttled = g.due - g.admitted
        g.reason = blocked
        continue
      }
      budget.take(g.queue, g.kind, g.partition)
      g.admitted++
      if (g.admitted < g.due) next.push(g)
    }
    active = next
  }
}

/** Whether a rule can hold back a job of this partition (a job without a key has no per-partition limit). */
const canHold = (rule: FlowControl.Rule, partition: string | null) =>
  rule.global !== null || rule.rateLimit !== null || (rule.perPartition !== null && partition !== null)

/** The groups of a flow state, with each due group's throttled count and reason. */
const groupsOf = (state: JobStore.FlowState): Array<Group> => {
  const groups = new Map<string, Group>()
  const group = (queue: string, kind: string, partition: string | null): Group => {
    const key = groupKey(queue, kind, partition)
    let g = groups.get(key)
    if (g === undefined) {
      g = { queue, kind, partition, running: 0, due: 0, admitted: 0, throttled: 0, reason: null }
      groups.set(key, g)
    }
    return g
  }
  for (const r of state.running) group(r.queue, r.kind, r.partition).running += r.running
  for (const d of state.due) group(d.queue, d.kind, d.partition).due += d.due

  const paused = new Set(state.paused)
  const rules = new Rules(state.rules)
  const limited: Array<Group> = []
  for (const g of groups.values()) {
    if (g.due === 0) continue
    if (paused.has(g.queue)) {
      g.throttled = g.due
      g.reason = "queue paused"
    } else if (rules.forJob(g.queue, g.kind).some((rule) => canHold(rule, g.partition))) limited.push(g)
  }
  if (limited.length > 0) {
    // Round-robin order: by queue, then key (no key first), then kind.
    limited.sort(
      (a, b) =>
        byText(a.queue, b.queue) ||
        (a.partition === b.partition
          ? 0
          : a.partition === null
            ? -1
            : b.partition === null
              ? 1
              : byText(a.partition, b.partition)) ||
        byText(a.kind, b.kind)
    )
    admit(new Budget(rules, state.running, state.rate), limited)
  }
  return [...groups.values()]
}

/** Throttled counts per queue, kind and reason (non-zero only), by queue, kind, reason. */
const throttledOf = (groups: ReadonlyArray<Group>): Array<ThrottledCount> => {
  const counts = new Map<string, ThrottledCount & { count: number }>()
  for (const g of groups) {
    if (g.throttled === 0 || g.reason === null) continue
    const key = `${g.queue}${sep}${g.kind}${sep}${g.reason}`
    const c = counts.get(key)
    if (c === undefined)
      counts.set(key, { queue: g.queue, kind: g.kind, reason: g.reason, count: g.throttled })
    else c.count += g.throttled
  }
  return [...counts.values()].sort(
    (a, b) => byText(a.queue, b.queue) || byText(a.kind, b.kind) || byText(a.reason, b.reason)
  )
}

/**
 * Throttled jobs per queue, kind and reason, from a flow state read with
 * `due: true` (without due groups nothing is throttled).
 */
export const throttled = (state: JobStore.FlowState): ReadonlyArray<ThrottledCount> =>
  throttledOf(groupsOf(state))

/** One queue's flow from its groups. */
const queueOf = (
  queue: string,
  groups: ReadonlyArray<Group>,
  rules: Rules,
  paused: boolean,
  top: number
): QueueFlow => {
  const keys = new Map<
    string,
    { running: number; due: number; throttled: number; reasons: Map<FlowControl.Waiting, number> }
  >()
  let running = 0
  let due = 0
  let held = 0
  const kinds = new Set<string>()
  for (const g of groups) {
    running += g.running
    due += g.due
    held += g.throttled
    kinds.add(g.kind)
    if (g.partition === null) continue
    let k = keys.get(g.partition)
    if (k === undefined) {
      k = { running: 0, due: 0, throttled: 0, reasons: new Map() }
      keys.set(g.partition, k)
    }
    k.running += g.running
    k.due += g.due
    k.throttled += g.throttled
    if (g.reason !== null) k.reasons.set(g.reason, (k.reasons.get(g.reason) ?? 0) + g.throttled)
  }
  const partitions = [...keys]
    .sort(([ka, a], [kb, b]) => b.running - a.running || b.due - a.due || byText(ka, kb))
    .slice(0, top)
    .map(([partition, k]): PartitionFlow => {
      let waiting: FlowControl.Waiting | null = null
      let most = 0
      for (const [reason, n] of k.reasons) {
        if (n > most) {
          most = n
          waiting = reason
        }
      }
      return { partition, running: k.running, due: k.due, throttled: k.throttled, waiting }
    })
  const own = rules.get("queue", queue)
  const kindRules = [...kinds].sort(byText).flatMap((kind) => {
    const rule = rules.get("kind", kind)
    return rule === undefined ? [] : [rule]
  })
  return {
    queue,
    paused,
    rules: own === undefined ? kindRules : [own, ...kindRules],
    running,
    due,
    throttled: held,
    keys: keys.size,
    partitions
  }
}

/**
 * The report of a flow state read with `due: true`: throttled counts, and
 * per queue (with a rule, running or due jobs, or paused) its limits, totals
 * and at most `top` busiest partition keys.
 */
export const report = (state: JobStore.FlowState, options: { readonly top?: number } = {}): FlowReport => {
  const top = Math.max(0, Math.min(maxTop, Math.floor(options.top ?? defaultTop)))
  const groups = groupsOf(state)
  const rules = new Rules(state.rules)
  const byQueue = new Map<string, Array<Group>>()
  const of = (queue: string) => {
    let list = byQueue.get(queue)
    if (list === undefined) byQueue.set(queue, (list = []))
    return list
  }
  for (const rule of state.rules) if (rule.scope === "queue") of(rule.name)
  for (const queue of state.paused) of(queue)
  for (const g of groups) of(g.queue).push(g)
  const paused = new Set(state.paused)
  return {
    at: state.now,
    rules: rules.all(),
    throttled: throttledOf(groups),
    queues: [...byQueue.keys()]
      .sort(byText)
      .map((queue) => queueOf(queue, byQueue.get(queue)!, rules, paused.has(queue), top))
  }
}
