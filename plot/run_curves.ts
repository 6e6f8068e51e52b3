// Copyright 2025 the halo authors. MIT license.
/**
 * The charts of a run folder: the main curves of its `metrics.jsonl` as SVG files in `plots/`.
 *
 * @module
 */

import { writeFileAtomic } from "../internal/atomic_write.ts";
import { type CurveGroup, DEFAULT_CURVE_GROUPS, groupCurves } from "./curve_groups.ts";
import { lineChart, type LineSeries } from "./line_chart.ts";
import { type MetricsRow, readMetrics } from "./read_metrics.ts";

/** Options of {@linkcode plotRunCurves}. */
export interface PlotRunCurvesOptions {
  /** Where the SVG files go (default `<runDir>/plots`); created when missing. */
  outDir?: string;
  /** The chart groups, in order (default {@linkcode DEFAULT_CURVE_GROUPS}). */
  groups?: readonly CurveGroup[];
  /**
   * Also chart the keys no group takes, one chart per namespace ("data/…" → `other_data.svg`,
   * keys without a namespace → `other.svg`).
   */
  all?: boolean;
  /** Draw a point at every value of a series with at most this many values (default 40). */
  pointsUpTo?: number;
}

/** One chart written by {@linkcode plotRunCurves}. */
export interface RunChart {
  /** The chart's name (its file name without `.svg`). */
  name: string;
  /** The SVG file's path. */
  path: string;
  /** The metric keys drawn, one line each. */
  keys: string[];
}

/** What {@linkcode plotRunCurves} returns. */
export interface PlotRunCurvesResult {
  /** The metrics file read. */
  metricsPath: string;
  /** The charts written, in group order. */
  charts: RunChart[];
}

function seriesOf(rows: readonly MetricsRow[], key: string): LineSeries {
  const x: number[] = [];
  const y: number[] = [];
  for (const row of rows) {
    const value = row.values[key];
    if (value !== undefined && Number.isFinite(value)) {
      x.push(row.step);
      y.push(value);
    }
  }
  return { name: key, x, y };
}

function namespaceGroups(keys: readonly string[]): CurveGroup[] {
  const spaces = [...new Set(keys.map((k) => (k.includes("/") ? k.split("/")[0] : "other")))];
  return spaces.map((space) => ({
    name: space === "other" ? "other" : `other_${space.replace(/[^A-Za-z0-9_-]/g, "_")}`,
    title: space === "other" ? "Other metrics" : `Other ${space}/… metrics`,
    yTitle: "Value",
    pattern: space === "other"
      ? /^[^/]*$/
      : new RegExp(`^${space.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/`),
  }));
}

/**
 * Draws the main curves of a run's `metrics.jsonl` (loss terms, reward, accuracy and eval
 * accuracy, kept groups, response length, clip fractions, gradient norm, learning rate, anchor
 * cosines, … whichever keys are present; related keys share a chart) against the step and writes
 * each chart atomically as `<runDir>/plots/<name>.svg`. Non-finite values are left out; a key
 * without any finite value gets no line.
 *
 * @param runDir The run folder holding `metrics.jsonl`.
 * @param options Output folder, chart groups, extra charts.
 * @returns The metrics file and the charts written.
 * @throws {Deno.errors.NotFound} When `metrics.jsonl` does not exist; the message names it.
 * @throws {SyntaxError} When a line is not JSON; the message names the file and the line.
 * @throws {TypeError} When a line or value has the wrong type; the message names file and line.
 * @throws {RangeError} When the file has no metrics line.
 *
 * @example Plot a two-step run
 * ```ts
 * import { plotRunCurves } from "./run_curves.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(
 *   `${dir}/metrics.jsonl`,
 *   '{"step":1,"loss/nll":2.0,"optim/lr":0.001}\n{"step":2,"loss/nll":1.5,"optim/lr":0.001}\n',
 * );
 * const { charts } = await plotRunCurves(dir);
 * assert.deepEqual(charts.map((c) => c.name), ["loss", "lr"]);
 * assert.ok((await Deno.readTextFile(`${dir}/plots/loss.svg`)).startsWith("<svg"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function plotRunCurves(
  runDir: string,
  options: PlotRunCurvesOptions = {},
): Promise<PlotRunCurvesResult> {
  const base = runDir.replace(/[/\\]+$/, "") || "/";
  const metricsPath = `${base}/metrics.jsonl`;
  const rows = await readMetrics(metricsPath);
  if (rows.length === 0) {
    throw new RangeError(`Cannot plot run "${runDir}": "${metricsPath}" has no metrics line`);
  }
  const keys = [...new Set(rows.flatMap((row) => Object.keys(row.values)))];
  const groups = options.groups ?? DEFAULT_CURVE_GROUPS;
  const { grouped, rest } = groupCurves(keys, groups);
  if (options.all && rest.length > 0) {
    grouped.push(...groupCurves(rest, namespaceGroups(rest)).grouped);
  }

  const outDir = options.outDir ?? `${base}/plots`;
  await Deno.mkdir(outDir, { recursive: true });
  const pointsUpTo = options.pointsUpTo ?? 40;
  const charts: RunChart[] = [];
  const names = new Set<string>();
  for (const { group, keys } of grouped) {
    if (names.has(group.name)) {
      throw new RangeError(
        `Cannot plot run "${runDir}": two chart groups are named "${group.name}"`,
      );
    }
    names.add(group.name);
    const series = keys.map((key) => seriesOf(rows, key)).filter((s) => s.x.length > 0)
      .map((s) => ({ ...s, points: s.x.length <= pointsUpTo }));
    if (series.length === 0) continue;
    const svg = await lineChart(series, {
      title: group.title,
      xTitle: "Step",
      integerX: true,
      yTitle: group.yTitle,
      yDomain: group.yDomain,
      yScale: group.yScale,
      yFormat: group.yFormat,
    });
    const path = `${outDir}/${group.name}.svg`;
    await writeFileAtomic(path, svg);
    charts.push({ name: group.name, path, keys: series.map((s) => s.name) });
  }
  return { metricsPath, charts };
}
