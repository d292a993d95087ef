/**
 * Compile-time check (run by `npm run typecheck`; nothing to execute): the
 * dashboard page's hand-written view of the admin API's answers
 * (src/internal/admin/page/types.ts) still fits the JSON the schemas encode,
 * so a changed schema breaks the typecheck instead of the page.
 */
import type * as Schema from "effect/Schema"
import type * as Page from "../src/internal/admin/page/types.js"
import type * as S from "../src/internal/admin/schema.js"

type Fits<Server, PageView> = [Server] extends [PageView] ? true : never
type Json<A extends Schema.Schema.Any> = Schema.Schema.Encoded<A>

export const fits: ReadonlyArray<true> = [
  true satisfies Fits<Json<typeof S.WorkersResponse>, Page.WorkersResponse>,
  true satisfies Fits<Json<typeof S.TickResponse>, Page.TickResponse>,
  true satisfies Fits<Json<typeof S.QueuesResponse>, Page.QueuesResponse>,
  true satisfies Fits<Json<typeof S.KindsResponse>, Page.KindsResponse>,
  true satisfies Fits<Json<typeof S.JobPage>, Page.JobPage>,
  true satisfies Fits<Json<typeof S.JobDetail>, Page.JobDetail>,
  true satisfies Fits<Json<typeof S.Enqueued>, Page.Enqueued>,
  true satisfies Fits<Json<typeof S.Overview>, Page.Overview>,
  true satisfies Fits<Json<typeof S.HistoryResponse>, Page.WorkerHistory>,
  true satisfies Fits<Json<typeof S.TreeResponse>, Page.TreeResponse>,
  true satisfies Fits<Json<typeof S.JobCount>, Page.JobCount>,
  true satisfies Fits<Json<typeof S.BulkResponse>, Page.BulkResponse>,
  true satisfies Fits<Json<typeof S.RanNow>, Page.RanNow>
]
