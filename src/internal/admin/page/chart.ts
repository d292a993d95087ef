/**
 * Small SVG line charts for the overview: drawn at the container's pixel
 * width (so text stays readable on a phone), colours from CSS variables
 * (so light and dark schemes apply), a text legend with the latest values.
 */
import { el } from "./dom.js"

const NS = "http://www.w3.org/2000/svg"

const svg = <K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Readonly<Record<string, string | number>> = {},
  text?: string
): SVGElementTagNameMap[K] => {
  const e = document.createElementNS(NS, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

/** One line: its values at the chart's times (null: no value there). */
export interface Series {
  readonly name: string
  /** Its colour: 1 to 9, the page's `--c1` … `--c9`. */
  readonly color: number
  readonly values: ReadonlyArray<number | null>
}

export interface ChartData {
  readonly times: ReadonlyArray<number>
  readonly series: ReadonlyArray<Series>
  /** The time span shown, epoch ms. */
  readonly from: number
  readonly to: number
  /** How to print a value (axis and legend). */
  readonly format: (v: number) => string
  /** Whole numbers only (counts): the axis' middle line stays a whole number too. */
  readonly integer?: boolean
}

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten. */
export const niceMax = (max: number): number => {
  if (!(max > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(max))
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p
  return 10 * p
}

const clock = (ms: number, span: number): string => {
  const d = new Date(ms)
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`
  return span <= 15 * 60_000 ? `${hm}:${String(d.getSeconds()).padStart(2, "0")}` : hm
}

/** The path of a series: straight segments, broken where a value is missing. */
const path = (
  times: ReadonlyArray<number>,
  values: ReadonlyArray<number | null>,
  x: (t: number) => number,
  y: (v: number) => number
): string => {
  let d = ""
  let pen = false
  times.forEach((t, i) => {
    const v = values[i]
    if (v == null || !Number.isFinite(v)) {
      pen = false
      return
    }
    d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`
    pen = true
  })
  return d
}

/**
 * A chart: a figure with a heading, the SVG (an image with a text
 * description for screen readers) and a legend with each series' latest value.
 */
export class Chart {
  readonly figure: HTMLElement
  private readonly plot: HTMLDivElement
  private readonly legend: HTMLUListElement
  private data: ChartData | undefined

  constructor(
    readonly id: string,
    readonly title: string,
    extra?: HTMLElement
  ) {
    this.plot = el("div", { class: "plot" })
    this.legend = el("ul", { class: "legend", "data-testid": `${id}-legend` })
    this.figure = el(
      "figure",
      { class: "chart", "data-testid": id, "aria-labelledby": `${id}-title` },
      el("figcaption", {}, el("span", { id: `${id}-title`, class: "chart-title" }, title), extra ?? ""),
      this.plot,
      this.legend
    )
    new ResizeObserver(() => this.draw()).observe(this.plot)
  }

  update(data: ChartData): void {
    this.data = data
    this.draw()
  }

  private draw(): void {
    const data = this.data
    const width = Math.round(this.plot.clientWidth)
    if (data === undefined || width === 0) return
    const height = 150
    const left = 48
    const right = 8
    const top = 8
    const bottom = 20
    const values = data.series.flatMap((s) =>
      s.values.filter((v): v is number => v != null && Number.isFinite(v))
    )
    let max = niceMax(Math.max(data.integer ? 2 : 0, ...values))
    if (data.integer && max % 2 !== 0) max *= 2
    const span = Math.max(1, data.to - data.from)
    const x = (t: number) => left + ((t - data.from) / span) * (width - left - right)
    const y = (v: number) => top + (1 - v / max) * (height - top - bottom)
    const latest = data.series.map((s) => {
      for (let i = s.values.length - 1; i >= 0; i--) {
        const v = s.values[i]
        if (v != null && Number.isFinite(v)) return v
      }
      return null
    })
    const description =
      data.times.length === 0
        ? `${this.title}: no samples yet`
        : `${this.title}, latest: ${data.series.map((s, i) => `${s.name} ${latest[i] == null ? "none" : data.format(latest[i]!)}`).join(", ")}`
    const root = svg("svg", {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": description,
      "data-points": data.times.length
    })
    for (const f of [0, 0.5, 1]) {
      const gy = y(max * f)
      root.append(
        svg("line", { x1: left, x2: width - right, y1: gy, y2: gy, class: "grid" }),
        svg("text", { x: left - 4, y: gy + 4, "text-anchor": "end", class: "axis" }, data.format(max * f))
      )
    }
    const ticks = width < 420 ? [0, 1] : [0, 0.5, 1]
    for (const f of ticks) {
      const t = data.from + f * span
      root.append(
        svg(
          "text",
          {
            x: x(t),
            y: height - 4,
            "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle",
            class: "axis"
          },
          clock(t, span)
        )
      )
    }
    data.series.forEach((s) => {
      const d = path(data.times, s.values, x, y)
      if (d !== "") root.append(svg("path", { d, class: `line c${s.color}`, "data-series": s.name }))
    })
    this.plot.replaceChildren(root)
    this.legend.replaceChildren(
      ...data.series.map((s, i) =>
        el(
          "li",
          { "data-series": s.name },
          el("span", { class: `swatch c${s.color}`, "aria-hidden": "true" }),
          `${s.name} `,
          el("strong", {}, latest[i] == null ? "–" : data.format(latest[i]!))
        )
      )
    )
  }
}
