import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as WorkerStatus from "../../WorkerStatus.js"
import type { ChildSet, Options as ChildSetOptions } from "./childSet.js"
import type { ChildrenService, CrewFailed, DuplicateWorker, Worker } from "./core.js"
import type * as Registry from "./registry.js"

type MakeSet = (options: ChildSetOptions) => Effect.Effect<ChildSet>

/**
 * The `Children` service of one run. Its child set (and actor fiber) is made
 * on first use, and its methods are built on first access, so a worker that
 * never manages children pays for one small object.
 */
export class ChildrenHandle implements ChildrenService {
  private set: ChildSet | undefined
  private methods: Omit<ChildrenService, "list"> | undefined

  constructor(
    private readonly prefix: string,
    private readonly registry: Registry.Registry,
    private readonly makeSet: MakeSet,
    /** Shared by the handles of one child set (no closure per handle); called with `token`. */
    private readonly escalateFrom: (token: any, error: CrewFailed) => void,
    private readonly token: any
  ) {}

  private acquire(): Effect.Effect<ChildSet> {
    return Effect.suspend(() =>
      this.set !== undefined
        ? Effect.succeed(this.set)
        : Effect.tap(
            this.makeSet({
              prefix: this.prefix,
              registry: this.registry,
              escalate: (error) => this.escalateFrom(this.token, error),
              forgetOnClose: true
            }),
            (set) => {
              this.set = set
            }
          )
    )
  }

  private build(): Omit<ChildrenService, "list"> {
    const adding =
      (replace: boolean) =>
      <E, R>(worker: Worker<E, R>) =>
        Effect.flatMap(Effect.context<R>(), (context) =>
          Effect.flatMap(this.acquire(), (set) => set.add(worker, context, replace))
        )
    const replace = adding(true)
    return {
      add: adding(false),
      replace: (worker) => Effect.orDie(replace(worker)),
      remove: (name) => Effect.flatMap(this.acquire(), (set) => set.remove(name))
    }
  }

  get add(): ChildrenService["add"] {
    this.methods ??= this.build()
    return this.methods.add
  }

  get replace(): ChildrenService["replace"] {
    this.methods ??= this.build()
    return this.methods.replace
  }

  get remove(): ChildrenService["remove"] {
    this.methods ??= this.build()
    return this.methods.remove
  }

  /** Start several children in order, in one request. */
  addAll(workers: ReadonlyArray<Worker<any, any>>): Effect.Effect<void, DuplicateWorker> {
    return Effect.flatMap(Effect.context<never>(), (context) =>
      Effect.flatMap(this.acquire(), (set) => set.addAll(workers, context as Context.Context<any>))
    )
  }

  get list(): Effect.Effect<ReadonlyArray<WorkerStatus.WorkerStatus>> {
    return Effect.suspend(() => this.set?.list ?? Effect.succeed([]))
  }

  /** Stop the children (if any were started); used when the run ends. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => this.set?.close ?? Effect.void)
  }
}
