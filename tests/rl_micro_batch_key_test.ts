// A micro-batch too large for one storage binding (review finding 5): the WebGPU model refuses
// it naming its own buffer ("activation … use fewer tokens per call"); the RL anchor/recompute
// pass and the training step rethrow naming the key that sets it, "rl.microBatchSize".
//
// Fixture (hidden 64, MLP 128): 512 bytes of the widest activation per token, so a 128 KiB
// binding holds 256 tokens. Four rows of 20 + 60 tokens (320) do not fit; two (160) do.
import { ok, rejects } from "node:assert/strict";
import { GpuContext } from "../gpu/context.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { adamw } from "../trainer/optim/mod.ts";
import { modelParams } from "../trainer/params.ts";
import { DEFAULT_RL_CONFIG } from "../trainer/rl/config.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import type { RlRow } from "../trainer/rl/rl_batch.ts";
import { rlUpdate } from "../trainer/rl/rl_update.ts";

const BINDING = 128 * 1024;

Deno.test({
  name: "an RL micro-batch over one storage binding fails naming rl.microBatchSize; a smaller " +
    "one runs",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext({ ...(await testContext())!.gpu, maxBindingSize: BINDING });
    const dir = fixtureDir();
    const config = await readQwen3Config(dir);
    const weights = await loadQwen3Weights(dir, config);
    const model = new WebGpuQwen3(ctx, config, weights);
    const backend = createTrainBackend(model, {
      mode: "full",
      params: modelParams(weights, config),
    });
    try {
      const widest = 4 *
        Math.max(
          config.hiddenSize,
          config.numAttentionHeads * config.headDim,
          config.intermediateSize,
        );
      const rows: RlRow[] = Array.from({ length: 4 }, (_, i) => ({
        promptIds: Array.from({ length: 20 }, (_, t) => (i * 31 + t * 7 + 1) % config.vocabSize),
        tokens: Array.from({ length: 60 }, (_, t) => (i * 17 + t * 13 + 2) % config.vocabSize),
        oldLogprobs: new Float64Array(60).fill(-6),
        advantage: i % 2 ? 1 : -1,
        policy: true,
        anchor: 19,
        group: 0,
        correct: i % 2 === 1,
      }));
      ok(
        4 * 80 * widest > BINDING && 2 * 80 * widest <= BINDING,
        "the shapes do not test the limit",
      );
      const pass = (microBatchSize: number) =>
        forwardPass(backend, rows, { padId: 0, microBatchSize, layer: "final", logprobs: true });
      await rejects(pass(4), (e: Error) => {
        ok(e instanceof RangeError, String(e));
        ok(/"rl\.microBatchSize" \(current value 4\)/.test(e.message), e.message);
        ok(/more than one storage binding/.test(e.message), "the model's reason is kept");
        return true;
      });
      ok((await pass(2)).logprobs!.length === 4);
      const optimizer = adamw({ lr: 1e-4, weightDecay: 0 });
      const update = (microBatchSize: number) =>
        rlUpdate(backend, rows, {
          optimizer,
          state: optimizer.init(backend.params.tree),
          losses: DEFAULT_RL_CONFIG.losses,
          ppoEpochs: 1,
          miniBatches: 1,
          microBatchSize,
          padId: 0,
          maxNewTokens: 60,
          centroids: null,
        });
      await rejects(update(4), /training step .*"rl\.microBatchSize" \(current value 4\)/);
      ok(Number.isFinite((await update(2)).loss));
    } finally {
      backend.dispose();
      model.dispose();
    }
  },
});
