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
 * (`--trainer.lr=1e-3`, `--trainer.steps 50`, `--backend=cpu`), and one key of one `rl.losses`
 * term by the term's name or index (`--rl.losses.hidden_align.weight=0.5`,
 * `--rl.losses.1.layer=0`). `--resume` continues the run's
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
import { checkRunConfig } from "../trainer/check_run_config.ts";
import { remoteRollouts } from "../remote/remote_rollouts.ts";
import { readJsonFile } from "../internal/read_json.ts";

const USAGE = "usage: deno task train [--config FILE] [--key.path=value ...] [--resume [DIR]] " +
  "[--overwrite] [--export DIR] [--workers N]";

/** `--help`: the usage, then what each option does. */
const HELP = `${USAGE}

Trains one run: RL (DAPO, plus the Hidden-Align term when configured) when the config's
trainer.mode is "rl", else supervised fine-tuning. Writes <run.outDir>/<run.name>/: metrics.jsonl,
step_NNNNNN/ checkpoints and final/ (the model, or the PEFT/HILO adapter).

Options:
  --config FILE        run config (YAML) merged over the defaults (trainer/config.ts); default
                       configs/rl_arith_hidden_align.yaml, the RL demo on models/arithmetic-tiny
                       (configs/tiny_sft.yaml is an SFT demo)
  --key.path=value     set any config key, after the file: --trainer.lr=1e-3, --trainer.steps 50,
                       --backend=cpu, "--rl.losses=[{name: clipped_pg}]"; one key of one loss
                       term by its name or index: --rl.losses.hidden_align.weight=0.5,
                       --rl.losses.1.anchor=marker; repeatable
  --resume [DIR]       continue the run's newest checkpoint, or the checkpoint or run directory
                       DIR (with DIR and no --config: the checkpoint's own config)
  --overwrite          start afresh, deleting an existing run directory of the same name
  --export DIR         also write the final model or adapter to DIR (a new or empty directory, or
                       a previous export, replaced whole), checked before training
  --workers N          CPU threads a batch is spread over (default: the cores, at most 8); the
                       results do not depend on it
  -h, --help           print this help`;

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
  const prepared = await prepareTrain(args, (line) => console.log(line));
  return prepared === null ? null : await runTrain(prepared.config, prepared.args);
}

/**
 * The command line read: its arguments, the config (file and overrides, or the checkpoint's) and
 * `--export` checked; `null` for `--help` (the usage printed by `out`). Its errors are the
 * command line's and the config's, the ones the usage text is for.
 */
async function prepareTrain(
  args: string[],
  out: (line: string) => void,
): Promise<{ config: TrainConfig; args: TrainArgs } | null> {
  const parsed = parseTrainArgs(args);
  if (parsed.help) {
    out(HELP);
    return null;
  }
  const config = await resolveTrainConfig(parsed);
  // Before anything is trained (SFT and RL): --export must be a directory it may write.
  if (parsed.export !== undefined) {
    await checkExportDir(parsed.export, { modelPath: config.model.path });
  }
  // The checks that need the model's config.json (an align layer or HILO schedule the model
  // cannot take), before the backend starts.
  await checkRunConfig(config);
  return { config, args: parsed };
}

/** What {@linkcode trainCli} runs once the command line is read: a config and its flags. */
export type TrainRun = (config: TrainConfig, args: TrainArgs) => Promise<unknown>;

/**
 * Options of {@linkcode trainCli}.
 *
 * @example Quiet, with a stub run
 * ```ts
 * import type { TrainCliOptions } from "./train.ts";
 *
 * const options: TrainCliOptions = { out: () => {}, err: () => {}, run: () => Promise.resolve() };
 * ```
 */
export interface TrainCliOptions {
  /** Standard output (`--help`); default `console.log`. */
  out?: (line: string) => void;
  /** Standard error (errors); default `console.error`. */
  err?: (line: string) => void;
  /** The run; default SFT or RL as the config says, with their summary lines. */
  run?: TrainRun;
}

/**
 * `deno task train` as a function: reads the command line and runs it, printing an error as
 * `error: <message>` and returning the exit status instead of throwing. The usage line follows
 * only errors of the command line and the config (an unknown flag, a bad key or file, a bad
 * `--export`); a failure of the run itself (out of GPU memory, a lost device, a data file that
 * cannot be read, a config value the model or GPU cannot run) prints its message alone.
 *
 * @param args The arguments (without the program name).
 * @param options Output streams and the run (for tests).
 * @returns 0 on success, 3 for a non-finite loss, 2 for a `TypeError`, `RangeError` or
 *   `SyntaxError` (bad input), 1 for any other error.
 *
 * @example An unknown flag: the error and the usage, exit status 2
 * ```ts
 * import { trainCli } from "./train.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const lines: string[] = [];
 * strictEqual(await trainCli(["--bogus"], { err: (l) => lines.push(l) }), 2);
 * ok(lines[0].startsWith("error: Cannot parse the command line"));
 * ok(lines[1].startsWith("usage: deno task train"));
 * ```
 */
export async function trainCli(args: string[], options: TrainCliOptions = {}): Promise<number> {
  const out = options.out ?? ((line: string) => console.log(line));
  const err = options.err ?? ((line: string) => console.error(line));
  const run = options.run ?? runTrain;
  const status = (error: unknown): number =>
    error instanceof NonFiniteLossError ? 3 : error instanceof TypeError ||
        error instanceof RangeError || error instanceof SyntaxError
      ? 2
      : 1;
  const message = (error: unknown): string =>
    `error: ${error instanceof Error ? error.message : String(error)}`;
  let prepared;
  try {
    prepared = await prepareTrain(args, out);
  } catch (error) {
    err(message(error));
    err(USAGE);
    return status(error);
  }
  if (prepared === null) return 0;
  try {
    await run(prepared.config, prepared.args);
    return 0;
  } catch (error) {
    err(message(error));
    return status(error);
  }
}

/**
 * The held-out part of an RL run's closing line: avg@k and pass@k at the start and after the last
 * step (`rl.eval.samples` = k), an end the run did not evaluate as such, or that the run did not
 * evaluate (`rl.eval.final: false` with `rl.eval.every` 0 or past the run's steps).
 *
 * @param config The run's config (its `rl.eval`).
 * @param result The run's `startMetrics` and `metrics` (its last step's line).
 * @returns The text, without a trailing period.
 *
 * @example The evaluation switched off
 * ```ts
 * import { rlHeldOutText } from "./train.ts";
 * import { DEFAULT_CONFIG } from "../trainer/config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const rl = { ...DEFAULT_CONFIG.rl, eval: { ...DEFAULT_CONFIG.rl.eval, every: 0, final: false } };
 * const text = rlHeldOutText({ ...DEFAULT_CONFIG, rl }, { startMetrics: {}, metrics: {} });
 * strictEqual(text, `no held-out evaluation ("rl.eval.every" 0, "rl.eval.final" false)`);
 * ```
 */
export function rlHeldOutText(
  config: TrainConfig,
  result: Pick<RunRlResult, "startMetrics" | "metrics">,
): string {
  const e = config.rl.eval;
  const k = e.samples;
  const a = result.startMetrics;
  const b = result.metrics;
  if (e.every === 0 && !e.final) {
    return `no held-out evaluation ("rl.eval.every" 0, "rl.eval.final" false)`;
  }
  if (!e.final && a[`eval/avg@${k}`] === undefined && b[`eval/avg@${k}`] === undefined) {
    return `no held-out evaluation ("rl.eval.every" ${e.every} reached no step, "rl.eval.final" ` +
      `false)`;
  }
  const pct = (m: Record<string, number>, key: string, missing: string): string =>
    m[key] === undefined ? missing : `${(100 * m[key]).toFixed(1)}%`;
  const start = (key: string) => pct(a, key, "(not evaluated at the start)");
  const end = (key: string) =>
    pct(b, key, `(not evaluated after the last step${e.final ? "" : `: "rl.eval.final" false`})`);
  return `held-out avg@${k} ${start(`eval/avg@${k}`)} -> ${end(`eval/avg@${k}`)}, pass@${k} ` +
    `${start(`eval/pass@${k}`)} -> ${end(`eval/pass@${k}`)}`;
}

/** The run of a read command line: SFT or RL as the config says, with the summary lines. */
async function runTrain(
  config: TrainConfig,
  parsed: TrainArgs,
): Promise<RunSftResult | RunRlResult> {
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
  console.error(
    `${result.halted ? "halted" : "done"} at step ${result.step} in ${formatDuration(seconds)}; ` +
      rlHeldOutText(config, result),
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
  const code = await trainCli(Deno.args);
  if (code !== 0) Deno.exit(code);
}
