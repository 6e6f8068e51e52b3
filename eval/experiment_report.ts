// Copyright 2025 the halo authors. MIT license.
/**
 * The results page of `deno task reproduce`: from each run's final evaluation and its metrics
 * curves, a Markdown report (per setting: mean over seeds with a 95% Student-t interval; the
 * difference to the baseline paired by seed; every run; what is still pending; the machine, the
 * time and the exact configuration) and its SVG charts. Pure apart from drawing: the caller reads
 * the runs and writes the files.
 *
 * @module
 */
import { lineChart, type LineSeries } from "../plot/line_chart.ts";
import { barChart } from "../plot/bar_chart.ts";
import type { ExperimentConfig } from "./experiment_config.ts";
import { type TInterval, tInterval } from "./t_interval.ts";

/**
 * A per-step curve: `(step, value)` pairs in step order.
 *
 * @example Usage
 * ```ts
 * import type { StepCurve } from "./experiment_report.ts";
 *
 * const curve: StepCurve = { steps: [0, 20, 40], values: [0.12, 0.13, 0.15] };
 * ```
 */
export interface StepCurve {
  /** The steps. */
  steps: number[];
  /** One value per step. */
  values: number[];
}

/**
 * What the report needs of one run.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentRunData } from "./experiment_report.ts";
 *
 * const empty = { steps: [], values: [] };
 * const run: ExperimentRunData = {
 *   setting: "dapo", axis: "main", seed: 0, name: "dapo_seed0", step: 40, targetSteps: 40,
 *   final: { passAt1: 0.14, passAtK: 0.4, majAtK: 0.2, k: 8, problems: 200 },
 *   heldout: empty, heldoutK: 4, rolloutAccuracy: empty,
 *   anchors: { correct: empty, incorrect: empty, mixed: empty },
 *   seconds: { steps: 180, finalEval: 60 },
 * };
 * ```
 */
export interface ExperimentRunData {
  /** The setting. */
  setting: string;
  /** The setting's axis. */
  axis: string;
  /** The seed. */
  seed: number;
  /** The run's name (its folder). */
  name: string;
  /** The last step done (0: nothing yet). */
  step: number;
  /** `trainer.steps` of the run. */
  targetSteps: number;
  /** The final checkpoint's evaluation, or `null` when not (yet) evaluated. */
  final: { passAt1: number; passAtK: number; majAtK: number; k: number; problems: number } | null;
  /** The in-run held-out avg@k (`eval/avg@k` of `metrics.jsonl`). */
  heldout: StepCurve;
  /** The k of the in-run evaluation. */
  heldoutK: number;
  /** The training rollouts' accuracy per step (`reward/accuracy`). */
  rolloutAccuracy: StepCurve;
  /** Anchor cosines per step: correct–correct, incorrect–incorrect, correct–incorrect. */
  anchors: { correct: StepCurve; incorrect: StepCurve; mixed: StepCurve };
  /** Seconds: the steps (generate + score + train, all sessions) and the final evaluation. */
  seconds: { steps: number; finalEval: number };
  /**
   * The mean number of rows the align term took per step (`align/rows`), or `null` for a run
   * without the term. `0` flags a term that never acted: the run is the policy loss alone.
   */
  alignRows?: number | null;
}

/**
 * Input of {@linkcode experimentReport}.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentReportInput } from "./experiment_report.ts";
 *
 * function count(input: ExperimentReportInput): number {
 *   return input.runs.length;
 * }
 * ```
 */
export interface ExperimentReportInput {
  /** The experiment. */
  experiment: ExperimentConfig;
  /** The runs with data (finished or not). */
  runs: ExperimentRunData[];
  /** Runs of the grid not started yet, by name. */
  pending: string[];
  /** One line on the machine (CPU, cores, OS, runtime). */
  machine: string;
  /** When the report was made (ISO 8601). */
  generatedAt: string;
  /** The git commit, or `null`. */
  gitSha: string | null;
  /** The resolved run config (base + overrides) of the reference setting's first run. */
  reference: { name: string; config: unknown };
  /** For each other setting, how its resolved config differs from the reference (`key: a -> b`). */
  configDiffs: Record<string, string[]>;
  /** Hand-written notes shown under "Notes" (e.g. what the numbers do and do not show). */
  notes?: string;
  /** The starting model under the same final evaluation, or `null`. */
  start?: { model: string; passAt1: number; passAtK: number; majAtK: number } | null;
  /** The wall-clock seconds of the `reproduce` call that wrote this report. */
  sessionSeconds?: number;
}

/**
 * The report: Markdown and the charts (file names relative to the chart folder).
 *
 * @example Usage
 * ```ts
 * import type { ExperimentReport } from "./experiment_report.ts";
 *
 * const r: ExperimentReport = { markdown: "# x\n", charts: [{ file: "a.svg", svg: "<svg/>" }] };
 * ```
 */
export interface ExperimentReport {
  /** The Markdown page. */
  markdown: string;
  /** The SVG charts, `{file, svg}`, to write into the chart folder. */
  charts: { file: string; svg: string }[];
}

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : "–");
const num = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "–");

function duration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

function withCi(ci: TInterval, format: (x: number) => string): string {
  return ci.n < 2 ? format(ci.mean) : `${format(ci.mean)} ± ${format(ci.halfWidth)}`;
}

/** Mean of the curve's values over its first (or last) quarter of steps (at least one value). */
function quarter(curve: StepCurve, which: "first" | "last"): number {
  const n = curve.values.length;
  if (n === 0) return NaN;
  const size = Math.max(1, Math.floor(n / 4));
  const part = which === "first" ? curve.values.slice(0, size) : curve.values.slice(n - size);
  return part.reduce((a, b) => a + b, 0) / part.length;
}

function fromTo(curve: StepCurve, format: (x: number) => string): string {
  if (curve.values.length === 0) return "–";
  return `${format(quarter(curve, "first"))} → ${format(quarter(curve, "last"))}`;
}

function firstLast(curve: StepCurve, format: (x: number) => string): string {
  if (curve.values.length === 0) return "–";
  return `${format(curve.values[0])} (${curve.steps[0]}) → ${format(curve.values.at(-1)!)} ` +
    `(${curve.steps.at(-1)})`;
}

/** Values of several runs' curves averaged at the steps all of them have. */
function meanCurve(curves: StepCurve[], smooth: number): LineSeries | null {
  if (curves.length === 0) return null;
  const common = curves[0].steps.filter((s) => curves.every((c) => c.steps.includes(s)));
  if (common.length === 0) return null;
  const perRun = curves.map((c) => common.map((s) => c.values[c.steps.indexOf(s)]));
  const smoothed = perRun.map((values) =>
    values.map((_, i) => {
      const part = values.slice(Math.max(0, i - smooth + 1), i + 1);
      return part.reduce((a, b) => a + b, 0) / part.length;
    })
  );
  const y = common.map((_, i) => smoothed.reduce((a, v) => a + v[i], 0) / smoothed.length);
  const series: LineSeries = { name: "", x: common, y };
  if (curves.length >= 2) {
    const cis = common.map((_, i) => tInterval(smoothed.map((v) => v[i])));
    series.lo = cis.map((c) => c.lower);
    series.hi = cis.map((c) => c.upper);
  }
  return series;
}

function finished(runs: ExperimentRunData[]): ExperimentRunData[] {
  return runs.filter((r) => r.final !== null && r.step === r.targetSteps);
}

/**
 * Builds the results page and its charts.
 *
 * Tables: per setting the mean over its finished, evaluated runs of pass@1 (= avg@k of the final
 * evaluation), pass@k and maj@k, ± the half width of the 95% Student-t interval over seeds
 * (t with n − 1 degrees of freedom; none for one seed); the in-run held-out accuracy at the first
 * and last evaluation, the rollout accuracy and the anchor cosines averaged over the first and the
 * last quarter of the steps. With a baseline, the difference of each setting to it over the
 * seeds both ran (paired t-interval). Then every run, the pending runs, the configuration.
 *
 * @param input The experiment, the runs' data and the context lines.
 * @param options `chartDir`: the chart folder as the Markdown links it (relative to the page).
 * @returns The Markdown and the SVG charts.
 *
 * @example One setting, two seeds
 * ```ts
 * import { experimentReport, type ExperimentRunData } from "./experiment_report.ts";
 * import { parseExperiment } from "./experiment_config.ts";
 * import { ok } from "node:assert/strict";
 *
 * const experiment = parseExperiment("name: x\noutDir: out/x\nseeds: [0, 1]\nsettings: [{name: a}]\n", "x.yaml");
 * const curve = { steps: [0, 1], values: [0.1, 0.2] };
 * const run = (seed: number, passAt1: number): ExperimentRunData => ({
 *   setting: "a", axis: "main", seed, name: `a_seed${seed}`, step: 1, targetSteps: 1,
 *   final: { passAt1, passAtK: 0.5, majAtK: 0.3, k: 4, problems: 10 },
 *   heldout: curve, heldoutK: 2, rolloutAccuracy: curve,
 *   anchors: { correct: curve, incorrect: curve, mixed: curve }, seconds: { steps: 1, finalEval: 1 },
 * });
 * const report = await experimentReport({
 *   experiment, runs: [run(0, 0.1), run(1, 0.3)], pending: [], machine: "test",
 *   generatedAt: "2026-12-03T00:00:00Z", gitSha: null, reference: { name: "a", config: {} },
 *   configDiffs: {},
 * }, { chartDir: "x" });
 * ok(report.markdown.includes("| main | a | 2 | 20.0 ± 127.1 |"));
 * ok(report.charts.length > 0);
 * ```
 */
export async function experimentReport(
  input: ExperimentReportInput,
  options: { chartDir: string },
): Promise<ExperimentReport> {
  const { experiment } = input;
  const e = experiment.eval;
  const done = finished(input.runs);
  const k = done[0]?.final?.k ?? e.k;
  const heldoutK = input.runs[0]?.heldoutK ?? 0;
  const lines: string[] = [];
  lines.push(`# Results: ${experiment.name}`, "");
  lines.push(
    `Written by \`deno task reproduce ${experiment.source}\` on ${input.generatedAt}` +
      (input.gitSha ? ` at commit \`${input.gitSha.slice(0, 12)}\`` : "") + ".",
    "",
  );
  if (experiment.description) lines.push(experiment.description.trim(), "");
  const stepsTime = input.runs.reduce((a, r) => a + r.seconds.steps, 0);
  const evalTime = input.runs.reduce((a, r) => a + r.seconds.finalEval, 0);
  lines.push(
    `- Machine: ${input.machine}.`,
    `- Runs: ${done.length} finished and evaluated, ${input.runs.length - done.length} ` +
      `started but not finished or not evaluated, ${input.pending.length} not started.`,
    `- Time: the training steps of all runs ${duration(stepsTime)} (generate + score + train, ` +
      `summed over sessions; the in-run evaluations and start-up are not in it), the final ` +
      `evaluations ${duration(evalTime)}` +
      (input.sessionSeconds === undefined
        ? "."
        : `; the \`reproduce\` call that wrote this page took ${
          duration(input.sessionSeconds)
        } of wall time (finished runs are skipped, so a resumed grid's call is shorter).`),
    `- Final evaluation of every run: \`deno task eval\` of \`<run>/final\` on \`${e.data}\`, ` +
      `the first ${e.limit} problems, k = ${e.k} samples at temperature ${e.temperature}, top-p ` +
      `${e.topP}, at most ${e.maxNewTokens} new tokens, sampling seed ${e.seed} (the same for ` +
      `every run), backend ${e.backend}.`,
    "",
  );

  // Per setting.
  lines.push(
    "## Per setting",
    "",
    `Mean over the seeds' finished runs ± the half width of the 95% Student-t interval over ` +
      `seeds (t with n − 1 degrees of freedom; no interval for one seed); accuracies in %. ` +
      `pass@1 is avg@${k} of the final evaluation (the mean accuracy of its ${k} samples per ` +
      `problem); pass@${k} the unbiased estimator. In-run: the trainer's held-out avg@${heldoutK} ` +
      `at its first and last evaluation (step in brackets); rollout accuracy and anchor cosines ` +
      `(same prompt, at the anchor token, the layer of the run's align term or the final norm) ` +
      `are the means over the first → the last quarter of the steps.`,
    "",
    `| axis | setting | seeds | pass@1 | pass@${k} | maj@${k} | in-run avg@${heldoutK} | ` +
      `rollout acc. | cos correct–correct | cos incorrect–incorrect | cos correct–incorrect |`,
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  const settingRuns = (name: string) => done.filter((r) => r.setting === name);
  if (input.start) {
    lines.push(
      `| start | \`${input.start.model}\` (before RL) | – | ${pct(input.start.passAt1)} | ` +
        `${pct(input.start.passAtK)} | ${pct(input.start.majAtK)} | – | – | – | – | – |`,
    );
  }
  for (const s of experiment.settings) {
    const runs = settingRuns(s.name);
    if (runs.length === 0) continue;
    const ci = (f: (r: ExperimentRunData) => number) => withCi(tInterval(runs.map(f)), pct);
    const avgCurve = (f: (r: ExperimentRunData) => StepCurve, format: (x: number) => string) => {
      const a = runs.map((r) => quarter(f(r), "first")).filter(Number.isFinite);
      const b = runs.map((r) => quarter(f(r), "last")).filter(Number.isFinite);
      if (a.length === 0 || b.length === 0) return "–";
      return `${format(a.reduce((x, y) => x + y, 0) / a.length)} → ${
        format(b.reduce((x, y) => x + y, 0) / b.length)
      }`;
    };
    const heldStart = runs.map((r) => r.heldout.values[0]).filter(Number.isFinite);
    const heldEnd = runs.map((r) => r.heldout.values.at(-1)!).filter(Number.isFinite);
    const held = heldStart.length === 0
      ? "–"
      : `${pct(heldStart.reduce((a, b) => a + b, 0) / heldStart.length)} → ${
        pct(heldEnd.reduce((a, b) => a + b, 0) / heldEnd.length)
      }`;
    lines.push(
      `| ${s.axis} | ${s.name} | ${runs.length} | ${ci((r) => r.final!.passAt1)} | ` +
        `${ci((r) => r.final!.passAtK)} | ${ci((r) => r.final!.majAtK)} | ${held} | ` +
        `${avgCurve((r) => r.rolloutAccuracy, pct)} | ${
          avgCurve((r) => r.anchors.correct, num)
        } | ` +
        `${avgCurve((r) => r.anchors.incorrect, num)} | ${avgCurve((r) => r.anchors.mixed, num)} |`,
    );
  }
  lines.push("");

  // Paired differences to the baseline.
  if (experiment.baseline !== null) {
    const base = settingRuns(experiment.baseline);
    const rows: string[] = [];
    for (const s of experiment.settings) {
      if (s.name === experiment.baseline) continue;
      const pairs = settingRuns(s.name).flatMap((r) => {
        const b = base.find((x) => x.seed === r.seed);
        return b ? [[r, b] as const] : [];
      });
      if (pairs.length === 0) continue;
      const d = (f: (r: ExperimentRunData) => number) => {
        const ci = tInterval(pairs.map(([r, b]) => f(r) - f(b)));
        const sign = (x: number) => `${x >= 0 ? "+" : "−"}${pct(Math.abs(x))}`;
        return ci.n < 2 ? sign(ci.mean) : `${sign(ci.mean)} [${sign(ci.lower)}, ${sign(ci.upper)}]`;
      };
      const pass1 = tInterval(pairs.map(([r, b]) => r.final!.passAt1 - b.final!.passAt1));
      const reading = pass1.n < 2
        ? "one seed: no interval"
        : pass1.lower > 0
        ? "pass@1 higher (interval above 0)"
        : pass1.upper < 0
        ? "pass@1 lower (interval below 0)"
        : "no difference shown (interval contains 0)";
      rows.push(
        `| ${s.name} | ${pairs.map(([r]) => r.seed).join(", ")} | ${
          d((r) => r.final!.passAt1)
        } | ` +
          `${d((r) => r.final!.passAtK)} | ${reading} |`,
      );
    }
    if (rows.length > 0) {
      lines.push(
        `## Difference to \`${experiment.baseline}\` (paired by seed)`,
        "",
        `Setting minus baseline on the same seed, in points; with two or more seeds the 95% ` +
          `Student-t interval of the mean difference in brackets.`,
        "",
        `| setting | seeds | Δ pass@1 | Δ pass@${k} | reading |`,
        "|---|---|---|---|---|",
        ...rows,
        "",
      );
    }
  }

  // Charts.
  const charts: { file: string; svg: string }[] = [];
  const axes = [...new Set(experiment.settings.map((s) => s.axis))];
  const chartLinks: string[] = [];
  for (const axis of axes) {
    const settings = experiment.settings.filter((s) => s.axis === axis);
    const slug = axis.replace(/[^A-Za-z0-9_-]+/g, "_");
    const draw = async (
      file: string,
      title: string,
      yTitle: string,
      pick: (r: ExperimentRunData) => StepCurve,
      smooth: number,
    ) => {
      const series: LineSeries[] = [];
      const trained = (name: string, seeds: readonly number[] | null) =>
        input.runs.filter((r) =>
          r.setting === name && r.step === r.targetSteps && pick(r).values.length > 0 &&
          (seeds === null || seeds.includes(r.seed))
        );
      for (const s of settings) {
        const runs = trained(s.name, null);
        const mean = meanCurve(runs.map(pick), smooth);
        if (mean) series.push({ ...mean, name: `${s.name} (${runs.length})` });
      }
      if (series.length === 0) return;
      if (axis !== "main") {
        // For scale: the main settings on the seeds this axis ran.
        const seeds = [...new Set(settings.flatMap((s) => s.seeds))];
        for (const s of experiment.settings.filter((x) => x.axis === "main")) {
          const runs = trained(s.name, seeds);
          const mean = meanCurve(runs.map(pick), smooth);
          if (mean) {
            series.push({
              ...mean,
              name: `${s.name} (seed${seeds.length > 1 ? "s" : ""} ${seeds.join(", ")})`,
            });
          }
        }
      }
      const svg = await lineChart(series, {
        title,
        xTitle: "step",
        yTitle,
        legendTitle: "setting (seeds)",
        integerX: true,
        points: smooth === 1,
      });
      charts.push({ file, svg });
      chartLinks.push(`![${title}](${options.chartDir}/${file})`);
    };
    await draw(
      `${slug}_heldout.svg`,
      `${axis}: held-out avg@${heldoutK} during training`,
      `avg@${heldoutK}`,
      (r) => r.heldout,
      1,
    );
    await draw(
      `${slug}_rollout_accuracy.svg`,
      `${axis}: rollout accuracy (moving mean of 5 steps)`,
      "accuracy",
      (r) => r.rolloutAccuracy,
      5,
    );
    await draw(
      `${slug}_cos_correct.svg`,
      `${axis}: anchor cosine, correct–correct (moving mean of 5 steps)`,
      "cosine",
      (r) => r.anchors.correct,
      5,
    );
  }
  const bars = experiment.settings.flatMap((s) => {
    const runs = settingRuns(s.name);
    if (runs.length === 0) return [];
    const ci = tInterval(runs.map((r) => r.final!.passAt1));
    return [{
      label: s.name,
      value: ci.mean,
      ...(ci.n >= 2 ? { lo: ci.lower, hi: ci.upper } : {}),
      group: s.axis,
    }];
  });
  if (bars.length > 0) {
    const svg = await barChart(bars, {
      title: `pass@1 (avg@${k}) of the final checkpoints, mean over seeds (95% t-interval)`,
      xTitle: "setting",
      yTitle: "pass@1",
      legendTitle: "axis",
      labelAngle: bars.length > 4 ? -30 : 0,
    });
    charts.push({ file: "final_pass1.svg", svg });
    chartLinks.unshift(`![final pass@1](${options.chartDir}/final_pass1.svg)`);
  }
  if (chartLinks.length > 0) lines.push("## Charts", "", ...chartLinks.map((l) => `${l}\n`));
  lines.push(
    "Curves: the finished runs of each setting (evaluated or not), averaged over seeds; bands: " +
      "the 95% Student-t interval over seeds at each step (settings with two or more seeds). " +
      "An ablation axis's charts also show the main settings on the seeds the axis ran.",
    "",
  );

  // Every run.
  lines.push(
    "## Every run",
    "",
    `| run | steps | pass@1 | pass@${k} | in-run avg@${heldoutK} | rollout acc. | cos c–c | ` +
      `align rows/step | steps' time | final eval |`,
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const r of input.runs) {
    const rows = r.alignRows === undefined || r.alignRows === null ? "–" : r.alignRows.toFixed(1);
    lines.push(
      `| ${r.name} | ${r.step}/${r.targetSteps} | ${r.final ? pct(r.final.passAt1) : "–"} | ` +
        `${r.final ? pct(r.final.passAtK) : "–"} | ${firstLast(r.heldout, pct)} | ` +
        `${fromTo(r.rolloutAccuracy, pct)} | ${fromTo(r.anchors.correct, num)} | ${rows} | ` +
        `${duration(r.seconds.steps)} | ${r.final ? duration(r.seconds.finalEval) : "–"} |`,
    );
  }
  lines.push("");
  const idle = input.runs.filter((r) => r.alignRows === 0 && r.step > 0);
  if (idle.length > 0) {
    lines.push(
      `**Warning:** the align term of ${idle.map((r) => `\`${r.name}\``).join(", ")} took no ` +
        `row in any step (\`align/rows\` = 0): these runs are the policy loss alone, and their ` +
        `numbers say nothing about their align setting.`,
      "",
    );
  }
  if (input.pending.length > 0) {
    lines.push(
      "## Not run yet",
      "",
      `Configured and resumable: \`deno task reproduce ${experiment.source}\` runs them (add ` +
        `\`--settings a,b\` for a subset).`,
      "",
      input.pending.map((n) => `\`${n}\``).join(", "),
      "",
    );
  }
  if (input.notes) lines.push("## Notes", "", input.notes.trim(), "");

  // Configuration.
  lines.push(
    "## Configuration",
    "",
    `The experiment file \`${experiment.source}\` as run; each run is the base config ` +
      `${
        experiment.base ? `\`${experiment.base}\`` : "(the trainer's defaults)"
      } with the common ` +
      `overrides, the setting's overrides, then \`--run.outDir\`, \`--run.name\` and ` +
      `\`--run.seed\`.`,
    "",
    "```yaml",
    experiment.text.trimEnd(),
    "```",
    "",
  );
  lines.push(
    "How each setting's resolved config differs from that of " +
      `\`${input.reference.name}\` (apart from \`run.name\` and \`run.seed\`):`,
    "",
  );
  for (const [name, diffs] of Object.entries(input.configDiffs)) {
    lines.push(
      `- \`${name}\`: ${diffs.length === 0 ? "none" : diffs.map((d) => `\`${d}\``).join("; ")}`,
    );
  }
  lines.push(
    "",
    `<details><summary>The resolved run config of <code>${input.reference.name}</code> ` +
      `(its first run)</summary>`,
    "",
    "```json",
    JSON.stringify(input.reference.config, null, 1),
    "```",
    "",
    "</details>",
    "",
  );
  return { markdown: lines.join("\n"), charts };
}
