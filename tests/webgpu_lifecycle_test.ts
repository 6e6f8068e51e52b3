// GPU memory and concurrency of a WebGPU model's life: every workspace a call leaves (forward,
// token log-probs in LM-head blocks, generation's KV cache and scratch, a training step and its
// loss buffers) is freed by `dispose()`, so the context's byte count returns to where it was; a
// training step, a parameter upload or a dispose while a generation is in flight is refused.
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { loadModel } from "../model/load_model.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { loraParams } from "../trainer/params.ts";

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const input = { inputIds: [[3, 17, 250, 99, 4, 311, 8, 42], [12, 7, 300, 64, 5, 6, 7, 8]] };

for (const keepActivations of [false, true]) {
  Deno.test({
    name: "WebGpuQwen3.dispose() frees every workspace: forward, blocked log-probs, generation, " +
      `training step${keepActivations ? " keeping every layer's activations" : ""}`,
    ignore: noGpu,
    async fn() {
      const ctx = new GpuContext((await testContext())!.gpu);
      const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
      const adapter = await loadPeftAdapter(`${dir}/adapter`, config);
      model.setAdapters(adapter);
      const atRest = ctx.allocatedBytes;
      const backend = createTrainBackend(model, {
        mode: "adapters",
        params: loraParams(adapter),
        keepActivations,
      });
      const calls = async () => {
        await model.forward({ ...input, outputHiddenStates: true });
        await model.tokenLogprobs(input, { headChunkTokens: 64 });
        await generate(model, { prompts: [[1, 2, 3]], maxNewTokens: 4, temperature: 0 });
        await backend.objectiveAndGrads(input, {
          terms: [{ name: "clipped_pg" }],
          inputs: {
            lossMask: new Float64Array(14).fill(1),
            oldLogprobs: new Float64Array(14).fill(-6),
            advantages: new Float64Array(14).fill(1),
          },
        });
      };
      await calls();
      const busy = ctx.allocatedBytes;
      assert.ok(busy > atRest, "the calls allocated no workspace");
      // releaseWorkspaces frees the activations (generation's too), not weights or gradients.
      model.releaseWorkspaces();
      const released = ctx.allocatedBytes;
      assert.ok(released >= atRest && released < busy, `${atRest} ≤ ${released} < ${busy}`);
      await generate(model, { prompts: [[1, 2, 3]], maxNewTokens: 4, temperature: 0 });
      assert.ok(ctx.allocatedBytes > released, "generation allocated no workspace");
      model.releaseWorkspaces();
      assert.equal(ctx.allocatedBytes, released, "releaseWorkspaces left generation's workspace");
      await calls();
      backend.dispose();
      model.dispose();
      assert.equal(ctx.allocatedBytes, 0, "bytes still allocated after dispose()");
    },
  });
}

Deno.test({
  name: "WebGpuQwen3 refuses a training step, a parameter upload or a dispose during generation",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext((await testContext())!.gpu);
    const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
    const adapter = await loadPeftAdapter(`${dir}/adapter`, config);
    model.setAdapters(adapter);
    const backend = createTrainBackend(model, { mode: "adapters", params: loraParams(adapter) });
    const running = generate(model, { prompts: [[1, 2, 3]], maxNewTokens: 8, temperature: 0 });
    assert.equal(model.busyWith, "generate");
    await assert.rejects(
      model.backward(input, { mode: "adapters", dLogprobs: new Float64Array(14).fill(1) }),
      /Cannot backward: a call to generate on this model is still running/,
    );
    assert.throws(
      () => backend.setParams(backend.params.tree),
      /Cannot set the parameters: a call to generate on this model is still running/,
    );
    assert.throws(() => model.dispose(), /Cannot dispose the model: a call to generate/);
    await running;
    assert.equal(model.busyWith, null);
    // Afterwards all of them work again.
    backend.setParams(backend.params.tree);
    await model.backward(input, { mode: "adapters", dLogprobs: new Float64Array(14).fill(1) });
    backend.dispose();
    model.dispose();
  },
});

Deno.test({
  name: "WebGpuQwen3 over many batch shapes keeps its context's caches within their bounds",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext((await testContext())!.gpu, { maxUniforms: 48, maxBindGroups: 160 });
    const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
    const cpu = await loadModel(dir, { backend: "cpu", warn: false });
    try {
      let most = { uniforms: 0, bindGroups: 0 };
      // 24 shapes (batch 1-3 × 8 lengths): new uniforms, workspaces and bind groups each time.
      for (let len = 3; len <= 10; len++) {
        for (let batch = 1; batch <= 3; batch++) {
          const inputIds = Array.from(
            { length: batch },
            (_, b) => Array.from({ length: len }, (_, t) => (b * 31 + t * 7 + len) % 384),
          );
          const got = await model.tokenLogprobs({ inputIds });
          if (len === 10 && batch === 3) {
            // Still right after many cache flushes.
            const want = await cpu.tokenLogprobs({ inputIds });
            assertClose(got.logprobs, want.logprobs, 1e-4, "log-probs after the flushes");
          }
          const s = ctx.cacheSizes;
          most = {
            uniforms: Math.max(most.uniforms, s.uniforms),
            bindGroups: Math.max(most.bindGroups, s.bindGroups),
          };
        }
      }
      assert.ok(most.uniforms <= 48 && most.bindGroups <= 160, JSON.stringify(most));
      console.log(`largest cache sizes over 24 shapes: ${JSON.stringify(most)}`);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "new WebGpuQwen3() that fails on a late tensor releases what it had uploaded",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext((await testContext())!.gpu);
    const weights = await loadQwen3Weights(dir, config);
    const last = weights.layers[weights.layers.length - 1];
    // One value short: the upload of the last matrix throws, after every other tensor is on the GPU.
    last.downProj = last.downProj.slice(1);
    assert.throws(() => new WebGpuQwen3(ctx, config, weights), /layers\.\d+\.mlp\.down_proj/);
    assert.equal(ctx.allocatedBytes, 0, "a failed construction left GPU memory allocated");
  },
});
