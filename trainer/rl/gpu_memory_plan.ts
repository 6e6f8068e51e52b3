/**
 * The start-up GPU memory check of a WebGPU RL run: the estimate of
 * {@linkcode estimateRlGpuMemory} for the run's keys, printed as a table; the budget
 * (`rl.gpuMemoryBudget`, or the `HALO_GPU_MEMORY` environment variable) less its headroom
 * (`rl.gpuMemoryHeadroom`, default 10%, for what the estimate leaves out: staging buffers, the
 * driver's overhead, fragmentation) it must fit, with the keys to lower
 * named when it does not; generation split into calls of fewer prompts when its
 * workspace takes the peak over the budget; `rl.mergeAdapters: "auto"` turned off when the merged
 * copy would take the peak over the budget or make those calls smaller; and a micro-batch that
 * must fit one storage binding.
 *
 * Order of the two generation savings under `mergeAdapters: "auto"`: the largest generate calls
 * first, the merge only where it costs none of their size. A decode step of a call reads every
 * weight once for all its rows, so calls of half the rows read the weights twice as often for the
 * same samples (about twice the time where decoding is bound by memory bandwidth), while the merge
 * saves only the adapters' rank-r products (docs/perf.md, measured on llvmpipe only: 1.77× faster
 * on the tiny model, slower on a 0.6B layer). So the merge is skipped when, without its copy,
 * the calls can be larger (or unsplit); it is kept when the calls are as large either way. `"on"`
 * keeps the merge and splits the calls as needed.
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
  /**
   * The device's limits, whether it is a software adapter (`mergeAdapters: auto` is off, and no
   * matmul splits K) and, on a hardware one, `GpuContext.fillWorkgroups` (the split-K products'
   * target; default 256).
   */
  device: {
    maxBindingSize: number;
    offsetAlignment: number;
    isFallbackAdapter: boolean;
    fillWorkgroups?: number;
  };
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
  /**
   * The bytes the estimate is fitted within: the budget less `rl.gpuMemoryHeadroom` of it
   * (0: no budget).
   */
  fitBytes: number;
  /**
   * Most prompts per generate call that fit the budget, for the rollouts and for the held-out
   * evaluation (pass as `generateGroups`' `maxPromptsPerCall`); absent where the calls need no
   * cap beyond their binding's (no budget, or the unsplit calls fit it).
   */
  generatePromptsPerCall: { rollout?: number; eval?: number };
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
 * Estimates an RL run's GPU memory, splits generation into calls of fewer prompts and decides
 * `rl.mergeAdapters: "auto"` against the budget, and checks the run fits: its peak within the
 * budget less `rl.gpuMemoryHeadroom` of it (`fitBytes`; when a budget is set), and a micro-batch of `rl.microBatchSize` rows of the longest prompt
 * plus `rl.maxNewTokens` tokens within one storage binding (the widest per-token buffer of the
 * forward and training passes).
 *
 * When generation (rollouts of `rl.genBatchPrompts × rl.groupSize` rows, or held-out calls of
 * `rl.eval.batchPrompts × rl.eval.samples`) takes the peak over the budget, the plan caps the
 * prompts per generate call, for the rollouts and the held-out evaluation apart, at the most
 * whose estimate fits (`generatePromptsPerCall`; the samples do not depend on the split, see
 * `generateGroups`); the estimate returned is that of the capped calls.
 *
 * @param input The config, model, adapters, prompt lengths and device limits.
 * @returns The estimate, the merge decision, the prompts per generate call and the log lines.
 * @throws {RangeError} When the micro-batch does not fit one binding (naming `rl.microBatchSize`
 *   and the largest that fits), when the peak exceeds the budget even with one prompt per
 *   generate call, or with the peak set by the forward pass or the training step (naming the keys
 *   that lower the largest phase), or when `HALO_GPU_MEMORY` is not a number.
 *
 * @example Qwen3-4B, full fine-tuning, GSM8K-length: the held-out calls split for 141 GB (planned
 * within 126.9 GB, the default 10% headroom off); with every workspace kept, refused under 100 GB
 * ```ts
 * import { planRlGpuMemory } from "./gpu_memory_plan.ts";
 * import { DEFAULT_CONFIG } from "../config.ts";
 * import { DEFAULT_RL_CONFIG } from "./config.ts";
 * import { ok, throws } from "node:assert/strict";
 *
 * const modelConfig = {
 *   vocabSize: 151936, hiddenSize: 2560, intermediateSize: 9728, numHiddenLayers: 36,
 *   numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, tieWordEmbeddings: true,
 *   maxPositionEmbeddings: 40960, rmsNormEps: 1e-6, ropeTheta: 1e6, eosTokenIds: [151645],
 *   bosTokenId: null, padTokenId: null,
 * };
 * const input = (gpuMemoryBudget: number, releaseWorkspaces: boolean) => ({
 *   config: {
 *     ...DEFAULT_CONFIG,
 *     rl: { ...DEFAULT_RL_CONFIG, maxNewTokens: 1024, releaseWorkspaces, gpuMemoryBudget },
 *   },
 *   modelConfig, lora: null, promptTokens: 252, evalPrompts: 48, evalPromptTokens: 252,
 *   stopTokens: 1,
 *   device: { maxBindingSize: 2 ** 31 - 4, offsetAlignment: 256, isFallbackAdapter: false },
 * });
 * const plan = planRlGpuMemory(input(141, true));
 * ok(plan.generatePromptsPerCall.eval! < 48 && plan.estimate.peak <= plan.fitBytes);
 * console.log(plan.lines.at(-2)); // … budget 141.00, planned within 126.90: 10% headroom, …
 * console.log(plan.lines.at(-1)); // generation split into calls of … prompts
 * throws(() => planRlGpuMemory(input(100, false)), /"rl\.releaseWorkspaces"/);
 * ```
 */
export function planRlGpuMemory(input: RlGpuMemoryPlanInput): RlGpuMemoryPlan {
  const { config, modelConfig: c, device } = input;
  const rl = config.rl;
  const budgetBytes = budgetOf(rl.gpuMemoryBudget, input.env);
  // What the estimate leaves out (staging, scratch, driver, fragmentation) comes off the budget.
  const headroom = rl.gpuMemoryHeadroom;
  const fitBytes = budgetBytes * (1 - headroom);
  const adapters = adapterShape(input.lora, c.numHiddenLayers);
  const align = rl.losses.find((x) => x.name === "hidden_align");
  const wantMerge = adapters !== null &&
    (rl.mergeAdapters === "on" ||
      // As generate's default: "auto" leaves f16 weights unmerged (their copy is lossy).
      (rl.mergeAdapters === "auto" && !device.isFallbackAdapter &&
        config.model.weightDtype !== "f16"));
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
    isFallbackAdapter: device.isFallbackAdapter,
    fillWorkgroups: device.fillWorkgroups,
  };
  checkMicroBatch(input, adapters);
  let fit = fitGeneration(base, wantMerge, fitBytes);
  let mergeAdapters = wantMerge;
  let mergeSkipped = false;
  const mergedCopy = estimateRlGpuMemory(base).mergedCopy;
  if (wantMerge && rl.mergeAdapters === "auto" && fitBytes > 0 && !(fit.fits && fit.unsplit)) {
    // The largest calls first: the merge only where it costs none of their size (module doc).
    const unmerged = fitGeneration(base, false, fitBytes);
    const sameCalls = fit.fits && unmerged.fits &&
      fit.caps.rollout === unmerged.caps.rollout && fit.caps.eval === unmerged.caps.eval;
    if (!sameCalls && (unmerged.fits || unmerged.estimate.peak < fit.estimate.peak)) {
      fit = unmerged;
      mergeAdapters = false;
      mergeSkipped = true;
    }
  }
  const e = fit.estimate;
  const percent = `${Number((100 * headroom).toFixed(1))}%`;
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
    `  scratch          ${gb(e.scratch)} (${(e.scratch / 2 ** 20).toFixed(1)} MiB of split-K ` +
    `partial sums, kept from the first training step)`,
    `  peak             ${gb(e.peak)} (${
      rl.releaseWorkspaces ? "workspaces released between phases" : "all workspaces kept"
    }; budget ${
      budgetBytes <= 0
        ? "none: set rl.gpuMemoryBudget or HALO_GPU_MEMORY"
        : headroom > 0
        ? `${gb(budgetBytes)}, planned within ${gb(fitBytes)}: ${percent} headroom, ` +
          `rl.gpuMemoryHeadroom`
        : gb(budgetBytes)
    })`,
  ];
  if (mergeSkipped) {
    lines.push(
      `rl.mergeAdapters "auto": not merging the adapters for generation (their merged copy, ` +
        `${gb(mergedCopy)} GB, would ${
          !fit.fits || fit.unsplit
            ? "take the peak over the budget"
            : "make the generate calls smaller to fit the budget"
        })`,
    );
  }
  const split = splitLine(fit, rl.groupSize, rl.eval.samples);
  if (split !== null) lines.push(split);
  if (!fit.fits) {
    throw new RangeError(
      `Cannot run RL: the estimated GPU memory peak ${gb(e.peak)} GB exceeds the budget ` +
        `${gb(budgetBytes)} GB (${input.env ? "HALO_GPU_MEMORY" : 'key "rl.gpuMemoryBudget"'})${
          headroom > 0
            ? ` less its ${percent} headroom (key "rl.gpuMemoryHeadroom", for what the estimate ` +
              `leaves out), ${gb(fitBytes)} GB,`
            : ""
        }${fit.unsplit ? "" : " even with generation in calls of one prompt"}; lower ${
          keysToLower(input, e, mergeAdapters).join(", ")
        }\n${lines.join("\n")}`,
    );
  }
  return {
    estimate: e,
    mergeAdapters,
    mergeSkipped,
    budgetBytes,
    fitBytes,
    generatePromptsPerCall: fit.fits ? fit.caps : {},
    lines,
  };
}

/** Generation's calls under the budget, by {@linkcode fitGeneration}. */
interface GenerationFit {
  /** The estimate of the plan (the smallest calls tried when it does not fit). */
  estimate: GpuMemoryEstimate;
  /** Whether its peak is within the budget. */
  fits: boolean;
  /** The calls are as `generateGroups` makes them without a budget. */
  unsplit: boolean;
  /** Prompts per call, where the budget caps them below the unsplit calls. */
  caps: { rollout?: number; eval?: number };
  /** Prompts per unsplit call (0: no such calls on this GPU). */
  full: { rollout: number; eval: number };
}

/**
 * The largest generate calls whose estimate fits `budget`: unsplit when they fit (or there is no
 * budget); else, when calls of one prompt lower the peak (generation sets it), the most rollout
 * prompts per call that fit with one held-out prompt per call, then the most held-out prompts
 * per call that fit with those (the peak grows with either, the phases of a released run take
 * their maximum); else the unsplit plan, which does not fit.
 */
function fitGeneration(
  base: GpuMemoryEstimateInput,
  mergeAdapters: boolean,
  budget: number,
): GenerationFit {
  // The estimate's rows of a call: its prompts (at most genBatchPrompts / evalBatchPrompts, and
  // as many as fit one binding) times the samples of each.
  const at = (rollout: number, evalCap: number) => {
    const evalMost = Math.min(base.evalBatchPrompts || Infinity, evalCap);
    return estimateRlGpuMemory({
      ...base,
      mergeAdapters,
      genBatchPrompts: Math.min(base.genBatchPrompts, rollout),
      evalBatchPrompts: evalMost === Infinity ? 0 : evalMost,
    });
  };
  const whole = at(Infinity, Infinity);
  const full = {
    rollout: whole.generateRows.rollout / base.groupSize,
    eval: whole.generateRows.eval / base.evalSamples,
  };
  if (budget <= 0 || whole.peak <= budget) {
    return { estimate: whole, fits: true, unsplit: true, caps: {}, full };
  }
  const least = at(1, 1);
  if (least.peak >= whole.peak) {
    return { estimate: whole, fits: false, unsplit: true, caps: {}, full };
  }
  if (least.peak > budget) return { estimate: least, fits: false, unsplit: false, caps: {}, full };
  /** The largest n in [1, most] with `fits(n)`, `fits(1)` true and `fits` monotone. */
  const largest = (most: number, fits: (n: number) => boolean): number => {
    let lo = 1;
    let hi = Math.max(1, most);
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const rollout = largest(full.rollout, (n) => at(n, 1).peak <= budget);
  const evalCap = largest(full.eval, (n) => at(rollout, n).peak <= budget);
  const caps: GenerationFit["caps"] = {};
  if (rollout < full.rollout) caps.rollout = rollout;
  if (evalCap < full.eval) caps.eval = evalCap;
  return { estimate: at(rollout, evalCap), fits: true, unsplit: false, caps, full };
}

/** The start-up line of a split generation, or null when the calls are unsplit. */
function splitLine(fit: GenerationFit, groupSize: number, evalSamples: number): string | null {
  if (fit.unsplit) return null;
  const calls = (n: number, perPrompt: number, full: number) =>
    `${n} prompt${n === 1 ? "" : "s"} (${n * perPrompt} rows) instead of ${full}`;
  const parts: string[] = [];
  const r = fit.fits ? fit.caps.rollout : 1;
  const v = fit.fits ? fit.caps.eval : 1;
  if (r !== undefined && fit.full.rollout > 0) {
    parts.push(`${calls(r, groupSize, fit.full.rollout)} for the rollouts`);
  }
  if (v !== undefined && fit.full.eval > 0) {
    parts.push(`${calls(v, evalSamples, fit.full.eval)} for the held-out evaluation`);
  }
  if (parts.length === 0) return null;
  return `generation split into calls of ${parts.join(" and ")}, ${
    fit.fits ? "to fit the budget" : "still over the budget"
  }`;
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
    // Generation is refused at one prompt per call already: fewer prompts per batch or call
    // would not lower it, fewer samples of a prompt would.
    keys.push(
      e.generateRows.eval > e.generateRows.rollout ? `"rl.eval.samples"` : `"rl.groupSize"`,
    );
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
