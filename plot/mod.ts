// Copyright 2025 the halo authors. MIT license.
/**
 * SVG charts drawn with Vega-Lite, compiled to Vega and rendered headless (`View.toSVG()`, no
 * canvas, no network): line charts with confidence bands, bar charts with error bars, and the
 * main curves of a run folder's `metrics.jsonl` (`deno task plot <run dir>`).
 *
 * @example Cosine similarity against layer, one line per pair kind
 * ```ts
 * import { lineChart } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const layers = [0, 1, 2, 3];
 * const svg = await lineChart([
 *   { name: "correct–correct", x: layers, y: [0.2, 0.5, 0.7, 0.84] },
 *   { name: "correct–incorrect", x: layers, y: [0.2, 0.4, 0.5, 0.6] },
 * ], { title: "Anchor cosine by layer", xTitle: "Layer", yTitle: "Cosine", integerX: true });
 * assert.ok(svg.includes("correct–incorrect"));
 * ```
 *
 * @module
 */

export * from "./line_chart.ts";
export * from "./bar_chart.ts";
export * from "./read_metrics.ts";
export * from "./curve_groups.ts";
export * from "./run_curves.ts";
