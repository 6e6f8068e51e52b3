/**
 * The HILO experiment (issue #10): supervised fine-tuning on the multi-task suite
 * (`data.task: suite`) from one base model with several adapter variants (plain LoRA, uniform
 * LoRA-MoE, MoLA-style experts by layer, HILO experts and ranks by layer), each over several
 * seeds; then a Markdown table of held-out exact-answer accuracy per task and overall (mean ± 95%
 * t-interval over seeds), trainable and active-per-token parameters, train tokens/s and wall time,
 * plus an SVG bar chart.
 *
 * ```sh
 * deno task hilo-experiment                      # experiments/hilo.yaml
 * deno task hilo-experiment experiments/hilo.yaml --seeds=0,1 --set=trainer.steps=4 \
 *   --set=trainer.warmupSteps=0 --report=/tmp/hilo_smoke.md --out-dir=/tmp/hilo_smoke
 * ```
 *
 * The experiment file (YAML) names the shared SFT config and the variants:
 *
 * ```yaml
 * config: experiments/hilo_sft.yaml # a run config (cli/load_config.ts); run.name/seed are set here
 * outDir: out/hilo_experiment       # one run directory per variant and seed
 * report: docs/results/hilo.md      # the table (the chart goes beside it, .svg)
 * seeds: [0, 1, 2]                  # run.seed of each repeat
 * variants:
 *   - name: lora                    # letters, digits, _ and -
 *     label: LoRA r=8
 *     overrides: ["--adapters.kind=lora", "--adapters.r=8"]
 * ```
 *
 * Resumable: a run whose `result.json` exists is reused when it ran with the config the
 * experiment now gives (its `result.json` holds that config; any other key is an error naming it);
 * a run directory with a checkpoint resumes from it; anything else starts over. Every file is
 * written atomically. Runs changed by `--set` need their own `--report` and their own `--out-dir`
 * (the experiment's `report` is its results page and its `outDir` holds its runs: a smoke test must
 * neither overwrite the page nor reuse, resume or write into the real runs); `--out-dir` may not be
 * the experiment's `outDir`, and `--set` may not set `run.name`, `run.outDir` or `run.seed` (the
 * experiment sets them).
 *
 * ```sh
 * deno task hilo-experiment experiments/hilo.yaml --seeds=0 --set=trainer.steps=4 \
 *   --set=trainer.warmupSteps=0 --report=/tmp/hilo_smoke.md --out-dir=/tmp/hilo_smoke
 * ```
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { hiloParameterCounts } from "../adapters/hilo.ts";
import { runAdapters } from "../trainer/run_adapters.ts";
import { SUITE_TASKS, type SuiteTask } from "../data/task_suite.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";
import { exists } from "../internal/exists.ts";
import type { Progress } from "../internal/progress.ts";
import { readQwen3Config } from "../model/config.ts";
import { barChart } from "../plot/bar_chart.ts";
import type { TrainConfig } from "../trainer/config.ts";
import { runSft } from "../trainer/sft.ts";
import { checkRunConfig } from "../trainer/check_run_config.ts";
import { loadConfig } from "./load_config.ts";
import { type MeanInterval, tInterval95 } from "./_t_interval.ts";
import { readJsonFile } from "../internal/read_json.ts";
import { withSavedConfigDefaults } from "../trainer/saved_config.ts";
import { configDifferences } from "./reproduce.ts";

/**
 * One adapter variant of the experiment.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentVariant } from "./hilo_experiment.ts";
 *
 * const v: ExperimentVariant = {
 *   name: "hilo",
 *   label: "HILO",
 *   overrides: ["--adapters.kind=hilo", "--adapters.hilo.experts=2-4-6-8"],
 * };
 * ```
 */
export interface ExperimentVariant {
  /** Directory-safe name (`<name>_s<seed>` is the run's name). */
  name: string;
  /** The name in the table and chart. */
  label: string;
  /** `--key=value` overrides of the shared config (cli/load_config.ts syntax). */
  overrides: string[];
}

/**
 * An experiment file, read by {@linkcode readExperiment}.
 *
 * @example Usage
 * ```ts
 * import type { Experiment } from "./hilo_experiment.ts";
 *
 * const e: Experiment = {
 *   path: "experiments/hilo.yaml", config: "experiments/hilo_sft.yaml", outDir: "out/x",
 *   report: "docs/results/hilo.md", seeds: [0], variants: [], text: "",
 * };
 * ```
 */
export interface Experiment {
  /** The experiment file. */
  path: string;
  /** The shared run config (resolved against the current directory). */
  config: string;
  /** Where the runs go. */
  outDir: string;
  /** The Markdown report; the chart is the same path with `.svg`. */
  report: string;
  /** The seeds (`run.seed`). */
  seeds: number[];
  /** The variants, in table order. */
  variants: ExperimentVariant[];
  /** The file's text (quoted in the report). */
  text: string;
}

/**
 * Reads and checks an experiment file.
 *
 * @param path The YAML file.
 * @returns The experiment.
 * @throws {TypeError} When a key is missing, unknown or of the wrong type (the message names the
 *   file and key).
 * @throws {RangeError} When seeds or variant names repeat or a name is not directory-safe.
 *
 * @example Read the bundled experiment
 * ```ts
 * import { readExperiment } from "./hilo_experiment.ts";
 * import { ok } from "node:assert/strict";
 *
 * const e = await readExperiment("experiments/hilo.yaml");
 * ok(e.variants.length >= 4 && e.seeds.length >= 3);
 * ```
 */
export async function readExperiment(path: string): Promise<Experiment> {
  const text = await Deno.readTextFile(path);
  const where = `Cannot read experiment "${path}"`;
  const value = parseYaml(text) as Record<string, unknown> | null;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(
      `${where}: expected a mapping with keys config, outDir, report, seeds, variants`,
    );
  }
  const known = ["config", "outDir", "report", "seeds", "variants"];
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new TypeError(`${where}: unknown key "${key}": expected one of ${known.join(", ")}`);
    }
  }
  const string = (key: string, v: unknown): string => {
    if (typeof v !== "string" || v === "") {
      throw new TypeError(
        `${where}: key "${key}" must be a non-empty string: current value is ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const seeds = value.seeds;
  if (
    !Array.isArray(seeds) || seeds.length === 0 ||
    !seeds.every((s) => Number.isSafeInteger(s) && s >= 0)
  ) {
    throw new TypeError(
      `${where}: key "seeds" must be a non-empty list of non-negative integers: current value is ${
        JSON.stringify(seeds)
      }`,
    );
  }
  if (new Set(seeds).size !== seeds.length) {
    throw new RangeError(
      `${where}: key "seeds" must not repeat a seed: current value is ${JSON.stringify(seeds)}`,
    );
  }
  const list = value.variants;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`${where}: key "variants" must be a non-empty list`);
  }
  const variants = list.map((v, i): ExperimentVariant => {
    const key = `variants[${i}]`;
    if (v === null || typeof v !== "object") {
      throw new TypeError(`${where}: key "${key}" must be a mapping with name, label, overrides`);
    }
    const name = string(`${key}.name`, v.name);
    if (!/^[A-Za-z0-9_-]+$/.test(name)) {
      throw new RangeError(
        `${where}: key "${key}.name" must use only letters, digits, _ and -: current value is ${
          JSON.stringify(name)
        }`,
      );
    }
    const overrides = v.overrides ?? [];
    if (!Array.isArray(overrides) || !overrides.every((o) => typeof o === "string")) {
      throw new TypeError(`${where}: key "${key}.overrides" must be a list of strings`);
    }
    return {
      name,
      label: v.label === undefined ? name : string(`${key}.label`, v.label),
      overrides,
    };
  });
  const names = variants.map((v) => v.name);
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined) {
    throw new RangeError(`${where}: key "variants" must not repeat a name: "${repeated}" repeats`);
  }
  return {
    path,
    config: string("config", value.config),
    outDir: string("outDir", value.outDir),
    report: string("report", value.report),
    seeds: seeds as number[],
    variants,
    text,
  };
}

/**
 * What one finished run measured (its `result.json`).
 *
 * @example Usage
 * ```ts
 * import type { RunRecord } from "./hilo_experiment.ts";
 *
 * const r: RunRecord = {
 *   variant: "lora", seed: 0, steps: 2, metrics: { "eval/accuracy": 0.5 }, trainable: 10,
 *   activePerToken: 10, allocation: [], trainTokens: 100, trainSeconds: 1, wallSeconds: 2,
 *   backend: "cpu", config: {},
 * };
 * ```
 */
export interface RunRecord {
  /** The variant's name. */
  variant: string;
  /** `run.seed`. */
  seed: number;
  /** Optimizer steps done. */
  steps: number;
  /** The last metrics line (held-out evaluation after the last step). */
  metrics: Record<string, number>;
  /** Trainable adapter parameters (checked against `hiloParameterCounts`). */
  trainable: number;
  /** Parameters a token uses (`hiloParameterCounts`; = trainable for LoRA). */
  activePerToken: number;
  /** Per layer: experts, rank, top-k (empty for plain LoRA). */
  allocation: { experts: number; rank: number; topK: number }[];
  /** Tokens of the training steps timed in this process (a resumed run: the steps after it). */
  trainTokens: number;
  /** Seconds of those steps (training only, no evaluation or checkpoints). */
  trainSeconds: number;
  /** Seconds of the whole run in this process (set-up, training, evaluation, saves). */
  wallSeconds: number;
  /** Where the math ran. */
  backend: string;
  /** The run's full config. */
  config: unknown;
}

/**
 * Options of {@linkcode runHiloExperiment}.
 *
 * @example Usage
 * ```ts
 * import type { RunHiloExperimentOptions } from "./hilo_experiment.ts";
 *
 * const options: RunHiloExperimentOptions = {
 *   overrides: ["--trainer.steps=2", "--trainer.warmupSteps=0"],
 *   report: "/tmp/hilo_smoke.md",
 *   outDir: "/tmp/hilo_smoke",
 *   workers: 1,
 * };
 * ```
 */
export interface RunHiloExperimentOptions {
  /**
   * Overrides applied to every run after the variant's (e.g. a smaller step count). They need
   * {@linkcode RunHiloExperimentOptions.report} and {@linkcode RunHiloExperimentOptions.outDir}:
   * the experiment's own report is its results page and its own `outDir` holds its runs. They may
   * not set `run.name`, `run.outDir` or `run.seed` (the experiment sets them).
   */
  overrides?: readonly string[];
  /** The Markdown report (the chart goes beside it); default the experiment's `report`. */
  report?: string;
  /**
   * The folder of the run directories (`<outDir>/<variant>_s<seed>`); default the experiment's
   * `outDir`. Required with overrides, and then another folder than the experiment's.
   */
  outDir?: string;
  /** Only these seeds (a subset of the file's). */
  seeds?: readonly number[];
  /** CPU worker threads per run; default 1. */
  workers?: number;
  /**
   * The machine in words for the report (Deno sees only the CPU count and OS without
   * `--allow-all`), e.g. `"AMD EPYC, 2 cores shared with other jobs"`.
   */
  machine?: string;
  /** Train nothing: report the runs that have finished (their `result.json`). */
  reportOnly?: boolean;
  /** Where progress lines go; default stderr. */
  log?: (line: string) => void;
}

/**
 * Result of {@linkcode runHiloExperiment}.
 *
 * @example Usage
 * ```ts
 * import type { HiloExperimentResult } from "./hilo_experiment.ts";
 *
 * const r: HiloExperimentResult = { report: "a.md", chart: "a.svg", ran: 1, skipped: 2, records: [] };
 * ```
 */
export interface HiloExperimentResult {
  /** The Markdown report written. */
  report: string;
  /** The SVG chart written. */
  chart: string;
  /** Runs trained (or resumed) by this call. */
  ran: number;
  /** Runs skipped because their `result.json` existed. */
  skipped: number;
  /** Every run's record, variant by variant, seed by seed. */
  records: RunRecord[];
}

/**
 * The text as `deno fmt` would write it (through stdin, so the files are still written
 * atomically), so that the committed report passes `deno fmt --check`; unchanged, with a warning,
 * without `--allow-run`.
 */
async function formatted(
  text: string,
  ext: "md" | "svg",
  log: (line: string) => void,
): Promise<string> {
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["fmt", `--ext=${ext}`, "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const { success, stdout, stderr } = await child.output();
    if (success) return new TextDecoder().decode(stdout);
    log(`warning: deno fmt failed on the ${ext} output: ${new TextDecoder().decode(stderr)}`);
  } catch (error) {
    log(
      `warning: not formatting the ${ext} output (${
        error instanceof Error ? error.message : error
      })`,
    );
  }
  return text;
}

/** A progress sink that sums the training steps' tokens and seconds. */
function timingProgress(): Progress & { tokens: number; seconds: number } {
  const p = {
    tokens: 0,
    seconds: 0,
    update(_step: number, u: { tokens?: number; seconds?: number }) {
      p.tokens += u.tokens ?? 0;
      p.seconds += u.seconds ?? 0;
    },
    note(_text: string) {},
    done() {},
  };
  return p as Progress & { tokens: number; seconds: number };
}

/** Trainable and active parameters and the per-layer allocation of a run's adapters. */
async function adapterCounts(
  config: TrainConfig,
  trainable: number,
): Promise<Pick<RunRecord, "trainable" | "activePerToken" | "allocation">> {
  const a = config.adapters;
  if (a.kind !== "hilo") return { trainable, activePerToken: trainable, allocation: [] };
  const modelConfig = await readQwen3Config(config.model.path);
  const lora = runAdapters(config, modelConfig)!;
  const counts = hiloParameterCounts(lora);
  if (counts.trainable !== trainable) {
    throw new RangeError(
      `Cannot count parameters of run "${config.run.name}": the trained tree has ${trainable} ` +
        `floats but hiloParameterCounts gives ${counts.trainable}`,
    );
  }
  return {
    trainable,
    activePerToken: counts.activePerToken,
    allocation: (lora.hilo?.layers ?? []).map((l) => ({
      experts: l.experts,
      rank: l.rank,
      topK: l.topK,
    })),
  };
}

/** Keys a finished run may differ in and still be reused: where checkpoints went. */
const REUSE_FREE_KEYS = ["checkpoint."];

/** One run of the grid, checked: its finished record to reuse, or its config to train. */
interface PlannedRun {
  variant: ExperimentVariant;
  seed: number;
  config: TrainConfig;
  /** The finished run's record (its `result.json` ran with `config`), or `null`. */
  done: RunRecord | null;
}

/**
 * Builds one run's config and checks it before anything trains: a suite SFT run evaluating after
 * its last step, the checks of its start that need the model's `config.json`
 * ({@linkcode checkRunConfig}; not for a run already finished), and a finished run's
 * `result.json` config against it.
 */
async function planRun(
  experiment: Experiment,
  variant: ExperimentVariant,
  seed: number,
  options: RunHiloExperimentOptions,
): Promise<PlannedRun> {
  const name = `${variant.name}_s${seed}`;
  const runDir = join(experiment.outDir, name);
  const resultPath = join(runDir, "result.json");
  const config = await loadConfig(experiment.config, {
    overrides: [
      ...variant.overrides,
      ...(options.overrides ?? []),
      `--run.name=${name}`,
      `--run.outDir=${experiment.outDir}`,
      `--run.seed=${seed}`,
    ],
  });
  if (config.data.task !== "suite" || config.trainer.mode !== "sft") {
    throw new RangeError(
      `Cannot run experiment "${experiment.path}": config "${experiment.config}" must set ` +
        `"data.task" to "suite" and "trainer.mode" to "sft": current values are ` +
        `"${config.data.task}" and "${config.trainer.mode}"`,
    );
  }
  // The report compares the runs' last metrics line: the evaluation after the last step.
  if (!config.eval.final) {
    throw new RangeError(
      `Cannot run experiment "${experiment.path}": run "${name}" has key "eval.final" false: ` +
        `expected true (the report compares the held-out accuracy after the last step)`,
    );
  }
  if (!(await exists(resultPath))) {
    try {
      await checkRunConfig(config);
    } catch (error) {
      if (error instanceof Error) {
        error.message = `Cannot run experiment "${experiment.path}": run "${name}": ` +
          error.message;
      }
      throw error;
    }
    return { variant, seed, config, done: null };
  }
  const record = await readJsonFile(resultPath, {
    context: `Cannot continue the experiment: reading the finished run's`,
  }) as RunRecord;
  // Reused only when it ran with the config the experiment now gives (a result.json from before
  // a key existed is filled with the value it ran with, as a checkpoint's config is).
  const changes = configDifferences(
    withSavedConfigDefaults(record.config),
    JSON.parse(JSON.stringify(config)),
    { ignore: REUSE_FREE_KEYS },
  );
  if (changes.length > 0) {
    throw new RangeError(
      `Cannot reuse run "${name}" of experiment "${experiment.path}": key ` +
        `${changes[0].replace(/:.*/, "")} of its "${resultPath}" differs from what the ` +
        `experiment gives (${changes[0].replace(/^[^:]*: /, "")}${
          changes.length > 1 ? `; ${changes.length - 1} more key(s) differ` : ""
        }): delete "${runDir}" or change the experiment (or its --set overrides)`,
    );
  }
  return { variant, seed, config, done: record };
}

/** Trains (or resumes) one planned run, writes its `result.json` and returns its record. */
async function oneRun(
  experiment: Experiment,
  run: PlannedRun,
  options: RunHiloExperimentOptions,
): Promise<RunRecord> {
  const { variant, seed, config } = run;
  const runDir = join(experiment.outDir, config.run.name);
  const resultPath = join(runDir, "result.json");
  let resume = false;
  if (await exists(runDir)) {
    for await (const entry of Deno.readDir(runDir)) {
      if (entry.isDirectory && /^step_\d+$/.test(entry.name)) resume = true;
    }
  }
  const progress = timingProgress();
  const began = performance.now();
  const result = await runSft(config, {
    resume,
    overwrite: !resume,
    progress,
    log: () => {},
    workers: options.workers ?? 1,
  });
  const wallSeconds = (performance.now() - began) / 1000;
  const record: RunRecord = {
    variant: variant.name,
    seed,
    steps: result.step,
    metrics: result.metrics,
    ...await adapterCounts(config, result.trainableParams),
    trainTokens: progress.tokens,
    trainSeconds: progress.seconds,
    wallSeconds,
    backend: result.backend,
    config,
  };
  await writeFileAtomic(resultPath, `${JSON.stringify(record, null, 2)}\n`);
  return record;
}

function plain(m: MeanInterval): string {
  return Number.isNaN(m.half) ? m.mean.toFixed(3) : `${m.mean.toFixed(3)} ± ${m.half.toFixed(3)}`;
}

function percent(m: MeanInterval): string {
  const mean = (100 * m.mean).toFixed(1);
  return Number.isNaN(m.half) ? mean : `${mean} ± ${(100 * m.half).toFixed(1)}`;
}

function allocationText(r: RunRecord): string {
  if (r.allocation.length === 0) return "1 (LoRA)";
  return r.allocation.map((l) => `${l.experts}×r${l.rank}`).join(", ");
}

function machineText(machine: string | undefined): string {
  const seen = `${navigator.hardwareConcurrency} logical CPUs, ${Deno.build.os}/` +
    `${Deno.build.arch}, Deno ${Deno.version.deno}`;
  return machine ? `${machine} (${seen})` : seen;
}

/**
 * The step-0 evaluation of each run (the base model: every adapter starts as a no-op, B = 0),
 * read from the runs' `metrics.jsonl`; runs without one are left out.
 */
async function startMetrics(
  experiment: Experiment,
  records: readonly RunRecord[],
): Promise<Record<string, number>[]> {
  const out: Record<string, number>[] = [];
  for (const r of records) {
    const path = join(experiment.outDir, `${r.variant}_s${r.seed}`, "metrics.jsonl");
    if (!(await exists(path))) continue;
    const first = (await Deno.readTextFile(path)).split("\n")[0];
    if (first === "") continue;
    const line = JSON.parse(first) as Record<string, number>;
    if (line.step === 0 && "eval/accuracy" in line) out.push(line);
  }
  return out;
}

/** The tasks present in the records' metrics, in suite order. */
function tasksOf(records: readonly RunRecord[]): SuiteTask[] {
  return SUITE_TASKS.filter((t) => `eval/accuracy/${t}` in (records[0]?.metrics ?? {}));
}

/**
 * The line after which an existing report's text is kept when the report is regenerated: sections
 * measured by other commands (the "Dispatch" section of `bench/hilo_bench.ts`).
 *
 * @example Is a report's dispatch section kept?
 * ```ts
 * import { KEPT_MARKER } from "./hilo_experiment.ts";
 * const report = await Deno.readTextFile("docs/results/hilo.md");
 * console.log(report.includes(KEPT_MARKER));
 * ```
 */
export const KEPT_MARKER =
  "<!-- Kept by hilo-experiment: the sections below come from other commands -->";

/** The existing report's text from {@linkcode KEPT_MARKER} on (with a leading blank line), or "". */
async function keptSection(report: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(report);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
  const at = text.indexOf(KEPT_MARKER);
  return at === -1 ? "" : `\n${text.slice(at)}`;
}

/**
 * The Markdown report of finished runs: one row per variant with the accuracy per task and
 * overall (mean ± half-width of the 95% t-interval over seeds), the parameter counts, train
 * tokens/s and wall time; then the per-run numbers, the machine and the exact config.
 */
async function reportMarkdown(
  experiment: Experiment,
  records: readonly RunRecord[],
  chartName: string,
  base: readonly Record<string, number>[],
  machine: string | undefined,
): Promise<string> {
  const tasks = tasksOf(records);
  const sharedConfig = await Deno.readTextFile(experiment.config);
  const lines: string[] = [];
  const first = records[0];
  const cfg = first.config as TrainConfig;
  const total = records.reduce((a, r) => a + r.wallSeconds, 0);
  lines.push(
    "# HILO experiment: multi-task SFT with LoRA, LoRA-MoE and HILO adapters",
    "",
    `Generated by \`deno task hilo-experiment ${experiment.path}\` (\`cli/hilo_experiment.ts\`) ` +
      `on ${new Date().toISOString().slice(0, 10)}. Do not edit by hand: rerun the command.`,
    "",
    `Supervised fine-tuning from \`${cfg.model.path}\` on the task suite ` +
      `(${cfg.data.suite.tasks.join(", ")}; synthetic level ${cfg.data.suite.level}, ` +
      `${cfg.data.trainSize} training problems per task), ${first.steps} steps of ` +
      `${cfg.trainer.batchSize} sequences, then greedy decoding of ${cfg.eval.samples} held-out ` +
      `problems per task (the same problems for every run: \`data.seed\` ${cfg.data.seed}), ` +
      `scored by exact answer. Seeds (\`run.seed\`: adapter init, data order, dropout): ` +
      `${experiment.seeds.join(", ")}.`,
    "",
    "Accuracy in %: mean ± half-width of the two-sided 95% Student-t interval over seeds " +
      "(t_{0.975, n−1} · s / √n; a single seed shows the mean only). Parameters: trainable " +
      "adapter floats and the floats one token uses (routers plus the top-k experts; " +
      "`hiloParameterCounts`). Train tokens/s: tokens of the training steps over their " +
      "seconds (no evaluation), mean over seeds; the CPU was shared with other jobs, so " +
      "throughput is noisy. Held-out loss: token-mean NLL of the reference solutions of the " +
      "same held-out problems (teacher forcing), mean ± 95% t-interval.",
    "",
  );
  const header = [
    "method",
    "experts × rank by layer",
    "trainable",
    "active/token",
    ...tasks,
    "overall",
    "held-out loss",
    "train tok/s",
    "wall s (mean)",
  ];
  lines.push(
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i < 2 ? " --- " : " ---: ")).join("|")}|`,
  );
  if (base.length > 0) {
    const acc = (key: string): string => percent(tInterval95(base.map((m) => m[key])));
    lines.push(
      `| ${
        [
          `base model, before training (step-0 evaluation of ${base.length} run(s))`,
          "—",
          "0",
          "0",
          ...tasks.map((t) => acc(`eval/accuracy/${t}`)),
          acc("eval/accuracy"),
          plain(tInterval95(base.map((m) => m["eval/loss"]))),
          "—",
          "—",
        ].join(" | ")
      } |`,
    );
  }
  for (const v of experiment.variants) {
    const rs = records.filter((r) => r.variant === v.name);
    if (rs.length === 0) continue;
    const acc = (key: string): string => percent(tInterval95(rs.map((r) => r.metrics[key])));
    const tps = rs.reduce((a, r) => a + r.trainTokens / r.trainSeconds, 0) / rs.length;
    const wall = rs.reduce((a, r) => a + r.wallSeconds, 0) / rs.length;
    lines.push(
      `| ${
        [
          `${v.label} (n=${rs.length})`,
          allocationText(rs[0]),
          String(rs[0].trainable),
          String(rs[0].activePerToken),
          ...tasks.map((t) => acc(`eval/accuracy/${t}`)),
          acc("eval/accuracy"),
          plain(tInterval95(rs.map((r) => r.metrics["eval/loss"]))),
          tps.toFixed(0),
          wall.toFixed(0),
        ].join(" | ")
      } |`,
    );
  }
  lines.push("", `![Held-out accuracy by method and task](${chartName})`, "");
  const reference = experiment.variants.find((v) => records.some((r) => r.variant === v.name));
  if (reference !== undefined) {
    lines.push(
      `## Difference from ${reference.label} (overall accuracy, paired by seed)`,
      "",
      `Per seed, the variant's overall accuracy minus ${reference.label}'s with the same seed ` +
        "(same data order); mean ± 95% t-interval of those differences, in points. An interval " +
        `that contains 0 does not resolve a difference. One held-out problem is ` +
        `${(100 / (tasks.length * cfg.eval.samples)).toFixed(2)} points of the overall accuracy.`,
      "",
      "| method | seeds paired | difference |",
      "| --- | ---: | ---: |",
    );
    for (const v of experiment.variants) {
      if (v === reference) continue;
      const diffs = records.filter((r) => r.variant === v.name).flatMap((r) => {
        const ref = records.find((x) => x.variant === reference.name && x.seed === r.seed);
        return ref ? [r.metrics["eval/accuracy"] - ref.metrics["eval/accuracy"]] : [];
      });
      if (diffs.length === 0) continue;
      const d = tInterval95(diffs);
      const text = Number.isNaN(d.half)
        ? (100 * d.mean).toFixed(1)
        : `${(100 * d.mean).toFixed(1)} ± ${(100 * d.half).toFixed(1)}`;
      lines.push(`| ${v.label} | ${diffs.length} | ${text} |`);
    }
    lines.push("");
  }
  lines.push(
    "## Per run",
    "",
    "| run | steps | overall % | " + tasks.join(" % | ") +
      " % | held-out loss | train tok/s | wall s |",
  );
  lines.push(`|---|---:|---:|${tasks.map(() => "---:").join("|")}|---:|---:|---:|`);
  for (const r of records) {
    lines.push(
      `| ${r.variant}_s${r.seed} | ${r.steps} | ${
        (100 * r.metrics["eval/accuracy"]).toFixed(1)
      } | ${tasks.map((t) => (100 * r.metrics[`eval/accuracy/${t}`]).toFixed(1)).join(" | ")} | ${
        r.metrics["eval/loss"]?.toFixed(4)
      } | ${(r.trainTokens / r.trainSeconds).toFixed(0)} | ${r.wallSeconds.toFixed(0)} |`,
    );
  }
  lines.push(
    "",
    "## Machine and time",
    "",
    `- Machine: ${machineText(machine)}.`,
    `- Trainer backend: ${first.backend}.`,
    `- Wall time of the runs done (sum of the runs' own times): ${(total / 60).toFixed(1)} min.`,
    "",
    "## Exact config",
    "",
    `The experiment (\`${experiment.path}\`):`,
    "",
    "```yaml",
    experiment.text.trimEnd(),
    "```",
    "",
    `The shared run config (\`${experiment.config}\`); each run adds its variant's overrides and ` +
      "`--run.name=<variant>_s<seed> --run.outDir=<outDir> --run.seed=<seed>`, and each run " +
      "directory's `result.json` holds its full resolved config:",
    "",
    "```yaml",
    sharedConfig.trimEnd(),
    "```",
    "",
  );
  return lines.join("\n");
}

/**
 * Runs every variant × seed of an experiment that has no `result.json` yet (in the order of the
 * file), then writes the report and its chart atomically. A finished run is reused only when its
 * `result.json` holds the config the experiment now gives.
 *
 * @param path The experiment file.
 * @param options Extra overrides, a seed subset, workers, log.
 * @returns The files written, the counts of runs done and skipped, and the records.
 * @throws {TypeError} When the experiment file is malformed.
 * @throws {RangeError} When the shared config is not a suite SFT run, a finished run ran with
 *   another config, overrides come without their own report and run folder (or set a `run.*` key
 *   the experiment sets), or a run fails.
 *
 * @example Usage
 * ```ts ignore
 * import { runHiloExperiment } from "./hilo_experiment.ts";
 *
 * const r = await runHiloExperiment("experiments/hilo.yaml", { workers: 2 });
 * console.log(r.report, r.ran, r.skipped);
 * ```
 */
export async function runHiloExperiment(
  path: string,
  options: RunHiloExperimentOptions = {},
): Promise<HiloExperimentResult> {
  const log = options.log ?? ((line: string) => console.error(line));
  const read = await readExperiment(path);
  const overrides = options.overrides ?? [];
  const setText = overrides.map((o) => o.replace(/^--/, "")).join(" ");
  if (overrides.length > 0 && options.report === undefined) {
    // The experiment's report is its results page (docs/results/hilo.md for experiments/hilo.yaml):
    // runs the overrides change are another experiment, whose report must not replace it.
    throw new RangeError(
      `Cannot run experiment "${path}" with overrides (--set ${setText}) into its report ` +
        `"${read.report}" (the experiment's results page): give the ` +
        `overridden runs their own report (--report=PATH)`,
    );
  }
  if (overrides.length > 0) {
    const fixed = overrides.find((o) => /^--run\.(name|outDir|seed)(=|$)/.test(o));
    if (fixed !== undefined) {
      const key = fixed.slice(2).replace(/=.*/, "");
      throw new RangeError(
        `Cannot run experiment "${path}" with override "${fixed.slice(2)}": key "${key}" is ` +
          `set by the experiment for each run (the run folder is --out-dir=DIR)`,
      );
    }
    // The experiment's outDir holds its real runs: runs the overrides change must neither reuse,
    // resume nor write into them.
    if (options.outDir === undefined || resolve(options.outDir) === resolve(read.outDir)) {
      throw new RangeError(
        `Cannot run experiment "${path}" with overrides (--set ${setText}) in its outDir ` +
          `"${read.outDir}" (the experiment's own runs): give the overridden runs their own ` +
          `folder (--out-dir=DIR)${
            options.outDir === undefined ? "" : `: current value is "${options.outDir}"`
          }`,
      );
    }
  }
  // The run folders of this call: the experiment's, or the overridden runs' own.
  const experiment = { ...read, outDir: options.outDir ?? read.outDir };
  const seeds = options.seeds ?? experiment.seeds;
  for (const s of seeds) {
    if (!experiment.seeds.includes(s)) {
      throw new RangeError(
        `Cannot run experiment "${path}": seed ${s} must be one of the file's seeds ` +
          `(${experiment.seeds.join(", ")})`,
      );
    }
  }
  // Every run's config and checks first, so that a bad setting of a later run stops the grid
  // before the first run trains. Seed by seed, so that every variant has its first seeds before
  // any has its last.
  const planned: PlannedRun[] = [];
  for (const seed of seeds) {
    for (const variant of experiment.variants) {
      const resultPath = join(experiment.outDir, `${variant.name}_s${seed}`, "result.json");
      if (options.reportOnly && !(await exists(resultPath))) continue;
      planned.push(await planRun(experiment, variant, seed, options));
    }
  }
  const done: RunRecord[] = [];
  let ran = 0;
  let skipped = 0;
  for (const run of planned) {
    const did = run.done === null;
    const record = run.done ?? await oneRun(experiment, run, options);
    done.push(record);
    if (did) ran++;
    else skipped++;
    log(
      `${did ? "ran" : "skipped (done)"} ${run.variant.name}_s${run.seed}: accuracy ` +
        `${(100 * record.metrics["eval/accuracy"]).toFixed(1)}%` +
        (did ? `, ${record.wallSeconds.toFixed(0)} s` : ""),
    );
  }
  if (done.length === 0) {
    throw new RangeError(`Cannot report experiment "${path}": no run has finished`);
  }
  const records = experiment.variants.flatMap((v) => done.filter((r) => r.variant === v.name));
  const report = options.report ?? experiment.report;
  const chart = report.replace(/\.md$/, "") + ".svg";
  const tasks = tasksOf(records);
  const base = await startMetrics(experiment, records);
  const series = [
    ...(base.length > 0 ? [{ label: "base model", metrics: base }] : []),
    ...experiment.variants.map((v) => ({
      label: v.label,
      metrics: records.filter((r) => r.variant === v.name).map((r) => r.metrics),
    })),
  ].filter((s) => s.metrics.length > 0);
  const bars = series.flatMap(({ label, metrics }) =>
    [...tasks.map((t) => `eval/accuracy/${t}`), "eval/accuracy"].map((key) => {
      const m = tInterval95(metrics.map((x) => x[key]));
      const group = key === "eval/accuracy" ? "overall" : key.slice("eval/accuracy/".length);
      return Number.isNaN(m.half) ? { label, group, value: m.mean } : {
        label,
        group,
        value: m.mean,
        lo: Math.max(0, m.mean - m.half),
        hi: Math.min(1, m.mean + m.half),
      };
    })
  );
  const svg = await barChart(bars, {
    title: "Held-out exact-answer accuracy (mean, 95% t-interval over seeds)",
    xTitle: "Method",
    yTitle: "Accuracy",
    legendTitle: "Task",
    yDomain: [0, 1],
    bandWidth: 16,
    labelAngle: -15,
  });
  await Deno.mkdir(dirname(report) || ".", { recursive: true });
  await writeFileAtomic(chart, await formatted(svg, "svg", log));
  const chartName = relative(dirname(report) || ".", chart);
  const markdown = await reportMarkdown(experiment, records, chartName, base, options.machine);
  await writeFileAtomic(report, await formatted(markdown + await keptSection(report), "md", log));
  return { report, chart, ran, skipped, records };
}

const USAGE = `Usage: deno task hilo-experiment [EXPERIMENT.yaml] [options]

Runs every variant × seed of the experiment (default experiments/hilo.yaml) that has no
result.json yet, then writes the report and its SVG chart. A finished run is reused only
when its result.json holds the config the experiment now gives.

Options:
  --seeds=0,1     only these seeds
  --workers=N     CPU worker threads per run (default: the CPU count, at most 8)
  --report-only   train nothing; report the finished runs
  --machine=TEXT  the machine in words, for the report
  --set=KEY=VAL   an extra run-config override for every run (repeatable), e.g.
                  --set=trainer.steps=4 --set=trainer.warmupSteps=0 (the cosine
                  warm-up must stay shorter than the run); needs --report and
                  --out-dir; not run.name, run.outDir or run.seed (set per run)
  --report=PATH   the Markdown report (default: the experiment's report, its results
                  page); required with --set
  --out-dir=DIR   the folder of the run directories (default: the experiment's outDir,
                  its real runs); required with --set, and another folder, so that a
                  smoke test never reuses, resumes or writes into the real runs
  -h, --help      show this help`;

/**
 * The command: parses arguments, runs the experiment, prints where the report went.
 *
 * @param args Command-line arguments (without the program name).
 * @returns The exit code: 0 on success, 2 on a usage error.
 *
 * @example Help
 * ```ts
 * import { main } from "./hilo_experiment.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(await main(["--help"]), 0);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        seeds: { type: "string" },
        workers: { type: "string" },
        set: { type: "string", multiple: true },
        "report-only": { type: "boolean" },
        report: { type: "string" },
        "out-dir": { type: "string" },
        machine: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    console.error(`Expected at most one experiment file: got ${positionals.length}\n\n${USAGE}`);
    return 2;
  }
  const seeds = values.seeds?.split(",").map(Number);
  const workers = values.workers === undefined
    ? Math.max(1, Math.min(8, navigator.hardwareConcurrency ?? 1))
    : Number(values.workers);
  if (
    seeds?.some((s) => !Number.isSafeInteger(s)) || !Number.isSafeInteger(workers) || workers < 1
  ) {
    console.error(`--seeds must be integers and --workers a positive integer\n\n${USAGE}`);
    return 2;
  }
  let result: Awaited<ReturnType<typeof runHiloExperiment>>;
  try {
    result = await runHiloExperiment(positionals[0] ?? "experiments/hilo.yaml", {
      seeds,
      workers,
      overrides: (values.set ?? []).map((s) => `--${s}`),
      reportOnly: values["report-only"],
      report: values.report,
      outDir: values["out-dir"],
      machine: values.machine,
      log: (line) => console.error(line),
    });
  } catch (error) {
    // A bad experiment file or config (they name the file and key) is the user's to fix: its
    // message, as `train` prints it; anything else keeps its stack.
    if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) {
      console.error(`error: ${error.message}`);
      return 2;
    }
    throw error;
  }
  console.log(
    `${result.ran} run(s) done, ${result.skipped} skipped; wrote ${result.report} and ${result.chart}`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
