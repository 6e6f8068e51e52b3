/**
 * `deno task reproduce <experiment.yaml>`: runs an experiment's grid of RL runs (seeds × named
 * settings, `eval/experiment_config.ts`) one after the other, each an ordinary run folder
 * `<outDir>/<setting>_seed<seed>/`; then evaluates every final checkpoint with the experiment's
 * evaluation settings (`runEval`, into `<run>/eval_step<N>/`) and writes the results page
 * (`docs/results/<name>.md` with its SVG charts in `docs/results/<name>/`, all atomically).
 *
 *     deno task reproduce experiments/hidden_align.yaml [--settings a,b] [--report-only]
 *                         [--no-eval] [--workers N] [--machine TEXT] [--quiet]
 *
 * Resumable: a finished run (its last checkpoint at `trainer.steps` and `final/` written) is
 * skipped, a started one resumes from its newest checkpoint (the trainer's bit-exact resume), and
 * a run whose checkpoint config differs from what the experiment now gives (apart from
 * `trainer.steps`, `rl.eval.every` and `checkpoint.*`) is an error naming the key. Raising
 * `trainer.steps` continues finished runs. A finished evaluation is reused, a killed one resumes
 * (both through `runEval`, which refuses a folder whose model, adapter or data files changed since
 * its samples were drawn).
 * Hand-written notes in `docs/results/<name>.notes.md` are copied into the page.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { basename, dirname, join } from "node:path";
import { loadConfig } from "./load_config.ts";
import type { TrainConfig } from "../trainer/config.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { checkRunConfig } from "../trainer/check_run_config.ts";
import { withSavedConfigDefaults } from "../trainer/saved_config.ts";
import { latestCheckpoint } from "../trainer/checkpoint.ts";
import { gitSha } from "../trainer/git_sha.ts";
import { exists } from "../internal/exists.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";
import { readMetrics } from "../plot/read_metrics.ts";
import {
  type ExperimentConfig,
  type ExperimentRun,
  experimentRuns,
  readExperiment,
} from "../eval/experiment_config.ts";
import {
  experimentReport,
  type ExperimentRunData,
  type StepCurve,
} from "../eval/experiment_report.ts";
import { runEval } from "../eval/run_eval.ts";
import type { EvalSummary } from "../eval/eval_summary.ts";
import { readJsonFile } from "../internal/read_json.ts";
import { configValueText, flattenConfig } from "../internal/config_values.ts";

const USAGE = "usage: deno task reproduce <experiment.yaml> [--settings a,b] [--report-only] " +
  "[--no-eval] [--workers N] [--machine TEXT] [--quiet]";

/**
 * Options of {@linkcode reproduce}.
 *
 * @example Usage
 * ```ts
 * import type { ReproduceOptions } from "./reproduce.ts";
 *
 * const options: ReproduceOptions = { settings: ["dapo", "hidden_align"], workers: 2 };
 * ```
 */
export interface ReproduceOptions {
  /** Train and evaluate only these settings (the report still shows every run there is). */
  settings?: readonly string[];
  /** Train the runs (default `true`); `false` only evaluates and reports what exists. */
  train?: boolean;
  /** Evaluate the finished runs (default `true`). */
  evaluate?: boolean;
  /** Where information lines go; default stderr. */
  log?: (line: string) => void;
  /** Show the trainer's and the evaluation's progress lines (default `false`). */
  progress?: boolean;
  /** CPU worker threads of the trainer; default 1. Results do not depend on it. */
  workers?: number;
  /**
   * The machine as the page names it (e.g. the CPU model, which Deno cannot read without
   * `--allow-all`); default the cores, memory, OS and Deno version it can see.
   */
  machine?: string;
}

/**
 * What {@linkcode reproduce} did to each run.
 *
 * @example Usage
 * ```ts
 * import type { ReproduceRunAction } from "./reproduce.ts";
 *
 * const a: ReproduceRunAction = "skipped";
 * ```
 */
export type ReproduceRunAction = "trained" | "resumed" | "skipped" | "not selected";

/**
 * Result of {@linkcode reproduce}.
 *
 * @example Usage
 * ```ts
 * import type { ReproduceResult } from "./reproduce.ts";
 *
 * function line(r: ReproduceResult): string {
 *   return `${r.resultsPath}: ${r.charts.length} charts, ${r.pending.length} runs pending`;
 * }
 * ```
 */
export interface ReproduceResult {
  /** The results page. */
  resultsPath: string;
  /** The chart files written. */
  charts: string[];
  /** Each run of the grid and what happened to it (resumedFrom: the checkpoint, when resumed). */
  runs: { name: string; action: ReproduceRunAction; resumedFrom: string | null }[];
  /** Runs of the grid without a folder yet. */
  pending: string[];
  /** Wall-clock seconds of this call. */
  seconds: number;
}

/** Keys a run may change without becoming another run. */
const FREE_KEYS = ["trainer.steps", "rl.eval.every", "checkpoint."];

/**
 * The keys (flattened, `a.b.c`) whose values differ between two configs, each as
 * `key: a -> b`.
 *
 * @param a The first config.
 * @param b The second config.
 * @param options `ignore`: keys (or prefixes ending in `.`) to leave out.
 * @returns The differences, sorted by key.
 *
 * @example Usage
 * ```ts
 * import { configDifferences } from "./reproduce.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(
 *   configDifferences({ a: { b: 1, c: 2 } }, { a: { b: 1, c: 3 } }),
 *   ["a.c: 2 -> 3"],
 * );
 * ```
 */
export function configDifferences(
  a: unknown,
  b: unknown,
  options: { ignore?: readonly string[] } = {},
): string[] {
  const x = flattenConfig(a);
  const y = flattenConfig(b);
  const ignored = (key: string) =>
    (options.ignore ?? []).some((p) => (p.endsWith(".") ? key.startsWith(p) : key === p));
  return [...new Set([...x.keys(), ...y.keys()])].sort()
    .filter((key) => !ignored(key) && x.get(key) !== y.get(key))
    .map((key) =>
      `${key}: ${configValueText(key, x.get(key))} -> ${configValueText(key, y.get(key))}`
    );
}

function runConfig(experiment: ExperimentConfig, run: ExperimentRun): Promise<TrainConfig> {
  return loadConfig(experiment.base ?? undefined, { overrides: run.overrides });
}

/**
 * Whether `path` holds a summary whose tables end at `k` (one written before the k values ended at
 * n, e.g. pass@8 for k = 10, is summarised again by `runEval` from its samples, so that every run
 * of the report has the same columns).
 */
async function summaryCurrent(path: string, k: number): Promise<boolean> {
  return await exists(path) && (await readSummary(path)).ks.at(-1) === k;
}

async function readSummary(path: string): Promise<EvalSummary> {
  return await readJsonFile(path, {
    context: "Cannot continue the experiment: reading",
  }) as EvalSummary;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return await readJsonFile(path, { context: "Cannot continue the experiment: reading" }) as Record<
    string,
    unknown
  >;
}

/** The run's state: no checkpoint, or its newest checkpoint's step and whether `final/` exists. */
async function runState(
  run: ExperimentRun,
  config: TrainConfig,
): Promise<{ checkpoint: string | null; step: number; finished: boolean }> {
  const checkpoint = await latestCheckpoint(run.runDir);
  if (checkpoint === null) return { checkpoint, step: 0, finished: false };
  const meta = await readJson(join(checkpoint, "meta.json"));
  // A checkpoint from before rl.rollout existed ran local rollouts (the defaults).
  const changes = configDifferences(
    withSavedConfigDefaults(meta.config),
    JSON.parse(JSON.stringify(config)),
    {
      ignore: FREE_KEYS,
    },
  );
  if (changes.length > 0) {
    throw new RangeError(
      `Cannot continue run "${run.name}" of the experiment: key ${changes[0].replace(/:.*/, "")} ` +
        `of its checkpoint "${checkpoint}" differs from what the experiment gives ` +
        `(${changes[0].replace(/^[^:]*: /, "")}): delete "${run.runDir}" or change the experiment`,
    );
  }
  const step = meta.step as number;
  if (step > config.trainer.steps) {
    throw new RangeError(
      `Cannot continue run "${run.name}": its checkpoint is at step ${step}, beyond key ` +
        `"trainer.steps" of the experiment (${config.trainer.steps})`,
    );
  }
  const finished = step === config.trainer.steps &&
    (await exists(join(run.runDir, "final", "config.json")) ||
      await exists(join(run.runDir, "final", "adapter_config.json")));
  return { checkpoint, step, finished };
}

function curve(rows: { step: number; values: Record<string, number> }[], key: string): StepCurve {
  const byStep = new Map<number, number>();
  for (const r of rows) if (Number.isFinite(r.values[key])) byStep.set(r.step, r.values[key]);
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return { steps, values: steps.map((s) => byStep.get(s)!) };
}

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

async function stepSeconds(runDir: string): Promise<number> {
  const path = join(runDir, "timings.jsonl");
  if (!(await exists(path))) return 0;
  const byStep = new Map<number, number>();
  for (const line of (await Deno.readTextFile(path)).split("\n")) {
    if (line.trim() === "") continue;
    const t = JSON.parse(line);
    byStep.set(t.step, t.generate_s + t.score_s + t.train_s); // a redone step counts once
  }
  return [...byStep.values()].reduce((a, b) => a + b, 0);
}

async function evalSeconds(dir: string): Promise<number> {
  const path = join(dir, "timing.jsonl");
  if (!(await exists(path))) return 0;
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim() !== "")
    .reduce((a, l) => a + (JSON.parse(l).seconds ?? 0), 0);
}

function machineLine(): string {
  let memory = "";
  let release = "";
  try {
    memory = `, ${(Deno.systemMemoryInfo().total / 2 ** 30).toFixed(0)} GiB memory`;
    release = ` ${Deno.osRelease()}`;
  } catch {
    // No --allow-sys: memory and kernel stay unnamed.
  }
  return `${navigator.hardwareConcurrency} logical cores${memory}, ${Deno.build.os}${release} ` +
    `${Deno.build.arch}, Deno ${Deno.version.deno}`;
}

/**
 * Runs (or resumes) an experiment's grid, evaluates the final checkpoints and writes the results
 * page with its charts. Needs `--allow-read --allow-write --allow-env`.
 *
 * @param path The experiment YAML file.
 * @param options Which settings, whether to train and evaluate, output.
 * @returns The page, the charts, and what happened to each run.
 * @throws {RangeError} On a bad experiment or run config (naming the file and key), or a run
 *   folder whose config the experiment no longer gives.
 *
 * @example A whole experiment (see tests/reproduce_test.ts for a tiny one)
 * ```ts ignore
 * import { reproduce } from "./reproduce.ts";
 *
 * const result = await reproduce("experiments/hidden_align.yaml", {
 *   settings: ["dapo", "hidden_align"],
 * });
 * console.log(result.resultsPath);
 * ```
 */
export async function reproduce(
  path: string,
  options: ReproduceOptions = {},
): Promise<ReproduceResult> {
  const started = performance.now();
  const log = options.log ?? ((line: string) => console.error(line));
  const experiment = await readExperiment(path);
  const all = experimentRuns(experiment);
  const selected = new Set(
    experimentRuns(experiment, { settings: options.settings })
      .map((r) => r.name),
  );
  const configs = new Map<string, TrainConfig>();
  for (const run of all) configs.set(run.name, await runConfig(experiment, run));
  for (const run of all) {
    if (configs.get(run.name)!.trainer.mode !== "rl") {
      throw new RangeError(
        `Cannot run experiment "${path}": run "${run.name}" has key "trainer.mode" ` +
          `"${configs.get(run.name)!.trainer.mode}": expected "rl"`,
      );
    }
    // The page's in-run held-out column and curves end at the evaluation after the last step.
    if (!configs.get(run.name)!.rl.eval.final) {
      throw new RangeError(
        `Cannot run experiment "${path}": run "${run.name}" has key "rl.eval.final" false: ` +
          `expected true (the results page reads the held-out evaluation after the last step)`,
      );
    }
  }

  // Every run to train is checked before the first one trains: what its start checks against the
  // model's config.json (an align layer the model lacks, the adapters, the warm-up), and a
  // started run's checkpoint config against the experiment's.
  if (options.train !== false) {
    for (const run of all.filter((r) => selected.has(r.name))) {
      const config = configs.get(run.name)!;
      try {
        await checkRunConfig(config);
      } catch (error) {
        if (error instanceof Error) {
          error.message = `Cannot run experiment "${path}": run "${run.name}": ${error.message}`;
        }
        throw error;
      }
      await runState(run, config);
    }
  }

  // Train, one run after the other.
  const actions: ReproduceResult["runs"] = [];
  for (const run of all) {
    const config = configs.get(run.name)!;
    if (!selected.has(run.name) || options.train === false) {
      actions.push({ name: run.name, action: "not selected", resumedFrom: null });
      continue;
    }
    const state = await runState(run, config);
    if (state.finished) {
      log(`${run.name}: finished at step ${state.step}, skipped`);
      actions.push({ name: run.name, action: "skipped", resumedFrom: null });
      continue;
    }
    const resume = state.checkpoint !== null;
    log(
      resume
        ? `${run.name}: resuming from ${state.checkpoint} (step ${state.step} of ` +
          `${config.trainer.steps})`
        : `${run.name}: training ${config.trainer.steps} steps`,
    );
    const began = performance.now();
    const result = await runRl(config, {
      resume,
      overwrite: !resume, // a folder without a checkpoint holds nothing to keep
      plots: true,
      workers: options.workers,
      progress: options.progress ? undefined : null,
      log: options.progress ? undefined : () => {},
    });
    log(
      `${run.name}: done at step ${result.step} in ${
        ((performance.now() - began) / 1000).toFixed(0)
      } s`,
    );
    actions.push({
      name: run.name,
      action: resume ? "resumed" : "trained",
      resumedFrom: result.resumedFrom,
    });
  }

  // Evaluate the finished runs and gather their data.
  const runs: ExperimentRunData[] = [];
  const pending: string[] = [];
  const e = experiment.eval;
  for (const run of all) {
    const config = configs.get(run.name)!;
    if (!(await exists(run.runDir))) {
      pending.push(run.name);
      continue;
    }
    const state = await runState(run, config);
    const metricsPath = join(run.runDir, "metrics.jsonl");
    const rows = (await exists(metricsPath)) ? await readMetrics(metricsPath) : [];
    const k = config.rl.eval.samples;
    const evalDir = join(run.runDir, `eval_step${String(config.trainer.steps).padStart(6, "0")}`);
    let summary: EvalSummary | null = null;
    if (state.finished) {
      const summaryPath = join(evalDir, "summary.json");
      // A finished evaluation goes through runEval too (it re-summarizes without the model): it
      // refuses a folder whose model or data files changed since its samples were drawn.
      if (options.evaluate !== false && selected.has(run.name)) {
        if (!(await summaryCurrent(summaryPath, e.k))) {
          log(`${run.name}: evaluating ${join(run.runDir, "final")}`);
        }
        await runEvalIn({
          model: join(run.runDir, "final"),
          data: e.data,
          k: e.k,
          temperature: e.temperature,
          topP: e.topP,
          maxNewTokens: e.maxNewTokens,
          limit: e.limit,
          seed: e.seed,
          backend: e.backend,
          outDir: evalDir,
          progress: options.progress ? undefined : false,
          log: options.progress ? undefined : () => {},
        });
      }
      if (await exists(summaryPath)) summary = await readSummary(summaryPath);
    }
    const kMax = summary ? summary.ks.at(-1)! : e.k;
    runs.push({
      setting: run.setting,
      axis: run.axis,
      seed: run.seed,
      name: run.name,
      step: state.step,
      targetSteps: config.trainer.steps,
      final: summary
        ? {
          passAt1: summary.overall.avg.mean,
          passAtK: summary.overall.passAtK[kMax].mean,
          majAtK: summary.overall.majAtK[kMax].mean,
          k: kMax,
          problems: summary.problems,
        }
        : null,
      heldout: curve(rows, `eval/avg@${k}`),
      heldoutK: k,
      rolloutAccuracy: curve(rows.filter((r) => r.step > 0), "reward/accuracy"),
      anchors: {
        correct: curve(rows, "anchor/cos_correct"),
        incorrect: curve(rows, "anchor/cos_incorrect"),
        mixed: curve(rows, "anchor/cos_mixed"),
      },
      seconds: { steps: await stepSeconds(run.runDir), finalEval: await evalSeconds(evalDir) },
      alignRows: config.rl.losses.some((t) => t.name === "hidden_align")
        ? mean(curve(rows, "align/rows").values)
        : null,
    });
  }

  // The starting model under the same evaluation (every run starts from it).
  const reference = experiment.baseline ?? experiment.settings[0].name;
  const firstOf = (setting: string) => all.find((r) => r.setting === setting)!;
  const referenceConfig = configs.get(firstOf(reference).name)!;
  let start: { model: string; passAt1: number; passAtK: number; majAtK: number } | null = null;
  const startModel = referenceConfig.model.path;
  const startDir = join(experiment.outDir, "eval_start_model");
  if (
    !startModel.startsWith("builtin:") && referenceConfig.adapters.kind === "none" &&
    all.every((r) => configs.get(r.name)!.model.path === startModel)
  ) {
    const summaryPath = join(startDir, "summary.json");
    if (options.evaluate !== false) {
      if (!(await summaryCurrent(summaryPath, e.k))) {
        log(`evaluating the starting model ${startModel}`);
      }
      await runEvalIn({
        model: startModel,
        data: e.data,
        k: e.k,
        temperature: e.temperature,
        topP: e.topP,
        maxNewTokens: e.maxNewTokens,
        limit: e.limit,
        seed: e.seed,
        backend: e.backend,
        outDir: startDir,
        progress: options.progress ? undefined : false,
        log: options.progress ? undefined : () => {},
      });
    }
    if (await exists(summaryPath)) {
      const summary = await readSummary(summaryPath);
      const kMax = summary.ks.at(-1)!;
      start = {
        model: startModel,
        passAt1: summary.overall.avg.mean,
        passAtK: summary.overall.passAtK[kMax].mean,
        majAtK: summary.overall.majAtK[kMax].mean,
      };
    }
  }

  // The page: the baseline's (or first setting's) whole config, the others as differences.
  const configDiffs: Record<string, string[]> = {};
  for (const s of experiment.settings) {
    if (s.name === reference) continue;
    configDiffs[s.name] = configDifferences(referenceConfig, configs.get(firstOf(s.name).name), {
      ignore: ["run.name", "run.seed"],
    });
  }
  const resultsPath = experiment.results;
  const notesPath = resultsPath.replace(/\.md$/, "") + ".notes.md";
  const notes = (await exists(notesPath)) ? await Deno.readTextFile(notesPath) : undefined;
  const chartDir = resultsPath.replace(/\.md$/, "");
  const report = await experimentReport({
    experiment,
    runs,
    pending,
    machine: options.machine ? `${options.machine} (${machineLine()})` : machineLine(),
    start,
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    gitSha: await gitSha(),
    reference: { name: reference, config: referenceConfig },
    configDiffs,
    notes,
    sessionSeconds: (performance.now() - started) / 1000,
  }, { chartDir: basename(chartDir) });
  await Deno.mkdir(chartDir, { recursive: true });
  const charts: string[] = [];
  for (const chart of report.charts) {
    const file = join(chartDir, chart.file);
    await writeFileAtomic(file, chart.svg);
    charts.push(file);
  }
  await Deno.mkdir(dirname(resultsPath), { recursive: true });
  await writeFileAtomic(resultsPath, report.markdown);
  log(`results: ${resultsPath} (${charts.length} charts in ${chartDir})`);
  return {
    resultsPath,
    charts,
    runs: actions,
    pending,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The command line: parses the arguments, runs {@linkcode reproduce}, and returns the exit code
 * (0 done, 2 usage or input error).
 *
 * @param args The arguments (without the program name).
 * @returns The exit code.
 *
 * @example Usage
 * ```ts
 * import { main } from "./reproduce.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(await main(["--help"]), 0);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        settings: { type: "string" },
        "report-only": { type: "boolean", default: false },
        "no-eval": { type: "boolean", default: false },
        workers: { type: "string" },
        quiet: { type: "boolean", default: false },
        machine: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(`Expected one experiment file: got ${positionals.length}\n${USAGE}`);
    return 2;
  }
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && (!Number.isSafeInteger(workers) || workers < 1)) {
    console.error(`--workers must be a positive integer: current value is "${values.workers}"`);
    return 2;
  }
  try {
    await reproduce(positionals[0], {
      settings: values.settings?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
      train: !values["report-only"],
      evaluate: !values["no-eval"],
      progress: !values.quiet,
      workers,
      machine: values.machine,
    });
    return 0;
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * `runEval` for a grid's evaluation folder: its refusals advise `deno task eval`'s flags (another
 * --out, --overwrite), which reproduce does not take; they advise deleting the folder instead.
 */
async function runEvalIn(options: Parameters<typeof runEval>[0]): Promise<void> {
  try {
    await runEval(options);
  } catch (error) {
    if (error instanceof Error && error.message.includes("--overwrite")) {
      error.message = error.message.replace(
        /(give the same (files|settings), )?(use )?another --out,? or --overwrite/,
        `delete "${options.outDir}" to evaluate again with the current files and settings`,
      );
    }
    throw error;
  }
}
