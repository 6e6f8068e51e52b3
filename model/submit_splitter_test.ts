// Submissions split at layer boundaries (`WebGpuQwen3.submitEveryLayers`): the forward's logits
// and hidden states, token log-probs, a generation's tokens and log-probs (LoRA merged, so the
// merge's own submit is covered) and a LoRA training step's gradients are bit for bit those of one
// submission per recording, and the queue sees exactly the submits the option says (counted
// through a wrapped GPUQueue.submit; readbacks stay one per call).
import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { resolveGenerateOptions } from "./generate.ts";
import { readQwen3Config } from "./config.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { lmHeadBlockRows } from "./lm_head_webgpu.ts";
import { loadModel } from "./load_model.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { loadQwen3Weights } from "./weights.ts";
import {
  checkSubmitEveryLayers,
  DEFAULT_SUBMIT_EVERY_LAYERS,
  defaultSubmitEveryLayers,
  SubmitSplitter,
} from "./submit_splitter.ts";

/** Runs `fn`, counting the non-empty `queue.submit` calls it makes (upload flushes submit `[]`). */
async function countSubmits<T>(fn: () => Promise<T>): Promise<{ value: T; submits: number }> {
  const proto = GPUQueue.prototype;
  const original = proto.submit;
  let submits = 0;
  proto.submit = function (this: GPUQueue, buffers: Iterable<GPUCommandBuffer>) {
    const list = [...buffers];
    if (list.length > 0) submits++;
    return original.call(this, list);
  };
  try {
    return { value: await fn(), submits };
  } finally {
    proto.submit = original;
  }
}

/** The bits of a float array, for bit-for-bit comparison. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function fixtureModel(): Promise<WebGpuQwen3> {
  const gpu = (await testContext())!;
  return await loadModel(fixtureDir(), { backend: "webgpu", gpu, warn: false }) as WebGpuQwen3;
}

Deno.test("checkSubmitEveryLayers() takes integers ≥ 0 and names the option otherwise", () => {
  strictEqual(checkSubmitEveryLayers(0, "the model"), 0);
  strictEqual(checkSubmitEveryLayers(3, "the model"), 3);
  for (const bad of [-1, 1.5, NaN]) {
    throws(() => checkSubmitEveryLayers(bad, "the model"), /"submitEveryLayers" must be/);
  }
});

Deno.test({
  name: "SubmitSplitter submits every k layers, reopens the pass, and never with k = 0",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [k, layers, want] of [[0, 5, 0], [1, 5, 5], [2, 5, 2], [3, 5, 1]]) {
      const { value: rec, submits } = await countSubmits(() => {
        const rec = new SubmitSplitter(ctx, ctx.device.createCommandEncoder(), k, "test");
        rec.begin();
        const first = rec.encoder;
        for (let l = 0; l < layers; l++) {
          ok(rec.pass); // a pass is open after every split
          rec.layerDone();
        }
        rec.end();
        if (want > 0) notStrictEqual(rec.encoder, first);
        else strictEqual(rec.encoder, first);
        ctx.device.queue.submit([rec.encoder.finish()]);
        return Promise.resolve(rec);
      });
      strictEqual(rec.submits, want, `k = ${k}`);
      strictEqual(submits, want + 1, `k = ${k}: the splits and the final submit`);
    }
    throws(
      () => new SubmitSplitter(ctx, ctx.device.createCommandEncoder(), -1, "test"),
      /"submitEveryLayers" must be/,
    );
  },
});

Deno.test({
  name: "WebGpuQwen3.submitEveryLayers defaults to 1 on a hardware adapter and 0 on a software " +
    "one; loadModel's option sets it",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    for (const isFallbackAdapter of [true, false]) {
      const ctx = new GpuContext({ ...base.gpu, isFallbackAdapter });
      const want = DEFAULT_SUBMIT_EVERY_LAYERS[isFallbackAdapter ? "software" : "hardware"];
      strictEqual(defaultSubmitEveryLayers(ctx), want);
      const model = await loadModel(fixtureDir(), { backend: "webgpu", gpu: ctx, warn: false });
      try {
        strictEqual((model as WebGpuQwen3).submitEveryLayers, want);
      } finally {
        model.dispose();
      }
    }
    const set = await loadModel(fixtureDir(), {
      backend: "webgpu",
      gpu: base,
      warn: false,
      submitEveryLayers: 3,
    });
    strictEqual((set as WebGpuQwen3).submitEveryLayers, 3);
    set.dispose();
    strictEqual(DEFAULT_SUBMIT_EVERY_LAYERS.hardware, 1);
    strictEqual(DEFAULT_SUBMIT_EVERY_LAYERS.software, 0);
  },
});

Deno.test({
  name: "forward() and tokenLogprobs() split every k layers (LM-head blocks counted as layers): " +
    "same bits, (layers + blocks) / k more submits",
  ignore: noGpu,
  async fn() {
    const model = await fixtureModel();
    try {
      const L = model.config.numHiddenLayers;
      throws(() => model.submitEveryLayers = -2, /"submitEveryLayers" must be/);
      const input = {
        inputIds: [[5, 99, 143, 250, 7, 301], [11, 200, 37, 42, 8, 9]],
        outputHiddenStates: true,
      };
      // 2 × 70 tokens in LM-head blocks of 64 tokens: 3 blocks.
      const long = {
        inputIds: [0, 1].map((b) =>
          Array.from({ length: 70 }, (_, t) => (b * 31 + t * 7) % model.config.vocabSize)
        ),
      };
      const blocks = Math.ceil(
        12 / lmHeadBlockRows(model.ctx, model.config.vocabSize, 12, {
          action: "test",
        }),
      );
      const run = async (k: number) => {
        model.submitEveryLayers = k;
        const readbacks = model.ctx.readbacks;
        const fwd = await countSubmits(() => model.forward(input));
        const lp = await countSubmits(() => model.tokenLogprobs(input, { hiddenLayer: 0 }));
        const lp3 = await countSubmits(() => model.tokenLogprobs(long, { headChunkTokens: 64 }));
        strictEqual(model.ctx.readbacks - readbacks, 3, "one readback per call");
        return { fwd, lp, lp3 };
      };
      const one = await run(0);
      strictEqual(one.fwd.submits, 1);
      strictEqual(one.lp.submits, 1);
      strictEqual(one.lp3.submits, 1);
      for (const k of [1, 2]) {
        const split = await run(k);
        // Every k-th layer or LM-head block, the last one's included, then the readback's submit
        // (forward()'s logits are one LM-head product, not blocks).
        strictEqual(split.fwd.submits, Math.floor(L / k) + 1, `forward, k = ${k}`);
        strictEqual(split.lp.submits, Math.floor((L + blocks) / k) + 1, `tokenLogprobs, k = ${k}`);
        strictEqual(split.lp3.submits, Math.floor((L + 3) / k) + 1, `3 head blocks, k = ${k}`);
        deepStrictEqual(bits(split.lp3.value.logprobs), bits(one.lp3.value.logprobs));
        deepStrictEqual(bits(split.fwd.value.logits), bits(one.fwd.value.logits));
        strictEqual(split.fwd.value.hiddenStates!.length, L + 1);
        split.fwd.value.hiddenStates!.forEach((h, l) =>
          deepStrictEqual(bits(h), bits(one.fwd.value.hiddenStates![l]), `hidden ${l}`)
        );
        deepStrictEqual(bits(split.lp.value.logprobs), bits(one.lp.value.logprobs));
        deepStrictEqual(bits(split.lp.value.lastHidden!), bits(one.lp.value.lastHidden!));
      }
    } finally {
      model.dispose();
    }
  },
});

/** A LoRA of rank 4 on every projection, random A and B (nonzero gradients, merged outputs). */
const lora = (model: WebGpuQwen3, seed: number) =>
  createLora(
    loraConfig({ r: 4, loraAlpha: 8, targetModules: "all-linear", initLoraWeights: false }),
    model.config,
    { seed },
  );

Deno.test({
  name: "generateWebGpu() with the prefill split per layer (LoRA merged): same tokens and " +
    "log-probs, 1 + L more submits (the merge's and each layer's), decode unchanged; on the " +
    "software adapter and on it standing in for a hardware one",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    for (const isFallbackAdapter of [true, false]) {
      const gpu = new GpuContext({ ...base.gpu, isFallbackAdapter });
      const model = await loadModel(fixtureDir(), {
        backend: "webgpu",
        gpu,
        warn: false,
      }) as WebGpuQwen3;
      const where = isFallbackAdapter ? "software" : "hardware";
      try {
        const L = model.config.numHiddenLayers;
        model.setAdapters(lora(model, 3));
        const options = resolveGenerateOptions(model.config, {
          prompts: [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64]],
          maxNewTokens: 6,
          temperature: 0.8,
          seed: 7,
          eosTokenIds: [],
          readbackEvery: 4,
          mergeAdapters: true,
        });
        const run = async (k: number) => {
          model.submitEveryLayers = k;
          return await countSubmits(() => generateWebGpu(model, options));
        };
        const one = await run(0);
        const split = await run(1);
        strictEqual(split.value.stats.readbacks, one.value.stats.readbacks, where);
        strictEqual(split.submits, one.submits + 1 + L, where);
        strictEqual(split.value.stats.submits, split.submits, `${where}: stats count every submit`);
        strictEqual(one.value.stats.submits, one.submits, where);
        split.value.sequences.forEach((s, i) => {
          const t = one.value.sequences[i];
          strictEqual(s.length, 6);
          deepStrictEqual(s.tokens, t.tokens, `${where}: row ${i}`);
          deepStrictEqual(bits(s.logprobs), bits(t.logprobs), `${where}: row ${i}`);
          deepStrictEqual(bits(s.modelLogprobs), bits(t.modelLogprobs), `${where}: row ${i}`);
        });
      } finally {
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "backward() (LoRA, full fine-tuning; LM head in blocks, recomputed or kept) split " +
    "every k layers: same gradient bits, (forward + backward layers and LM-head blocks) / k " +
    "more submits, one readback",
  ignore: noGpu,
  async fn() {
    const model = await fixtureModel();
    try {
      const L = model.config.numHiddenLayers;
      model.setAdapters(lora(model, 5));
      const input = { inputIds: [[5, 99, 143, 250, 7], [11, 200, 37, 42, 8]] };
      const dLogprobs = Array.from({ length: 2 * 4 }, (_, i) => ((i * 7) % 5) / 5 - 0.3);
      const run = async (k: number, mode: "adapters" | "full") => {
        model.submitEveryLayers = k;
        const readbacks = model.ctx.readbacks;
        const r = await countSubmits(() => model.backward(input, { mode, dLogprobs }));
        strictEqual(model.ctx.readbacks - readbacks, 1, `${mode}, k = ${k}: one readback`);
        return r;
      };
      const cases: [number, "adapters" | "full"][] = [[1, "adapters"], [3, "adapters"], [
        1,
        "full",
      ]];
      const unsplit = { adapters: await run(0, "adapters"), full: await run(0, "full") };
      for (const [mode, one] of Object.entries(unsplit)) {
        strictEqual(one.submits, 1, mode);
        ok([...one.value.grads.values()].every((g) => g.some((x) => x !== 0)), mode);
      }
      for (const [k, mode] of cases) {
        const one = unsplit[mode];
        const split = await run(k, mode);
        // The forward's L layers and the backward's L (every layer is adapted) counted together,
        // with the LM head's one block in the forward and in the backward.
        strictEqual(split.submits, Math.floor((2 * L + 2) / k) + 1, `${mode}, k = ${k}`);
        deepStrictEqual([...split.value.grads.keys()], [...one.value.grads.keys()]);
        for (const [name, g] of one.value.grads) {
          deepStrictEqual(bits(split.value.grads.get(name)!), bits(g), `${mode}: ${name}`);
        }
        deepStrictEqual(bits(split.value.logprobs), bits(one.value.logprobs), mode);
        deepStrictEqual(bits(split.value.lastHidden), bits(one.value.lastHidden), mode);
      }
      // 70 tokens in LM-head blocks of 64 (2 blocks, recomputed in the backward, or kept with
      // keepActivations), split after every layer and block.
      const long = { inputIds: [Array.from({ length: 70 }, (_, t) => (t * 7) % 384)] };
      const dLong = Array.from({ length: 69 }, (_, i) => ((i * 5) % 9) / 9 - 0.5);
      for (const keepActivations of [false, true]) {
        const step = async (k: number) => {
          model.submitEveryLayers = k;
          return await countSubmits(() =>
            model.backward(long, {
              mode: "adapters",
              dLogprobs: dLong,
              headChunkTokens: 64,
              keepActivations,
            })
          );
        };
        const one = await step(0);
        const split = await step(1);
        strictEqual(one.submits, 1);
        strictEqual(split.submits, 2 * L + 2 * 2 + 1, `keepActivations ${keepActivations}`);
        for (const [name, g] of one.value.grads) {
          deepStrictEqual(bits(split.value.grads.get(name)!), bits(g), name);
        }
        deepStrictEqual(bits(split.value.logprobs), bits(one.value.logprobs));
      }
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with a prefill in row chunks, split per layer: same tokens and " +
    "log-probs, L more submits per chunk",
  ignore: noGpu,
  async fn() {
    // As generate_webgpu_test.ts's row-chunk test: a 64 KiB binding limit lets the prefill take
    // only a few prompts of 40 tokens at a time.
    const dir = fixtureDir();
    const config = await readQwen3Config(dir);
    const binding = Math.max(65536, 5 * 64 * config.numKeyValueHeads * config.headDim * 4);
    const shared = (await testContext())!;
    const ctx = new GpuContext({ ...shared.gpu, maxBindingSize: binding });
    const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
    try {
      const L = config.numHiddenLayers;
      const widest = Math.max(
        config.hiddenSize,
        config.numAttentionHeads * config.headDim,
        config.intermediateSize,
      );
      const chunks = Math.ceil(5 / Math.floor(binding / (40 * widest * 4)));
      ok(chunks >= 2, `${chunks} prefill chunks`);
      const options = resolveGenerateOptions(config, {
        prompts: Array.from(
          { length: 5 },
          (_, b) => Array.from({ length: 40 - b }, (_, t) => (b * 37 + t * 11) % config.vocabSize),
        ),
        maxNewTokens: 4,
        temperature: 0.7,
        seed: 2,
        eosTokenIds: [],
      });
      const run = async (k: number) => {
        model.submitEveryLayers = k;
        return await countSubmits(() => generateWebGpu(model, options));
      };
      const one = await run(0);
      const split = await run(1);
      strictEqual(split.submits, one.submits + chunks * L);
      strictEqual(split.value.stats.readbacks, one.value.stats.readbacks);
      split.value.sequences.forEach((s, i) => {
        const t = one.value.sequences[i];
        deepStrictEqual(s.tokens, t.tokens, `row ${i}`);
        deepStrictEqual(bits(s.modelLogprobs), bits(t.modelLogprobs), `row ${i}`);
      });
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "backward() of routed HILO adapters with the balance loss, split per layer: same " +
    "gradient bits and balance loss",
  ignore: noGpu,
  async fn() {
    const model = await fixtureModel();
    try {
      const c = model.config;
      const hilo = createHilo(
        hiloConfig(c, { experts: "4-3", rank: "2-2", balanceCoef: 0.5 }),
        c,
        { seed: 9 },
      );
      let seed = 9000;
      for (const m of hilo.modules) {
        for (const e of m.experts) e.b.set(randomArray(e.b.length, seed++, -0.2, 0.2));
        if (m.router) m.router.weight.set(randomArray(m.router.weight.length, seed++, -0.5, 0.5));
      }
      ok(hilo.modules.some((m) => m.router !== null), "some module is routed");
      model.setAdapters(hilo);
      const input = { inputIds: [[5, 99, 143, 250, 7], [11, 200, 37, 42, 8]] };
      const dLogprobs = Array.from({ length: 2 * 4 }, (_, i) => ((i * 3) % 7) / 7 - 0.4);
      const run = async (k: number) => {
        model.submitEveryLayers = k;
        return await countSubmits(() => model.backward(input, { mode: "adapters", dLogprobs }));
      };
      const one = await run(0);
      const split = await run(1);
      strictEqual(split.submits, one.submits + 2 * c.numHiddenLayers + 2);
      ok(one.value.balanceLoss !== undefined && one.value.balanceLoss > 0);
      strictEqual(split.value.balanceLoss, one.value.balanceLoss);
      for (const [name, g] of one.value.grads) {
        deepStrictEqual(bits(split.value.grads.get(name)!), bits(g), name);
      }
    } finally {
      model.dispose();
    }
  },
});
