// Copyright 2025 the halo authors. MIT license.
/**
 * The experiment file of `deno task reproduce`: a base run config, a grid of seeds × named
 * settings (each a list of `--a.b=c` overrides, the syntax of `deno task train`), the output root
 * and the evaluation every final checkpoint gets.
 *
 * ```yaml
 * name: hidden_align                 # the results go to docs/results/hidden_align.md
 * base: configs/rl_arith_dapo.yaml   # optional; without it the trainer's defaults
 * outDir: out/experiments/hidden_align
 * overrides: [--trainer.steps=40]    # for every run, after the base
 * seeds: [0, 1, 2]                   # default seeds of a setting
 * baseline: dapo                     # the setting the others are compared with (optional)
 * settings:
 *   - { name: dapo, overrides: [] }
 *   - name: hidden_align
 *     overrides: ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1}]"]
 *   - { name: weight_1, axis: weight, seeds: [0], overrides: [...] }
 * eval: { data: arithmetic, k: 8, temperature: 1, maxNewTokens: 56, limit: 200 }
 * ```
 *
 * @module
 */
import { parse } from "yaml";
import { join } from "node:path";

/**
 * One named setting of the grid.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentSetting } from "./experiment_config.ts";
 *
 * const dapo: ExperimentSetting = { name: "dapo", axis: "main", seeds: [0, 1, 2], overrides: [] };
 * ```
 */
export interface ExperimentSetting {
  /** The setting's name (letters, digits, `_`, `-`, `.`); part of the run folder names. */
  name: string;
  /** The ablation axis it belongs to (default `"main"`), grouping the results tables. */
  axis: string;
  /** The seeds it runs with (`run.seed`). */
  seeds: number[];
  /** `--a.b=c` overrides applied after the base and the common overrides. */
  overrides: string[];
}

/**
 * The evaluation of every final checkpoint (the options of `deno task eval`).
 *
 * @example Usage
 * ```ts
 * import type { ExperimentEval } from "./experiment_config.ts";
 *
 * const e: ExperimentEval = {
 *   data: "arithmetic", k: 8, temperature: 1, topP: 1, maxNewTokens: 56, limit: 200, seed: 0,
 *   backend: "cpu",
 * };
 * ```
 */
export interface ExperimentEval {
  /** `arithmetic`, `gsm8k`, `math500` or a `.jsonl` file. */
  data: string;
  /** Samples per problem (the k of avg@k and pass@k). */
  k: number;
  /** Sampling temperature. */
  temperature: number;
  /** Nucleus sampling. */
  topP: number;
  /** Most new tokens per sample. */
  maxNewTokens: number;
  /** Problems to evaluate (the first this many). */
  limit: number;
  /** The evaluation's sampling seed (the same for every run). */
  seed: number;
  /** `cpu`, `webgpu` or `auto`. */
  backend: "cpu" | "webgpu" | "auto";
}

/**
 * A parsed, validated experiment file.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentConfig } from "./experiment_config.ts";
 *
 * function runs(e: ExperimentConfig): number {
 *   return e.settings.reduce((n, s) => n + s.seeds.length, 0);
 * }
 * ```
 */
export interface ExperimentConfig {
  /** The experiment's name: the results file is `docs/results/<name>.md`. */
  name: string;
  /** A line or two on what it tests (shown in the results). */
  description: string;
  /** The base run config (a YAML path), or `null` for the trainer's defaults. */
  base: string | null;
  /** Where the run folders go (`<outDir>/<setting>_seed<seed>/`). */
  outDir: string;
  /** The results Markdown file (default `docs/results/<name>.md`); its SVGs go beside it. */
  results: string;
  /** Overrides for every run, after the base. */
  overrides: string[];
  /** The setting the others are compared with (paired by seed), or `null`. */
  baseline: string | null;
  /** The grid's settings, in order. */
  settings: ExperimentSetting[];
  /** The evaluation of the final checkpoints. */
  eval: ExperimentEval;
  /** The file's text as read (quoted in the results). */
  text: string;
  /** Where it was read from. */
  source: string;
}

const TOP_KEYS = [
  "name",
  "description",
  "base",
  "outDir",
  "results",
  "overrides",
  "seeds",
  "baseline",
  "settings",
  "eval",
];
const SETTING_KEYS = ["name", "axis", "seeds", "overrides"];
const EVAL_DEFAULTS: ExperimentEval = {
  data: "arithmetic",
  k: 8,
  temperature: 1,
  topP: 1,
  maxNewTokens: 64,
  limit: 200,
  seed: 0,
  backend: "cpu",
};
const NAME = /^[A-Za-z0-9_.-]+$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses and validates the text of an experiment file.
 *
 * @param text The YAML text.
 * @param source The file name, for error messages.
 * @returns The experiment, with defaults filled in.
 * @throws {SyntaxError} When the text is not YAML.
 * @throws {TypeError} When a key is unknown or a value has the wrong type (naming the key).
 * @throws {RangeError} When a value is out of range, a name repeats, or the baseline is unknown.
 *
 * @example Two settings, two seeds
 * ```ts
 * import { parseExperiment } from "./experiment_config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const e = parseExperiment(
 *   "name: demo\noutDir: out/x\nseeds: [0, 1]\nsettings:\n  - {name: a}\n  - {name: b, overrides: [--trainer.lr=1e-3]}\n",
 *   "demo.yaml",
 * );
 * strictEqual(e.settings[1].overrides[0], "--trainer.lr=1e-3");
 * strictEqual(e.results, "docs/results/demo.md");
 * ```
 */
export function parseExperiment(text: string, source: string): ExperimentConfig {
  const where = `Cannot read experiment "${source}"`;
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    throw new SyntaxError(`${where}: invalid YAML: ${(error as Error).message}`);
  }
  if (!isObject(value)) {
    throw new TypeError(`${where}: the file must hold a mapping: current value is ${typeof value}`);
  }
  for (const key of Object.keys(value)) {
    if (!TOP_KEYS.includes(key)) {
      throw new TypeError(`${where}: unknown key "${key}": expected one of ${TOP_KEYS.join(", ")}`);
    }
  }
  const string = (v: unknown, key: string, fallback?: string): string => {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "string" || v === "") {
      throw new TypeError(
        `${where}: key "${key}" must be a non-empty string: current value is ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const strings = (v: unknown, key: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || !x.startsWith("--"))) {
      throw new TypeError(
        `${where}: key "${key}" must be a list of "--a.b=c" overrides: current value is ${
          JSON.stringify(v)
        }`,
      );
    }
    return v as string[];
  };
  const seeds = (v: unknown, key: string): number[] => {
    if (
      !Array.isArray(v) || v.length === 0 ||
      v.some((x) => !Number.isSafeInteger(x) || (x as number) < 0) || new Set(v).size !== v.length
    ) {
      throw new RangeError(
        `${where}: key "${key}" must be a non-empty list of distinct non-negative integers: ` +
          `current value is ${JSON.stringify(v)}`,
      );
    }
    return v as number[];
  };
  const name = string(value.name, "name");
  if (!NAME.test(name)) {
    throw new RangeError(
      `${where}: key "name" must use only letters, digits, "_", "-" and ".": current value is ` +
        `"${name}"`,
    );
  }
  const defaultSeeds = value.seeds === undefined ? [0] : seeds(value.seeds, "seeds");
  if (!Array.isArray(value.settings) || value.settings.length === 0) {
    throw new TypeError(
      `${where}: key "settings" must be a non-empty list of {name, axis, seeds, overrides}: ` +
        `current value is ${JSON.stringify(value.settings)}`,
    );
  }
  const settings = value.settings.map((s: unknown, i: number): ExperimentSetting => {
    const key = `settings[${i}]`;
    if (!isObject(s)) {
      throw new TypeError(`${where}: key "${key}" must be a mapping: current value is ${s}`);
    }
    for (const k of Object.keys(s)) {
      if (!SETTING_KEYS.includes(k)) {
        throw new TypeError(
          `${where}: unknown key "${key}.${k}": expected one of ${SETTING_KEYS.join(", ")}`,
        );
      }
    }
    const settingName = string(s.name, `${key}.name`);
    if (!NAME.test(settingName)) {
      throw new RangeError(
        `${where}: key "${key}.name" must use only letters, digits, "_", "-" and ".": current ` +
          `value is "${settingName}"`,
      );
    }
    return {
      name: settingName,
      axis: string(s.axis, `${key}.axis`, "main"),
      seeds: s.seeds === undefined ? [...defaultSeeds] : seeds(s.seeds, `${key}.seeds`),
      overrides: strings(s.overrides, `${key}.overrides`),
    };
  });
  const names = settings.map((s) => s.name);
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined) {
    throw new RangeError(`${where}: key "settings" names "${repeated}" twice: names must differ`);
  }
  const baseline = value.baseline === undefined || value.baseline === null
    ? null
    : string(value.baseline, "baseline");
  if (baseline !== null && !names.includes(baseline)) {
    throw new RangeError(
      `${where}: key "baseline" must name a setting (${names.join(", ")}): current value is ` +
        `"${baseline}"`,
    );
  }
  const e = value.eval === undefined ? {} : value.eval;
  if (!isObject(e)) {
    throw new TypeError(`${where}: key "eval" must be a mapping: current value is ${e}`);
  }
  const evalConfig: Record<string, unknown> = { ...EVAL_DEFAULTS };
  for (const [k, v] of Object.entries(e)) {
    if (!(k in EVAL_DEFAULTS)) {
      throw new TypeError(
        `${where}: unknown key "eval.${k}": expected one of ${
          Object.keys(EVAL_DEFAULTS).join(", ")
        }`,
      );
    }
    if (typeof v !== typeof EVAL_DEFAULTS[k as keyof ExperimentEval]) {
      throw new TypeError(
        `${where}: key "eval.${k}" must be a ${typeof EVAL_DEFAULTS[
          k as keyof ExperimentEval
        ]}: current value is ${JSON.stringify(v)}`,
      );
    }
    evalConfig[k] = v;
  }
  const ev = evalConfig as unknown as ExperimentEval;
  for (const k of ["k", "maxNewTokens", "limit"] as const) {
    if (!Number.isInteger(ev[k]) || ev[k] < 1) {
      throw new RangeError(
        `${where}: key "eval.${k}" must be a positive integer: current value is ${ev[k]}`,
      );
    }
  }
  if (!["cpu", "webgpu", "auto"].includes(ev.backend)) {
    throw new RangeError(
      `${where}: key "eval.backend" must be "cpu", "webgpu" or "auto": current value is ` +
        `"${ev.backend}"`,
    );
  }
  return {
    name,
    description: value.description === undefined ? "" : string(value.description, "description"),
    base: value.base === undefined || value.base === null ? null : string(value.base, "base"),
    outDir: string(value.outDir, "outDir"),
    results: string(value.results, "results", join("docs", "results", `${name}.md`)),
    overrides: strings(value.overrides, "overrides"),
    baseline,
    settings,
    eval: ev,
    text,
    source,
  };
}

/**
 * Reads and validates an experiment file.
 *
 * @param path The YAML file.
 * @returns The experiment.
 * @throws {Deno.errors.NotFound} When the file is missing.
 *
 * @example Usage
 * ```ts ignore
 * import { readExperiment } from "./experiment_config.ts";
 *
 * const e = await readExperiment("experiments/hidden_align.yaml");
 * console.log(e.settings.map((s) => s.name));
 * ```
 */
export async function readExperiment(path: string): Promise<ExperimentConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read experiment "${path}": file not found`);
    }
    throw error;
  }
  return parseExperiment(text, path);
}

/**
 * One run of the grid: its setting, seed, folder and the overrides that make its config.
 *
 * @example Usage
 * ```ts
 * import type { ExperimentRun } from "./experiment_config.ts";
 *
 * const run: ExperimentRun = {
 *   setting: "dapo", axis: "main", seed: 0, name: "dapo_seed0", runDir: "out/x/dapo_seed0",
 *   overrides: ["--run.outDir=out/x", "--run.name=dapo_seed0", "--run.seed=0"],
 * };
 * ```
 */
export interface ExperimentRun {
  /** The setting's name. */
  setting: string;
  /** The setting's axis. */
  axis: string;
  /** `run.seed`. */
  seed: number;
  /** `run.name`: `<setting>_seed<seed>`. */
  name: string;
  /** `<outDir>/<name>`. */
  runDir: string;
  /** All overrides on the base, in order: common, the setting's, then run.outDir/name/seed. */
  overrides: string[];
}

/**
 * The runs of the grid in the order they run: seed by seed (the first seed of every setting,
 * then the second, …), so that an interrupted grid has whole comparisons first.
 *
 * @param experiment The experiment.
 * @param options `settings`: only these settings (by name); default all.
 * @returns The runs.
 * @throws {RangeError} When `settings` names a setting the experiment does not have.
 *
 * @example Seed-major order
 * ```ts
 * import { experimentRuns, parseExperiment } from "./experiment_config.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const e = parseExperiment(
 *   "name: d\noutDir: out/d\nseeds: [0, 1]\nsettings: [{name: a}, {name: b, seeds: [0]}]\n",
 *   "d.yaml",
 * );
 * deepStrictEqual(experimentRuns(e).map((r) => r.name), ["a_seed0", "b_seed0", "a_seed1"]);
 * ```
 */
export function experimentRuns(
  experiment: ExperimentConfig,
  options: { settings?: readonly string[] } = {},
): ExperimentRun[] {
  const names = experiment.settings.map((s) => s.name);
  for (const s of options.settings ?? []) {
    if (!names.includes(s)) {
      throw new RangeError(
        `Cannot select settings of experiment "${experiment.source}": "${s}" is not one of ` +
          names.join(", "),
      );
    }
  }
  const chosen = experiment.settings.filter((s) =>
    options.settings === undefined || options.settings.includes(s.name)
  );
  const runs: ExperimentRun[] = [];
  const most = Math.max(...chosen.map((s) => s.seeds.length));
  for (let i = 0; i < most; i++) {
    for (const s of chosen) {
      if (i >= s.seeds.length) continue;
      const seed = s.seeds[i];
      const name = `${s.name}_seed${seed}`;
      runs.push({
        setting: s.name,
        axis: s.axis,
        seed,
        name,
        runDir: join(experiment.outDir, name),
        overrides: [
          ...experiment.overrides,
          ...s.overrides,
          `--run.outDir=${experiment.outDir}`,
          `--run.name=${name}`,
          `--run.seed=${seed}`,
        ],
      });
    }
  }
  return runs;
}
