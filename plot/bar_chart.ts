// Copyright 2025 the halo authors. MIT license.
/**
 * Bar charts with error bars (mean ± CI per method, optionally grouped) as SVG.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";
import { renderVegaLite, requireFinite } from "./_render.ts";

/** One bar of a {@linkcode barChart}: a value and optionally its interval lo..hi. */
export interface Bar {
  /** The category on the x axis (e.g. the method). */
  label: string;
  /** The bar's height (e.g. the mean over seeds). */
  value: number;
  /** The lower end of the error bar (e.g. the 95% CI); with `hi`. */
  lo?: number;
  /** The upper end of the error bar; with `lo`. */
  hi?: number;
  /**
   * The series within a category (e.g. the task), drawn side by side in its own colour with a
   * legend; give it to every bar or to none.
   */
  group?: string;
}

/** Options of {@linkcode barChart}. */
export interface BarChartOptions {
  /** The chart title. */
  title: string;
  /** The x axis title (under the categories). */
  xTitle: string;
  /** The y axis title. */
  yTitle: string;
  /** The legend title when bars have groups (default: none). */
  legendTitle?: string;
  /** Fixed y range, e.g. `[0, 1]` for accuracies (default: from 0 to fit the data). */
  yDomain?: readonly [number, number];
  /** The angle of the category labels in degrees (default 0: horizontal). */
  labelAngle?: number;
  /** The width of one category band in pixels (default 60). */
  bandWidth?: number;
  /** The plot area's height in pixels (default 280). */
  height?: number;
}

/**
 * Draws bars with error bars as one SVG chart (Vega-Lite rendered headless): categories in the
 * order of their first bar, groups side by side within a category in the order of first
 * appearance, an error bar (a rule from `lo` to `hi`) on each bar that has an interval.
 *
 * @param bars The bars; a (label, group) pair at most once.
 * @param options Titles and size.
 * @returns The SVG document.
 * @throws {RangeError} When there is no bar, a (label, group) pair repeats, only some bars have a
 * group, a bar has only one of `lo`/`hi`, or a value is not finite.
 *
 * @example Accuracy of three methods, mean ± 95% CI over seeds
 * ```ts
 * import { barChart } from "./bar_chart.ts";
 * import assert from "node:assert/strict";
 *
 * const svg = await barChart([
 *   { label: "LoRA", value: 0.41, lo: 0.37, hi: 0.45 },
 *   { label: "MoLA", value: 0.44, lo: 0.40, hi: 0.48 },
 *   { label: "HILO", value: 0.47, lo: 0.42, hi: 0.52 },
 * ], { title: "Held-out accuracy", xTitle: "Method", yTitle: "Accuracy", yDomain: [0, 1] });
 * assert.ok(svg.startsWith("<svg"));
 * assert.ok(svg.includes("HILO"));
 * ```
 */
export async function barChart(bars: readonly Bar[], options: BarChartOptions): Promise<string> {
  const chart = `bar chart "${options.title}"`;
  if (bars.length === 0) {
    throw new RangeError(`Cannot draw ${chart}: it needs at least one bar: current count is 0`);
  }
  const grouped = bars[0].group !== undefined;
  const labels: string[] = [];
  const groups: string[] = [];
  const seen = new Set<string>();
  const rows = bars.map((bar, i) => {
    if ((bar.group !== undefined) !== grouped) {
      throw new RangeError(
        `Cannot draw ${chart}: give a group to every bar or to none: bar ${i} ("${bar.label}") differs from bar 0`,
      );
    }
    const key = JSON.stringify([bar.label, bar.group ?? null]);
    if (seen.has(key)) {
      throw new RangeError(
        `Cannot draw ${chart}: bar "${bar.label}"${
          grouped ? ` of group "${bar.group}"` : ""
        } appears twice`,
      );
    }
    seen.add(key);
    if (!labels.includes(bar.label)) labels.push(bar.label);
    if (bar.group !== undefined && !groups.includes(bar.group)) groups.push(bar.group);
    requireFinite(chart, `bar "${bar.label}" value`, bar.value);
    if ((bar.lo === undefined) !== (bar.hi === undefined)) {
      throw new RangeError(
        `Cannot draw ${chart}: bar "${bar.label}" needs both lo and hi or neither`,
      );
    }
    if (bar.lo !== undefined) {
      requireFinite(chart, `bar "${bar.label}" lo`, bar.lo);
      requireFinite(chart, `bar "${bar.label}" hi`, bar.hi);
    }
    return {
      label: bar.label,
      group: bar.group ?? "",
      value: bar.value,
      lo: bar.lo ?? null,
      hi: bar.hi ?? null,
    };
  });

  const x = {
    field: "label",
    type: "nominal",
    title: options.xTitle,
    sort: labels,
    scale: { domain: labels },
    axis: { labelAngle: options.labelAngle ?? 0 },
  } as const;
  const y = {
    type: "quantitative",
    title: options.yTitle,
    scale: options.yDomain ? { domain: [...options.yDomain] } : {},
  } as const;
  const xOffset = grouped ? { xOffset: { field: "group", type: "nominal", sort: groups } } : {};
  const color = grouped
    ? {
      color: {
        field: "group",
        type: "nominal",
        title: options.legendTitle ?? null,
        sort: groups,
        scale: { domain: groups },
      },
    }
    : {};
  const spec = {
    title: options.title,
    width: { step: options.bandWidth ?? 60 },
    height: options.height ?? 280,
    data: { values: rows },
    layer: [
      {
        mark: { type: "bar", ...(grouped ? {} : { color: "#4c78a8" }) },
        encoding: { x, y: { ...y, field: "value" }, ...xOffset, ...color },
      },
      {
        transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
        mark: { type: "rule", color: "#222222", strokeWidth: 1.5 },
        encoding: { x, y: { ...y, field: "lo" }, y2: { field: "hi" }, ...xOffset },
      },
    ],
  } as TopLevelSpec;
  return await renderVegaLite(spec);
}
