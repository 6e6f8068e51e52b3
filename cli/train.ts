/**
 * The training entry point:
 *
 *   deno task train [--config FILE] [--key.path=value ...] [--resume [DIR]] [--overwrite]
 *                   [--export DIR] [--workers N]
 *
 * Without `--config` it runs the demo, `configs/rl_arith_hidden_align.yaml`: DAPO plus the
 * Hidden-Align term on the bundled `models/arithmetic-tiny` and the arithmetic task
 * (`configs/tiny_sft.yaml` is the SFT demo). A config with `trainer.mode: rl` runs `runRl`, else
 * `runSft`. Overrides set any config key
 * (`--trainer.lr=1e-3`, `--trainer.steps 50`, `--backend=cpu`). `--resume` continues the run's
 * newest checkpoint (or the checkpoint or run directory DIR; with DIR and no `--config`, the
 * checkpoint's own config is used, writing into DIR's run directory wherever the saved config
 * pointed; with `--config`, DIR must be in the config's run directory). Output goes to `<run.outDir>/<run.name>/`: `metrics.jsonl`,
 * `step_NNNNNN/` checkpoints and `final/` (the model, or the PEFT adapter); `--export DIR` writes
 * the final model there too (checked before training: a new or empty directory, or a previous
 * export, which is replaced whole; never `model.path`, inside it or a folder holding it). `--workers N` spreads each batch over N CPU threads (default: the
 * number of cores, at most 8); the results do not depend on it.
 *
 * @module
 */
import { checkExportDir } from "../trainer/export_dir.ts";
import { parseArgs } from "node:util";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONFIG, type TrainConfig } from "../trainer/config.ts";
import { loadConfig } from "./load_config.ts";
import { withSavedConfigDefaults } from "../trainer/saved_config.ts";
import { RUN_NAME, validateConfig } from "../trainer/validate_config.ts";
import { latestCheckpoint } from "../trainer/checkpoint.ts";
import { formatDuration } from "../internal/progress.ts";
import { runSft, type RunSftResult } from "../trainer/sft.ts";
import { NonFiniteLossError } from "../trainer/train_loop.ts";
import { runRl, type RunRlResult } from "../trainer/rl/run_rl.ts";
import { remoteRollouts } from "../remote/remote_rollouts.ts";
import { readJsonFile } from "../internal/read_json.ts";

const USAGE = "usage: deno task train [--config FILE] [--key.path=value ...] [--resume [DIR]] " +
  "[--overwrite] [--export DIR] [--workers N]";

/** The demo config, used when no `--config` is given. */
const DEMO_CONFIG = new URL("../configs/rl_arith_hidden_align.yaml", import.meta.url);

/**
 * The parsed command line of `train`.
 *
 * @example Usage
 * ```ts
 * import type { TrainArgs } from "./train.ts";
 *
 * const args: TrainArgs = {
 *   config: "configs/tiny_sft.yaml",
 *   overrides: ["--trainer.lr=1e-3"],
 *   resume: true,
 *   overwrite: false,
 *   help: false,
 * };
 * ```
 */
export interface TrainArgs {
  /** The YAML config file, or `undefined` for the demo. */
  config?: string;
  /** The `--key.path=value` overrides, in order. */
  overrides: string[];
  /** `false`, `true` (the run's newest checkpoint) or a checkpoint/run directory. */
  resume: boolean | string;
  /** Delete an existing run directory of a fresh run. */
  overwrite: boolean;
  /** Also export the final model here. */
  export?: string;
  /** CPU worker threads; default the number of cores (at most 8). */
  workers?: number;
  /** Print the usage. */
  help: boolean;
}

/**
 * Splits the command line into the trainer's flags and config overrides: an argument
 * `--a.b=c` (or `--a.b c`), or `--backend=...`, is an override; `--resume` takes an optional
 * directory.
 *
 * @param args The arguments (without the program name).
 * @returns The parsed arguments.
 * @throws {TypeError} On an unknown flag or a flag without its value (the message names it).
 *
 * @example Overrides and flags
 * ```ts
 * import { parseTrainArgs } from "./train.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(
 *   parseTrainArgs(["--config", "x.yaml", "--trainer.lr", "2e-3", "--resume", "--backend=cpu"]),
 *   {
 *     config: "x.yaml",
 *     overrides: ["--trainer.lr=2e-3", "--backend=cpu"],
 *     resume: true,
 *     overwrite: false,
 *     export: undefined,
 *     workers: undefined,
 *     help: false,
 *   },
 * );
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainArgs {
  const overrides: string[] = [];
  const rest: string[] = [];
  let resume: boolean | string = false;
  const topLevel = new Set(Object.keys(DEFAULT_CONFIG));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--resume") {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        resume = next;
        i++;
      } else {
        resume = true;
      }
      continue;
    }
    if (arg.startsWith("--resume=")) {
      resume = arg.slice("--resume=".length) || true;
      continue;
    }
    const key = arg.startsWith("--") ? arg.slice(2).split("=")[0] : "";
    if (key.includes(".") || topLevel.has(key)) {
      if (arg.includes("=")) {
        overrides.push(arg);
      } else {
        const value = args[i + 1];
        if (value === undefined) {
          throw new TypeError(`Cannot parse the command line: override "${arg}" needs a value`);
        }
        overrides.push(`${arg}=${value}`);
        i++;
      }
      continue;
    }
    rest.push(arg);
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        config: { type: "string" },
        overwrite: { type: "boolean", default: false },
        export: { type: "string" },
        workers: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new TypeError(
      `Cannot parse the command line: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  let workers: number | undefined;
  if (values.workers !== undefined) {
    workers = Number(values.workers);
    if (!Number.isSafeInteger(workers) || workers < 1) {
      throw new TypeError(
        `Cannot parse the command line: --workers must be a positive integer: current value is ` +
          `"${values.workers}"`,
      );
    }
  }
  return {
    config: values.config,
    overrides,
    resume,
    overwrite: values.overwrite,
    export: values.export,
    workers,
    help: values.help,
  };
}

async function readCheckpointConfig(dir: string): Promise<TrainConfig> {
  const checkpoint = (await latestCheckpoint(dir)) ?? dir;
  const path = join(checkpoint, "meta.json");
  const meta = await readJsonFile(path, { context: `Cannot resume from`, optional: true });
  if (meta === undefined) {
    throw new Deno.errors.NotFound(
      `Cannot resume from "${dir}": it is neither a checkpoint (no "${path}") nor a run ` +
        `directory with checkpoints`,
    );
  }
  const saved = validateConfig(
    withSavedConfigDefaults((meta as { config?: unknown } | null)?.config),
    { source: path },
  );
  // The run continues the directory that holds the checkpoint, not the one its saved config
  // names (a copied or moved run would otherwise write into the original).
  const runDir = dirname(checkpoint);
  if (!RUN_NAME.test(basename(runDir))) {
    throw new RangeError(
      `Cannot resume from "${dir}": its run directory's name "${basename(runDir)}" becomes ` +
        `"run.name", which must start with a letter or digit and hold only letters, digits, ` +
        `".", "_" or "-": rename the directory`,
    );
  }
  return validateConfig(
    { ...saved, run: { ...saved.run, outDir: dirname(runDir), name: basename(runDir) } },
    { source: path },
  );
}

/**
 * Resolves the config of a command line: the file (or the demo) plus overrides, or, for
 * `--resume DIR` without `--config`, the checkpoint's own config with `run.outDir` and `run.name`
 * naming the run directory that holds the checkpoint (a copied run continues in the copy).
 *
 * @param args The parsed arguments.
 * @returns The validated config.
 * @throws {TypeError|RangeError|SyntaxError} From `loadConfig`, naming the file and key.
 *
 * @example The demo config with an override
 * ```ts
 * import { resolveTrainConfig } from "./train.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = await resolveTrainConfig({
 *   overrides: ["--trainer.steps=5"], resume: false, overwrite: false, help: false,
 * });
 * strictEqual(config.run.name, "rl_arith_hidden_align");
 * strictEqual(config.trainer.steps, 5);
 * ```
 */
export async function resolveTrainConfig(args: TrainArgs): Promise<TrainConfig> {
  if (args.config === undefined && typeof args.resume === "string") {
    if (args.overrides.length > 0) {
      throw new TypeError(
        `Cannot resume from "${args.resume}" with overrides (${args.overrides.join(" ")}) but ` +
          `no --config: the checkpoint's config is used as saved; pass --config FILE to change keys`,
      );
    }
    return await readCheckpointConfig(args.resume);
  }
  const path = args.config ?? fileURLToPath(DEMO_CONFIG);
  return await loadConfig(path, { overrides: args.overrides });
}

/**
 * Runs `train` with command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns The run's result, or `null` for `--help`.
 *
 * @example A two-step run of the demo config into a temporary directory
 * ```ts ignore
 * import { main } from "./train.ts";
 * await main(["--trainer.steps=2", "--run.outDir=/tmp/halo", "--overwrite"]);
 * ```
 */
export async function main(args: string[]): Promise<RunSftResult | RunRlResult | null> {
  const parsed = parseTrainArgs(args);
  if (parsed.help) {
    console.log(USAGE);
    return null;
  }
  const config = await resolveTrainConfig(parsed);
  // Before anything is trained (SFT and RL): --export must be a directory it may write.
  if (parsed.export !== undefined) {
    await checkExportDir(parsed.export, { modelPath: config.model.path });
  }
  const started = performance.now();
  if (config.trainer.mode === "rl") return await mainRl(config, parsed, started);
  const result = await runSft(config, {
    resume: parsed.resume,
    overwrite: parsed.overwrite,
    exportDir: parsed.export,
    workers: parsed.workers ?? Math.max(1, Math.min(8, navigator.hardwareConcurrency ?? 1)),
  });
  const seconds = (performance.now() - started) / 1000;
  const m = result.metrics;
  const evalText = m["eval/accuracy"] === undefined
    ? ""
    : `; held-out loss ${m["eval/loss"].toFixed(4)}, exact-answer accuracy ${
      (100 * m["eval/accuracy"]).toFixed(1)
    }% (${m["eval/correct"]}/${m["eval/samples"]})`;
  console.error(
    `${result.halted ? "halted" : "done"} at step ${result.step} in ${formatDuration(seconds)}` +
      `${evalText}`,
  );
  console.error(`metrics: ${join(result.runDir, "metrics.jsonl")}`);
  for (const dir of result.exported) console.error(`exported: ${dir}`);
  return result;
}

async function mainRl(
  config: TrainConfig,
  parsed: TrainArgs,
  started: number,
): Promise<RunRlResult> {
  const result = await runRl(config, {
    resume: parsed.resume,
    overwrite: parsed.overwrite,
    exportDir: parsed.export,
    plots: true,
    workers: parsed.workers ?? Math.max(1, Math.min(8, navigator.hardwareConcurrency ?? 1)),
    // Used when rl.rollout.backend names an inference engine.
    rollouts: remoteRollouts(),
  });
  const seconds = (performance.now() - started) / 1000;
  const k = config.rl.eval.samples;
  const pct = (m: Record<string, number>, key: string): string =>
    m[key] === undefined ? "?" : `${(100 * m[key]).toFixed(1)}%`;
  const a = result.startMetrics;
  const b = result.metrics;
  console.error(
    `${result.halted ? "halted" : "done"} at step ${result.step} in ${formatDuration(seconds)}; ` +
      `held-out avg@${k} ${pct(a, `eval/avg@${k}`)} -> ${pct(b, `eval/avg@${k}`)}, pass@${k} ` +
      `${pct(a, `eval/pass@${k}`)} -> ${pct(b, `eval/pass@${k}`)}`,
  );
  const gain = result.heldOutGain;
  if (gain) {
    const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
    console.error(
      `held-out gain ${pts(gain.mean)} points, paired by prompt: 95% interval ` +
        `[${pts(gain.lower)}, ${pts(gain.upper)}] over ${gain.n} prompts (` +
        `${gain.lower > 0 ? "above" : gain.upper < 0 ? "below" : "not separable from"} the start)`,
    );
  }
  console.error(`metrics: ${join(result.runDir, "metrics.jsonl")}`);
  for (const dir of result.exported) console.error(`exported: ${dir}`);
  return result;
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    if (!(error instanceof NonFiniteLossError)) console.error(USAGE);
    Deno.exit(
      error instanceof NonFiniteLossError ? 3 : error instanceof TypeError ||
          error instanceof RangeError || error instanceof SyntaxError
        ? 2
        : 1,
    );
  }
}
