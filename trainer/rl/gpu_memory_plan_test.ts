import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Lora } from "../../model/adapter_types.ts";
import type { Qwen3Config } from "../../model/config.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { DEFAULT_RL_CONFIG, type RlConfig } from "./config.ts";
import { estimateRlGpuMemory } from "./gpu_memory_estimate.ts";
import { planRlGpuMemory, type RlGpuMemoryPlanInput } from "./gpu_memory_plan.ts";

const QWEN3_4B: Qwen3Config = {
  vocabSize: 151936,
  hiddenSize: 2560,
  intermediateSize: 9728,
  numHiddenLayers: 36,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  headDim: 128,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 40960,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  eosTokenIds: [151645],
  bosTokenId: null,
  padTokenId: null,
};
const H200 = { maxBindingSize: 2 ** 31 - 4, offsetAlignment: 256, isFallbackAdapter: false };

/** LoRA modules of rank `r` on q_proj and down_proj of every layer (only the shapes matter). */
function lora(r: number): Pick<Lora, "modules"> {
  const modules = [];
  for (let layer = 0; layer < 36; layer++) {
    for (const target of ["q_proj", "down_proj"] as const) {
      modules.push({
        name: `${layer}.${target}`,
        layer,
        target,
        inFeatures: 0,
        outFeatures: 0,
        experts: [{ a: new Float32Array(), b: new Float32Array(), r, scale: 1 }],
      });
    }
  }
  return { modules };
}

function input(
  rl: Partial<RlConfig>,
  more: Partial<RlGpuMemoryPlanInput> = {},
): RlGpuMemoryPlanInput {
  return {
    config: { ...DEFAULT_CONFIG, rl: { ...DEFAULT_RL_CONFIG, maxNewTokens: 1024, ...rl } },
    modelConfig: QWEN3_4B,
    lora: lora(16),
    promptTokens: 252,
    evalPrompts: 48,
    evalPromptTokens: 252,
    stopTokens: 1,
    device: H200,
    ...more,
  };
}

Deno.test("planRlGpuMemory() prints the estimate by item, with no budget by default", () => {
  const plan = planRlGpuMemory(input({}));
  strictEqual(plan.budgetBytes, 0);
  strictEqual(plan.mergeAdapters, true, "auto merges on a hardware adapter");
  strictEqual(plan.mergeSkipped, false);
  const labels = plan.lines.slice(1).map((l) => l.trim().split(/ {2,}/)[0]);
  deepStrictEqual(labels, [
    "weights",
    "adapters",
    "optimizer state",
    "merged copy",
    "KV cache",
    "generation",
    "forward",
    "training",
    "peak",
  ]);
  ok(/KV cache +73\.\d\d \(192 rows x 1280 slots\)/.test(plan.lines.join("\n")), plan.lines[5]);
  ok(/budget none/.test(plan.lines[9]));
  // Remote rollouts: only the held-out calls generate on this GPU.
  const remote = planRlGpuMemory(input({
    rollout: { ...DEFAULT_RL_CONFIG.rollout, backend: "vllm" },
    genBatchPrompts: 64,
  }));
  deepStrictEqual(remote.estimate.generateRows, { rollout: 0, eval: 192 });
  // A software adapter does not merge under "auto".
  const soft = planRlGpuMemory(input({}, { device: { ...H200, isFallbackAdapter: true } }));
  strictEqual(soft.mergeAdapters, false);
  strictEqual(soft.estimate.mergedCopy, 0);
});

Deno.test("planRlGpuMemory() sizes the KV cache by model.kvDtype", () => {
  const f32 = planRlGpuMemory(input({}));
  const config = { ...DEFAULT_CONFIG, model: { ...DEFAULT_CONFIG.model, kvDtype: "f16" as const } };
  const f16 = planRlGpuMemory(input({}, {
    config: { ...config, rl: { ...DEFAULT_RL_CONFIG, maxNewTokens: 1024 } },
  }));
  // K, V and the row-moving scratch halve; the u32 key mask does not.
  const mask = 192 * 1280 * 4;
  strictEqual(f16.estimate.kvCache - mask, (f32.estimate.kvCache - mask) / 2);
  strictEqual(f16.estimate.weights, f32.estimate.weights);
});

Deno.test("planRlGpuMemory() refuses a peak over the budget, naming the keys of the largest phase", () => {
  const peak = planRlGpuMemory(input({ mergeAdapters: "off" })).estimate.peak;
  // The held-out call (48 × 4 rows) is the largest: its keys come first.
  throws(
    () => planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9 - 1 })),
    (error: unknown) => {
      const text = (error as Error).message;
      ok(error instanceof RangeError);
      ok(/exceeds the budget .* \(key "rl\.gpuMemoryBudget"\)/.test(text), text);
      ok(
        /lower "rl\.eval\.batchPrompts", "rl\.eval\.samples", "rl\.maxNewTokens"/.test(text),
        text,
      );
      ok(/KV cache/.test(text), "the table is part of the message");
      return true;
    },
  );
  // At the budget it runs.
  planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9 }));
  // Training the largest phase (a long micro-batch, small generate calls): the micro-batch keys.
  throws(
    () =>
      planRlGpuMemory(input({
        mergeAdapters: "off",
        microBatchSize: 40,
        genBatchPrompts: 1,
        gpuMemoryBudget: 30,
      }, {
        evalPrompts: 1,
      })),
    /lower "rl\.microBatchSize", "rl\.maxNewTokens"/,
  );
  // Every workspace kept: the first key to set is rl.releaseWorkspaces.
  throws(
    () => planRlGpuMemory(input({ releaseWorkspaces: false, gpuMemoryBudget: 141 })),
    /lower "rl\.releaseWorkspaces" \(set it to true\)/,
  );
});

Deno.test("planRlGpuMemory() skips the merge of mergeAdapters: auto when only it breaks the budget", () => {
  const merged = planRlGpuMemory(input({})).estimate;
  const unmerged = planRlGpuMemory(input({ mergeAdapters: "off" })).estimate;
  ok(merged.mergedCopy > 0 && merged.peak > unmerged.peak);
  const between = (merged.peak + unmerged.peak) / 2 / 1e9;
  const plan = planRlGpuMemory(input({ gpuMemoryBudget: between }));
  strictEqual(plan.mergeAdapters, false);
  strictEqual(plan.mergeSkipped, true);
  strictEqual(plan.estimate.peak, unmerged.peak);
  ok(plan.lines.some((l) => /"auto": not merging the adapters/.test(l)), plan.lines.join("\n"));
  // "on" is the user's choice: refused, not overridden.
  throws(
    () => planRlGpuMemory(input({ mergeAdapters: "on", gpuMemoryBudget: between })),
    /"rl\.mergeAdapters" \(set it to "off"\)/,
  );
  // Within the budget, auto keeps merging.
  strictEqual(planRlGpuMemory(input({ gpuMemoryBudget: 141 })).mergeAdapters, true);
});

Deno.test("planRlGpuMemory(): HALO_GPU_MEMORY overrides rl.gpuMemoryBudget", () => {
  strictEqual(planRlGpuMemory(input({ gpuMemoryBudget: 141 }, { env: "200" })).budgetBytes, 200e9);
  strictEqual(planRlGpuMemory(input({ gpuMemoryBudget: 141 }, { env: "" })).budgetBytes, 141e9);
  throws(
    () => planRlGpuMemory(input({}, { env: "1" })),
    /exceeds the budget 1\.00 GB \(HALO_GPU_MEMORY\)/,
  );
  throws(() => planRlGpuMemory(input({}, { env: "lots" })), /HALO_GPU_MEMORY must be a number/);
});

Deno.test("planRlGpuMemory() refuses a micro-batch over one storage binding, naming rl.microBatchSize", () => {
  // 4B: the widest per-token buffer is gate/up (9,728 floats: 38,912 bytes); 32 rows of 1,276
  // tokens need 1.59 GB, over a 1 GB binding; 21 rows fit.
  const device = { ...H200, maxBindingSize: 2 ** 30 };
  throws(
    () => planRlGpuMemory(input({ microBatchSize: 32 }, { device })),
    (error: unknown) => {
      const text = (error as Error).message;
      ok(/key "rl\.microBatchSize" must be at most 21 on this device/.test(text), text);
      ok(/needs 1588854784 bytes/.test(text), text);
      ok(/current value is 32$/.test(text), text);
      return true;
    },
  );
  planRlGpuMemory(input({ microBatchSize: 21 }, { device }));
  // Not even one row fits: lower maxNewTokens too.
  throws(
    () =>
      planRlGpuMemory(
        input({ microBatchSize: 1 }, { device: { ...H200, maxBindingSize: 2 ** 20 } }),
      ),
    /at most 0 on this device.*lower "rl\.maxNewTokens" too/,
  );
  // The estimate and the plan agree on the micro-batch's tokens.
  strictEqual(
    estimateRlGpuMemory({
      model: QWEN3_4B,
      adapters: null,
      groupSize: 16,
      genBatchPrompts: 8,
      evalPrompts: 0,
      evalSamples: 1,
      promptTokens: 252,
      maxNewTokens: 1024,
      microBatchSize: 21,
    }).microBatchTokens,
    21 * 1276,
  );
});
