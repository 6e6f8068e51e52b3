// Copyright 2025 the halo authors. MIT license.
/**
 * Line charts (several series against one x, optionally with a confidence band) as SVG.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";
import { renderVegaLite, requireFinite } from "./_render.ts";

/** One line of a {@linkcode lineChart}: y (and optionally a band lo..hi) at each x. */
export interface LineSeries {
  /** The name shown in the legend; unique within the chart. */
  name: string;
  /** The x values (steps, layers, k, …). */
  x: readonly number[];
  /** The y values, one per x. */
  y: readonly number[];
  /** The lower edge of the band (e.g. a 95% CI), one per x; with `hi`. */
  lo?: readonly number[];
  /** The upper edge of the band, one per x; with `lo`. */
  hi?: readonly number[];
  /** Draw a point at each value of this series (default: the chart's `points`). */
  points?: boolean;
}

/** How an axis maps values: linear, or logarithmic with base 2 or 10. */
export type AxisScale = "linear" | "log2" | "log10";

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions {
  /** The chart title. */
  title: string;
  /** The x axis title. */
  xTitle: string;
  /** The y axis title. */
  yTitle: string;
  /** The legend title (default: none). */
  legendTitle?: string;
  /** The x scale (default "linear"; "log2" suits pass@k over k = 1, 2, 4, …). */
  xScale?: AxisScale;
  /** The y scale (default "linear"). */
  yScale?: AxisScale;
  /** Label the x axis with whole numbers only (steps, layers, k; default false). */
  integerX?: boolean;
  /** Fixed y range, e.g. `[0, 1]` for accuracies (default: fitted to the data, not from 0). */
  yDomain?: readonly [number, number];
  /** A d3-format string for the y labels, e.g. "~e" for learning rates (default: Vega's). */
  yFormat?: string;
  /** Draw a point at every value as well as the line, unless a series says otherwise (default false). */
  points?: boolean;
  /** The plot area's width in pixels (default 480). */
  width?: number;
  /** The plot area's height in pixels (default 280). */
  height?: number;
}

/** Vega's "tableau10" scheme, repeated past ten series. */
const PALETTE = [
  "#4c78a8",
  "#f58518",
  "#e45756",
  "#72b7b2",
  "#54a24b",
  "#eeca3b",
  "#b279a2",
  "#ff9da6",
  "#9d755d",
  "#bab0ac",
] as const;

function seriesColor(index: number): string {
  return PALETTE[index % PALETTE.length];
}

function scaleOf(scale: AxisScale | undefined): { type: "linear" | "log"; base?: number } {
  if (scale === undefined || scale === "linear") return { type: "linear" };
  return { type: "log", base: scale === "log2" ? 2 : 10 };
}

/**
 * Draws several series against a shared x as one SVG line chart (Vega-Lite rendered headless),
 * one colour per series in the order given, with a shaded band where a series has `lo`/`hi`.
 *
 * @param series The lines; each `x`, `y` (and `lo`, `hi` when given) of equal length and finite.
 * @param options Titles, scales and size.
 * @returns The SVG document.
 * @throws {RangeError} When there is no series, a name repeats, lengths differ, or a value is not
 * finite (or not positive on a log axis).
 *
 * @example Two loss curves with a band
 * ```ts
 * import { lineChart } from "./line_chart.ts";
 * import assert from "node:assert/strict";
 *
 * const svg = await lineChart([
 *   { name: "loss/pg", x: [1, 2, 3], y: [0.9, 0.7, 0.6], lo: [0.8, 0.6, 0.5], hi: [1, 0.8, 0.7] },
 *   { name: "loss/align", x: [1, 2, 3], y: [0.3, 0.2, 0.15] },
 * ], { title: "Loss terms", xTitle: "Step", yTitle: "Loss" });
 * assert.ok(svg.startsWith("<svg"));
 * assert.ok(svg.includes("loss/align"));
 * ```
 */
export async function lineChart(
  series: readonly LineSeries[],
  options: LineChartOptions,
): Promise<string> {
  const chart = `line chart "${options.title}"`;
  if (series.length === 0) {
    throw new RangeError(`Cannot draw ${chart}: it needs at least one series: current count is 0`);
  }
  const names: string[] = [];
  const rows: Record<string, string | number | null>[] = [];
  let band = false;
  for (const s of series) {
    if (names.includes(s.name)) {
      throw new RangeError(`Cannot draw ${chart}: series name "${s.name}" appears twice`);
    }
    names.push(s.name);
    const n = s.x.length;
    for (const [key, values] of [["y", s.y], ["lo", s.lo], ["hi", s.hi]] as const) {
      if (values !== undefined && values.length !== n) {
        throw new RangeError(
          `Cannot draw ${chart}: series "${s.name}" has ${n} x values but ${values.length} ${key} values`,
        );
      }
    }
    if ((s.lo === undefined) !== (s.hi === undefined)) {
      throw new RangeError(
        `Cannot draw ${chart}: series "${s.name}" needs both lo and hi or neither`,
      );
    }
    if (s.lo !== undefined) band = true;
    for (let i = 0; i < n; i++) {
      const row = {
        series: s.name,
        band: seriesColor(names.length - 1),
        x: s.x[i],
        y: s.y[i],
        lo: s.lo?.[i] ?? null,
        hi: s.hi?.[i] ?? null,
        point: (s.points ?? options.points ?? false) ? 1 : 0,
      };
      for (const key of ["x", "y", "lo", "hi"] as const) {
        if (key === "x" || key === "y" || s.lo !== undefined) {
          requireFinite(chart, `series "${s.name}" ${key}[${i}]`, row[key]);
        }
      }
      rows.push(row);
    }
  }
  const xScale = scaleOf(options.xScale);
  const yScale = scaleOf(options.yScale);
  for (const row of rows) {
    if (xScale.type === "log" && (row.x as number) <= 0) {
      throw new RangeError(
        `Cannot draw ${chart}: x must be > 0 on a log axis: current value is ${row.x}`,
      );
    }
    if (yScale.type === "log" && (row.y as number) <= 0) {
      throw new RangeError(
        `Cannot draw ${chart}: y must be > 0 on a log axis: current value is ${row.y}`,
      );
    }
  }

  const x = {
    field: "x",
    type: "quantitative",
    title: options.xTitle,
    scale: { ...xScale, zero: false, nice: xScale.type === "linear" },
    axis: options.integerX ? { tickMinStep: 1, format: "d" } : {},
  } as const;
  const yScaleSpec = {
    ...yScale,
    zero: false,
    ...(options.yDomain ? { domain: [...options.yDomain] } : {}),
  };
  const yAxis = options.yFormat ? { format: options.yFormat } : {};
  const color = {
    field: "series",
    type: "nominal",
    title: options.legendTitle ?? null,
    scale: { domain: names, range: names.map((_, i) => seriesColor(i)) },
    sort: names,
  } as const;
  const clip = options.yDomain !== undefined;
  const layers: unknown[] = [];
  if (band) {
    layers.push({
      transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
      mark: { type: "area", opacity: 0.2, clip },
      encoding: {
        x,
        y: {
          field: "lo",
          type: "quantitative",
          title: options.yTitle,
          scale: yScaleSpec,
          axis: yAxis,
        },
        y2: { field: "hi" },
        fill: { field: "band", type: "nominal", scale: null },
        detail: { field: "series", type: "nominal" },
      },
    });
  }
  const y = {
    field: "y",
    type: "quantitative",
    title: options.yTitle,
    scale: yScaleSpec,
    axis: yAxis,
  } as const;
  layers.push({ mark: { type: "line", strokeWidth: 1.75, clip }, encoding: { x, y, color } });
  if (rows.some((row) => row.point === 1)) {
    layers.push({
      transform: [{ filter: "datum.point === 1" }],
      mark: { type: "point", filled: true, size: 24, opacity: 1, clip },
      encoding: { x, y, color },
    });
  }
  const spec = {
    title: options.title,
    width: options.width ?? 480,
    height: options.height ?? 280,
    data: { values: rows },
    layer: layers,
  } as TopLevelSpec;
  return await renderVegaLite(spec);
}
