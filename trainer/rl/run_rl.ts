/**
 * A whole RL run from a {@linkcode TrainConfig} with `trainer.mode: rl`: DAPO (clipped policy
 * loss with clip-higher, token-mean, dynamic sampling, overlong shaping) plus the optional
 * Hidden-Align term, with seeded prompt order, rollouts through the train backend, held-out
 * avg@k / pass@k, JSONL metrics, atomic checkpoints and a bit-exact resume.
 *
 * One step: read `genBatchPrompts` prompts at the run's prompt position (a seeded permutation
 * per epoch), sample G rollouts each (seed from `(run.seed, step, generation batch)`), verify and
 * shape the rewards, keep the groups whose correctness is mixed until `trainBatchPrompts` are
 * kept or `maxGenBatches` batches were generated, compute group advantages and anchors, run one
 * forward pass for the old log-probs (when recomputed), the align centroids and the anchor
 * cosines, then the PPO epochs (`rlUpdate`). The state of a run is its parameters, optimizer
 * state, step and prompt position; everything random is counter-based, so a resumed run repeats
 * an uninterrupted one exactly (the verifier runs without a wall-clock budget by default).
 *
 * With a remote `rl.rollout.backend` the rollouts come from a {@linkcode RolloutSource} built by
 * the `rollouts` factory (`remote/remote_rollouts.ts`), which publishes the current adapter at the
 * start of each step; with `rl.oldLogprobs: recompute` the sampler–trainer mismatch is logged
 * (`rollout/…`) and `rl.rollout.tis` weighs the policy loss per token. `rl.rollout.async` draws
 * step k + 1's first generation batch while step k trains.
 *
 * On WebGPU the run first prints an estimate of its GPU memory by item and checks it against
 * `rl.gpuMemoryBudget` / `HALO_GPU_MEMORY` and a micro-batch against one storage binding
 * (`planRlGpuMemory`), generating in calls of fewer prompts where that makes the peak fit the
 * budget, and each phase (generation, the forward pass, the training step) frees the others'
 * workspaces before it runs (`rl.releaseWorkspaces`).
 *
 * @module
 */
import { join } from "node:path";
import type { TrainConfig } from "../config.ts";
import type { Tokenizer } from "../../model/tokenizer.ts";
import { mixNumber } from "../../internal/random.ts";
import { plotRunCurves } from "../../plot/run_curves.ts";
import {
  adapterText,
  buildRunModel,
  deviceAdamw,
  readRunModel,
  resolveRunStart,
  restoreRun,
  runAdamw,
  saveRun,
  trainAndExport,
} from "../_run_setup.ts";
import { dataOrder } from "../data_order.ts";
import { gitSha } from "../git_sha.ts";
import { applyUpdates, globalNorm } from "../optim/mod.ts";
import type { WebGpuTrainBackend } from "../_webgpu_backend.ts";
import { withTemperature } from "../backend.ts";
import type { WebGpuQwen3 } from "../../model/qwen3_webgpu.ts";
import { createProgress, formatDuration, type Progress } from "../../internal/progress.ts";
import { writeFileAtomic } from "../../internal/atomic_write.ts";
import { defaultFillWorkgroups } from "../../gpu/context.ts";
import type { PendingStep } from "../train_loop.ts";
import type { ParamTree } from "../types.ts";
import { anchorCosines } from "./anchor_cosines.ts";
import { checkRunConfig } from "../check_run_config.ts";
import { rlRunKeyWarnings } from "./run_key_warnings.ts";
import { fillBatch } from "./dynamic_sampling.ts";
import { evaluateRlPrompts } from "./eval_rl.ts";
import { type ConfidenceInterval, confidenceInterval } from "../../eval/confidence_interval.ts";
import { forwardPass } from "./forward_pass.ts";
import type { GpuMemoryEstimate } from "./gpu_memory_estimate.ts";
import { planRlGpuMemory } from "./gpu_memory_plan.ts";
import { withMergeAdapters } from "./merge_adapters_view.ts";
import { anchorCentroids } from "./anchor_centroids.ts";
import {
  arithmeticPrompts,
  isUsableGold,
  normalizeQuestion,
  promptOverlap,
  readJsonlPrompts,
  readParquetPrompts,
  type RlPrompt,
  uniquePrompts,
} from "./prompt_data.ts";
import { checkResumePrompts, promptRecord } from "./prompt_record.ts";
import { rewardMetrics } from "./reward_metrics.ts";
import { promptIds } from "./prompt_template.ts";
import { buildRows, type ScoredGroup } from "./build_rows.ts";
import { rlUpdate } from "./rl_update.ts";
import { type Rollout, type SampledGroups, sampleGroups } from "./rollout.ts";
import { rolloutCorrection } from "./rollout_correction.ts";
import type { RolloutSource, RolloutSourceFactory } from "./rollout_source.ts";
import { type RolloutScore, rolloutScoreOptions, scoreRollout } from "./score_rollout.ts";

/**
 * Options of {@linkcode runRl}.
 *
 * @example Usage
 * ```ts
 * import type { RunRlOptions } from "./run_rl.ts";
 *
 * const options: RunRlOptions = { resume: true, workers: 2 };
 * ```
 */
export interface RunRlOptions {
  /** Continue from a checkpoint (`true`: the run's newest; a string: a checkpoint or run dir). */
  resume?: boolean | string;
  /** A fresh run deletes an existing run directory instead of refusing. Default `false`. */
  overwrite?: boolean;
  /** Also export the final model (or adapter) here. */
  exportDir?: string;
  /**
   * Evaluate before the first step of a fresh run (a `step: 0` line). Default `true`; never when
   * no evaluation follows a step: `rl.eval.every: 0` (or larger than `trainer.steps`) with
   * `rl.eval.final: false`.
   */
  evalAtStart?: boolean;
  /** Stop after this step as if killed. */
  haltAfterStep?: number;
  /** The progress line; `null` for none. Default: a progress line on stderr. */
  progress?: Progress | null;
  /** Where information lines go; default stderr. */
  log?: (text: string) => void;
  /** CPU worker threads; default 1. Results do not depend on it. */
  workers?: number;
  /**
   * The tokenizer, for a model directory without one (the golden-test fixture); default the
   * model directory's (the arithmetic tokenizer for `builtin:tiny`).
   */
  tokenizer?: Tokenizer;
  /**
   * Draw the run's curves as SVG charts into `<run dir>/plots/` at the end (as
   * `deno task plot <run dir>` does); a failure to draw is a warning, not an error. Default `false`
   * (`deno task train` turns it on).
   */
  plots?: boolean;
  /**
   * Draws each generation batch's rollouts; default {@linkcode sampleGroups} through the train
   * backend. A test hook: two runs on different backends fed the same rollouts (one records what
   * the default returns, the other replays it) compare their updates on identical rows, which
   * sampling on each backend cannot promise (float32 vs float64 logits can pick a different
   * token where a draw falls on a probability boundary); scripted rollouts whose correctness a
   * test chooses check dynamic sampling and overlong shaping inside the run.
   */
  sampleGroups?: typeof sampleGroups;
  /**
   * Builds the rollout source of a remote `rl.rollout.backend` (vLLM, SGLang, llama.cpp): pass
   * `remoteRollouts()` of `remote/` (what `deno task train` does). Required for a remote
   * backend; unused with `"local"`.
   */
  rollouts?: RolloutSourceFactory;
}

/**
 * Result of {@linkcode runRl}.
 *
 * @example Usage
 * ```ts
 * import type { RunRlResult } from "./run_rl.ts";
 *
 * function summary(r: RunRlResult): string {
 *   return `${r.startMetrics["eval/accuracy"]} -> ${r.metrics["eval/accuracy"]}`;
 * }
 * ```
 */
export interface RunRlResult {
  /** The run directory. */
  runDir: string;
  /** The last step done. */
  step: number;
  /** Whether `haltAfterStep` stopped the run. */
  halted: boolean;
  /** The last metrics line (without `step`). */
  metrics: Record<string, number>;
  /** The first evaluation's metrics (`{}` when none ran in this process). */
  startMetrics: Record<string, number>;
  /**
   * The held-out accuracy gain from the first to the last evaluation of this process, paired by
   * prompt (same prompts and sampling seeds): the mean per-prompt difference of avg@k with its
   * 95% normal interval over the prompts with a usable gold; null with fewer than two
   * evaluations.
   */
  heldOutGain: ConfidenceInterval | null;
  /** The newest checkpoint. */
  lastCheckpoint: string | null;
  /** The checkpoint the run resumed from, or `null`. */
  resumedFrom: string | null;
  /** Where the final model/adapter was exported. */
  exported: string[];
  /** Where the math ran. */
  backend: string;
  /** Warnings. */
  warnings: string[];
  /** Wall-clock seconds spent generating, scoring and training (this process). */
  seconds: { generate: number; score: number; train: number; eval: number };
  /**
   * WebGPU runs: the start-up estimate (trainer/rl/gpu_memory_estimate.ts) of the generate calls
   * used, the most prompts per rollout and held-out generate call the budget allowed (absent: no
   * cap beyond one storage binding's), the bytes allocated once the model and adapters were
   * uploaded, and the largest `GpuContext.allocatedBytes` of the run (`peakBytes`); null on the
   * CPU.
   */
  gpuMemory: {
    estimate: GpuMemoryEstimate;
    generatePromptsPerCall: { rollout?: number; eval?: number };
    residentBytes: number;
    peakBytes: number;
  } | null;
}

/** Keys that must equal the checkpoint's on resume: they define the run's state. */
const RESUME_FIXED = ["run.seed", "model.", "adapters.", "data.", "trainer.mode", "rl."];
/** Keys under {@linkcode RESUME_FIXED} that may change on resume (with a warning). */
const RESUME_CHANGEABLE = [
  "rl.eval.every",
  "rl.eval.final",
  // How the work is split into submissions changes no result.
  "model.submitEveryLayers",
  // GPU memory: where buffers live between phases and the budget change no result.
  "rl.releaseWorkspaces",
  "rl.gpuMemoryBudget",
  "rl.gpuMemoryHeadroom",
  // Where the servers are and how they are reached do not define the run.
  "rl.rollout.servers",
  "rl.rollout.serverAdapterDir",
  "rl.rollout.timeoutMs",
  "rl.rollout.attempts",
  "rl.rollout.backoffMs",
  "rl.rollout.downMs",
  "rl.rollout.choiceRetries",
  "rl.rollout.apiKeyEnv",
  "rl.rollout.maxSeqsInFlight",
  "rl.rollout.unloadStale",
  "rl.rollout.preflight",
];

function mix(...values: number[]): number {
  return values.reduce((state, v) => mixNumber(state, v), 0x52_4c) >>> 0;
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Runs RL as the config says (`trainer.mode: rl`), writing `metrics.jsonl`, `timings.jsonl`
 * (wall-clock split per step; not part of the byte-exact metrics), checkpoints
 * (`step_NNNNNN/`) and the final model (`final/`) under `<run.outDir>/<run.name>/`. Needs
 * `--allow-read --allow-write --allow-env`.
 *
 * Bad configs fail before any work: the config schema names the key, and the checks that need
 * the model (an align layer it does not have) run right after its `config.json` is read.
 *
 * @param config The run configuration.
 * @param options Resume, export, test hooks and output.
 * @returns Where things went and the first and last metrics.
 * @throws {NonFiniteLossError} When a step's loss or a metric is NaN/Inf.
 * @throws {ShortBatchError} On a short batch with `rl.onShortBatch: stop`.
 * @throws {RangeError} When a config value cannot work (naming the key), or on a resume whose
 *   config differs in a key that defines the run.
 *
 * @example Two steps on the arithmetic model
 * ```ts ignore
 * import { runRl } from "./run_rl.ts";
 * import { loadConfig } from "../../cli/load_config.ts";
 *
 * const config = await loadConfig("configs/rl_arith_dapo.yaml", {
 *   overrides: ["--trainer.steps=2", "--run.outDir=/tmp/halo"],
 * });
 * const result = await runRl(config, { overwrite: true });
 * console.log(result.metrics["reward/mean"]);
 * ```
 */
export async function runRl(config: TrainConfig, options: RunRlOptions = {}): Promise<RunRlResult> {
  const log = options.log ?? ((text: string) => console.error(text));
  const warnings: string[] = [];
  const runDir = join(config.run.outDir, config.run.name);
  const t = config.trainer;
  const rl = config.rl;
  if (t.mode !== "rl") {
    throw new RangeError(
      `Cannot run RL: key "trainer.mode" must be "rl": current value is "${t.mode}"`,
    );
  }

  // The model's config first: the checks that need it run before any work.
  const head = await readRunModel(config, { tokenizer: options.tokenizer });
  const { tokenizer, modelConfig, eosTokenIds, padId } = head;
  // The same checks as reproduce's before its first run (rlConfigProblems with the model's
  // layers, the adapters against the model, the schedule's warm-up).
  await checkRunConfig(config, { modelConfig });
  const align = rl.losses.find((x) => x.name === "hidden_align");
  const remote = rl.rollout.backend !== "local";
  if (remote && options.rollouts === undefined) {
    throw new RangeError(
      `Cannot run RL: key "rl.rollout.backend" is "${rl.rollout.backend}", which needs a rollout ` +
        `source: pass runRl(config, { rollouts: remoteRollouts() }) from remote/ (deno task ` +
        `train does)`,
    );
  }
  if (remote && options.sampleGroups !== undefined) {
    throw new RangeError(
      `Cannot run RL: the "sampleGroups" test hook and key "rl.rollout.backend" ` +
        `("${rl.rollout.backend}") both choose the sampler; drop one`,
    );
  }

  // Where to start from.
  const start = await resolveRunStart(config, {
    resume: options.resume,
    overwrite: options.overwrite,
    fixedKeys: RESUME_FIXED,
    changeableKeys: RESUME_CHANGEABLE,
  });
  const { checkpoint } = start;
  warnings.push(...start.warnings, ...rlRunKeyWarnings(config));
  // Whether a held-out evaluation runs after one of this run's steps (a resumed run's count from
  // its checkpoint's): `rl.eval.every: 0` with `rl.eval.final: false` switches it off, and so does
  // an `rl.eval.every` that no step reaches. Else no step-0 evaluation, usable-gold check or
  // evaluation in the memory plan.
  const evaluates = evaluationDue(checkpoint?.meta.step ?? 0, t.steps, rl.eval);

  // Prompts.
  const d = config.data;
  let trainPrompts: RlPrompt[];
  let evalPrompts: RlPrompt[];
  /** Lines on the prompt files for the run's log. */
  const dataLines: string[] = [];
  /** Rows of the prompt files dropped as repeats of an earlier prompt. */
  let repeatedRows = 0;
  if (rl.data.source === "arithmetic") {
    const task = {
      seed: d.seed,
      digits: d.digits,
      ops: d.ops,
      maxTerms: d.maxTerms,
      mulDigits: d.mulDigits,
    };
    // A split of too few problems names the keys (`rl.data.trainSize` 0 takes `data.trainSize`).
    const keys = { digits: "data.digits", maxTerms: "data.maxTerms", ops: "data.ops" };
    trainPrompts = arithmeticPrompts("train", {
      ...task,
      size: rl.data.trainSize > 0 ? rl.data.trainSize : d.trainSize,
      keys: { ...keys, size: rl.data.trainSize > 0 ? "rl.data.trainSize" : "data.trainSize" },
    });
    evalPrompts = arithmeticPrompts("eval", {
      ...task,
      size: rl.data.evalSize,
      keys: { ...keys, size: "rl.data.evalSize" },
    });
  } else {
    // JSONL or Parquet (DAPO-Math-17k: promptField "prompt", answerField
    // "reward_model.ground_truth").
    const fields = { promptField: rl.data.promptField, answerField: rl.data.answerField };
    const read = rl.data.source === "jsonl" ? readJsonlPrompts : readParquetPrompts;
    // Repeated prompts dropped (the first kept, file order): DAPO-Math-17k's parquet holds each
    // of its ~17.9k prompts about 100 times, verl's aime-2024.parquet each of 30 problems 32.
    // `repeatedRows` counts the training file's rows that the order before de-duplication held
    // (its repeats, and below the training prompts asking a held-out question): a checkpoint
    // from before then cannot resume over them.
    const readUnique = async (path: string, train: boolean): Promise<RlPrompt[]> => {
      const key = train ? "rl.data.path" : "rl.data.evalPath";
      const unique = uniquePrompts(await read(path, { ...fields, warnings, key }));
      if (train) repeatedRows += unique.rows - unique.prompts.length;
      dataLines.push(
        `prompts "${path}": ${unique.rows} rows, ${unique.prompts.length} unique prompts`,
      );
      return unique.prompts;
    };
    const all = await readUnique(rl.data.path, true);
    if (rl.data.evalPath !== "") {
      trainPrompts = all;
      evalPrompts = (await readUnique(rl.data.evalPath, false)).slice(0, rl.data.evalSize);
    } else {
      if (all.length <= rl.data.evalSize) {
        throw new RangeError(
          `Cannot run RL: key "rl.data.evalSize" must be < the ${all.length} unique prompts of ` +
            `"${rl.data.path}" when "rl.data.evalPath" is empty: current value is ${rl.data.evalSize}`,
        );
      }
      // The last unique prompts are held out; a training prompt that asks a held-out question
      // (with another gold) goes too.
      evalPrompts = all.slice(all.length - rl.data.evalSize);
      const held = new Set(evalPrompts.map((p) => normalizeQuestion(p.question)));
      const rest = all.slice(0, all.length - rl.data.evalSize);
      trainPrompts = rest.filter((p) => !held.has(normalizeQuestion(p.question)));
      if (trainPrompts.length === 0) {
        throw new RangeError(
          `Cannot run RL: no training prompts left in "${rl.data.path}" (key "rl.data.path"): ` +
            `all ${rest.length} not held out ask a held-out question (key "rl.data.evalSize" is ` +
            `${rl.data.evalSize}); lower it or set "rl.data.evalPath"`,
        );
      }
      if (trainPrompts.length < rest.length) {
        repeatedRows += rest.length - trainPrompts.length;
        dataLines.push(
          `${rest.length - trainPrompts.length} training prompts dropped: their question is ` +
            `held out (with another gold)`,
        );
      }
    }
    if (rl.data.trainSize > 0) trainPrompts = trainPrompts.slice(0, rl.data.trainSize);
    // A file with some usable golds was read; a split may still hold none (every rollout then
    // `correct: null`, every group skipped: a run that learns nothing).
    const noUsableGold = (prompts: readonly RlPrompt[]): boolean =>
      prompts.length > 0 && !prompts.some((p) => isUsableGold(p.gold));
    if (noUsableGold(trainPrompts)) {
      throw new TypeError(
        `Cannot run RL: none of the ${trainPrompts.length} training prompts of ` +
          `"${rl.data.path}" (key "rl.data.path") has a gold usable by the reward verifier ` +
          `(field "${rl.data.answerField}", key "rl.data.answerField": empty or unparseable)`,
      );
    }
    if (noUsableGold(evalPrompts)) {
      const file = rl.data.evalPath !== "" ? rl.data.evalPath : rl.data.path;
      throw new TypeError(
        `Cannot run RL: none of the ${evalPrompts.length} held-out prompts of "${file}" ` +
          `(key "${rl.data.evalPath !== "" ? "rl.data.evalPath" : "rl.data.path"}") has a gold ` +
          `usable by the reward verifier (field "${rl.data.answerField}", key ` +
          `"rl.data.answerField": empty or unparseable)`,
      );
    }
    if (rl.data.evalPath !== "") {
      const both = promptOverlap(evalPrompts, trainPrompts);
      if (both.length > 0) {
        const example = both[0].question.length > 80
          ? `${both[0].question.slice(0, 80)}…`
          : both[0].question;
        warnings.push(
          `${both.length} of the ${evalPrompts.length} held-out prompts of ` +
            `"${rl.data.evalPath}" (key "rl.data.evalPath") are also training prompts of ` +
            `"${rl.data.path}", e.g. ${JSON.stringify(example)}: the held-out accuracy is ` +
            `not on unseen prompts`,
        );
      }
    }
  }
  // What the checkpoints record of the prompts; a resume on other prompts is refused.
  const record = promptRecord(
    rl.data.source === "arithmetic" ? "arithmetic" : rl.data.path,
    trainPrompts,
    evalPrompts,
  );
  if (checkpoint !== null) {
    const note = checkResumePrompts(checkpoint.meta.data, record, {
      checkpointDir: checkpoint.dir,
      repeatedRows,
    });
    if (note !== null) warnings.push(note);
  }
  const context = modelConfig.maxPositionEmbeddings;
  const idsCache = new Map<number, number[]>();
  const trainIds = (index: number): number[] => {
    let ids = idsCache.get(index);
    if (ids === undefined) {
      ids = promptIds(tokenizer, trainPrompts[index].question, rl);
      idsCache.set(index, ids);
    }
    return ids;
  };
  if (
    evaluates && rl.data.source !== "arithmetic" && evalPrompts.some((p) => isUsableGold(p.gold)) &&
    !evalPrompts.slice(0, rl.eval.prompts).some((p) => isUsableGold(p.gold))
  ) {
    throw new TypeError(
      `Cannot run RL: none of the first ${Math.min(rl.eval.prompts, evalPrompts.length)} ` +
        `held-out prompts that the evaluation uses (key "rl.eval.prompts") has a gold usable by ` +
        `the reward verifier (field "${rl.data.answerField}", key "rl.data.answerField": empty ` +
        `or unparseable): evaluate more prompts or give other held-out prompts`,
    );
  }
  const evalSet = evalPrompts.slice(0, rl.eval.prompts).map((p) => ({
    ids: promptIds(tokenizer, p.question, rl),
    gold: p.gold,
    question: p.question,
  }));
  // The longest prompt the run generates from (templated and tokenized: the training prompts,
  // and the held-out ones that the evaluation uses when it runs) plus `rl.maxNewTokens` must fit
  // the context: found here, before the model loads, not at the first generation that draws it.
  const fits = (
    split: string,
    count: number,
    index: number,
    ids: readonly number[],
    question: string,
  ) => {
    if (ids.length + rl.maxNewTokens <= context) return;
    const file = rl.data.source === "arithmetic"
      ? `the arithmetic problems (keys "data.*")`
      : split === "training" || rl.data.evalPath === ""
      ? `"${rl.data.path}" (key "rl.data.path")`
      : `"${rl.data.evalPath}" (key "rl.data.evalPath")`;
    const text = JSON.stringify(question.length > 60 ? `${question.slice(0, 60)}…` : question);
    throw new RangeError(
      `Cannot run RL: key "rl.maxNewTokens" (${rl.maxNewTokens}) plus the longest ${split} ` +
        `prompt (${ids.length} tokens with key "rl.template" "${rl.template}"; ${split} prompt ` +
        `${
          index + 1
        } of the ${count} unique ones used, from ${file}: ${text}) must fit the model's context ` +
        `(max_position_embeddings = ${context}, "${config.model.path}"): current total is ` +
        `${ids.length + rl.maxNewTokens} tokens; lower "rl.maxNewTokens" or drop the prompt`,
    );
  };
  let longest = 0;
  for (let i = 1; i < trainPrompts.length; i++) {
    if (trainIds(i).length > trainIds(longest).length) longest = i;
  }
  if (trainPrompts.length > 0) {
    fits(
      "training",
      trainPrompts.length,
      longest,
      trainIds(longest),
      trainPrompts[longest].question,
    );
  }
  if (evaluates && evalSet.length > 0) {
    const i = evalSet.reduce((a, p, j) => p.ids.length > evalSet[a].ids.length ? j : a, 0);
    fits("held-out", evalSet.length, i, evalSet[i].ids, evalSet[i].question);
  }

  // Model and backend. On WebGPU the memory plan (the estimate by item, the budget and the
  // micro-batch checks) needs only the shapes and the device's limits: it runs before the weights
  // are read and uploaded, so a run that cannot fit is refused in seconds; its lines are logged
  // below, where they always were.
  let gpuPlan: ReturnType<typeof planRlGpuMemory> | null = null;
  const built = await buildRunModel(config, head, {
    workers: options.workers,
    beforeWeights: ({ gpu, lora }) => {
      let promptTokens = 0;
      for (let i = 0; i < trainPrompts.length; i++) {
        promptTokens = Math.max(promptTokens, trainIds(i).length);
      }
      gpuPlan = planRlGpuMemory({
        config,
        modelConfig,
        lora,
        promptTokens,
        // A run that does not evaluate has no held-out generation to fit.
        evalPrompts: evaluates ? evalSet.length : 0,
        evalPromptTokens: evaluates ? Math.max(0, ...evalSet.map((p) => p.ids.length)) : 0,
        stopTokens: eosTokenIds.length,
        device: {
          maxBindingSize: gpu.maxBindingSize,
          offsetAlignment: gpu.device.limits.minStorageBufferOffsetAlignment,
          isFallbackAdapter: gpu.isFallbackAdapter,
          // The run's GpuContext (trainer/_run_setup.ts) takes the default for the adapter.
          fillWorkgroups: defaultFillWorkgroups(gpu),
        },
        env: Deno.env.get("HALO_GPU_MEMORY"),
      });
    },
  });
  const { lora, model, backend } = built;
  let source: RolloutSource | null = null;
  try {
    return await run();
  } finally {
    await (source as RolloutSource | null)?.close();
    backend.dispose();
    model.dispose();
  }

  async function run(): Promise<RunRlResult> {
    const params = backend.params;

    // GPU memory: the plan made before the upload (above); and the phases free each other's
    // workspaces (rl.releaseWorkspaces).
    let mergeAdapters: boolean | undefined = rl.mergeAdapters === "auto"
      ? undefined
      : rl.mergeAdapters === "on";
    const gpuCtx = backend.kind === "webgpu" ? (backend.model as WebGpuQwen3).ctx : null;
    const residentBytes = gpuCtx?.allocatedBytes ?? 0;
    if (gpuPlan !== null) {
      for (const line of gpuPlan.lines) log(line);
      if (gpuPlan.mergeSkipped) mergeAdapters = false;
    }
    const releaseWorkspaces = (): void => {
      if (rl.releaseWorkspaces) backend.releaseWorkspaces?.();
    };
    // The held-out evaluation generates as the rollouts do: `rl.mergeAdapters` on or off, or not
    // merging when the budget said so ("auto" otherwise: the backend's choice).
    const evalBackend = withMergeAdapters(backend, mergeAdapters);
    // Generate calls of at most these prompts, where the budget needs smaller calls than one
    // storage binding allows (the samples do not depend on the split).
    const rolloutCap = gpuPlan?.generatePromptsPerCall.rollout;
    const evalCap = Math.min(
      rl.eval.batchPrompts || Infinity,
      gpuPlan?.generatePromptsPerCall.eval ?? Infinity,
    );

    // Optimizer: one update per mini-batch, `rl.ppoEpochs × rl.miniBatches` planned a step. A
    // step makes fewer when its batch has fewer rows or groups than `rl.miniBatches`, and none
    // when it keeps no rows; the learning rate is a function of the RL step all the same (verl
    // steps its scheduler once per step): update u of step s (1-based) takes the schedule's
    // value at (s − 1) × planned + u, through a shift set before each step from the updates
    // made so far (the Adam bias corrections count the updates made). The shift follows from
    // the step and the checkpointed update count, so a resumed run repeats it.
    const updatesPerStep = rl.ppoEpochs * rl.miniBatches;
    let scheduleShift = 0;
    const scheduleOptions = { updatesPerStep, scheduleShift: () => scheduleShift };
    const optimizer = runAdamw(config, params.shapes, scheduleOptions);
    let optState = optimizer.init(params.tree);
    // AdamW on the GPU (trainer.optimizer): parameters, gradients and moments stay there; the
    // host state and parameters are brought up to date only for checkpoints and the export.
    const gpuOpt = deviceAdamw(config, backend, scheduleOptions);
    /** The optimizer updates made so far (the learning-rate piece's count of the host chain). */
    const updatesMade = (): number =>
      gpuOpt ? gpuOpt.count : ((optState as unknown[]).at(-1) as { count: number }).count;
    // The policy the rollouts are sampled from, softmax(logits / rl.temperature): the recomputed
    // old log-probs, the update's log-probs and their gradient (and the entropy metric) are its
    // (verl divides the actor's logits by the temperature the same way). At temperature 1 this
    // is the backend itself.
    const policy = withTemperature(backend, rl.temperature);
    const device = gpuOpt
      ? {
        optimizer: gpuOpt,
        backend: withTemperature(backend as WebGpuTrainBackend, rl.temperature),
      }
      : undefined;
    /** Brings the host parameters and optimizer state up to date with the GPU's. */
    const syncFromDevice = async () => {
      if (!gpuOpt) return;
      await (backend as WebGpuTrainBackend).syncParams();
      optState = await gpuOpt.chainState(optState);
    };

    // Resume.
    let startStep = 0;
    let promptPosition = 0;
    if (checkpoint !== null) {
      ({ optState, startStep, dataPosition: promptPosition } = restoreRun(config, checkpoint, {
        backend,
        lora,
        optimizer,
      }));
      gpuOpt?.loadChainState(optState);
    }

    const order = dataOrder({ size: trainPrompts.length, seed: config.run.seed });
    const backendText = built.description;
    log(
      `${checkpoint ? `resuming ${checkpoint.dir} at step ${startStep}` : "starting"} RL run ` +
        `"${config.run.name}" -> ${runDir}`,
    );
    log(
      `model: ${config.model.path}, ${modelConfig.numHiddenLayers} layers, hidden ` +
        `${modelConfig.hiddenSize}, ${lora ? adapterText(config) : "full fine-tuning"}` +
        `; backend ${backendText}${built.gpuNote}`,
    );
    for (const line of built.adapterLines) log(line);
    log(
      `RL: ${trainPrompts.length} training prompts, ${evalSet.length} held-out; ${t.steps} steps ` +
        `of ${rl.trainBatchPrompts} groups x G=${rl.groupSize} (generation batches of ` +
        `${rl.genBatchPrompts} prompts, at most ${rl.maxGenBatches}); losses ` +
        rl.losses.map((x) => `${x.weight}*${x.name}`).join(" + "),
    );
    for (const line of dataLines) log(line);
    for (const w of warnings) log(`warning: ${w}`);

    const progress = options.progress === undefined
      ? createProgress({ total: t.steps, startStep, every: 1 })
      : options.progress;
    const note = (text: string): void => progress ? progress.note(text) : log(text);
    const sha = await gitSha();
    const seconds = { generate: 0, score: 0, train: 0, eval: 0 };
    const timingsPath = join(runDir, "timings.jsonl");
    // Each held-out evaluation's metrics and per-prompt accuracies, so that a resumed run still
    // compares its end with the run's first evaluation (and pairs them by prompt).
    const evalsPath = join(runDir, "evals.jsonl");
    const anchorKind = align?.anchor ?? "before-marker";
    const hiddenLayer = align?.layer ?? "final";
    const needHidden = align !== undefined || rl.anchorMetrics;
    if (remote) {
      source = await options.rollouts!({
        config,
        backend,
        modelConfig,
        lora,
        eosTokenIds,
        probePromptIds: trainIds(order.index(0)),
        // With the device optimizer the host copies of the parameters are stale.
        syncParams: () => gpuOpt ? (backend as WebGpuTrainBackend).syncParams() : Promise.resolve(),
        log,
      });
      log(`rollouts: ${source.description}`);
      if (rl.oldLogprobs === "sampler") {
        const text = `"rl.oldLogprobs" is "sampler" with remote rollouts: the servers' log-probs ` +
          `are the PPO ratio's old log-probs, and neither the sampler–trainer mismatch nor TIS ` +
          `is computed (set it to "recompute" for both)`;
        warnings.push(text);
        log(`warning: ${text}`);
      }
    }
    const sample = source !== null
      ? source.sampleGroups.bind(source)
      : options.sampleGroups ?? sampleGroups;
    const tis = rl.rollout.tis;
    // At T ≠ 1 with top-p/top-k, halo's generator reports the truncated distribution's
    // log-probs, not softmax(logits / T)'s: the old log-probs are then recomputed at T (remote
    // samplers refuse that case, see remoteSampleGroups).
    const truncatedAtT = !remote && options.sampleGroups === undefined &&
      rl.temperature !== 1 && (rl.topP < 1 || rl.topK > 0);
    const recompute = rl.oldLogprobs === "recompute" || truncatedAtT;
    if (rl.oldLogprobs === "sampler" && truncatedAtT) {
      log(
        `note: "rl.temperature" is ${rl.temperature} with top-p ${rl.topP} / top-k ${rl.topK}: ` +
          `the old log-probs are recomputed at that temperature (the sampler's are the truncated ` +
          `distribution's, not softmax(logits / T)'s)`,
      );
    }
    // The sampler–trainer comparison needs halo's own log-probs of the rollouts (recompute).
    const correct = recompute && (remote || tis.enabled);

    const asyncGeneration = source !== null && rl.rollout.async.enabled;
    /** Step k + 1's first generation batch, requested right after step k's rollouts. */
    let prefetched: { step: number; position: number; result: Promise<SampledGroups> } | null =
      null;
    /** Generation batch `batch` of step `s` over the prompts `indices`. */
    const drawBatch = (
      s: number,
      batch: number,
      indices: readonly number[],
      firstGroup: number,
    ): Promise<SampledGroups> =>
      sample(backend, indices.map(trainIds), {
        tokenizer,
        groupSize: rl.groupSize,
        maxNewTokens: rl.maxNewTokens,
        temperature: rl.temperature,
        topP: rl.topP,
        topK: rl.topK,
        ...(mergeAdapters === undefined ? {} : { mergeAdapters }),
        seed: mix(config.run.seed, s, batch),
        eosTokenIds,
        stopTokenIds: head.stopTokenIds,
        firstGroup,
        ...(rolloutCap === undefined ? {} : { maxPromptsPerCall: rolloutCap }),
      });

    const step = async (s: number): Promise<PendingStep> => {
      const clock = { generate: 0, score: 0, train: 0 };
      let position = promptPosition;
      const startPosition = position;
      let staleGroups = 0;
      let droppedStale = 0;
      let groupCounter = 0;
      let generatedTokens = 0;
      const allScores: RolloutScore[] = [];
      const allRollouts: Rollout[] = [];
      const golds = new Map<number, string>();
      // Generation's workspace only: the last step's forward and training ones go first.
      if (source === null) releaseWorkspaces();
      if (source !== null) {
        const began = performance.now();
        await source.beginStep(s);
        for (const w of source.takeWarnings()) note(`warning: step ${s}: ${w}`);
        clock.generate += performance.now() - began;
      }
      const filled = await fillBatch<ScoredGroup>(async (batch) => {
        const indices: number[] = [];
        for (let i = 0; i < rl.genBatchPrompts; i++) indices.push(order.index(position + i));
        position += rl.genBatchPrompts;
        const began = performance.now();
        let sampled: SampledGroups;
        const ready = prefetched;
        if (batch === 0 && ready !== null && ready.step === s && ready.position === startPosition) {
          // One-step-off: drawn while the previous step trained, with its policy version.
          prefetched = null;
          sampled = await ready.result;
          const lag = s - (sampled.policyVersion ?? s);
          if (lag > rl.rollout.async.maxStaleness) {
            droppedStale += sampled.groups.length;
            sampled = await drawBatch(s, batch, indices, groupCounter);
          } else if (lag > 0) staleGroups += sampled.groups.length;
        } else {
          sampled = await drawBatch(s, batch, indices, groupCounter);
        }
        groupCounter += indices.length;
        generatedTokens += sampled.generatedTokens;
        const scoredAt = performance.now();
        clock.generate += scoredAt - began;
        const groups = sampled.groups.map((rollouts, i) => {
          const gold = trainPrompts[indices[i]].gold;
          golds.set(rollouts[0].group, gold);
          const scores = rollouts.map((r) =>
            scoreRollout(
              {
                text: r.text,
                length: r.tokens.length,
                truncated: r.stopReason === "length",
              },
              gold,
              rolloutScoreOptions(rl, trainPrompts[indices[i]].question),
            )
          );
          allScores.push(...scores);
          allRollouts.push(...rollouts);
          return { rollouts, scores };
        });
        clock.score += performance.now() - scoredAt;
        return groups;
      }, {
        target: rl.trainBatchPrompts,
        maxGenBatches: rl.maxGenBatches,
        dynamicSampling: rl.dynamicSampling,
        keepAllCorrectForAlign: rl.alignKeepAllCorrect && align !== undefined,
        onShort: rl.onShortBatch,
        correctOf: (g) => g.scores.map((x) => x.correct),
      });
      if (asyncGeneration && s < t.steps && s !== options.haltAfterStep) {
        // Step s + 1's first batch (its prompts and seed are known now) runs on the servers,
        // with this step's policy version, while this step trains.
        const next: number[] = [];
        for (let i = 0; i < rl.genBatchPrompts; i++) next.push(order.index(position + i));
        const result = drawBatch(s + 1, 0, next, 0);
        result.catch(() => {}); // awaited (and so thrown) by step s + 1
        prefetched = { step: s + 1, position, result };
        // Let the event loop send the requests now: a CPU update on this thread does not yield
        // to it until the step ends, and the requests would only leave then.
        for (let i = 0; i < 3; i++) await new Promise((ok) => setTimeout(ok, 1));
      }
      if (filled.short) {
        note(
          `warning: step ${s}: dynamic sampling kept ${filled.kept.length}/` +
            `${rl.trainBatchPrompts} groups after ${filled.genBatches} generation batches; ` +
            `training on what there is`,
        );
      }
      const trainStart = performance.now();
      // The forward and training passes: generation's KV cache and buffers go first.
      releaseWorkspaces();

      // Rows: the kept groups (policy loss) and the align-only groups.
      const rows = buildRows(filled.kept, filled.alignOnly, {
        advantage: rl.advantage,
        anchor: anchorKind,
        overlongFilter: rl.overlong.filter,
        seed: mix(config.run.seed, s, 0x41),
      });

      const metrics: Record<string, number> = {};
      let pending: { loss: number; updates: ParamTree; state: typeof optState } | null = null;
      let stepLoss = 0;
      let trainTokens = 0;
      if (rows.length > 0) {
        let centroids: Map<number, Float64Array> | null = null;
        if (recompute || needHidden) {
          const pass = await forwardPass(policy, rows, {
            padId,
            microBatchSize: rl.microBatchSize,
            layer: needHidden ? hiddenLayer : null,
            logprobs: recompute,
          });
          if (pass.logprobs) {
            const sampler = rows.map((r) => r.oldLogprobs);
            rows.forEach((r, i) => (r.oldLogprobs = pass.logprobs![i]));
            if (correct) {
              // Sampler–trainer mismatch, and with TIS the truncated weights of the policy loss.
              const c = rolloutCorrection(sampler, pass.logprobs, {
                cap: tis.cap,
                policy: rows.map((r) => r.policy),
              });
              Object.assign(metrics, c.metrics);
              if (tis.enabled) rows.forEach((r, i) => (r.tokenWeights = c.weights[i]));
            }
          }
          const withHidden = rows.map((r, i) => ({
            group: r.group,
            correct: r.correct,
            hidden: pass.hidden[i],
          }));
          if (needHidden) {
            const cos = anchorCosines(withHidden);
            if (cos.pairsCorrect > 0) metrics["anchor/cos_correct"] = cos.correctCorrect;
            if (cos.pairsIncorrect > 0) metrics["anchor/cos_incorrect"] = cos.incorrectIncorrect;
            if (cos.pairsMixed > 0) metrics["anchor/cos_mixed"] = cos.correctIncorrect;
          }
          if (align !== undefined && align.type !== "cos-pairwise") {
            // Targets over whole groups, so that groups split across micro-batches share them.
            centroids = anchorCentroids(pass.hidden, rows, {
              hiddenSize: modelConfig.hiddenSize,
              type: align.type,
            });
          }
        }
        // The training step's workspace: the forward pass's goes first.
        releaseWorkspaces();
        scheduleShift = (s - 1) * updatesPerStep - updatesMade();
        const r = await rlUpdate(policy, rows, {
          optimizer,
          state: optState,
          losses: rl.losses,
          ppoEpochs: rl.ppoEpochs,
          miniBatches: rl.miniBatches,
          microBatchSize: rl.microBatchSize,
          padId,
          maxNewTokens: rl.maxNewTokens,
          centroids,
          dropoutSeed: (update, micro) => mix(config.run.seed, s, update, micro),
          device,
        });
        Object.assign(metrics, r.metrics);
        if (!r.applied) metrics["optim/update_norm"] = globalNorm(r.updates);
        pending = r.applied ? null : { loss: r.loss, updates: r.updates, state: r.state };
        stepLoss = r.loss;
        trainTokens = r.tokens;
      }
      clock.train += performance.now() - trainStart;

      // Metrics of the rollouts (all generated) and of the batch.
      const lengths = allRollouts.map((r) => r.tokens.length);
      Object.assign(metrics, {
        // Rollouts of an unusable gold (their groups skipped) are out of reward/mean and
        // reward/accuracy, counted in reward/unusable_gold.
        ...rewardMetrics(allScores),
        "response/length_mean": mean(lengths),
        "response/length_max": Math.max(...lengths),
        "response/truncated": mean(allRollouts.map((r) => (r.stopReason === "length" ? 1 : 0))),
        "sampling/gen_batches": filled.genBatches,
        "sampling/groups_generated": filled.generated,
        "sampling/kept_groups": filled.kept.length,
        // Kept groups (capped at rl.trainBatchPrompts) over generated ones; the mixed-group
        // rate below is uncapped: every generated group counts.
        "sampling/kept_fraction": filled.kept.length / filled.generated,
        "sampling/mixed_rate": filled.kinds["mixed"] / filled.generated,
        "sampling/mixed_groups": filled.kinds["mixed"],
        "sampling/align_only_groups": filled.alignOnly.length,
        "sampling/all_correct_groups": filled.kinds["all-correct"],
        "sampling/all_wrong_groups": filled.kinds["all-wrong"],
        "sampling/skip_groups": filled.kinds["skip"],
        "sampling/short_batch": filled.short ? 1 : 0,
        "sampling/prompt_position": position,
        "sampling/generated_tokens": generatedTokens,
        "batch/rows": rows.length,
        "batch/policy_tokens": rows.reduce((n, r) => n + (r.policy ? r.tokens.length : 0), 0),
        "batch/anchor_rate": rows.length === 0
          ? 0
          : rows.filter((r) => r.anchor >= 0).length / rows.length,
        "data/epoch": Math.floor(position / trainPrompts.length),
        ...(source !== null ? source.metrics() : {}),
        ...(asyncGeneration
          ? { "rollout/stale_groups": staleGroups, "rollout/dropped_stale_groups": droppedStale }
          : {}),
      });
      const total = clock.generate + clock.score + clock.train;
      seconds.generate += clock.generate / 1000;
      seconds.score += clock.score / 1000;
      seconds.train += clock.train / 1000;
      const timing = {
        step: s,
        generate_s: clock.generate / 1000,
        score_s: clock.score / 1000,
        train_s: clock.train / 1000,
        rollout_tokens_per_s: generatedTokens / Math.max(clock.generate / 1000, 1e-9),
        train_tokens_per_s: trainTokens / Math.max(clock.train / 1000, 1e-9),
      };
      await Deno.mkdir(runDir, { recursive: true });
      await Deno.writeTextFile(timingsPath, `${JSON.stringify(timing)}\n`, { append: true });
      note(
        `step ${s}: ` +
          (metrics["reward/mean"] === undefined
            ? "reward n/a (no usable gold) | "
            : `reward ${metrics["reward/mean"].toFixed(3)} | acc ` +
              `${(100 * metrics["reward/accuracy"]).toFixed(1)}% | `) +
          `kept ${filled.kept.length}/` +
          `${filled.generated} groups (${filled.genBatches} gen) | len ` +
          `${metrics["response/length_mean"].toFixed(1)} | ` +
          (metrics["anchor/cos_correct"] === undefined
            ? ""
            : `cos c-c ${metrics["anchor/cos_correct"].toFixed(3)} | `) +
          `gen ${(clock.generate / 1000).toFixed(1)}s score ${(clock.score / 1000).toFixed(2)}s ` +
          `train ${(clock.train / 1000).toFixed(1)}s (${(total / 1000).toFixed(1)}s)`,
      );
      const finalPosition = position;
      return {
        loss: stepLoss,
        tokens: generatedTokens + trainTokens,
        metrics,
        commit: () => {
          if (pending !== null) {
            backend.setParams(applyUpdates(params.tree, pending.updates));
            optState = pending.state;
          }
          promptPosition = finalPosition;
        },
      };
    };

    let startMetrics: Record<string, number> = {};
    // Per-prompt accuracies of the run's first and latest evaluation (same prompts and sampling
    // seeds; those of an earlier process from evals.jsonl): their paired difference is the
    // held-out gain with its interval.
    let startPerPrompt: (number | null)[] | null = null;
    let lastPerPrompt: (number | null)[] | null = null;
    let lastEvalMetrics: Record<string, number> = {};
    const evaluate = async (s: number): Promise<Record<string, number>> => {
      const began = performance.now();
      releaseWorkspaces();
      const { metrics, perPrompt } = await evaluateRlPrompts(evalBackend, evalSet, {
        tokenizer,
        samples: rl.eval.samples,
        temperature: rl.eval.temperature,
        maxNewTokens: rl.maxNewTokens,
        seed: mix(config.run.seed, 0xe7a1),
        budgetMs: rl.reward.budgetMs,
        problemNouns: rl.reward.problemNouns,
        eosTokenIds,
        stopTokenIds: head.stopTokenIds,
        ...(evalCap === Infinity ? {} : { batchPrompts: evalCap }),
      });
      seconds.eval += (performance.now() - began) / 1000;
      if (Object.keys(startMetrics).length === 0) {
        startMetrics = metrics;
        startPerPrompt = perPrompt;
      }
      lastPerPrompt = perPrompt;
      lastEvalMetrics = metrics;
      await Deno.writeTextFile(evalsPath, `${JSON.stringify({ step: s, metrics, perPrompt })}\n`, {
        append: true,
      });
      const k = rl.eval.samples;
      const unusable = metrics["eval/unusable_gold"];
      note(
        `eval @ step ${s}: avg@${k} ${(100 * metrics[`eval/avg@${k}`]).toFixed(1)}% | pass@${k} ` +
          `${(100 * metrics[`eval/pass@${k}`]).toFixed(1)}% | answered ` +
          `${(100 * metrics["eval/answered"]).toFixed(1)}% (${evalSet.length} prompts` +
          `${unusable > 0 ? `, ${unusable} with an unusable gold left out` : ""})`,
      );
      return metrics;
    };

    const save = async (s: number, metrics: Record<string, number>): Promise<string> => {
      await syncFromDevice();
      const dir = await saveRun(runDir, s, {
        config,
        backend,
        lora,
        optState,
        dataPosition: promptPosition,
        data: { ...record },
        rng: {
          kind: "counter-based",
          note: "prompt order from (run.seed, epoch) at dataPosition; rollouts from " +
            "(run.seed, step, generation batch); dynamic sampling keeps no state across steps",
          seed: config.run.seed,
        },
        metrics,
        sha,
      });
      note(`checkpoint ${dir}`);
      return dir;
    };

    if (start.removeRunDir) await Deno.remove(runDir, { recursive: true });
    if (startStep === 0) {
      await Deno.mkdir(runDir, { recursive: true });
      await Deno.writeTextFile(timingsPath, "");
      await Deno.writeTextFile(evalsPath, "");
    } else {
      // Resumed: the earlier evaluations up to the checkpoint's step (a later one belongs to a
      // step that runs again), as if this process had run them.
      const earlier = await readEvals(evalsPath, startStep);
      await writeFileAtomic(evalsPath, earlier.map((e) => `${JSON.stringify(e)}\n`).join(""));
      if (earlier.length > 0) {
        ({ metrics: startMetrics, perPrompt: startPerPrompt } = earlier[0]);
        ({ metrics: lastEvalMetrics, perPrompt: lastPerPrompt } = earlier[earlier.length - 1]);
      }
    }
    const { result, exported } = await trainAndExport(config, head, built, {
      loop: {
        runDir,
        startStep,
        totalSteps: t.steps,
        step,
        evaluate,
        evalEvery: rl.eval.every,
        evalFinal: rl.eval.final,
        // The step-0 evaluation is the baseline of later ones: none when no later one runs.
        evalAtStart: (options.evalAtStart ?? true) && evaluates,
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
    if (options.plots && !result.halted) {
      try {
        const { charts } = await plotRunCurves(runDir);
        log(`plots: ${charts.length} SVG charts in ${join(runDir, "plots")}`);
      } catch (error) {
        const text = `could not draw the plots of "${runDir}": ${(error as Error).message}`;
        warnings.push(text);
        log(`warning: ${text}`);
      }
    }
    log(
      `time: generate ${formatDuration(seconds.generate)}, score ` +
        `${formatDuration(seconds.score)}, train ${formatDuration(seconds.train)}, eval ` +
        `${formatDuration(seconds.eval)}`,
    );
    // (Assigned in `evaluate`, which TypeScript's narrowing does not follow.)
    const first = startPerPrompt as (number | null)[] | null;
    const last = lastPerPrompt as (number | null)[] | null;
    const gain = first !== null && last !== null && last !== first
      ? heldOutDifferences(first, last)
      : null;
    return {
      runDir,
      step: result.step,
      halted: result.halted,
      // A resumed run that had no step left keeps the last evaluation's metrics (a run that does
      // not evaluate after its last step does not show an earlier evaluation's as its last).
      metrics: rl.eval.final || result.step === startStep
        ? { ...lastEvalMetrics, ...result.metrics }
        : result.metrics,
      startMetrics,
      heldOutGain: gain,
      lastCheckpoint: result.lastCheckpoint,
      resumedFrom: checkpoint?.dir ?? null,
      exported,
      backend: backendText,
      warnings,
      seconds,
      gpuMemory: gpuPlan === null || gpuCtx === null ? null : {
        estimate: gpuPlan.estimate,
        generatePromptsPerCall: gpuPlan.generatePromptsPerCall,
        residentBytes,
        peakBytes: gpuCtx.peakBytes,
      },
    };
  }
}

/**
 * The paired held-out gain (latest minus first evaluation) over the prompts both score: a
 * prompt with an unusable gold (`null`) is in neither accuracy.
 */
function heldOutDifferences(
  first: readonly (number | null)[],
  last: readonly (number | null)[],
): ConfidenceInterval | null {
  const differences: number[] = [];
  last.forEach((x, i) => {
    const y = first[i];
    if (x !== null && y !== null && y !== undefined) differences.push(x - y);
  });
  return differences.length === 0 ? null : confidenceInterval(differences);
}

/** One line of a run's evals.jsonl (`null`: a prompt with an unusable gold). */
interface EvalRecord {
  step: number;
  metrics: Record<string, number>;
  perPrompt: (number | null)[];
}

/**
 * The evaluations of `path` (a run's evals.jsonl) at steps ≤ `upTo`, oldest first; none when the
 * file is missing (a run from before the file). A last line cut short (a killed process) is left
 * out; any other line that is not a record is an error naming the file and line.
 */
async function readEvals(path: string, upTo: number): Promise<EvalRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const lines = text.split("\n");
  const out: EvalRecord[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let record: EvalRecord;
    try {
      record = JSON.parse(line);
      if (!Number.isSafeInteger(record.step) || !Array.isArray(record.perPrompt)) {
        throw new SyntaxError("not an evaluation record");
      }
    } catch (error) {
      if (i === lines.length - 1) break;
      throw new SyntaxError(
        `Cannot resume: line ${i + 1} of "${path}" must be an evaluation record ({step, ` +
          `metrics, perPrompt}): ${(error as Error).message}`,
      );
    }
    if (record.step <= upTo) out.push(record);
  }
  return out;
}

/**
 * Whether the training loop evaluates after one of the steps `startStep + 1 … totalSteps`: after
 * the last with `final`, and after each multiple of `every` (0: none), as `trainLoop` does.
 */
function evaluationDue(
  startStep: number,
  totalSteps: number,
  rlEval: { every: number; final: boolean },
): boolean {
  if (startStep >= totalSteps) return false;
  const { every, final } = rlEval;
  return final || (every > 0 && Math.floor(totalSteps / every) > Math.floor(startStep / every));
}
