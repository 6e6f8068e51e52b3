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
    // No headroom unless a test sets it: the tests of the splitting and the refusals pin exact
    // budgets (the estimate's peak at one prompt per call, 1 GB under the unsplit peak).
    config: {
      ...DEFAULT_CONFIG,
      rl: { ...DEFAULT_RL_CONFIG, maxNewTokens: 1024, gpuMemoryHeadroom: 0, ...rl },
    },
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
    "scratch",
    "peak",
  ]);
  ok(/KV cache +73\.\d\d \(192 rows x 1280 slots\)/.test(plan.lines.join("\n")), plan.lines[5]);
  ok(/budget none/.test(plan.lines[10]));
  // LoRA r16 on a GPU: the weight gradients' split-K partial sums (gpu_memory_estimate_test.ts).
  ok(
    plan.estimate.scratch > 0 && /scratch +0\.0\d \(\d+\.\d MiB/.test(plan.lines[9]),
    plan.lines[9],
  );
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

Deno.test("planRlGpuMemory() merges f16 base weights only with mergeAdapters: on (their copy is lossy)", () => {
  const model = { ...DEFAULT_CONFIG.model, weightDtype: "f16" as const };
  const f16 = (mergeAdapters: "auto" | "on") => {
    const base = input({ mergeAdapters });
    return planRlGpuMemory({ ...base, config: { ...base.config, model } });
  };
  const auto = f16("auto");
  strictEqual(auto.mergeAdapters, false, "auto leaves f16 weights unmerged on a hardware adapter");
  strictEqual(auto.estimate.mergedCopy, 0);
  const on = f16("on");
  strictEqual(on.mergeAdapters, true);
  ok(on.estimate.mergedCopy > 0);
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

/** The run's evaluation keys with `batchPrompts` prompts per held-out call (0: no cap). */
function evalCap(batchPrompts: number): RlConfig["eval"] {
  return { ...DEFAULT_RL_CONFIG.eval, batchPrompts };
}

Deno.test("planRlGpuMemory() splits generation into the most prompts per call whose estimate fits the budget", () => {
  const unbudgeted = planRlGpuMemory(input({ mergeAdapters: "off" }));
  const peak = unbudgeted.estimate.peak;
  // Unsplit: 8 rollout prompts × 16 and 48 held-out prompts × 4 per call; generation sets the
  // peak (the training step of 32 × 1,276 tokens is smaller).
  deepStrictEqual(unbudgeted.estimate.generateRows, { rollout: 128, eval: 192 });
  deepStrictEqual(unbudgeted.generatePromptsPerCall, {});
  for (const budget of [peak - 1e9, 60e9]) {
    const plan = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: budget / 1e9 }));
    const { rollout, eval: held } = plan.generatePromptsPerCall;
    const info = `budget ${budget}: ${JSON.stringify(plan.generatePromptsPerCall)}`;
    ok(held !== undefined && held >= 1 && held < 48, info);
    // The estimate reported is that of the calls used, within the budget.
    ok(plan.estimate.peak <= budget, info);
    strictEqual(plan.estimate.generateRows.eval, held * 4, info);
    // The same calls as rl.genBatchPrompts / rl.eval.batchPrompts: one prompt more is over.
    const r = rollout ?? 8;
    const at = (prompts: number, evalPrompts: number) =>
      planRlGpuMemory(input({
        mergeAdapters: "off",
        genBatchPrompts: prompts,
        eval: evalCap(evalPrompts),
      })).estimate.peak;
    strictEqual(at(r, held), plan.estimate.peak, info);
    ok(at(r, held + 1) > budget, info);
    if (rollout !== undefined) ok(at(rollout + 1, 1) > budget, info);
    const text = plan.lines.join("\n");
    ok(
      new RegExp(`KV cache .*\\(${Math.max(r * 16, held * 4)} rows x 1280 slots\\)`).test(text),
      text,
    );
    const line = plan.lines.at(-1)!;
    ok(line.startsWith("generation split into calls of "), text);
    ok(
      line.includes(`${held} prompts (${held * 4} rows) instead of 48 for the held-out evaluation`),
      line,
    );
    ok(line.endsWith("to fit the budget"), line);
  }
  // 1 GB under the peak: only the held-out calls (the larger) are split.
  const near = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9 - 1 }));
  strictEqual(near.generatePromptsPerCall.rollout, undefined);
  // At 60 GB both are, the rollouts to 6 prompts (96 rows) a call.
  const tight = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: 60 }));
  strictEqual(tight.generatePromptsPerCall.rollout, 6);
  ok(
    tight.lines.at(-1)!.includes("calls of 6 prompts (96 rows) instead of 8 for the rollouts and "),
  );
  // A cap of rl.eval.batchPrompts under the budget's stays as it is.
  const capped = planRlGpuMemory(input({
    mergeAdapters: "off",
    gpuMemoryBudget: peak / 1e9 - 1,
    eval: evalCap(2),
  }));
  deepStrictEqual(capped.generatePromptsPerCall, {});
  // At the peak nothing is split.
  const exact = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9 }));
  deepStrictEqual(exact.generatePromptsPerCall, {});
  ok(!exact.lines.some((l) => l.startsWith("generation split")));
});

Deno.test("planRlGpuMemory() refuses a peak over the budget even at one prompt per call, naming the keys of the largest phase", () => {
  // Micro-batches of 4: generation sets the peak; one prompt per call is 16 rollout rows.
  const one = planRlGpuMemory(input({
    mergeAdapters: "off",
    microBatchSize: 4,
    genBatchPrompts: 1,
    eval: evalCap(1),
  })).estimate.peak;
  const refused = (error: unknown, keys: RegExp) => {
    const text = (error as Error).message;
    ok(error instanceof RangeError);
    ok(
      /exceeds the budget .* \(key "rl\.gpuMemoryBudget"\) even with generation in calls of one prompt/
        .test(text),
      text,
    );
    ok(keys.test(text), text);
    ok(/KV cache .*\(16 rows x 1280 slots\)/.test(text), "the table of the smallest calls");
    ok(
      /calls of 1 prompt \(16 rows\) instead of 8 for the rollouts .* still over the budget/.test(
        text,
      ),
      text,
    );
    return true;
  };
  throws(
    () =>
      planRlGpuMemory(
        input({ mergeAdapters: "off", microBatchSize: 4, gpuMemoryBudget: one / 1e9 - 0.01 }),
      ),
    (error: unknown) => refused(error, /lower "rl\.groupSize", "rl\.maxNewTokens"/),
  );
  // At that peak it runs, one prompt per call, with that estimate.
  const fits = planRlGpuMemory(
    input({ mergeAdapters: "off", microBatchSize: 4, gpuMemoryBudget: one / 1e9 }),
  );
  strictEqual(fits.generatePromptsPerCall.rollout, 1);
  strictEqual(fits.estimate.peak, one);
  // Held-out calls of 32 samples a prompt, larger than a rollout prompt's 16: their key.
  throws(
    () =>
      planRlGpuMemory(input({
        mergeAdapters: "off",
        microBatchSize: 4,
        eval: { ...DEFAULT_RL_CONFIG.eval, samples: 32 },
        gpuMemoryBudget: 25,
      })),
    /lower "rl\.eval\.samples", "rl\.maxNewTokens"/,
  );
  // Training the largest phase (a long micro-batch, small generate calls): the micro-batch keys,
  // and splitting does not lower it.
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
    (error: unknown) => {
      const text = (error as Error).message;
      ok(
        /exceeds the budget 30\.00 GB \(key "rl\.gpuMemoryBudget"\); lower "rl\.microBatchSize", "rl\.maxNewTokens"/
          .test(text),
        text,
      );
      ok(!/generation split/.test(text), text);
      return true;
    },
  );
  // Every workspace kept: the first key to set is rl.releaseWorkspaces.
  throws(
    () => planRlGpuMemory(input({ releaseWorkspaces: false, gpuMemoryBudget: 60 })),
    /lower "rl\.releaseWorkspaces" \(set it to true\)/,
  );
  // Kept workspaces that fit once generation is split.
  const kept = planRlGpuMemory(input({ releaseWorkspaces: false, gpuMemoryBudget: 80 }));
  ok(kept.estimate.peak <= 80e9 && kept.generatePromptsPerCall.rollout !== undefined);
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
  deepStrictEqual(plan.generatePromptsPerCall, {});
  ok(
    plan.lines.some((l) =>
      /"auto": not merging the adapters .*take the peak over the budget/.test(l)
    ),
    plan.lines.join("\n"),
  );
  // "on" is the user's choice: kept, with the held-out calls split to fit.
  const on = planRlGpuMemory(input({ mergeAdapters: "on", gpuMemoryBudget: between }));
  strictEqual(on.mergeAdapters, true);
  ok(on.estimate.mergedCopy > 0 && on.estimate.peak <= between * 1e9);
  ok(on.generatePromptsPerCall.eval! < 48);
  // ...and refused, naming the merge, when even one prompt per call is over.
  throws(
    () => planRlGpuMemory(input({ mergeAdapters: "on", microBatchSize: 4, gpuMemoryBudget: 25 })),
    /"rl\.mergeAdapters" \(set it to "off"\)/,
  );
  // Within the budget, auto keeps merging.
  strictEqual(planRlGpuMemory(input({ gpuMemoryBudget: 141 })).mergeAdapters, true);
  // Both over: auto drops the merge when that makes the calls larger (calls first, module doc).
  const both = planRlGpuMemory(input({ gpuMemoryBudget: 80 }));
  const withMerge = planRlGpuMemory(input({ mergeAdapters: "on", gpuMemoryBudget: 80 }));
  const without = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: 80 }));
  ok(withMerge.generatePromptsPerCall.eval! < without.generatePromptsPerCall.eval!);
  strictEqual(both.mergeAdapters, false);
  deepStrictEqual(both.generatePromptsPerCall, without.generatePromptsPerCall);
  ok(both.lines.some((l) => /not merging .*make the generate calls smaller/.test(l)));
});

Deno.test("planRlGpuMemory() fits the estimate within the budget less rl.gpuMemoryHeadroom (default 10%)", () => {
  const headroom = DEFAULT_RL_CONFIG.gpuMemoryHeadroom;
  strictEqual(headroom, 0.1);
  const peak = planRlGpuMemory(input({ mergeAdapters: "off" })).estimate.peak;
  // A budget at the unsplit peak: no call is split without headroom; with 10% off, the held-out
  // calls (the larger) are split to fit 90% of it.
  const exact = planRlGpuMemory(input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9 }));
  deepStrictEqual(exact.generatePromptsPerCall, {});
  strictEqual(exact.fitBytes, exact.budgetBytes);
  const plan = planRlGpuMemory(
    input({ mergeAdapters: "off", gpuMemoryBudget: peak / 1e9, gpuMemoryHeadroom: headroom }),
  );
  strictEqual(plan.budgetBytes, exact.budgetBytes);
  strictEqual(plan.fitBytes, plan.budgetBytes * 0.9);
  const info = plan.lines.join("\n");
  ok(plan.generatePromptsPerCall.eval !== undefined && plan.generatePromptsPerCall.eval < 48, info);
  ok(plan.estimate.peak <= plan.fitBytes, info);
  const gb = (bytes: number) => (bytes / 1e9).toFixed(2).replace(".", "\\.");
  const peakLine = plan.lines.find((line) => line.startsWith("  peak ")) ?? "";
  ok(
    new RegExp(
      `^ {2}peak .*budget ${gb(plan.budgetBytes)}, planned within ${
        gb(plan.fitBytes)
      }: 10% headroom, rl\\.gpuMemoryHeadroom\\)$`,
    ).test(peakLine),
    info,
  );
  // Refused: one prompt per call fits the budget exactly, not the budget less the headroom.
  const small = {
    mergeAdapters: "off" as const,
    microBatchSize: 4,
  };
  const one = planRlGpuMemory(input({ ...small, genBatchPrompts: 1, eval: evalCap(1) }))
    .estimate.peak;
  planRlGpuMemory(input({ ...small, gpuMemoryBudget: one / 1e9 }));
  throws(
    () =>
      planRlGpuMemory(
        input({ ...small, gpuMemoryBudget: one / 1e9, gpuMemoryHeadroom: headroom }),
      ),
    (error: unknown) => {
      const text = (error as Error).message;
      ok(
        new RegExp(
          `exceeds the budget ${gb(one)} GB \\(key "rl\\.gpuMemoryBudget"\\) less its 10% ` +
            `headroom \\(key "rl\\.gpuMemoryHeadroom"[^)]*\\), ${gb(0.9 * one)} GB, even with ` +
            `generation in calls of one prompt; lower "rl\\.groupSize"`,
        ).test(text),
        text,
      );
      return true;
    },
  );
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
