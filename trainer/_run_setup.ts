// Private: the set-up `runSft` (trainer/sft.ts) and `runRl` (trainer/rl/run_rl.ts) share, in the
// order a run uses it: where the run starts (fresh, overwritten or resumed, the checkpoint's config
// checked against the run's), the model's tokenizer and config (read first, so that checks which
// need the model fail before any work), the weights, adapters and train backend, AdamW with its
// schedule, the restore of a checkpoint, the save of one, and the export of the final model or
// adapter. Each run keeps what is its own: its data, its step, its keys that must not change on
// resume and its log lines.
import { basename, dirname, join, resolve } from "node:path";
import { exists } from "../internal/exists.ts";
import { configValueText, flattenConfig } from "../internal/config_values.ts";
import { fingerprintFiles, fingerprintModel } from "../internal/fingerprint.ts";
import type { Lora } from "../adapters/lora.ts";
import { PEFT_PREFIX, savePeftAdapter } from "../adapters/peft_io.ts";
import { describeHilo } from "../adapters/hilo.ts";
import { adapterKeyWarnings, runAdapters } from "./run_adapters.ts";
import { GpuAdamw } from "./gpu_adamw.ts";
import type { WebGpuTrainBackend } from "./_webgpu_backend.ts";
import { saveHiloAdapter } from "../adapters/hilo_io.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { type Qwen3Config, readQwen3Config } from "../model/config.ts";
import { type GenerationConfig, readGenerationConfig } from "../model/generation_config.ts";
import { endOfTurnTokenId } from "../model/end_of_turn.ts";
import { initQwen3Weights } from "../model/init.ts";
import type { Qwen3Model } from "../model/model.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { keptActivationBytes } from "../model/qwen3_webgpu_backward.ts";
import { createTokenizer, loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { checkTokenizerFitsModel } from "../model/check_tokenizer_vocab.ts";
import { loadQwen3Weights, openQwen3Weights, type Qwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type TrainBackend } from "./backend.ts";
import {
  checkBaseModel,
  CHECKPOINT_BASE_FILES,
  checkpointUnhashed,
  latestCheckpoint,
  loadCheckpoint,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { DEFAULT_CONFIG, type TrainConfig } from "./config.ts";
import { exportQwen3Model } from "./export_model.ts";
import { checkExportDir, writeExportDir } from "./export_dir.ts";
import { flattenOptState, restoreOptState } from "./opt_state_io.ts";
import {
  adamw,
  type AdamwOptions,
  warmupConstantSchedule,
  warmupCosineDecaySchedule,
} from "./optim/mod.ts";
import { loraParams, modelParams, paramTensors } from "./params.ts";
import type { GradientTransformation, ParamTree } from "./types.ts";
import { cosineWarmupProblem, validateConfig } from "./validate_config.ts";
import { trainLoop, type TrainLoopOptions, type TrainLoopResult } from "./train_loop.ts";
import { withSavedConfigDefaults } from "./saved_config.ts";

/** Where a run starts: the checkpoint it resumes, or fresh (replacing the run directory or not). */
export interface RunStart {
  /** `<run.outDir>/<run.name>`. */
  runDir: string;
  /** The checkpoint to resume, or `null` for a fresh run. */
  checkpoint: LoadedCheckpoint | null;
  /** A fresh run with `overwrite`: delete the run directory once the set-up has succeeded. */
  removeRunDir: boolean;
  /**
   * One line per config key that differs from the checkpoint's (allowed to), except learning-rate
   * schedule keys (`trainer.steps`, `lr`, `warmupSteps`, `schedule`, `minLrRatio`) that leave the
   * learning rate of every update already taken as it was (e.g. `trainer.steps` on a constant
   * schedule).
   */
  warnings: string[];
}

/** Options of {@linkcode resolveRunStart}. */
export interface ResolveRunStartOptions {
  /** Continue from a checkpoint (`true`: the run's newest; a string: a checkpoint or run dir). */
  resume?: boolean | string;
  /** A fresh run may replace an existing run directory. */
  overwrite?: boolean;
  /**
   * Keys that must equal the checkpoint's on resume (they define the run's state): a key, or a
   * prefix ending in `.` for a whole section.
   */
  fixedKeys: readonly string[];
  /** Keys under a fixed prefix that may change all the same (with a warning). */
  changeableKeys?: readonly string[];
}

/**
 * Where the run is written, not what it computes: a resume checks these against the checkpoint's
 * own run directory instead (see {@linkcode resolveRunStart}), and never warns about them.
 */
const WHERE_KEYS: readonly string[] = ["run.outDir", "run.name"];

/** The absolute path with symbolic links resolved (as far as it exists). */
async function canonical(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}

/** The keys that act only through the learning-rate schedule. */
const SCHEDULE_KEYS: readonly string[] = [
  "trainer.steps",
  "trainer.lr",
  "trainer.warmupSteps",
  "trainer.schedule",
  "trainer.minLrRatio",
];

/** Optimizer updates per trainer step: RL's `rl.ppoEpochs × rl.miniBatches`, else 1. */
function updatesPerStep(config: TrainConfig): number {
  return config.trainer.mode === "rl" ? config.rl.ppoEpochs * config.rl.miniBatches : 1;
}

/**
 * Whether `current`'s learning-rate schedule gives every update of the checkpoint's first `step`
 * steps the learning rate `saved`'s gave it: then a change to {@linkcode SCHEDULE_KEYS} (e.g.
 * `trainer.steps` on a constant schedule, or during the warm-up) leaves the resumed run the same
 * as an uninterrupted run of `current`.
 */
function sameScheduleSoFar(saved: TrainConfig, current: TrainConfig, step: number): boolean {
  const per = updatesPerStep(saved);
  if (updatesPerStep(current) !== per) return false;
  const schedule = (config: TrainConfig): (count: number) => number => {
    const lr = runAdamwOptions(config, {}, { updatesPerStep: per }).lr;
    return typeof lr === "number" ? () => lr : lr;
  };
  let before: (count: number) => number;
  let after: (count: number) => number;
  try {
    before = schedule(saved);
    after = schedule(current);
  } catch {
    return false; // a schedule that cannot be built fails later, naming its key
  }
  for (let count = 0; count < step * per; count++) {
    if (before(count) !== after(count)) return false;
  }
  return true;
}

/**
 * The keys whose values differ (`"key: old -> new"`), less those in `unchanged`; a fixed key that
 * differs is an error.
 */
function configChanges(
  saved: TrainConfig,
  current: TrainConfig,
  source: string,
  options: ResolveRunStartOptions,
  unchanged: readonly string[] = [],
): string[] {
  const a = flattenConfig(saved);
  const b = flattenConfig(current);
  const changed: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) === b.get(key) || WHERE_KEYS.includes(key)) continue;
    const fixed = !(options.changeableKeys ?? []).includes(key) &&
      options.fixedKeys.some((p) => (p.endsWith(".") ? key.startsWith(p) : key === p));
    if (fixed) {
      throw new RangeError(
        `Cannot resume from "${source}": key "${key}" must match the checkpoint's config ` +
          `(${configValueText(key, a.get(key))}): current value is ` +
          configValueText(key, b.get(key)),
      );
    }
    if (!unchanged.includes(key)) {
      changed.push(
        `${key}: ${configValueText(key, a.get(key))} -> ${configValueText(key, b.get(key))}`,
      );
    }
  }
  return changed;
}

/**
 * The checkpoint to resume (its config checked against the run's) or a fresh start. Reads only.
 *
 * On resume the checkpoint's run directory (the folder holding its `step_NNNNNN/`) must be the
 * run's (`<run.outDir>/<run.name>`): a resumed run appends to that directory's metrics and
 * checkpoints, so it may not write into another run. `run.outDir` and `run.name` may differ from
 * the checkpoint's saved ones (a moved or copied run) without a warning: they do not change the
 * results.
 *
 * @param config The run's config.
 * @param options Resume, overwrite and the keys that define the run.
 * @returns Where the run starts.
 * @throws {RangeError} When there is no checkpoint to resume, the checkpoint belongs to another
 *   run directory than the run's, a fresh run would replace an existing run directory without
 *   `overwrite`, or a fixed key differs from the checkpoint's.
 */
export async function resolveRunStart(
  config: TrainConfig,
  options: ResolveRunStartOptions,
): Promise<RunStart> {
  const warnings: string[] = adapterKeyWarnings(config);
  const runDir = join(config.run.outDir, config.run.name);
  let resumeDir: string | null = null;
  let removeRunDir = false;
  if (options.resume) {
    const where = typeof options.resume === "string" ? options.resume : runDir;
    resumeDir = await exists(join(where, "meta.json")) ? where : await latestCheckpoint(where);
    if (resumeDir === null) {
      throw new RangeError(
        `Cannot resume: "${where}" holds no checkpoint (step_NNNNNN/ with meta.json): start ` +
          `the run without --resume`,
      );
    }
    // A checkpoint is `<run dir>/step_NNNNNN/`: the resumed run continues that run directory's
    // metrics and checkpoints, so it must be the one this run writes, never another run's.
    const owner = dirname(resumeDir);
    if ((await canonical(owner)) !== (await canonical(runDir))) {
      throw new RangeError(
        `Cannot resume from "${resumeDir}": it belongs to run directory "${owner}", but keys ` +
          `"run.outDir" and "run.name" make this run write into "${runDir}" (another run): set ` +
          `--run.outDir=${dirname(owner)} --run.name=${basename(owner)}, or resume without ` +
          `--config (the checkpoint's own config, written into its own run directory)`,
      );
    }
  } else if (await exists(runDir)) {
    if (!options.overwrite) {
      const latest = await latestCheckpoint(runDir);
      throw new RangeError(
        `Cannot start run "${config.run.name}": "${runDir}" already exists` +
          (latest ? ` (latest checkpoint "${latest}")` : "") +
          `: resume it with --resume, delete it with --overwrite, or set --run.name=<new name>`,
      );
    }
    removeRunDir = true; // once the set-up has succeeded
  }
  const checkpoint = resumeDir === null ? null : await loadCheckpoint(resumeDir);
  if (checkpoint !== null) {
    const unhashed = checkpointUnhashed(checkpoint);
    if (unhashed.length > 0) {
      warnings.push(
        `checkpoint "${checkpoint.dir}" predates content hashes: ${unhashed.join(", ")} ` +
          `checked by size only`,
      );
    }
    // Adapters trained on a frozen base fit that base only, and full weights read its tokenizer
    // files and config.json: refuse another model at the same path.
    if (!config.model.path.startsWith("builtin:")) {
      const warning = await checkBaseModel(checkpoint, config.model.path);
      if (warning !== null) warnings.push(warning);
    }
    const source = join(checkpoint.dir, "meta.json");
    // A checkpoint from before rl.rollout existed ran local rollouts (the defaults).
    const saved = validateConfig(withSavedConfigDefaults(checkpoint.meta.config), { source });
    // Schedule keys that leave the learning rate of every step taken so far as it was change
    // nothing the checkpoint did: the run still repeats an uninterrupted one.
    const unchanged = sameScheduleSoFar(saved, config, checkpoint.meta.step) ? SCHEDULE_KEYS : [];
    for (const change of configChanges(saved, config, checkpoint.dir, options, unchanged)) {
      warnings.push(
        `resuming with a changed key (the run no longer repeats an uninterrupted one): ${change}`,
      );
    }
  }
  return { runDir, checkpoint, removeRunDir, warnings };
}

/** The model as far as it is known before its weights load: tokenizer, config, special ids. */
export interface RunModelHead {
  /** The tokenizer. */
  tokenizer: Tokenizer;
  /** `tokenizer.json` (for the export of a full model); `null` when the caller gave the tokenizer. */
  tokenizerJson: unknown;
  /** `tokenizer_config.json`; `null` when the caller gave the tokenizer. */
  tokenizerConfig: unknown;
  /** The model directory's `chat_template.jinja`, if any. */
  chatTemplate?: string;
  /** `model.path` is `builtin:tiny` (a fresh model built from the `model.*` keys). */
  builtin: boolean;
  /** The model's config. */
  modelConfig: Qwen3Config;
  /**
   * The EOS ids of the model's `config.json`, the tokenizer and the model directory's
   * `generation_config.json` (when present), deduplicated: the stop set of HF `generate`.
   */
  eosTokenIds: number[];
  /**
   * The other ids that end an RL rollout or held-out eval sample (generation's `stopTokenIds`,
   * reason `"stop"`): the chat template's end-of-turn token (`<|im_end|>`: the RL prompts are
   * rendered through the template; a Qwen3-*-Base checkpoint's EOS is `<|endoftext|>` only)
   * and `rl.stopTokenIds`, less the ids already in `eosTokenIds`.
   */
  stopTokenIds: number[];
  /** The model directory's `generation_config.json`, or `null` (none, or `builtin:tiny`). */
  generationConfig: GenerationConfig | null;
  /** The padding id: the tokenizer's, else the model's, else the first EOS id, else 0. */
  padId: number;
}

/** Options of {@linkcode readRunModel}. */
export interface ReadRunModelOptions {
  /** The tokenizer, for a model directory without one; default the model's. */
  tokenizer?: Tokenizer;
}

function builtinConfig(config: TrainConfig, tokenizer: Tokenizer): Qwen3Config {
  const m = config.model;
  if (tokenizer.eosTokenId === null) {
    throw new TypeError(`Cannot build "builtin:tiny": the tokenizer has no EOS token`);
  }
  return {
    vocabSize: m.vocab,
    hiddenSize: m.hidden,
    intermediateSize: m.intermediate,
    numHiddenLayers: m.layers,
    numAttentionHeads: m.heads,
    numKeyValueHeads: m.kvHeads,
    headDim: m.headDim,
    rmsNormEps: m.rmsNormEps,
    ropeTheta: m.ropeTheta,
    maxPositionEmbeddings: m.maxPositions,
    tieWordEmbeddings: m.tieEmbeddings,
    eosTokenIds: [tokenizer.eosTokenId],
    bosTokenId: null,
    padTokenId: tokenizer.padTokenId,
  };
}

/** The `model.*` keys that shape `builtin:tiny`, and the model config field each one sets. */
const SHAPE_KEYS = {
  vocab: "vocabSize",
  hidden: "hiddenSize",
  intermediate: "intermediateSize",
  layers: "numHiddenLayers",
  heads: "numAttentionHeads",
  kvHeads: "numKeyValueHeads",
  headDim: "headDim",
  rmsNormEps: "rmsNormEps",
  ropeTheta: "ropeTheta",
  maxPositions: "maxPositionEmbeddings",
  tieEmbeddings: "tieWordEmbeddings",
} as const satisfies Partial<Record<keyof TrainConfig["model"], keyof Qwen3Config>>;

/**
 * A model directory has its own shape (its `config.json`): a shape key set away from its default
 * to another value than the model's would be ignored, so it is refused, naming the keys.
 */
function checkShapeKeys(config: TrainConfig, modelConfig: Qwen3Config): void {
  const conflicts: string[] = [];
  for (const [key, field] of Object.entries(SHAPE_KEYS) as [keyof typeof SHAPE_KEYS, string][]) {
    const value = config.model[key];
    const actual = (modelConfig as unknown as Record<string, unknown>)[field];
    if (value !== DEFAULT_CONFIG.model[key] && value !== actual) {
      conflicts.push(`"model.${key}" (${value}; the model has ${actual})`);
    }
  }
  if (conflicts.length > 0) {
    throw new RangeError(
      `Cannot use model "${config.model.path}": key${conflicts.length > 1 ? "s" : ""} ` +
        `${conflicts.join(", ")} shape only "builtin:tiny"; a model directory keeps the shape ` +
        `of its config.json: drop the key${conflicts.length > 1 ? "s" : ""} or set the ` +
        `model's value${conflicts.length > 1 ? "s" : ""}`,
    );
  }
}

/** Refuses a `model.path` that is neither `builtin:tiny` nor an existing directory. */
async function checkModelDir(config: TrainConfig): Promise<void> {
  const dir = config.model.path;
  if (!(await exists(dir))) {
    throw new RangeError(
      `Cannot load the model: key "model.path" must be a model directory or "builtin:tiny": ` +
        `directory "${dir}" not found`,
    );
  }
}

/**
 * The model's config alone (`config.json`, or the `model.*` shape keys of `builtin:tiny`), with
 * {@linkcode readRunModel}'s checks of the directory and the shape keys: what a grid of runs reads
 * to check every run before the first one trains. No tokenizer file or weight is read.
 *
 * @param config The run's config.
 * @returns The model's config.
 * @throws {RangeError} As `readRunModel`: no such directory, or a contradicting shape key.
 */
export async function readRunModelConfig(config: TrainConfig): Promise<Qwen3Config> {
  if (config.model.path === "builtin:tiny") {
    const files = arithmeticTokenizerFiles();
    return builtinConfig(config, createTokenizer(files.tokenizerJson, files.tokenizerConfig));
  }
  await checkModelDir(config);
  const modelConfig = await readQwen3Config(config.model.path);
  checkShapeKeys(config, modelConfig);
  return modelConfig;
}

/**
 * The tokenizer (the arithmetic one for `builtin:tiny`) and the model's config, without its
 * weights: what the checks that need the model read before any work.
 *
 * With a model directory the `model.*` shape keys (`hidden`, `layers`, `heads`, `kvHeads`,
 * `headDim`, `intermediate`, `vocab`, `maxPositions`, `ropeTheta`, `rmsNormEps`,
 * `tieEmbeddings`) do not apply: the directory's `config.json` gives the shape. A shape key that
 * differs from both its default and the model's value is refused (a `RangeError` naming the keys,
 * the model's values and the directory) rather than ignored; a key left at its default is
 * unused (and the run's config, in each checkpoint's `meta.json`, records it as given).
 *
 * @param config The run's config.
 * @param options A tokenizer given by the caller.
 * @returns The model's head.
 * @throws {RangeError} When the model directory does not exist, or a `model.*` shape key
 *   contradicts its config.
 */
export async function readRunModel(
  config: TrainConfig,
  options: ReadRunModelOptions = {},
): Promise<RunModelHead> {
  const builtin = config.model.path === "builtin:tiny";
  let tokenizer: Tokenizer;
  let tokenizerJson: unknown = null;
  let tokenizerConfig: unknown = null;
  let chatTemplate: string | undefined;
  if (options.tokenizer) {
    tokenizer = options.tokenizer;
  } else if (builtin) {
    const files = arithmeticTokenizerFiles();
    tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
    tokenizerJson = files.tokenizerJson;
    tokenizerConfig = files.tokenizerConfig;
  } else {
    const dir = config.model.path;
    await checkModelDir(config);
    tokenizer = await loadTokenizer(dir);
    const readJson = async (name: string): Promise<unknown> =>
      JSON.parse(await Deno.readTextFile(join(dir, name)));
    tokenizerJson = await readJson("tokenizer.json");
    tokenizerConfig = await readJson("tokenizer_config.json");
    const templatePath = join(dir, "chat_template.jinja");
    if (await exists(templatePath)) chatTemplate = await Deno.readTextFile(templatePath);
  }
  const modelConfig = builtin
    ? builtinConfig(config, tokenizer)
    : await readQwen3Config(config.model.path);
  if (!builtin) checkShapeKeys(config, modelConfig);
  if (!builtin) checkTokenizerFitsModel(tokenizer, modelConfig, config.model.path);
  // As HF generate: the stop set also has generation_config.json's eos_token_id (Qwen3's hybrid
  // checkpoints list [151645, 151643] there, config.json only 151645).
  const generationConfig = builtin
    ? null
    : await readGenerationConfig(config.model.path, { vocabSize: modelConfig.vocabSize });
  const eosTokenIds = [
    ...new Set([
      ...modelConfig.eosTokenIds,
      ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId]),
      ...(generationConfig?.eosTokenIds ?? []),
    ]),
  ];
  const padId = tokenizer.padTokenId ?? modelConfig.padTokenId ?? eosTokenIds[0] ?? 0;
  const stopTokenIds = runStopTokenIds(config, tokenizer, modelConfig, eosTokenIds);
  return {
    tokenizer,
    tokenizerJson,
    tokenizerConfig,
    chatTemplate,
    builtin,
    modelConfig,
    eosTokenIds,
    stopTokenIds,
    generationConfig,
    padId,
  };
}

/**
 * The stop ids of a run besides its EOS ids: the chat template's end-of-turn token and
 * `rl.stopTokenIds` (checked against the model's vocabulary), deduplicated, less the EOS ids.
 */
function runStopTokenIds(
  config: TrainConfig,
  tokenizer: Tokenizer,
  modelConfig: Qwen3Config,
  eosTokenIds: readonly number[],
): number[] {
  const listed = config.rl.stopTokenIds;
  const vocab = modelConfig.vocabSize;
  const outside = listed.filter((id) => id >= vocab);
  if (outside.length > 0) {
    throw new RangeError(
      `Cannot use model "${config.model.path}": key "rl.stopTokenIds" must hold token ids below ` +
        `the model's vocabulary size (${vocab}): current value is ${JSON.stringify(listed)}`,
    );
  }
  const endOfTurn = endOfTurnTokenId(tokenizer);
  return [...new Set([...(endOfTurn === null ? [] : [endOfTurn]), ...listed])]
    .filter((id) => !eosTokenIds.includes(id));
}

/**
 * The adapters of a run in a few words, for the start-up log: `"LoRA r=8"` or
 * `"HILO experts 2-4-6-8, ranks 2-4-6-8"`.
 *
 * @param config The run's config.
 * @returns The text.
 *
 * @example LoRA
 * ```ts
 * import { adapterText } from "./_run_setup.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * console.log(adapterText({ ...DEFAULT_CONFIG, adapters: { ...DEFAULT_CONFIG.adapters, kind: "lora" } })); // LoRA r=8
 * ```
 */
export function adapterText(config: TrainConfig): string {
  const a = config.adapters;
  if (a.kind !== "hilo") return `LoRA r=${a.r}`;
  const show = (x: unknown) => (Array.isArray(x) ? x.join("-") : String(x));
  return `HILO experts ${show(a.hilo.experts)}, ranks ${show(a.hilo.rank)}`;
}

/** The model of a run: weights, adapters, the model and its train backend. */
export interface RunModel {
  /**
   * The base weights on the host: the arrays full fine-tuning trains, or those a CPU model
   * computes with. `null` when the run trains adapters on WebGPU: the model holds its weights on
   * the device, the adapter export writes the adapters only, and the host copy (59 GB in f32 for
   * a 14B model) is dropped once uploaded.
   */
  weights: Qwen3Weights | null;
  /** The LoRA adapters (`adapters.kind: lora`), or `null` (full fine-tuning). */
  lora: Lora | null;
  /** The model. */
  model: Qwen3Model;
  /** The train backend. */
  backend: TrainBackend;
  /** Why `"auto"` skipped a software adapter, or "". */
  gpuNote: string;
  /** Where the math runs, for the log: `"cpu (…)"` or `"webgpu (…)"`, with the workers. */
  description: string;
  /**
   * The adapters for the start-up log: HILO's per-layer experts, ranks and trainable / active
   * parameter counts (`describeHilo`), or none.
   */
  adapterLines: string[];
}

/**
 * What {@linkcode BuildRunModelOptions.beforeWeights} gets: the device the model will run on and
 * the run's adapters, before any weight is read or uploaded.
 *
 * @example Usage
 * ```ts
 * import type { RunModelDevice } from "./_run_setup.ts";
 *
 * const limits = ({ gpu }: RunModelDevice) => gpu.maxBindingSize;
 * ```
 */
export interface RunModelDevice {
  /** The WebGPU device (its limits, whether it is a software adapter). */
  gpu: Gpu;
  /** The run's fresh adapters (only their shapes are final), or null (full fine-tuning). */
  lora: Lora | null;
}

/** Options of {@linkcode buildRunModel}. */
export interface BuildRunModelOptions {
  /** CPU worker threads; default 1. */
  workers?: number;
  /**
   * Called on WebGPU once the device is made and before any weight is read or uploaded (not
   * called on the CPU): the checks that need only the device's limits and the shapes, such as
   * the RL GPU memory plan, so that a run that cannot fit is refused before it loads tens of GB.
   * When it throws, the device is destroyed and the error propagates.
   */
  beforeWeights?: (device: RunModelDevice) => void | Promise<void>;
}

/**
 * The weights (fresh for `builtin:tiny`, else loaded), the LoRA adapters, the model on the
 * configured backend and its train backend. `"auto"` trains on a hardware WebGPU adapter, else on
 * the CPU (a software adapter such as llvmpipe is several times slower than the float64 CPU path
 * at these sizes).
 *
 * @param config The run's config.
 * @param head The tokenizer and model config from {@linkcode readRunModel}.
 * @param options Workers, and the checks to run before the weights are loaded.
 * @returns The model; dispose its `backend` and `model` at the end.
 * @throws {RangeError} When `backend: webgpu` finds no adapter, or LoRA dropout would train on
 *   WebGPU (the GPU backward has none).
 */
export async function buildRunModel(
  config: TrainConfig,
  head: RunModelHead,
  options: BuildRunModelOptions = {},
): Promise<RunModel> {
  const { modelConfig } = head;
  // The device first: it decides how the weights are read (f16 straight from the checkpoint for
  // `model.weightDtype: f16` on WebGPU) and whether a host copy is kept.
  let gpu: Gpu | null = null;
  let gpuNote = "";
  if (config.backend !== "cpu") {
    try {
      gpu = await createGpu();
    } catch (error) {
      if (config.backend === "webgpu") {
        throw new RangeError(
          `Cannot train: key "backend" is "webgpu", but no WebGPU adapter was found: ` +
            `${error instanceof Error ? error.message : error}`,
        );
      }
    }
    if (gpu !== null && config.backend === "auto" && gpu.isFallbackAdapter) {
      gpuNote = ` ("auto": software adapter ${gpu.description} skipped)`;
      gpu = null;
    }
  }
  const matrixDtype = gpu !== null && config.model.weightDtype === "f16" ? "f16" : "f32";
  const lora = runAdapters(config, modelConfig);
  if (gpu !== null) {
    // The checks that need only the device and the shapes, before the weights are read.
    try {
      if (lora !== null && config.adapters.dropout > 0) {
        // The GPU backward applies no LoRA dropout: its train backend would refuse the first
        // update, so say it before any work.
        throw new RangeError(
          `Cannot train: key "adapters.dropout" must be 0 on the WebGPU backend (the GPU ` +
            `backward applies no LoRA dropout), or set "backend" to "cpu": current value is ` +
            `${config.adapters.dropout}`,
        );
      }
      await options.beforeWeights?.({ gpu, lora });
    } catch (error) {
      gpu.device.destroy();
      throw error;
    }
  }
  // Adapters on the GPU: nothing reads the base weights on the host after the upload (the
  // export writes the adapters), so each tensor is read from disk as it is uploaded, and the run
  // keeps no host copy. Otherwise the host arrays are the model (CPU) or what full fine-tuning
  // trains.
  const stream = gpu !== null && lora !== null && !head.builtin;
  let weights: Qwen3Weights | Qwen3Weights<Uint16Array> | null = stream
    ? null
    : head.builtin
    ? initQwen3Weights(modelConfig, { seed: config.run.seed, std: config.model.initStd })
    : await loadQwen3Weights(config.model.path, modelConfig, { matrixDtype });
  let model: Qwen3Model;
  if (gpu === null) {
    model = new CpuQwen3(modelConfig, weights as Qwen3Weights);
  } else {
    const ctx = new GpuContext(gpu);
    const open = weights === null
      ? await openQwen3Weights(config.model.path, modelConfig, { matrixDtype })
      : null;
    try {
      model = new WebGpuQwen3(ctx, modelConfig, open?.weights ?? weights!, {
        weightDtype: config.model.weightDtype,
        kvDtype: config.model.kvDtype,
        submitEveryLayers: config.model.submitEveryLayers ?? undefined,
      });
    } finally {
      open?.close();
    }
    await ctx.settleUploads(); // the staging copies of the uploads can go now
    if (lora !== null) weights = null; // (builtin:tiny's fresh arrays)
  }
  if (lora !== null) (model as CpuQwen3 | WebGpuQwen3).setAdapters(lora);
  const workers = model.backend === "cpu" ? options.workers ?? 1 : 1;
  let backend: TrainBackend;
  try {
    backend = createTrainBackend(model, {
      mode: lora === null ? "full" : "adapters",
      workers,
      params: lora === null ? modelParams(weights as Qwen3Weights, modelConfig) : loraParams(lora),
      keepActivations: config.trainer.keepActivations,
    });
  } catch (error) {
    model.dispose();
    throw error;
  }
  // trainer.keepActivations: its memory, at most (every layer trained) per token of a micro-batch.
  const kept = backend.kind === "webgpu" && config.trainer.keepActivations
    ? `, keepActivations: ≤ ${modelConfig.numHiddenLayers - 1} layers × ` +
      `${(keptActivationBytes(modelConfig, 1, 1) / 1e3).toPrecision(3)} kB per token of a ` +
      `micro-batch, and ≤ ${(4 * modelConfig.vocabSize / 1e3).toPrecision(3)} kB per token for ` +
      `the LM head's logits when they run in blocks`
    : "";
  const description = `${backend.kind} (${backend.model.device}` +
    `${workers > 1 ? `, ${workers} workers` : ""}${kept})`;
  const adapterLines = lora?.hilo ? describeHilo(lora) : [];
  return {
    weights: weights as Qwen3Weights | null,
    lora,
    model,
    backend,
    gpuNote,
    description,
    adapterLines,
  };
}

/** Options of {@linkcode runAdamw}. */
export interface RunAdamwOptions {
  /** Optimizer updates per step: the schedule counts updates (default 1). */
  updatesPerStep?: number;
  /**
   * Read at every update and added to the update count before the schedule reads it (default
   * none): the RL trainer's shift from the updates made to the updates planned, so that a step
   * that makes fewer updates than planned does not hold the schedule back.
   */
  scheduleShift?: () => number;
}

/**
 * AdamW with clipping (`trainer.maxGradNorm`), decay on matrices only (not the RMSNorm gains, as
 * nanoGPT) and the `trainer.schedule` (warmup, then constant or cosine decay over the run),
 * counted in updates.
 *
 * @param config The run's config.
 * @param shapes The trainable parameters' shapes.
 * @param options Updates per step, and the RL trainer's schedule shift.
 * @returns The optimizer.
 * @throws {RangeError} When the cosine schedule's warmup is not shorter than the run.
 */
export function runAdamw(
  config: TrainConfig,
  shapes: Readonly<Record<string, readonly number[]>>,
  options: RunAdamwOptions = {},
): GradientTransformation<unknown[]> {
  return adamw(runAdamwOptions(config, shapes, options));
}

/**
 * The options of {@linkcode runAdamw}'s AdamW (for the host chain `adamw()` or `GpuAdamw`).
 *
 * @param config The run's config.
 * @param shapes The trainable parameters' shapes.
 * @param options Updates per step, and the RL trainer's schedule shift.
 * @returns The options.
 * @throws {RangeError} When the cosine schedule's warmup is not shorter than the run.
 */
export function runAdamwOptions(
  config: TrainConfig,
  shapes: Readonly<Record<string, readonly number[]>>,
  options: RunAdamwOptions = {},
): AdamwOptions {
  const t = config.trainer;
  const per = options.updatesPerStep ?? 1;
  const totalUpdates = t.steps * per;
  const warmup = t.warmupSteps * per;
  const warmupProblem = cosineWarmupProblem(t);
  if (warmupProblem !== undefined) {
    throw new RangeError(`Cannot build the optimizer: key "trainer.warmupSteps" ${warmupProblem}`);
  }
  const schedule = t.schedule === "cosine"
    ? warmupCosineDecaySchedule({
      peakValue: t.lr,
      warmupSteps: warmup,
      decaySteps: totalUpdates,
      minRatio: t.minLrRatio,
    })
    : warmupConstantSchedule({ peakValue: t.lr, warmupSteps: warmup });
  const shift = options.scheduleShift;
  const lr = shift === undefined ? schedule : (count: number) => schedule(count + shift());
  return {
    lr,
    b1: t.b1,
    b2: t.b2,
    eps: t.eps,
    weightDecay: t.weightDecay,
    maxGradNorm: t.maxGradNorm > 0 ? t.maxGradNorm : undefined,
    decayMask: (name) => shapes[name].length >= 2,
  };
}

/**
 * The GPU-resident AdamW of a run (`trainer.optimizer`: `"device"`, or `"auto"` on WebGPU), over
 * the backend's model with {@linkcode runAdamwOptions}; `null` when AdamW runs on the host.
 *
 * @param config The run's config.
 * @param backend The run's train backend.
 * @param options Updates per step.
 * @returns The optimizer, or null.
 * @throws {RangeError} When `"device"` is asked on the CPU backend (the key is named).
 *
 * @example Host AdamW on the CPU
 * ```ts ignore
 * import { deviceAdamw } from "./_run_setup.ts";
 * declare const config: import("./config.ts").TrainConfig;
 * declare const backend: import("./backend.ts").TrainBackend;
 * console.log(deviceAdamw(config, backend)); // null on the CPU with "auto"
 * ```
 */
export function deviceAdamw(
  config: TrainConfig,
  backend: TrainBackend,
  options: RunAdamwOptions = {},
): GpuAdamw | null {
  const where = config.trainer.optimizer;
  if (where === "device" && backend.kind !== "webgpu") {
    throw new RangeError(
      `Cannot train: key "trainer.optimizer" is "device", which needs the WebGPU backend, but ` +
        `the model runs on the ${backend.kind}: set it to "auto" or "host"`,
    );
  }
  if (where === "host" || backend.kind !== "webgpu") return null;
  const gpu = backend as WebGpuTrainBackend;
  return new GpuAdamw(
    gpu.model,
    backend.mode,
    runAdamwOptions(config, backend.params.shapes, options),
  );
}

/** What a restored run continues with. */
export interface RestoredRun<S> {
  /** The optimizer state. */
  optState: S;
  /** The checkpoint's step (the last one done). */
  startStep: number;
  /** The checkpoint's data position. */
  dataPosition: number;
}

/**
 * On resume: checks the checkpoint fits the run (its weights kind, its step), puts its
 * parameters into the backend and restores the optimizer state.
 *
 * @param config The run's config.
 * @param checkpoint The checkpoint.
 * @param run The backend, adapters and optimizer.
 * @returns The optimizer state, step and data position.
 * @throws {RangeError} When the checkpoint holds the other kind of weights or a later step.
 * @throws {TypeError} When a tensor is not a float parameter of this run.
 */
export function restoreRun<S>(
  config: TrainConfig,
  checkpoint: LoadedCheckpoint,
  run: { backend: TrainBackend; lora: Lora | null; optimizer: GradientTransformation<S> },
): RestoredRun<S> {
  const meta = checkpoint.meta;
  const where = `Cannot resume from "${checkpoint.dir}"`;
  const expectedWeights = run.lora === null ? "model" : "adapter";
  if (meta.weights !== expectedWeights) {
    throw new RangeError(
      `${where}: the checkpoint holds "${meta.weights}" weights, but key "adapters.kind" ` +
        `("${config.adapters.kind}") trains the ${expectedWeights}`,
    );
  }
  if (meta.step > config.trainer.steps) {
    throw new RangeError(
      `${where}: key "trainer.steps" must be >= the checkpoint's step (${meta.step}): current ` +
        `value is ${config.trainer.steps}`,
    );
  }
  const prefix = run.lora === null ? "" : PEFT_PREFIX;
  const loaded: ParamTree = {};
  for (const [name, tensor] of Object.entries(checkpoint.tensors)) {
    if (!name.startsWith(prefix) || !(tensor.data instanceof Float32Array)) {
      throw new TypeError(`${where}: tensor "${name}" is not a float parameter of this run`);
    }
    loaded[name.slice(prefix.length)] = tensor.data;
  }
  run.backend.setParams(loaded);
  const optState = restoreOptState(
    run.optimizer.init(run.backend.params.tree),
    checkpoint.optimizer,
    { source: join(checkpoint.dir, meta.files.optimizer.name) },
  );
  return { optState, startStep: meta.step, dataPosition: meta.dataPosition };
}

/** What {@linkcode saveRun} writes besides the parameters. */
export interface SaveRunOptions {
  /** The run's config (in `meta.json`: a resume needs nothing else). */
  config: TrainConfig;
  /** The train backend (its parameters are saved). */
  backend: TrainBackend;
  /** The adapters (an adapter checkpoint), or `null` (a model checkpoint). */
  lora: Lora | null;
  /** The optimizer state. */
  optState: unknown;
  /** Where the data stream continues. */
  dataPosition: number;
  /** How the run's randomness is derived (in `meta.json`). */
  rng: Record<string, unknown>;
  /** What identifies the data `dataPosition` counts into (in `meta.json`); absent: none. */
  data?: Record<string, unknown>;
  /** The step's metrics. */
  metrics: Record<string, number>;
  /** The git commit, or `null`. */
  sha: string | null;
}

/**
 * Saves an atomic checkpoint of step `step` (parameters, optimizer state, meta), keeping
 * `checkpoint.keep` of them.
 *
 * @param runDir The run directory.
 * @param step The step done.
 * @param options The state and its description.
 * @returns The checkpoint directory.
 */
export async function saveRun(
  runDir: string,
  step: number,
  options: SaveRunOptions,
): Promise<string> {
  const { config, lora } = options;
  // Adapters fit only the frozen base they were trained on: its fingerprint goes into meta.json;
  // every checkpoint still reads the base's tokenizer files and config.json: theirs does too.
  const base = config.model.path;
  const builtin = base.startsWith("builtin:");
  const baseModel = lora === null || builtin ? undefined : await fingerprintModel(base);
  const baseFiles = builtin ? undefined : await fingerprintFiles(base, CHECKPOINT_BASE_FILES);
  return await saveCheckpoint(runDir, {
    step,
    weights: lora === null ? "model" : "adapter",
    tensors: paramTensors(options.backend.params, { prefix: lora === null ? "" : PEFT_PREFIX }),
    optimizer: flattenOptState(options.optState),
    meta: {
      config,
      dataPosition: options.dataPosition,
      rng: options.rng,
      ...(options.data === undefined ? {} : { data: options.data }),
      ...(baseModel === undefined ? {} : { baseModel }),
      ...(baseFiles === undefined ? {} : { baseFiles }),
      metrics: options.metrics,
      gitSha: options.sha,
    },
    keep: config.checkpoint.keep,
    overwrite: true,
  });
}

/**
 * Exports the final model (a HuggingFace directory with the tokenizer) or the adapter (PEFT) to
 * each directory. A full model whose tokenizer the caller gave (no tokenizer files) is not
 * exported.
 *
 * @param config The run's config.
 * @param head The tokenizer files and model config.
 * @param run The weights and adapters.
 * @param dirs Where to export.
 * @returns The directories written.
 */
export async function exportRun(
  config: TrainConfig,
  head: RunModelHead,
  run: Pick<RunModel, "weights" | "lora">,
  dirs: readonly string[],
): Promise<string[]> {
  const exported: string[] = [];
  // Every directory is checked before any is written (an export never lands on model.path, a
  // file or a directory of other files).
  for (const dir of dirs) {
    await checkExportDir(dir, { modelPath: config.model.path, flag: "export directory" });
  }
  const kind = run.lora === null ? "model" : run.lora.hilo ? "hilo" : "lora";
  for (const dir of dirs) {
    if (run.lora === null && head.tokenizerJson === null) continue; // no tokenizer files
    if (run.lora === null && run.weights === null) {
      throw new Error(
        `Cannot export the full model to "${dir}": the run kept no host weights (they are ` +
          `kept when "adapters.kind" is "none")`,
      );
    }
    // Into a temporary directory beside it, renamed into place (a previous export is replaced
    // whole: none of its files stays beside the new ones).
    await writeExportDir(dir, (tmp) => writeExport(tmp, config, head, run), {
      kind,
      baseModel: config.model.path,
    });
    exported.push(dir);
  }
  return exported;
}

async function writeExport(
  dir: string,
  config: TrainConfig,
  head: RunModelHead,
  run: Pick<RunModel, "weights" | "lora">,
): Promise<void> {
  if (run.lora?.hilo) {
    await saveHiloAdapter(dir, run.lora, { baseModelNameOrPath: config.model.path });
  } else if (run.lora !== null) {
    await savePeftAdapter(dir, run.lora, { baseModelNameOrPath: config.model.path });
  } else {
    await exportQwen3Model(dir, {
      config: head.modelConfig,
      weights: run.weights!,
      tokenizerJson: head.tokenizerJson,
      tokenizerConfig: head.tokenizerConfig,
      chatTemplate: head.chatTemplate,
      initializerRange: config.model.initStd,
      generationConfig: head.generationConfig?.json,
    });
  }
}

/**
 * Options of {@linkcode trainAndExport}.
 */
export interface TrainAndExportOptions {
  /** The training loop (steps, evaluation, checkpoints, progress). */
  loop: TrainLoopOptions;
  /** Brings the host parameters and optimizer state up to date with the device's (a no-op
   * without the device optimizer); called before the export. */
  syncFromDevice: () => Promise<void>;
  /** The device optimizer, disposed after the loop. */
  gpuOpt: GpuAdamw | null;
  /** Also export the final model or adapter here (`--export`). */
  exportDir?: string;
}

/**
 * The common end of an SFT and an RL run: the training loop, then (unless it halted) the host
 * copies synced from the device and the final model or adapter exported to `<runDir>/final` and
 * the `--export` directory.
 *
 * @param config The run's config.
 * @param head The tokenizer files and model config.
 * @param run The weights and adapters (read after the sync).
 * @param options The loop, the device sync and optimizer, and the export directory.
 * @returns The loop's result and the directories exported.
 */
export async function trainAndExport(
  config: TrainConfig,
  head: RunModelHead,
  run: Pick<RunModel, "weights" | "lora">,
  options: TrainAndExportOptions,
): Promise<{ result: TrainLoopResult; exported: string[] }> {
  const result = await trainLoop(options.loop);
  if (!result.halted) await options.syncFromDevice();
  options.gpuOpt?.dispose();
  const exported = result.halted ? [] : await exportRun(config, head, run, [
    join(options.loop.runDir, "final"),
    ...(options.exportDir ? [options.exportDir] : []),
  ]);
  return { result, exported };
}
