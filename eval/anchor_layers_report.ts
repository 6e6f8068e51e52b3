// Copyright 2025 the halo authors. MIT license.
/**
 * The tables and charts of `deno task anchors`: per model (or checkpoint) a Markdown table of the
 * anchor cosines by layer and pair kind with their bootstrap intervals, a chart of cosine against
 * layer (one line per pair kind, the interval as a band), and, for a series of checkpoints, the
 * correct–correct and control cosines of each against layer.
 *
 * @module
 */
import { lineChart, type LineSeries } from "../plot/line_chart.ts";
import type { AnchorLayerRow, PairStats } from "./anchor_layers.ts";

/**
 * One measured model of a series.
 *
 * @example Usage
 * ```ts
 * import type { AnchorLayersEntry } from "./anchor_layers_report.ts";
 *
 * const entry: AnchorLayersEntry = { name: "models/arithmetic-tiny", rows: [] };
 * ```
 */
export interface AnchorLayersEntry {
  /** The model or checkpoint (shown as it is). */
  name: string;
  /** Its rows from `anchorLayerGeometry`. */
  rows: AnchorLayerRow[];
  /** A line under its table (accuracy, pair counts…); optional. */
  note?: string;
}

const KINDS = [
  ["correctCorrect", "correct–correct"],
  ["incorrectIncorrect", "incorrect–incorrect"],
  ["correctIncorrect", "correct–incorrect"],
  ["random", "random positions (control)"],
] as const;

function cell(p: PairStats): string {
  if (p.pairs === 0) return "– (0)";
  const ci = Number.isNaN(p.lower) ? "" : ` [${p.lower.toFixed(3)}, ${p.upper.toFixed(3)}]`;
  return `${p.mean.toFixed(3)}${ci} (${p.pairs})`;
}

/**
 * The Markdown tables: one per entry (layer × pair kind: mean cosine, bootstrap interval, pairs),
 * then, for two or more entries, the correct–correct and control cosines of every entry side by
 * side.
 *
 * @param entries The measured models in order.
 * @param options `level`: the intervals' confidence level, for the caption (default 0.95).
 * @returns The Markdown text.
 *
 * @example Usage
 * ```ts
 * import { anchorLayersMarkdown } from "./anchor_layers_report.ts";
 * import { ok } from "node:assert/strict";
 *
 * const p = { mean: 0.5, lower: 0.4, upper: 0.6, pairs: 3, groups: 2 };
 * const rows = [{ layer: 0, label: "final norm", correctCorrect: p, incorrectIncorrect: p, correctIncorrect: p, random: p }];
 * ok(anchorLayersMarkdown([{ name: "m", rows }]).includes("| final norm | 0.500 [0.400, 0.600] (3) |"));
 * ```
 */
export function anchorLayersMarkdown(
  entries: readonly AnchorLayersEntry[],
  options: { level?: number } = {},
): string {
  const level = Math.round(100 * (options.level ?? 0.95));
  const lines: string[] = [
    `Mean cosine of the hidden states of two rollouts of the same prompt, pooled over the pairs ` +
    `of all prompts, with the ${level}% percentile-bootstrap interval over prompts and the ` +
    `number of pairs in brackets.`,
    "",
  ];
  for (const entry of entries) {
    lines.push(`### ${entry.name}`, "");
    if (entry.note) lines.push(entry.note, "");
    lines.push(
      `| layer | ${KINDS.map(([, title]) => title).join(" | ")} |`,
      `|---|${KINDS.map(() => "---").join("|")}|`,
    );
    for (const row of entry.rows) {
      lines.push(`| ${row.label} | ${KINDS.map(([key]) => cell(row[key])).join(" | ")} |`);
    }
    lines.push("");
  }
  if (entries.length >= 2) {
    lines.push(
      "### Over the series: correct–correct (control) by layer",
      "",
      `| layer | ${entries.map((e) => e.name).join(" | ")} |`,
      `|---|${entries.map(() => "---").join("|")}|`,
    );
    for (let l = 0; l < entries[0].rows.length; l++) {
      lines.push(
        `| ${entries[0].rows[l].label} | ${
          entries.map((e) => {
            const r = e.rows[l];
            return r
              ? `${r.correctCorrect.pairs ? r.correctCorrect.mean.toFixed(3) : "–"} ` +
                `(${r.random.pairs ? r.random.mean.toFixed(3) : "–"})`
              : "–";
          }).join(" | ")
        } |`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}

/**
 * The chart of one entry: cosine against layer, one line per pair kind with its interval band
 * (kinds without pairs are left out).
 *
 * @param entry The measured model.
 * @returns The SVG text.
 * @throws {RangeError} When no pair kind has pairs.
 *
 * @example Usage
 * ```ts
 * import { anchorLayersChart } from "./anchor_layers_report.ts";
 * import { ok } from "node:assert/strict";
 *
 * const p = { mean: 0.5, lower: 0.4, upper: 0.6, pairs: 3, groups: 2 };
 * const row = (layer: number) => ({ layer, label: `l${layer}`, correctCorrect: p, incorrectIncorrect: p, correctIncorrect: p, random: p });
 * ok((await anchorLayersChart({ name: "m", rows: [row(0), row(1)] })).startsWith("<svg"));
 * ```
 */
export async function anchorLayersChart(entry: AnchorLayersEntry): Promise<string> {
  const series: LineSeries[] = [];
  for (const [key, title] of KINDS) {
    const rows = entry.rows.filter((r) => r[key].pairs > 0);
    if (rows.length === 0) continue;
    const bands = rows.every((r) => Number.isFinite(r[key].lower));
    series.push({
      name: title,
      x: rows.map((r) => r.layer),
      y: rows.map((r) => r[key].mean),
      ...(bands ? { lo: rows.map((r) => r[key].lower), hi: rows.map((r) => r[key].upper) } : {}),
    });
  }
  return await lineChart(series, {
    title: `Anchor cosine by layer: ${entry.name}`,
    xTitle: `layer (0 = embeddings, ${entry.rows.length - 1} = final norm)`,
    yTitle: "mean cosine, same prompt",
    legendTitle: "pair kind",
    integerX: true,
    points: true,
  });
}

/**
 * The chart of a series: correct–correct cosine against layer for every entry (solid), and the
 * random-position control of the first and last (for scale).
 *
 * @param entries Two or more measured models, in series order.
 * @returns The SVG text.
 * @throws {RangeError} When no entry has correct–correct pairs.
 *
 * @example Usage
 * ```ts
 * import { anchorSeriesChart } from "./anchor_layers_report.ts";
 * import { ok } from "node:assert/strict";
 *
 * const p = { mean: 0.5, lower: 0.4, upper: 0.6, pairs: 3, groups: 2 };
 * const rows = [0, 1].map((layer) => ({ layer, label: `l${layer}`, correctCorrect: p, incorrectIncorrect: p, correctIncorrect: p, random: p }));
 * ok((await anchorSeriesChart([{ name: "a", rows }, { name: "b", rows }])).startsWith("<svg"));
 * ```
 */
export async function anchorSeriesChart(entries: readonly AnchorLayersEntry[]): Promise<string> {
  const series: LineSeries[] = [];
  const ends = entries.length > 1 ? [entries[0], entries.at(-1)!] : [entries[0]];
  entries.forEach((entry, i) => {
    const rows = entry.rows.filter((r) => r.correctCorrect.pairs > 0);
    if (rows.length === 0) return;
    series.push({
      name: `${i + 1}. ${entry.name}: correct–correct`,
      x: rows.map((r) => r.layer),
      y: rows.map((r) => r.correctCorrect.mean),
    });
  });
  ends.forEach((entry) => {
    const i = entries.indexOf(entry);
    const rows = entry.rows.filter((r) => r.random.pairs > 0);
    if (rows.length === 0) return;
    series.push({
      name: `${i + 1}. ${entry.name}: random positions`,
      x: rows.map((r) => r.layer),
      y: rows.map((r) => r.random.mean),
    });
  });
  return await lineChart(series, {
    title: "Anchor cosine by layer over a series of models",
    xTitle: "layer (0 = embeddings)",
    yTitle: "mean cosine, same prompt",
    legendTitle: "model",
    integerX: true,
    points: true,
  });
}
