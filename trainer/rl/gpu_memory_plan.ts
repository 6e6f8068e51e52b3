/**
 * The start-up GPU memory check of a WebGPU RL run: the estimate of
 * {@linkcode estimateRlGpuMemory} for the run's keys, printed as a table; the budget
 * (`rl.gpuMemoryBudget`, or the `HALO_GPU_MEMORY` environment variable) it must fit, with the
 * keys to lower named when it does not; `rl.mergeAdapters: "auto"` turned off when the merged
 * copy alone takes the peak over the budget; and a micro-batch that must fit one storage binding.
 *
 * @module
 */
import type { Lora } from "../../model/adapter_types.ts";
import type { Qwen3Config } from "../../model/config.ts";
import { kvBytesPerElement } from "../../model/kv_cache.ts";
import type { TrainConfig } from "../config.ts";
import {
  estimateRlGpuMemory,
  type GpuMemoryAdapters,
  type GpuMemoryEstimate,
  type GpuMemoryEstimateInput,
} from "./gpu_memory_estimate.ts";

/**
 * What {@linkcode planRlGpuMemory} needs besides the config.
 *
 * @example Usage
 * ```ts
 * import type { RlGpuMemoryPlanInput } from "./gpu_memory_plan.ts";
 *
 * const device: RlGpuMemoryPlanInput["device"] = {
 *   maxBindingSize: 2 ** 31 - 4, offsetAlignment: 256, isFallbackAdapter: false,
 * };
 * ```
 */
export interface RlGpuMemoryPlanInput {
  /** The run's config (`rl`, `model.weightDtype`, `trainer.optimizer`). */
  config: Pick<TrainConfig, "rl" | "model" | "trainer">;
  /** The model's config. */
  modelConfig: Qwen3Config;
  /** The run's adapters, or null (full fine-tuning). */
  lora: Pick<Lora, "modules"> | null;
  /** Tokens of the longest training prompt. */
  promptTokens: number;
  /** Held-out prompts evaluated (0: none) and the longest one's tokens. */
  evalPrompts: number;
  /** Tokens of the longest held-out prompt. */
  evalPromptTokens: number;
  /** EOS and stop token ids of generation. */
  stopTokens: number;
  /** The device's limits, and whether it is a software adapter (`mergeAdapters: auto` is off). */
  device: { maxBindingSize: number; offsetAlignment: number; isFallbackAdapter: boolean };
  /** The `HALO_GPU_MEMORY` environment variable (GB), which overrides `rl.gpuMemoryBudget`. */
  env?: string;
  /** Bytes of a KV cache element; default that of `model.kvDtype` (4 for f32, 2 for f16). */
  kvBytes?: number;
}

/**
 * What {@linkcode planRlGpuMemory} decided.
 *
 * @example Usage
 * ```ts
 * import type { RlGpuMemoryPlan } from "./gpu_memory_plan.ts";
 *
 * const show = (plan: RlGpuMemoryPlan) => plan.lines.join("\n");
 * ```
 */
export interface RlGpuMemoryPlan {
  /** The estimate, with the merge as decided. */
  estimate: GpuMemoryEstimate;
  /** Whether generation merges the adapters (`rl.mergeAdapters` resolved). */
  mergeAdapters: boolean;
  /** `"auto"` would have merged, but the merged copy took the peak over the budget. */
  mergeSkipped: boolean;
  /** The budget in bytes (0: none). */
  budgetBytes: number;
  /** The table for the start-up log (and the merge decision, when skipped). */
  lines: string[];
}

const GB = 1e9;

function gb(bytes: number): string {
  return (bytes / GB).toFixed(2);
}

/** The adapters by layer: every target, the largest rank and expert count of each layer. */
function adapterShape(
  lora: Pick<Lora, "modules"> | null,
  layers: number,
): GpuMemoryAdapters | null {
  if (lora === null) return null;
  const ranks = new Array<number>(layers).fill(0);
  const experts = new Array<number>(layers).fill(1);
  const targets = new Set<string>();
  for (const m of lora.modules) {
    targets.add(m.target);
    ranks[m.layer] = Math.max(ranks[m.layer], ...m.experts.map((e) => e.r));
    experts[m.layer] = Math.max(experts[m.layer], m.experts.length);
  }
  return { targets: [...targets], ranks: ranks.map((r) => Math.max(r, 1)), experts };
}

/** The budget in bytes: `HALO_GPU_MEMORY` when set, else `rl.gpuMemoryBudget`; GB, 0 = none. */
function budgetOf(configGb: number, env: string | undefined): number {
  if (env === undefined || env.trim() === "") return configGb * GB;
  const value = Number(env);
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot run RL: environment variable HALO_GPU_MEMORY must be a number of GB >= 0 (0: no ` +
        `check): current value is "${env}"`,
    );
  }
  return value * GB;
}

/**
 * Estimates an RL run's GPU memory, decides `rl.mergeAdapters: "auto"` against the budget, and
 * checks the run fits: its peak within the budget (when one is set), and a micro-batch of
 * `rl.microBatchSize` rows of the longest prompt plus `rl.maxNewTokens` tokens within one storage
 * binding (the widest per-token buffer of the forward and training passes).
 *
 * @param input The config, model, adapters, prompt lengths and device limits.
 * @returns The estimate, the merge decision and the log lines.
 * @throws {RangeError} When the micro-batch does not fit one binding (naming `rl.microBatchSize`
 *   and the largest that fits), when the peak exceeds the budget (naming the keys that lower the
 *   largest phase), or when `HALO_GPU_MEMORY` is not a number.
 *
 * @example Qwen3-4B, LoRA r16, GSM8K-length: over a 141 GB budget with every workspace kept
 * ```ts
 * import { planRlGpuMemory } from "./gpu_memory_plan.ts";
 * import { DEFAULT_CONFIG } from "../config.ts";
 * import { DEFAULT_RL_CONFIG } from "./config.ts";
 * import { throws } from "node:assert/strict";
 *
 * const modelConfig = {
 *   vocabSize: 151936, hiddenSize: 2560, intermediateSize: 9728, numHiddenLayers: 36,
 *   numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, tieWordEmbeddings: true,
 *   maxPositionEmbeddings: 40960, rmsNormEps: 1e-6, ropeTheta: 1e6, eosTokenIds: [151645],
 *   bosTokenId: null, padTokenId: null,
 * };
 * const rl = { ...DEFAULT_RL_CONFIG, maxNewTokens: 1024, releaseWorkspaces: false, gpuMemoryBudget: 141 };
 * const input = {
 *   config: { ...DEFAULT_CONFIG, rl },
 *   modelConfig, lora: null, promptTokens: 252, evalPrompts: 48, evalPromptTokens: 252,
 *   stopTokens: 1,
 *   device: { maxBindingSize: 2 ** 31 - 4, offsetAlignment: 256, isFallbackAdapter: false },
 * };
 * throws(() => planRlGpuMemory(input), /"rl\.releaseWorkspaces"/);
 * ```
 */
export function planRlGpuMemory(input: RlGpuMemoryPlanInput): RlGpuMemoryPlan {
  const { config, modelConfig: c, device } = input;
  const rl = config.rl;
  const budgetBytes = budgetOf(rl.gpuMemoryBudget, input.env);
  const adapters = adapterShape(input.lora, c.numHiddenLayers);
  const align = rl.losses.find((x) => x.name === "hidden_align");
  const wantMerge = adapters !== null &&
    (rl.mergeAdapters === "on" || (rl.mergeAdapters === "auto" && !device.isFallbackAdapter));
  const base: GpuMemoryEstimateInput = {
    model: c,
    weightDtype: config.model.weightDtype,
    kvBytes: input.kvBytes ?? kvBytesPerElement(config.model.kvDtype),
    adapters,
    deviceOptimizer: config.trainer.optimizer !== "host",
    groupSize: rl.groupSize,
    // Remote rollouts are generated elsewhere: only the held-out evaluation generates here.
    genBatchPrompts: rl.rollout.backend === "local" ? rl.genBatchPrompts : 0,
    evalPrompts: input.evalPrompts,
    evalSamples: rl.eval.samples,
    evalBatchPrompts: rl.eval.batchPrompts ?? 0,
    promptTokens: input.promptTokens,
    evalPromptTokens: input.evalPromptTokens,
    maxNewTokens: rl.maxNewTokens,
    microBatchSize: rl.microBatchSize,
    mergeAdapters: wantMerge,
    releaseWorkspaces: rl.releaseWorkspaces,
    intermediateLayer: align !== undefined && align.layer !== "final",
    stopTokens: input.stopTokens,
    maxBindingSize: device.maxBindingSize,
    offsetAlignment: device.offsetAlignment,
  };
  checkMicroBatch(input, adapters);
  let estimate = estimateRlGpuMemory(base);
  let mergeAdapters = wantMerge;
  let mergeSkipped = false;
  const mergedCopy = estimate.mergedCopy;
  if (
    wantMerge && rl.mergeAdapters === "auto" && budgetBytes > 0 && estimate.peak > budgetBytes
  ) {
    const unmerged = estimateRlGpuMemory({ ...base, mergeAdapters: false });
    if (unmerged.peak < estimate.peak) {
      estimate = unmerged;
      mergeAdapters = false;
      mergeSkipped = true;
    }
  }
  const e = estimate;
  const rows = Math.max(e.generateRows.rollout, e.generateRows.eval);
  const capacity = Math.ceil(
    (Math.max(input.promptTokens, input.evalPromptTokens) +
      rl.maxNewTokens) / 64,
  ) * 64;
  const lines = [
    `GPU memory estimate (GB; from the allocation code, not measured; largest shapes):`,
    `  weights          ${gb(e.weights)} (${config.model.weightDtype})`,
    `  adapters         ${gb(e.adapters)}`,
    `  optimizer state  ${gb(e.optimizer)} (gradients${
      base.deviceOptimizer ? " + AdamW moments" : ""
    })`,
    `  merged copy      ${gb(e.mergedCopy)} (during generation${
      mergeSkipped ? "; skipped for the budget" : ""
    })`,
    `  KV cache         ${gb(e.kvCache)} (${rows} rows x ${capacity} slots)`,
    `  generation       ${gb(e.generation)} (activations, logits)`,
    `  forward          ${gb(e.forward)} (micro-batch of ${e.microBatchTokens} tokens)`,
    `  training         ${gb(e.training)}`,
    `  peak             ${gb(e.peak)} (${
      rl.releaseWorkspaces ? "workspaces released between phases" : "all workspaces kept"
    }; budget ${
      budgetBytes > 0 ? gb(budgetBytes) : "none: set rl.gpuMemoryBudget or HALO_GPU_MEMORY"
    })`,
  ];
  if (mergeSkipped) {
    lines.push(
      `rl.mergeAdapters "auto": not merging the adapters for generation (their f32 copy, ` +
        `${gb(mergedCopy)} GB, would ` +
        `take the peak over the budget)`,
    );
  }
  if (budgetBytes > 0 && e.peak > budgetBytes) {
    throw new RangeError(
      `Cannot run RL: the estimated GPU memory peak ${gb(e.peak)} GB exceeds the budget ` +
        `${gb(budgetBytes)} GB (${input.env ? "HALO_GPU_MEMORY" : 'key "rl.gpuMemoryBudget"'}); ` +
        `lower ${keysToLower(input, e, mergeAdapters).join(", ")}\n${lines.join("\n")}`,
    );
  }
  return { estimate, mergeAdapters, mergeSkipped, budgetBytes, lines };
}

/** The keys that lower the phase that sets the peak, most effective first. */
function keysToLower(
  input: RlGpuMemoryPlanInput,
  e: GpuMemoryEstimate,
  merged: boolean,
): string[] {
  const rl = input.config.rl;
  const keys: string[] = [];
  if (!rl.releaseWorkspaces) keys.push(`"rl.releaseWorkspaces" (set it to true)`);
  const gen = e.kvCache + e.generation + e.mergedCopy;
  const train = Math.max(e.forward, e.training);
  if (gen >= train) {
    if (e.generateRows.eval > e.generateRows.rollout) {
      keys.push(`"rl.eval.batchPrompts"`, `"rl.eval.samples"`);
    } else keys.push(`"rl.genBatchPrompts"`, `"rl.groupSize"`);
    keys.push(`"rl.maxNewTokens"`);
    if (merged) keys.push(`"rl.mergeAdapters" (set it to "off")`);
  } else keys.push(`"rl.microBatchSize"`, `"rl.maxNewTokens"`);
  if (input.config.model.weightDtype === "f32" && input.lora !== null) {
    keys.push(`"model.weightDtype" (f16)`);
  }
  if (e.optimizer > e.weights / 4 && input.config.trainer.optimizer !== "host") {
    keys.push(`"trainer.optimizer" (host)`);
  }
  return keys;
}

/** A micro-batch of the longest rows must fit one binding in every per-token buffer. */
function checkMicroBatch(input: RlGpuMemoryPlanInput, adapters: GpuMemoryAdapters | null): void {
  const c = input.modelConfig;
  const rl = input.config.rl;
  const rank = adapters === null ? 0 : Math.max(...adapters.ranks.map((r, l) => {
    const E = adapters.experts?.[l] ?? 1;
    return r + (E > 1 ? 4 * (E + 64) : 0);
  }));
  const perToken = 4 * Math.max(
    c.hiddenSize,
    c.numAttentionHeads * c.headDim,
    c.intermediateSize,
    2 * c.numAttentionHeads,
    rank,
  );
  const rowTokens = input.promptTokens + rl.maxNewTokens;
  const need = rl.microBatchSize * rowTokens * perToken;
  const limit = input.device.maxBindingSize;
  if (need <= limit) return;
  const fit = Math.floor(limit / (rowTokens * perToken));
  throw new RangeError(
    `Cannot run RL: key "rl.microBatchSize" must be at most ${fit} on this device: a micro-batch ` +
      `of ${rl.microBatchSize} rows of ${rowTokens} tokens (the longest prompt, ` +
      `${input.promptTokens}, plus "rl.maxNewTokens", ${rl.maxNewTokens}) needs ${need} bytes ` +
      `in one activation buffer (${perToken} bytes a token), more than one storage binding ` +
      `(${limit} bytes)${fit === 0 ? `; lower "rl.maxNewTokens" too` : ""}: current value is ` +
      `${rl.microBatchSize}`,
  );
}
