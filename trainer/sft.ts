/**
 * A whole supervised fine-tuning run from a {@linkcode TrainConfig}: build or load the model (a
 * fresh `builtin:tiny` Qwen3 for full fine-tuning, or a checkpoint directory with optional LoRA
 * adapters), stream the arithmetic task's worked solutions in seeded epochs, optimize the
 * token-level NLL of the completions with AdamW (clipping, warmup + cosine/constant schedule,
 * token-weighted gradient accumulation over micro-batches), evaluate held-out loss and greedy
 * exact-answer accuracy, save atomic checkpoints that resume bit-exactly, and export the result
 * (a HuggingFace model directory, or a PEFT adapter).
 *
 * Everything random is counter-based (the data order from `(run.seed, epoch)`, the parameter and
 * adapter init from `run.seed`, LoRA dropout masks from `(run.seed, step, micro-batch)` and each
 * sequence's tokens; the problems themselves from `data.seed`), so the state of a run is its
 * parameters, optimizer state and step: a resumed run repeats an uninterrupted one exactly.
 *
 * @module
 */
import { exists } from "../internal/exists.ts";
import { join } from "node:path";
import type { TrainConfig } from "./config.ts";
import { validateConfig } from "./validate_config.ts";
import { createLora, type Lora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { PEFT_PREFIX, savePeftAdapter } from "../adapters/peft_io.ts";
import {
  arithmeticDataset,
  type ArithmeticExample,
  formatExample,
} from "../data/arithmetic_task.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { type Qwen3Config, readQwen3Config } from "../model/config.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import type { Qwen3Model } from "../model/model.ts";
import type { Qwen3Weights } from "../model/weights.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { createTokenizer, loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type TrainBackend } from "./backend.ts";
import {
  latestCheckpoint,
  loadCheckpoint,
  type LoadedCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { dataOrder } from "./data_order.ts";
import { type EvalExample, evaluateSft } from "./eval_sft.ts";
import { exportQwen3Model } from "./export_model.ts";
import { gitSha } from "./git_sha.ts";
import { flattenOptState, restoreOptState } from "./opt_state_io.ts";
import {
  adamw,
  applyUpdates,
  multiSteps,
  type MultiStepsState,
  warmupConstantSchedule,
  warmupCosineDecaySchedule,
} from "./optim/mod.ts";
import { loraParams, modelParams, paramTensors } from "./params.ts";
import { createProgress, type Progress } from "../internal/progress.ts";
import { collateSft, type SftSequence, tokenizeSft } from "./sft_batch.ts";
import { sftLoss } from "./sft_loss.ts";
import { type PendingStep, trainLoop } from "./train_loop.ts";
import { type TrainMicroBatch, trainStep } from "./train_step.ts";
import type { GradientTransformation, ParamTree } from "./types.ts";
import { mix32 } from "../internal/random.ts";

/**
 * Faults to inject, for tests of the run's safety nets.
 *
 * @example Usage
 * ```ts
 * import type { SftFaults } from "./sft.ts";
 *
 * const faults: SftFaults = { nanLossAtStep: 3 };
 * ```
 */
export interface SftFaults {
  /** Make the loss of this step NaN (a poisoned batch). */
  nanLossAtStep?: number;
}

/**
 * Options of {@linkcode runSft}.
 *
 * @example Usage
 * ```ts
 * import type { RunSftOptions } from "./sft.ts";
 *
 * const options: RunSftOptions = { resume: true, exportDir: "models/arithmetic-tiny" };
 * ```
 */
export interface RunSftOptions {
  /**
   * Continue from a checkpoint: `true` takes the newest one of the run directory
   * (`<run.outDir>/<run.name>`); a string names a checkpoint folder or a run directory.
   * Default: start fresh.
   */
  resume?: boolean | string;
  /** A fresh run deletes an existing run directory instead of refusing. Default `false`. */
  overwrite?: boolean;
  /** Also export the final model (or adapter) to this directory. */
  exportDir?: string;
  /** Evaluate before the first step of a fresh run (a `step: 0` metrics line). Default `true`. */
  evalAtStart?: boolean;
  /** Stop after this step as if killed (see `trainLoop`). */
  haltAfterStep?: number;
  /** Injected faults. */
  faults?: SftFaults;
  /** The progress line; `null` for none. Default: a progress line on stderr. */
  progress?: Progress | null;
  /** Where information lines go; default stderr. */
  log?: (text: string) => void;
  /**
   * CPU threads (workers) to spread each batch's sequences over; default 1. Results do not
   * depend on it (see `createTrainBackend`), so a run may resume with another count.
   */
  workers?: number;
}

/**
 * Result of {@linkcode runSft}.
 *
 * @example Usage
 * ```ts
 * import type { RunSftResult } from "./sft.ts";
 *
 * function summary(r: RunSftResult): string {
 *   return `${r.step} steps, accuracy ${r.metrics["eval/accuracy"]}`;
 * }
 * ```
 */
export interface RunSftResult {
  /** The run directory. */
  runDir: string;
  /** The last step done. */
  step: number;
  /** Whether `haltAfterStep` stopped the run. */
  halted: boolean;
  /** The last metrics line (without `step`). */
  metrics: Record<string, number>;
  /** The newest checkpoint. */
  lastCheckpoint: string | null;
  /** The checkpoint the run resumed from, or `null`. */
  resumedFrom: string | null;
  /** Where the final model/adapter was exported (`<runDir>/final` and `exportDir`). */
  exported: string[];
  /** Where the math ran. */
  backend: string;
  /** Number of trained floats. */
  trainableParams: number;
  /** Warnings (e.g. config keys changed on resume). */
  warnings: string[];
}

/** Keys that must equal the checkpoint's on resume: they define the run's state. */
const RESUME_FIXED = [
  "run.seed",
  "model.",
  "adapters.",
  "data.",
  "trainer.mode",
  "trainer.batchSize",
  "trainer.microBatches",
];

function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) {
      flatten(child, prefix === "" ? key : `${prefix}.${key}`, out);
    }
  } else {
    out.set(prefix, JSON.stringify(value));
  }
}

function configChanges(
  saved: TrainConfig,
  current: TrainConfig,
  source: string,
): string[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(saved, "", a);
  flatten(current, "", b);
  const changed: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) === b.get(key)) continue;
    if (RESUME_FIXED.some((p) => (p.endsWith(".") ? key.startsWith(p) : key === p))) {
      throw new RangeError(
        `Cannot resume from "${source}": key "${key}" must match the checkpoint's config ` +
          `(${a.get(key) ?? "unset"}): current value is ${b.get(key) ?? "unset"}`,
      );
    }
    changed.push(`${key}: ${a.get(key)} -> ${b.get(key)}`);
  }
  return changed;
}

interface TokenizerSource {
  tokenizer: Tokenizer;
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  chatTemplate?: string;
}

async function tokenizerFor(config: TrainConfig): Promise<TokenizerSource> {
  if (config.model.path === "builtin:tiny") {
    const files = arithmeticTokenizerFiles();
    return {
      tokenizer: createTokenizer(files.tokenizerJson, files.tokenizerConfig),
      tokenizerJson: files.tokenizerJson,
      tokenizerConfig: files.tokenizerConfig,
    };
  }
  const dir = config.model.path;
  const tokenizer = await loadTokenizer(dir);
  const readJson = async (name: string): Promise<unknown> =>
    JSON.parse(await Deno.readTextFile(join(dir, name)));
  const templatePath = join(dir, "chat_template.jinja");
  return {
    tokenizer,
    tokenizerJson: await readJson("tokenizer.json"),
    tokenizerConfig: await readJson("tokenizer_config.json"),
    chatTemplate: await exists(templatePath) ? await Deno.readTextFile(templatePath) : undefined,
  };
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

function countParams(tree: ParamTree): number {
  return Object.values(tree).reduce((n, t) => n + t.length, 0);
}

/** Where a run starts: the checkpoint it resumes, or fresh (replacing the run directory or not). */
interface SftStart {
  runDir: string;
  checkpoint: LoadedCheckpoint | null;
  /** A fresh run with `overwrite`: delete the run directory once the set-up has succeeded. */
  removeRunDir: boolean;
  warnings: string[];
}

/** Set-up, part 1: the checkpoint to resume (checked against the config) or a fresh start. */
async function resolveStart(config: TrainConfig, options: RunSftOptions): Promise<SftStart> {
  const warnings: string[] = [];
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
  } else if (await exists(runDir)) {
    if (!options.overwrite) {
      const latest = await latestCheckpoint(runDir);
      throw new RangeError(
        `Cannot start run "${config.run.name}": "${runDir}" already exists` +
          (latest ? ` (latest checkpoint "${latest}")` : "") +
          `: resume it with --resume, delete it with --overwrite, or set --run.name=<new name>`,
      );
    }
    removeRunDir = true; // once the setup below has succeeded
  }
  const checkpoint = resumeDir === null ? null : await loadCheckpoint(resumeDir);
  if (checkpoint !== null) {
    const source = join(checkpoint.dir, "meta.json");
    const saved = validateConfig(checkpoint.meta.config, { source });
    for (const change of configChanges(saved, config, checkpoint.dir)) {
      warnings.push(
        `resuming with a changed key (the run no longer repeats an uninterrupted one): ${change}`,
      );
    }
  }
  return { runDir, checkpoint, removeRunDir, warnings };
}

/** The model of a run: tokenizer, config, weights, adapters, backend. */
interface SftModel {
  tok: TokenizerSource;
  builtin: boolean;
  modelConfig: Qwen3Config;
  weights: Qwen3Weights;
  lora: Lora | null;
  model: Qwen3Model;
  backend: TrainBackend;
  /** Why `"auto"` skipped a software adapter, or "". */
  gpuNote: string;
}

/** Set-up, part 2: tokenizer, model (fresh or loaded), adapters and the train backend. */
async function buildModel(config: TrainConfig, options: RunSftOptions): Promise<SftModel> {
  const tok = await tokenizerFor(config);
  const builtin = config.model.path === "builtin:tiny";
  const modelConfig = builtin ? builtinConfig(config, tok.tokenizer) : await readQwen3Config(
    config.model.path,
  );
  const weights = builtin
    ? initQwen3Weights(modelConfig, { seed: config.run.seed, std: config.model.initStd })
    : await loadQwen3Weights(config.model.path, modelConfig);
  let lora: Lora | null = null;
  if (config.adapters.kind === "lora") {
    const a = config.adapters;
    lora = createLora(
      loraConfig({
        r: a.r,
        loraAlpha: a.alpha,
        targetModules: [...a.targets],
        rankPattern: { ...a.rankPattern },
        alphaPattern: { ...a.alphaPattern },
        loraDropout: a.dropout,
        useRslora: a.rslora,
        baseModelNameOrPath: config.model.path,
      }),
      modelConfig,
      { seed: config.run.seed },
    );
  }

  // Backend: "auto" trains on a hardware WebGPU adapter, else on the CPU (a software adapter
  // such as llvmpipe is several times slower than the float64 CPU path at these sizes).
  let model: Qwen3Model;
  let gpuNote = "";
  if (config.backend === "cpu") {
    model = new CpuQwen3(modelConfig, weights);
  } else {
    let gpu: Gpu | null = null;
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
    if (gpu !== null && (config.backend === "webgpu" || !gpu.isFallbackAdapter)) {
      model = new WebGpuQwen3(new GpuContext(gpu), modelConfig, weights);
    } else {
      if (gpu !== null) gpuNote = ` ("auto": software adapter ${gpu.description} skipped)`;
      model = new CpuQwen3(modelConfig, weights);
    }
  }
  if (lora !== null) (model as CpuQwen3 | WebGpuQwen3).setAdapters(lora);
  let backend: TrainBackend;
  try {
    backend = createTrainBackend(model, {
      mode: lora === null ? "full" : "adapters",
      workers: model.backend === "cpu" ? options.workers ?? 1 : 1,
      params: lora === null ? modelParams(weights, modelConfig) : loraParams(lora),
    });
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { tok, builtin, modelConfig, weights, lora, model, backend, gpuNote };
}

/** The data of a run: training sequences by stream position, held-out examples, special ids. */
interface SftData {
  trainSize: number;
  evalExamples: EvalExample[];
  order: ReturnType<typeof dataOrder>;
  sequenceAt: (position: number) => SftSequence;
  padId: number;
  eosTokenIds: number[];
  context: number;
}

/** Set-up, part 3: the arithmetic task's examples, their seeded order and tokenization. */
function buildData(config: TrainConfig, run: SftModel): SftData {
  const { tokenizer } = run.tok;
  const { modelConfig, builtin } = run;
  const eosTokenIds = [
    ...new Set([
      ...modelConfig.eosTokenIds,
      ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId]),
    ]),
  ];
  const padId = tokenizer.padTokenId ?? modelConfig.padTokenId ?? eosTokenIds[0] ?? 0;
  const d = config.data;
  const taskOptions = {
    seed: d.seed,
    digits: d.digits,
    ops: d.ops,
    maxTerms: d.maxTerms,
    mulDigits: d.mulDigits,
  };
  const train: ArithmeticExample[] = arithmeticDataset("train", {
    ...taskOptions,
    size: d.trainSize,
  });
  const evalExamples: EvalExample[] = arithmeticDataset("eval", {
    ...taskOptions,
    size: d.evalSize,
  })
    .slice(0, config.eval.samples)
    .map((e) => ({ ...formatExample(e), answer: e.answer }));
  const context = modelConfig.maxPositionEmbeddings;
  const contextKey = builtin ? `key "model.maxPositions"` : `"max_position_embeddings"`;
  const tooLong = (length: number, what: string): RangeError =>
    new RangeError(
      `Cannot train: ${contextKey} must be >= ${length} to hold ${what}: current value is ` +
        `${context}`,
    );
  for (const e of evalExamples) {
    const length = tokenizeSft(tokenizer, e).ids.length;
    if (length > context) {
      throw tooLong(length, `the held-out example ${JSON.stringify(e.prompt)}`);
    }
  }
  const order = dataOrder({ size: train.length, seed: config.run.seed });
  const tokenized = new Map<number, SftSequence>();
  const sequenceAt = (position: number): SftSequence => {
    const index = order.index(position);
    let s = tokenized.get(index);
    if (s === undefined) {
      const text = formatExample(train[index]);
      s = tokenizeSft(tokenizer, text);
      if (s.ids.length > context) {
        throw tooLong(s.ids.length, `the training example ${JSON.stringify(text.prompt)}`);
      }
      tokenized.set(index, s);
    }
    return s;
  };
  return { trainSize: train.length, evalExamples, order, sequenceAt, padId, eosTokenIds, context };
}

/** The optimizer of a run: AdamW inside `multiSteps`. */
type SftOptimizer = GradientTransformation<MultiStepsState<unknown[]>>;

/** Set-up, part 4: AdamW with clipping, the schedule and token-weighted accumulation. */
function buildOptimizer(config: TrainConfig, shapes: Record<string, number[]>): SftOptimizer {
  const t = config.trainer;
  if (t.schedule === "cosine" && t.warmupSteps >= t.steps) {
    throw new RangeError(
      `Cannot build the optimizer: key "trainer.warmupSteps" must be < "trainer.steps" ` +
        `(${t.steps}) for the cosine schedule: current value is ${t.warmupSteps}`,
    );
  }
  const lr = t.schedule === "cosine"
    ? warmupCosineDecaySchedule({
      peakValue: t.lr,
      warmupSteps: t.warmupSteps,
      decaySteps: t.steps,
      minRatio: t.minLrRatio,
    })
    : warmupConstantSchedule({ peakValue: t.lr, warmupSteps: t.warmupSteps });
  return multiSteps(
    adamw({
      lr,
      b1: t.b1,
      b2: t.b2,
      eps: t.eps,
      weightDecay: t.weightDecay,
      maxGradNorm: t.maxGradNorm > 0 ? t.maxGradNorm : undefined,
      // Decay matrices only (not the RMSNorm gains), as nanoGPT.
      decayMask: (name) => shapes[name].length >= 2,
    }),
    { everySteps: t.microBatches, weighting: "token" },
  );
}

/** Set-up, part 5: on resume, the checkpoint's parameters (into the backend) and optimizer state. */
function restoreRun(
  config: TrainConfig,
  checkpoint: LoadedCheckpoint,
  run: SftModel,
  optimizer: SftOptimizer,
): { optState: MultiStepsState<unknown[]>; startStep: number } {
  const t = config.trainer;
  const meta = checkpoint.meta;
  const where = `Cannot resume from "${checkpoint.dir}"`;
  const expectedWeights = run.lora === null ? "model" : "adapter";
  if (meta.weights !== expectedWeights) {
    throw new RangeError(
      `${where}: the checkpoint holds "${meta.weights}" weights, but key "adapters.kind" ` +
        `("${config.adapters.kind}") trains the ${expectedWeights}`,
    );
  }
  if (meta.step > t.steps) {
    throw new RangeError(
      `${where}: key "trainer.steps" must be >= the checkpoint's step (${meta.step}): current ` +
        `value is ${t.steps}`,
    );
  }
  if (meta.dataPosition !== meta.step * t.batchSize) {
    throw new RangeError(
      `${where}: its data position must be step × "trainer.batchSize" = ` +
        `${meta.step * t.batchSize}: current value is ${meta.dataPosition}`,
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
  const optState = restoreOptState(optimizer.init(run.backend.params.tree), checkpoint.optimizer, {
    source: join(checkpoint.dir, meta.files.optimizer.name),
  });
  return { optState, startStep: meta.step };
}

/** Step, part 1: the micro-batches of step `s` (from 1) with their SFT loss terms. */
function sftMicroBatches(
  config: TrainConfig,
  data: SftData,
  s: number,
): { micro: TrainMicroBatch; lossTokens: number; tokens: number }[] {
  const t = config.trainer;
  const start = (s - 1) * t.batchSize;
  const microSize = t.batchSize / t.microBatches;
  return Array.from({ length: t.microBatches }, (_, m) => {
    const sequences: SftSequence[] = [];
    for (let i = 0; i < microSize; i++) {
      sequences.push(data.sequenceAt(start + m * microSize + i));
    }
    const batch = collateSft(sequences, { padId: data.padId, maxLength: data.context });
    return {
      micro: {
        input: { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
        loss: ({ logprobs }) => sftLoss({ logprobs, lossMask: batch.lossMask }),
        weight: batch.lossTokens,
        options: { linear: true, dropoutSeed: mix32(mix32(config.run.seed, s), m) },
      },
      lossTokens: batch.lossTokens,
      tokens: batch.tokens,
    };
  });
}

/** Evaluation: held-out loss and greedy exact-answer accuracy. */
async function evaluateRun(
  backend: TrainBackend,
  data: SftData,
  config: TrainConfig,
  tokenizer: Tokenizer,
): Promise<Record<string, number>> {
  const { metrics } = await evaluateSft(backend, {
    tokenizer,
    examples: data.evalExamples,
    maxNewTokens: config.eval.maxNewTokens,
    batchSize: 32,
    padId: data.padId,
    eosTokenIds: data.eosTokenIds,
  });
  return metrics;
}

/** Save: an atomic checkpoint of step `s` (parameters, optimizer state, meta). */
async function saveRun(
  s: number,
  options: {
    config: TrainConfig;
    runDir: string;
    run: SftModel;
    optState: unknown;
    metrics: Record<string, number>;
    sha: string | null;
  },
): Promise<string> {
  const { config, run } = options;
  const lora = run.lora;
  return await saveCheckpoint(options.runDir, {
    step: s,
    weights: lora === null ? "model" : "adapter",
    tensors: paramTensors(run.backend.params, { prefix: lora === null ? "" : PEFT_PREFIX }),
    optimizer: flattenOptState(options.optState),
    meta: {
      config,
      dataPosition: s * config.trainer.batchSize,
      rng: {
        kind: "counter-based",
        note:
          "data order from (run.seed, epoch); init and dropout from run.seed, step, micro-batch",
        seed: config.run.seed,
        dataSeed: config.data.seed,
      },
      metrics: options.metrics,
      gitSha: options.sha,
    },
    keep: config.checkpoint.keep,
    overwrite: true,
  });
}

/** The end of a run: the final model (or adapter) in `<runDir>/final` and `exportDir`. */
async function exportRun(
  config: TrainConfig,
  run: SftModel,
  dirs: string[],
): Promise<string[]> {
  const exported: string[] = [];
  for (const dir of dirs) {
    if (run.lora !== null) {
      await savePeftAdapter(dir, run.lora, { baseModelNameOrPath: config.model.path });
    } else {
      await exportQwen3Model(dir, {
        config: run.modelConfig,
        weights: run.weights,
        tokenizerJson: run.tok.tokenizerJson,
        tokenizerConfig: run.tok.tokenizerConfig,
        chatTemplate: run.tok.chatTemplate,
        initializerRange: config.model.initStd,
      });
    }
    exported.push(dir);
  }
  return exported;
}

/**
 * Runs supervised fine-tuning as the config says, writing `metrics.jsonl`, checkpoints
 * (`step_NNNNNN/`) and the final model (`final/`) under `<run.outDir>/<run.name>/`. Needs
 * `--allow-read --allow-write` (and `--allow-env` for the tokenizer library).
 *
 * The training example of stream position `p` is the `p`-th of a seeded shuffle of
 * `data.trainSize` problems (a new shuffle each epoch); step `s` (from 1) reads positions
 * `(s − 1)·batchSize .. s·batchSize − 1`, split into `microBatches` equal micro-batches whose
 * gradients are averaged weighted by their completion-token counts, so a step's gradient is
 * that of the token mean over the whole batch. The `trainer.backend` `"auto"` trains on the CPU
 * (measured faster than a software WebGPU adapter at this size; GPU training plugs in with
 * `WebGpuQwen3.backward`).
 *
 * @param config The run configuration (from `loadConfig`).
 * @param options Resume, export, test hooks and output.
 * @returns Where things went, the last metrics and the export paths.
 * @throws {NonFiniteLossError} When a step's loss is NaN/Inf (from `trainLoop`).
 * @throws {RangeError} When a config value cannot work (the message names the key), on resume
 *   when the checkpoint's config differs in a key that defines the run, or when a fresh run
 *   would overwrite an existing run directory.
 *
 * @example Two steps of a very small run
 * ```ts
 * import { runSft } from "./sft.ts";
 * import { loadConfig } from "../cli/load_config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const outDir = await Deno.makeTempDir();
 * try {
 *   const config = await loadConfig(undefined, {
 *     overrides: [
 *       `--run.outDir=${outDir}`, "--model.hidden=16", "--model.layers=1", "--model.heads=2",
 *       "--model.kvHeads=1", "--model.headDim=8", "--model.intermediate=32",
 *       "--data.trainSize=16", "--data.evalSize=2", "--trainer.steps=2",
 *       "--trainer.batchSize=2", "--trainer.warmupSteps=0", "--eval.samples=2",
 *       "--eval.maxNewTokens=2", "--backend=cpu",
 *     ],
 *   });
 *   const result = await runSft(config, { progress: null, log: () => {}, evalAtStart: false });
 *   strictEqual(result.step, 2);
 * } finally {
 *   await Deno.remove(outDir, { recursive: true });
 * }
 * ```
 */
export async function runSft(
  config: TrainConfig,
  options: RunSftOptions = {},
): Promise<RunSftResult> {
  const log = options.log ?? ((text: string) => console.error(text));
  const start = await resolveStart(config, options);
  const run = await buildModel(config, options);
  try {
    return await train(config, options, start, run, log);
  } finally {
    run.backend.dispose();
    run.model.dispose();
  }
}

/** Set-up of the data and optimizer, then the train loop (steps, evaluation, saves), then export. */
async function train(
  config: TrainConfig,
  options: RunSftOptions,
  start: SftStart,
  run: SftModel,
  log: (text: string) => void,
): Promise<RunSftResult> {
  const t = config.trainer;
  const { runDir, checkpoint, warnings } = start;
  const { backend, modelConfig, lora, builtin } = run;
  const params = backend.params;
  const data = buildData(config, run);
  const optimizer = buildOptimizer(config, params.shapes);
  let optState = optimizer.init(params.tree);
  let startStep = 0;
  if (checkpoint !== null) {
    ({ optState, startStep } = restoreRun(config, checkpoint, run, optimizer));
  }

  const trainableParams = countParams(params.tree);
  const workers = backend.kind === "cpu" ? options.workers ?? 1 : 1;
  const backendText = `${backend.kind} (${backend.model.device}` +
    `${workers > 1 ? `, ${workers} workers` : ""})`;
  log(
    `${checkpoint ? `resuming ${checkpoint.dir} at step ${startStep}` : "starting"} run ` +
      `"${config.run.name}" -> ${runDir}`,
  );
  log(
    `model: ${builtin ? "builtin:tiny (fresh init)" : config.model.path}, ` +
      `${modelConfig.numHiddenLayers} layers, hidden ${modelConfig.hiddenSize}, ` +
      `${lora ? `LoRA r=${config.adapters.r}` : "full fine-tuning"}, ` +
      `${trainableParams} trainable floats; backend ${backendText}${run.gpuNote}`,
  );
  log(
    `data: ${data.trainSize} training problems, ${data.evalExamples.length} held-out; ` +
      `${t.steps} steps of ${t.batchSize} (${t.microBatches} micro-batch(es))`,
  );
  for (const w of warnings) log(`warning: ${w}`);

  const progress = options.progress === undefined
    ? createProgress({ total: t.steps, startStep })
    : options.progress;
  const note = (text: string): void => progress ? progress.note(text) : log(text);
  const sha = await gitSha();

  const step = async (s: number): Promise<PendingStep> => {
    const micro = sftMicroBatches(config, data, s);
    const r = await trainStep(backend, {
      optimizer,
      state: optState,
      microBatches: micro.map((m) => m.micro),
    });
    let nll = 0;
    let lossTokens = 0;
    let tokens = 0;
    micro.forEach((m, i) => {
      nll += r.losses[i].value * m.lossTokens;
      lossTokens += m.lossTokens;
      tokens += m.tokens;
    });
    let loss = lossTokens > 0 ? nll / lossTokens : 0;
    if (options.faults?.nanLossAtStep === s) loss = NaN;
    return {
      loss,
      tokens,
      metrics: {
        ...r.metrics,
        "loss/nll": loss,
        "loss/tokens": lossTokens,
        "optim/update_norm": r.updateNorm,
        "data/epoch": data.order.epoch(s * t.batchSize - 1),
        "data/tokens": tokens,
      },
      commit: () => {
        backend.setParams(applyUpdates(params.tree, r.updates));
        optState = r.state;
      },
    };
  };

  const evaluate = async (s: number): Promise<Record<string, number>> => {
    const metrics = await evaluateRun(backend, data, config, run.tok.tokenizer);
    note(
      `eval @ step ${s}: loss ${metrics["eval/loss"].toFixed(4)} | accuracy ` +
        `${(100 * metrics["eval/accuracy"]).toFixed(1)}% (${metrics["eval/correct"]}/` +
        `${metrics["eval/samples"]}) | answered ${(100 * metrics["eval/answered"]).toFixed(1)}%`,
    );
    return metrics;
  };

  const save = async (s: number, metrics: Record<string, number>): Promise<string> => {
    const dir = await saveRun(s, { config, runDir, run, optState, metrics, sha });
    note(`checkpoint ${dir}`);
    return dir;
  };

  if (start.removeRunDir) await Deno.remove(runDir, { recursive: true });
  const result = await trainLoop({
    runDir,
    startStep,
    totalSteps: t.steps,
    step,
    evaluate,
    evalEvery: config.eval.every,
    evalAtStart: options.evalAtStart ?? true,
    checkpoint: save,
    checkpointEvery: config.checkpoint.every,
    resumedFrom: checkpoint?.dir ?? null,
    progress: progress ?? undefined,
    haltAfterStep: options.haltAfterStep,
  });

  const exported = result.halted ? [] : await exportRun(config, run, [
    join(runDir, "final"),
    ...(options.exportDir ? [options.exportDir] : []),
  ]);
  return {
    runDir,
    step: result.step,
    halted: result.halted,
    metrics: result.metrics,
    lastCheckpoint: result.lastCheckpoint,
    resumedFrom: checkpoint?.dir ?? null,
    exported,
    backend: backendText,
    trainableParams,
    warnings,
  };
}
