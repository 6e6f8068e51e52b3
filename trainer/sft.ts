/**
 * A whole supervised fine-tuning run from a {@linkcode TrainConfig}: build or load the model (a
 * fresh `builtin:tiny` Qwen3 for full fine-tuning, or a checkpoint directory with optional LoRA
 * adapters), stream the worked solutions of the arithmetic task or of the multi-task suite
 * (`data.task: suite`: arithmetic, sort, count, base conversion) in seeded epochs, optimize the
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
import { checkExportDir } from "./export_dir.ts";
import type { TrainConfig } from "./config.ts";
import {
  arithmeticDataset,
  type ArithmeticExample,
  formatExample,
} from "../data/arithmetic_task.ts";
import { suiteDataset, type SuiteTask } from "../data/task_suite.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { TrainBackend } from "./backend.ts";
import type { WebGpuTrainBackend } from "./_webgpu_backend.ts";
import { dataOrder } from "./data_order.ts";
import { type EvalExample, evaluateSft } from "./eval_sft.ts";
import { gitSha } from "./git_sha.ts";
import { applyUpdates, multiSteps, type MultiStepsState } from "./optim/mod.ts";
import { createProgress, type Progress } from "../internal/progress.ts";
import { collateSft, type SftSequence, tokenizeSft } from "./sft_batch.ts";
import { sftLoss } from "./sft_loss.ts";
import type { PendingStep } from "./train_loop.ts";
import { type TrainMicroBatch, trainStep } from "./train_step.ts";
import type { GradientTransformation, LossOutput, ParamTree } from "./types.ts";
import { mix32 } from "../internal/random.ts";
import {
  adapterText,
  buildRunModel,
  deviceAdamw,
  readRunModel,
  resolveRunStart,
  restoreRun,
  runAdamw,
  type RunModel,
  type RunModelHead,
  type RunStart,
  saveRun,
  trainAndExport,
} from "./_run_setup.ts";

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
  /**
   * Evaluate before the first step of a fresh run (a `step: 0` metrics line). Default `true`;
   * never when no evaluation follows a step: `eval.every: 0` (or larger than `trainer.steps`)
   * with `eval.final: false`.
   */
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

/** The config keys of the arithmetic task's knobs, named when a split holds too few problems. */
const TASK_KEYS = { digits: "data.digits", maxTerms: "data.maxTerms", ops: "data.ops" } as const;

function countParams(tree: ParamTree): number {
  return Object.values(tree).reduce((n, t) => n + t.length, 0);
}

/** The model of a run: its head (tokenizer, config, special ids) and weights, adapters, backend. */
interface SftModel extends RunModel {
  head: RunModelHead;
}

/** The data of a run: training sequences by stream position, held-out examples, special ids. */
interface SftData {
  trainSize: number;
  evalExamples: EvalExample[];
  /** With `data.task: "suite"`, the task of each held-out example; else `null`. */
  evalTasks: SuiteTask[] | null;
  order: ReturnType<typeof dataOrder>;
  sequenceAt: (position: number) => SftSequence;
  padId: number;
  eosTokenIds: number[];
  context: number;
}

/**
 * Set-up, part 3: the task's examples (the arithmetic task, or the suite's tasks one after the
 * other; the held-out set takes the first `eval.samples` of each task), their seeded order and
 * tokenization.
 */
function buildData(config: TrainConfig, head: RunModelHead): SftData {
  const { tokenizer, modelConfig, builtin, eosTokenIds, padId } = head;
  const d = config.data;
  const taskOptions = {
    seed: d.seed,
    digits: d.digits,
    ops: d.ops,
    maxTerms: d.maxTerms,
    mulDigits: d.mulDigits,
  };
  let train: ArithmeticExample[];
  let evalExamples: EvalExample[];
  let evalTasks: SuiteTask[] | null = null;
  if (d.task === "suite") {
    const suiteOptions = (sizeKey: string) => ({
      tasks: d.suite.tasks,
      seed: d.seed,
      level: d.suite.level,
      arithmetic: {
        digits: d.digits,
        ops: d.ops,
        maxTerms: d.maxTerms,
        mulDigits: d.mulDigits,
        keys: { ...TASK_KEYS, size: sizeKey },
      },
      keys: { size: sizeKey, level: "data.suite.level" },
    });
    train = suiteDataset("train", { ...suiteOptions("data.trainSize"), size: d.trainSize });
    // `eval.samples` problems of each task (the first of its held-out split).
    const held = suiteDataset("eval", { ...suiteOptions("data.evalSize"), size: d.evalSize })
      .filter((_, i) => i % d.evalSize < config.eval.samples);
    evalExamples = held.map((e) => ({ ...formatExample(e), answer: e.answer, task: e.task }));
    evalTasks = held.map((e) => e.task);
  } else {
    train = arithmeticDataset("train", {
      ...taskOptions,
      size: d.trainSize,
      keys: { ...TASK_KEYS, size: "data.trainSize" },
    });
    evalExamples = arithmeticDataset("eval", {
      ...taskOptions,
      size: d.evalSize,
      keys: { ...TASK_KEYS, size: "data.evalSize" },
    })
      .slice(0, config.eval.samples)
      .map((e) => ({ ...formatExample(e), answer: e.answer }));
  }
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
  return {
    trainSize: train.length,
    evalExamples,
    evalTasks,
    order,
    sequenceAt,
    padId,
    eosTokenIds,
    context,
  };
}

/** The optimizer of a run: AdamW inside `multiSteps`. */
type SftOptimizer = GradientTransformation<MultiStepsState<unknown[]>>;

/** Set-up: AdamW with clipping, the schedule and token-weighted accumulation. */
function buildOptimizer(config: TrainConfig, shapes: Record<string, number[]>): SftOptimizer {
  return multiSteps(runAdamw(config, shapes), {
    everySteps: config.trainer.microBatches,
    weighting: "token",
  });
}

/** Step, part 1: the micro-batches of step `s` (from 1) with their SFT loss terms. */
function sftMicroBatches(
  config: TrainConfig,
  data: SftData,
  s: number,
): { micro: TrainMicroBatch; lossMask: Float64Array; lossTokens: number; tokens: number }[] {
  const t = config.trainer;
  const start = (s - 1) * t.batchSize;
  const microSize = t.batchSize / t.microBatches;
  const batches = Array.from({ length: t.microBatches }, (_, m) => {
    const sequences: SftSequence[] = [];
    for (let i = 0; i < microSize; i++) {
      sequences.push(data.sequenceAt(start + m * microSize + i));
    }
    return collateSft(sequences, { padId: data.padId, maxLength: data.context });
  });
  // HILO's balance term is the mean over the step's micro-batches (those with loss tokens: the
  // token-weighted accumulation drops the others). multiSteps weighs micro-batch i by
  // w_i / Σ w, so its balance weight is Σ w / (K·w_i).
  const weights = batches.map((b) => b.lossTokens);
  const total = weights.reduce((a, b) => a + b, 0);
  const counted = weights.filter((w) => w > 0).length;
  return batches.map((batch, m) => ({
    micro: {
      input: { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
      loss: ({ logprobs }) => sftLoss({ logprobs, lossMask: batch.lossMask }),
      weight: batch.lossTokens,
      options: {
        linear: true,
        dropoutSeed: mix32(mix32(config.run.seed, s), m),
        balanceWeight: batch.lossTokens > 0 ? total / (counted * batch.lossTokens) : 0,
      },
    },
    lossMask: batch.lossMask,
    lossTokens: batch.lossTokens,
    tokens: batch.tokens,
  }));
}

/**
 * The mean `"loss/balance"` over the outputs of micro-batches with loss tokens (the ones the step's
 * balance term averages) that report one (HILO), or none.
 */
function meanBalance(
  outs: readonly LossOutput[],
  micro: readonly { lossTokens: number }[],
): Record<string, number> {
  const values = outs.filter((_, i) => micro[i].lossTokens > 0)
    .map((o) => o.metrics["loss/balance"]).filter((v) => v !== undefined);
  return values.length === 0
    ? {}
    : { "loss/balance": values.reduce((a, b) => a + b, 0) / values.length };
}

/**
 * Evaluation: held-out loss and greedy exact-answer accuracy (each completion scored by its task's
 * check inside `evaluateSft`); with the suite, also `eval/accuracy/<task>` (and
 * `eval/correct/<task>`, `eval/samples/<task>`).
 */
async function evaluateRun(
  backend: TrainBackend,
  data: SftData,
  config: TrainConfig,
  tokenizer: Tokenizer,
): Promise<Record<string, number>> {
  const { metrics, samples } = await evaluateSft(backend, {
    tokenizer,
    examples: data.evalExamples,
    maxNewTokens: config.eval.maxNewTokens,
    batchSize: 32,
    padId: data.padId,
    eosTokenIds: data.eosTokenIds,
  });
  const tasks = data.evalTasks;
  if (tasks === null) return metrics;
  const correct = new Map<SuiteTask, number>();
  const count = new Map<SuiteTask, number>();
  let total = 0;
  samples.forEach((sample, i) => {
    const task = tasks[i];
    const ok = sample.correct; // scored by evaluateSft with the task's own check
    count.set(task, (count.get(task) ?? 0) + 1);
    correct.set(task, (correct.get(task) ?? 0) + (ok ? 1 : 0));
    if (ok) total++;
  });
  const out: Record<string, number> = {
    ...metrics,
    "eval/accuracy": samples.length > 0 ? total / samples.length : 0,
    "eval/correct": total,
  };
  for (const task of config.data.suite.tasks) {
    const n = count.get(task) ?? 0;
    out[`eval/accuracy/${task}`] = n > 0 ? (correct.get(task) ?? 0) / n : 0;
    out[`eval/correct/${task}`] = correct.get(task) ?? 0;
    out[`eval/samples/${task}`] = n;
  }
  return out;
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
  if (config.trainer.mode !== "sft") {
    // An RL config skips SFT's cross-checks (trainer.batchSize and microBatches are not read).
    throw new RangeError(
      `Cannot run SFT: key "trainer.mode" must be "sft" (runRl runs "rl"): current value is ` +
        `"${config.trainer.mode}"`,
    );
  }
  // Before anything is trained: an --export that cannot be written fails now, not at the end.
  if (options.exportDir !== undefined) {
    await checkExportDir(options.exportDir, { modelPath: config.model.path });
  }
  const start = await resolveRunStart(config, {
    resume: options.resume,
    overwrite: options.overwrite,
    fixedKeys: RESUME_FIXED,
    // How the work is split into submissions changes no result.
    changeableKeys: ["model.submitEveryLayers"],
  });
  const head = await readRunModel(config);
  const run = { head, ...await buildRunModel(config, head, { workers: options.workers }) };
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
  start: RunStart,
  run: SftModel,
  log: (text: string) => void,
): Promise<RunSftResult> {
  const t = config.trainer;
  const { runDir, checkpoint, warnings } = start;
  const { backend, lora, head } = run;
  const { modelConfig, builtin } = head;
  const params = backend.params;
  const data = buildData(config, head);
  const optimizer = buildOptimizer(config, params.shapes);
  let optState = optimizer.init(params.tree);
  let startStep = 0;
  if (checkpoint !== null) {
    const restored = restoreRun(config, checkpoint, { backend, lora, optimizer });
    if (restored.dataPosition !== restored.startStep * t.batchSize) {
      throw new RangeError(
        `Cannot resume from "${checkpoint.dir}": its data position must be step × ` +
          `"trainer.batchSize" = ${restored.startStep * t.batchSize}: current value is ` +
          `${restored.dataPosition}`,
      );
    }
    ({ optState, startStep } = restored);
  }
  // AdamW on the GPU (trainer.optimizer): the micro-batches' gradients sum in the device's
  // buffers and the update happens there; the host state is synced for checkpoints and export.
  const gpuOpt = deviceAdamw(config, backend);
  gpuOpt?.loadChainState(optState.inner);
  const syncFromDevice = async () => {
    if (!gpuOpt) return;
    await (backend as WebGpuTrainBackend).syncParams();
    optState = {
      ...optState,
      gradientStep: gpuOpt.count,
      inner: await gpuOpt.chainState(optState.inner),
    };
  };

  const trainableParams = countParams(params.tree);
  const backendText = run.description;
  log(
    `${checkpoint ? `resuming ${checkpoint.dir} at step ${startStep}` : "starting"} run ` +
      `"${config.run.name}" -> ${runDir}`,
  );
  log(
    `model: ${builtin ? "builtin:tiny (fresh init)" : config.model.path}, ` +
      `${modelConfig.numHiddenLayers} layers, hidden ${modelConfig.hiddenSize}, ` +
      `${lora ? adapterText(config) : "full fine-tuning"}, ` +
      `${trainableParams} trainable floats; backend ${backendText}${run.gpuNote}`,
  );
  for (const line of run.adapterLines) log(line);
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
    if (gpuOpt) return await deviceStep(s, micro);
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
        ...meanBalance(r.losses, micro),
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
    const metrics = await evaluateRun(backend, data, config, head.tokenizer);
    note(
      `eval @ step ${s}: loss ${metrics["eval/loss"].toFixed(4)} | accuracy ` +
        `${(100 * metrics["eval/accuracy"]).toFixed(1)}% (${metrics["eval/correct"]}/` +
        `${metrics["eval/samples"]}) | answered ${(100 * metrics["eval/answered"]).toFixed(1)}%`,
    );
    return metrics;
  };

  /** A step with AdamW on the GPU: accumulate, check the loss, update there (see `step`). */
  const deviceStep = async (
    s: number,
    micro: ReturnType<typeof sftMicroBatches>,
  ): Promise<PendingStep> => {
    const gpu = backend as WebGpuTrainBackend;
    let lossTokens = 0;
    let tokens = 0;
    for (const m of micro) {
      lossTokens += m.lossTokens;
      tokens += m.tokens;
    }
    let loss = 0;
    const outs: LossOutput[] = [];
    // As the host path: HILO's balance term is the mean over the micro-batches with loss tokens,
    // and a step without any loss token makes no update.
    const counted = micro.filter((m) => m.lossTokens > 0).length;
    for (let k = 0; k < micro.length; k++) {
      // Normalised by the whole batch's loss tokens: the sum is the batch's token mean.
      const out = await gpu.accumulateObjective(micro[k].micro.input, {
        terms: [{ name: "sft" }],
        inputs: { lossMask: micro[k].lossMask, normalizers: { sft: Math.max(1, lossTokens) } },
      }, {
        accumulate: k > 0,
        balanceWeight: micro[k].lossTokens > 0 ? 1 / counted : 0,
      });
      loss += out.value;
      outs.push(out);
    }
    if (options.faults?.nanLossAtStep === s) loss = NaN;
    // A non-finite loss leaves the parameters as they are (the loop stops on it).
    const optimizerMetrics = Number.isFinite(loss) && counted > 0 ? await gpuOpt!.update() : {};
    if (optimizerMetrics["optim/skipped"] === 1) loss = NaN;
    return {
      loss,
      tokens,
      metrics: {
        ...optimizerMetrics,
        ...meanBalance(outs, micro),
        "loss/nll": loss,
        "loss/tokens": lossTokens,
        "data/epoch": data.order.epoch(s * t.batchSize - 1),
        "data/tokens": tokens,
      },
      commit: () => {},
    };
  };

  const save = async (s: number, metrics: Record<string, number>): Promise<string> => {
    await syncFromDevice();
    const dir = await saveRun(runDir, s, {
      config,
      backend,
      lora,
      optState,
      dataPosition: s * t.batchSize,
      rng: {
        kind: "counter-based",
        note:
          "data order from (run.seed, epoch); init and dropout from run.seed, step, micro-batch",
        seed: config.run.seed,
        dataSeed: config.data.seed,
      },
      metrics,
      sha,
    });
    note(`checkpoint ${dir}`);
    return dir;
  };

  if (start.removeRunDir) await Deno.remove(runDir, { recursive: true });
  const { result, exported } = await trainAndExport(config, head, run, {
    loop: {
      runDir,
      startStep,
      totalSteps: t.steps,
      step,
      evaluate,
      evalEvery: config.eval.every,
      evalFinal: config.eval.final,
      // The step-0 evaluation is the baseline of later ones: none when no later one runs.
      evalAtStart: (options.evalAtStart ?? true) &&
        (config.eval.final || (config.eval.every > 0 && config.eval.every <= t.steps)),
      checkpoint: save,
      checkpointEvery: config.checkpoint.every,
      resumedFrom: checkpoint?.dir ?? null,
      progress: progress ?? undefined,
      haltAfterStep: options.haltAfterStep,
    },
    syncFromDevice,
    gpuOpt,
    exportDir: options.exportDir,
  });
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
