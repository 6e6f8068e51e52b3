// Copyright 2025 the halo authors. MIT license.
/**
 * Reports of `deno task eval`: a Markdown table of one summary, a side-by-side table of several,
 * and the pass@k / maj@k curve as SVG.
 *
 * @module
 */

import type { ConfidenceInterval } from "./confidence_interval.ts";
import type { EvalMetrics, EvalSummary } from "./eval_summary.ts";
import { lineChart, type LineSeries } from "../plot/line_chart.ts";

/**
 * One evaluated model (or adapter) of a comparison.
 *
 * @example Usage
 * ```ts
 * import type { NamedSummary } from "./eval_report.ts";
 * import type { EvalSummary } from "./eval_summary.ts";
 *
 * function names(entries: NamedSummary[]): string[] {
 *   return entries.map((e) => e.name);
 * }
 * ```
 */
export interface NamedSummary {
  /** The column or legend name. */
  name: string;
  /** Its summary. */
  summary: EvalSummary;
}

/**
 * `41.2 [37.1, 45.3]`: an estimate and its interval in percent, one decimal.
 *
 * @param ci The estimate.
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import { formatInterval } from "./eval_report.ts";
 * import assert from "node:assert/strict";
 *
 * const ci = { mean: 0.412, lower: 0.3714, upper: 0.4526, level: 0.95, method: "normal" as const, n: 500 };
 * assert.equal(formatInterval(ci), "41.2 [37.1, 45.3]");
 * ```
 */
export function formatInterval(ci: ConfidenceInterval): string {
  const pct = (x: number) => (100 * x).toFixed(1);
  return `${pct(ci.mean)} [${pct(ci.lower)}, ${pct(ci.upper)}]`;
}

function metricRows(
  m: EvalMetrics,
  ks: readonly number[],
  n: number,
): [string, ConfidenceInterval][] {
  return [
    ...ks.map((k): [string, ConfidenceInterval] => [`pass@${k}`, m.passAtK[k]]),
    [`avg@${n}`, m.avg],
    ...ks.map((k): [string, ConfidenceInterval] => [`maj@${k}`, m.majAtK[k]]),
  ];
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.map(escapeCell).join(" | ")} |`).join("\n");
}

function groupTable(
  title: string,
  groups: Record<string, EvalMetrics>,
  summary: EvalSummary,
): string {
  const n = summary.samplesPerProblem;
  const kMax = summary.ks.at(-1)!;
  const header = [title, "problems", "pass@1", `pass@${kMax}`, `avg@${n}`, `maj@${kMax}`];
  const rows = Object.entries(groups).map(([name, m]) => [
    name,
    String(m.problems),
    formatInterval(m.passAtK[1]),
    formatInterval(m.passAtK[kMax]),
    formatInterval(m.avg),
    formatInterval(m.majAtK[kMax]),
  ]);
  return table(header, rows);
}

/**
 * The Markdown report of one summary: the settings, the overall table (pass@k, avg@n, maj@k with
 * 95% intervals, in percent), per-subject and per-level tables when present, and the counts of
 * verifier reasons and stop reasons. A pure function of the summary.
 *
 * @param summary The summary.
 * @param options A title (default `"Evaluation"`).
 * @returns The Markdown text, ending in a newline.
 *
 * @example Usage
 * ```ts
 * import { summarizeEval } from "./eval_summary.ts";
 * import { summaryMarkdown } from "./eval_report.ts";
 * import assert from "node:assert/strict";
 *
 * const r = { gold: "1", text: "", reason: "match-string" as const, tokens: 4, stop: "eos" };
 * const summary = summarizeEval([
 *   { ...r, id: "a", sample: 0, answer: "1", correct: true, vote: 0 },
 *   { ...r, id: "b", sample: 0, answer: "2", correct: false, vote: 0 },
 * ], { config: { data: "toy" } });
 * const md = summaryMarkdown(summary);
 * assert.ok(md.includes("| pass@1 | 50.0 ["));
 * ```
 */
export function summaryMarkdown(summary: EvalSummary, options: { title?: string } = {}): string {
  const n = summary.samplesPerProblem;
  const parts: string[] = [`# ${options.title ?? "Evaluation"}`, ""];
  const settings = Object.entries(summary.config).map(([key, value]) => [
    key,
    typeof value === "string" ? value : JSON.stringify(value),
  ]);
  if (settings.length > 0) parts.push(table(["setting", "value"], settings), "");
  parts.push(
    `${summary.problems} problems scored, ${n} samples each` +
      (summary.skipped.length > 0
        ? `; ${summary.skipped.length} skipped (unusable gold: ${summary.skipped.join(", ")})`
        : "") +
      `. Estimates in percent with ${
        Math.round(summary.overall.avg.level * 100)
      }% confidence intervals over problems (${summary.overall.avg.method} approximation; ` +
      `a group of one problem gets no interval). ` +
      `pass@k: unbiased estimator from n samples; maj@k: majority answer of the first k samples.`,
    "",
    "## Overall",
    "",
    table(
      ["metric", "estimate [95% CI]"],
      metricRows(summary.overall, summary.ks, n).map(([name, ci]) => [name, formatInterval(ci)]),
    ),
    "",
  );
  if (summary.bySubject) {
    parts.push("## By subject", "", groupTable("subject", summary.bySubject, summary), "");
  }
  if (summary.byLevel) {
    parts.push("## By level", "", groupTable("level", summary.byLevel, summary), "");
  }
  parts.push(
    "## Samples",
    "",
    table(
      ["count", "value"],
      [
        ...Object.entries(summary.reasons).map(([k, v]) => [`reason ${k}`, String(v)]),
        ...Object.entries(summary.stops).map(([k, v]) => [`stop ${k}`, String(v)]),
        ["mean generated tokens", summary.meanTokens.toFixed(1)],
      ],
    ),
    "",
  );
  return parts.join("\n");
}

/**
 * A side-by-side Markdown table of several summaries: one column per model or adapter, one row
 * per metric (overall pass@k, avg@n, maj@k, then pass@1 and maj@k_max per subject and level when
 * present). The summaries must share n and the k values.
 *
 * @param entries The named summaries, in column order.
 * @returns The Markdown text, ending in a newline.
 * @throws {RangeError} When there is no entry or the summaries differ in n.
 *
 * @example Two columns
 * ```ts
 * import { summarizeEval } from "./eval_summary.ts";
 * import { comparisonMarkdown } from "./eval_report.ts";
 * import assert from "node:assert/strict";
 *
 * const r = { id: "a", sample: 0, gold: "1", text: "", answer: "1", reason: "match-string" as const,
 *   tokens: 4, stop: "eos", vote: 0 };
 * const good = summarizeEval([{ ...r, correct: true }]);
 * const bad = summarizeEval([{ ...r, correct: false, reason: "mismatch" }]);
 * const md = comparisonMarkdown([{ name: "base", summary: bad }, { name: "rl", summary: good }]);
 * assert.ok(md.includes("| metric | base | rl |"));
 * assert.ok(md.includes("| pass@1 | 0.0 [0.0, 0.0] | 100.0 [100.0, 100.0] |"));
 * ```
 */
export function comparisonMarkdown(entries: readonly NamedSummary[]): string {
  if (entries.length === 0) {
    throw new RangeError("Cannot compare evaluations: there is no summary");
  }
  const first = entries[0].summary;
  const n = first.samplesPerProblem;
  for (const e of entries) {
    if (e.summary.samplesPerProblem !== n) {
      throw new RangeError(
        `Cannot compare evaluations: "${e.name}" has ${e.summary.samplesPerProblem} samples per ` +
          `problem, "${entries[0].name}" has ${n}`,
      );
    }
  }
  const ks = first.ks;
  const kMax = ks.at(-1)!;
  const rows: string[][] = [];
  rows.push(["problems", ...entries.map((e) => String(e.summary.problems))]);
  metricRows(first.overall, ks, n).forEach(([name], i) => {
    rows.push([
      name,
      ...entries.map((e) => formatInterval(metricRows(e.summary.overall, ks, n)[i][1])),
    ]);
  });
  const groupRows = (
    label: string,
    pick: (s: EvalSummary) => Record<string, EvalMetrics> | undefined,
  ) => {
    const names = [...new Set(entries.flatMap((e) => Object.keys(pick(e.summary) ?? {})))];
    for (const name of names) {
      for (
        const [metric, get] of [
          ["pass@1", (m: EvalMetrics) => m.passAtK[1]],
          [`maj@${kMax}`, (m: EvalMetrics) => m.majAtK[kMax]],
        ] as const
      ) {
        rows.push([
          `${metric} · ${label}${name}`,
          ...entries.map((e) => {
            const m = pick(e.summary)?.[name];
            return m ? formatInterval(get(m)) : "–";
          }),
        ]);
      }
    }
  };
  groupRows("", (s) => s.bySubject);
  groupRows("level ", (s) => s.byLevel);
  const header = ["metric", ...entries.map((e) => e.name)];
  return [
    "# Evaluation: side by side",
    "",
    `Estimates in percent with 95% confidence intervals over problems; ${n} samples per problem.`,
    "",
    table(header, rows),
    "",
  ].join("\n");
}

/**
 * The pass@k and maj@k curves of one or more summaries as an SVG line chart:
 * k on a log2 axis, the estimate in percent with its 95% band.
 *
 * @param entries The named summaries (one entry: the series are just "pass@k" and "maj@k").
 * @param options The chart title (default `"pass@k"`).
 * @returns The SVG document.
 * @throws {RangeError} When there is no entry.
 *
 * @example Usage
 * ```ts
 * import { summarizeEval } from "./eval_summary.ts";
 * import { passAtKChart } from "./eval_report.ts";
 * import assert from "node:assert/strict";
 *
 * const r = { id: "a", gold: "1", text: "", answer: "1", reason: "match-string" as const,
 *   tokens: 4, stop: "eos", vote: 0 };
 * const summary = summarizeEval([
 *   { ...r, sample: 0, correct: false, answer: "2" }, { ...r, sample: 1, correct: true, vote: 1 },
 * ]);
 * const svg = await passAtKChart([{ name: "tiny", summary }]);
 * assert.ok(svg.startsWith("<svg") && svg.includes("maj@k"));
 * ```
 */
export function passAtKChart(
  entries: readonly NamedSummary[],
  options: { title?: string } = {},
): Promise<string> {
  if (entries.length === 0) {
    return Promise.reject(new RangeError("Cannot draw the pass@k chart: there is no summary"));
  }
  const series: LineSeries[] = [];
  for (const { name, summary } of entries) {
    const prefix = entries.length > 1 ? `${name} ` : "";
    const ks = summary.ks;
    for (
      const [metric, table] of [
        ["pass@k", summary.overall.passAtK],
        ["maj@k", summary.overall.majAtK],
      ] as const
    ) {
      series.push({
        name: `${prefix}${metric}`,
        x: ks,
        y: ks.map((k) => 100 * table[k].mean),
        lo: ks.map((k) => 100 * table[k].lower),
        hi: ks.map((k) => 100 * table[k].upper),
      });
    }
  }
  return lineChart(series, {
    title: options.title ?? "pass@k",
    xTitle: "k (samples)",
    yTitle: "% of problems (95% CI)",
    xScale: "log2",
    integerX: true,
    yDomain: [0, 100],
    points: true,
  });
}
