// `keepActivations` of the WebGPU training step: the forward keeps every trained layer's
// activations and the backward reads them instead of recomputing each layer's forward. The
// kernels are deterministic and the recomputation runs the same kernels on the same inputs, so
// the gradients (and the forward's outputs) must be the same bit for bit as without it: LoRA on
// the fixture (and its PEFT golden gradients), and on a 4-layer model (so that three layers take
// the kept path) LoRA, full fine-tuning, HILO with the balance loss, adapters on the upper layers
// only, hidden-state cotangents at a layer's output, micro-batch accumulation, and the trainer's
// RL objective with Hidden-Align (loss kernels inside the step, `trainer.keepActivations`
// through `createTrainBackend`). Also: the
// memory it adds is exactly `keptActivationBytes`, and it is freed when switched off, when the
// token count grows (reallocated), and by dispose. With the LM head in several blocks
// (`headChunkTokens` 64 over 150 tokens: blocks of 64, 64 and 22), every block's logits are kept
// too: the head's forward matmul is recorded once per block and chunk (not again in the
// backward, counted at `ctx.dispatch`), the gradients, log-probs, log-sum-exps and entropies are
// the same bits as the recomputing step's, it adds `keptLogitsBytes`, and dispose frees all.
import assert from "node:assert/strict";
import { createHilo, hiloConfig, type HiloConfigOptions } from "../adapters/hilo.ts";
import { createLora, type Lora, loraTensorName } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { randomWeights } from "../bench/random_model.ts";
import { GpuContext } from "../gpu/context.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { assertClose, noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { openSafetensors, readTensorF32, readTensorI32 } from "../internal/safetensors.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { type Qwen3Config, readQwen3Config } from "../model/config.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import {
  type GpuBackwardOptions,
  type GpuBackwardResult,
  keptActivationBytes,
  keptLogitsBytes,
  type TrainStepOptions,
} from "../model/qwen3_webgpu_backward.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import type { ObjectiveRequest } from "../trainer/losses/objective_request.ts";
import { loraParams } from "../trainer/params.ts";
import { runSft } from "../trainer/sft.ts";
import { join } from "node:path";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
// Four layers: layers 0-2 take the kept path (the last layer's activations are kept anyway).
const deep: Qwen3Config = { ...config, numHiddenLayers: 4 };
const deepWeights = randomWeights(deep, 5);
const input: ForwardInput = {
  inputIds: [[3, 17, 250, 99, 4, 311, 8, 42, 7], [12, 7, 300, 64, 5, 6, 0, 0, 0]],
  attentionMask: [[1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0, 0]],
};
const [B, T] = [2, 9];

function gpuTest(name: string, fn: (ctx: GpuContext) => Promise<void>): void {
  Deno.test({ name, ignore: noGpu, fn: async () => fn((await testContext())!) });
}

/** Every output of two backward results is equal bit for bit (same gradient names too). */
function assertSameBits(tag: string, got: GpuBackwardResult, want: GpuBackwardResult): void {
  assert.deepEqual([...got.grads.keys()].sort(), [...want.grads.keys()].sort(), `${tag}: names`);
  let nonZero = 0;
  for (const [name, w] of want.grads) {
    const g = got.grads.get(name)!;
    assert.deepEqual(new Uint32Array(g.buffer), new Uint32Array(w.buffer), `${tag}: ${name}`);
    if (w.some((v) => v !== 0)) nonZero++;
  }
  assert.ok(nonZero > 0, `${tag}: every gradient is zero`);
  assert.deepEqual(got.logprobs, want.logprobs, `${tag}: logprobs`);
  assert.deepEqual(got.lastHidden, want.lastHidden, `${tag}: lastHidden`);
  console.log(`${tag}: ${want.grads.size} gradients (${nonZero} non-zero) equal bit for bit`);
}

/** The backward with and without `keepActivations` (kept first, so no state helps it). */
async function both(
  model: WebGpuQwen3,
  tag: string,
  options: GpuBackwardOptions,
  batch: ForwardInput = input,
): Promise<GpuBackwardResult> {
  const kept = await model.backward(batch, { ...options, keepActivations: true });
  const recomputed = await model.backward(batch, { ...options, keepActivations: false });
  assertSameBits(tag, kept, recomputed);
  return kept;
}

/** Random HILO adapters with non-zero B, so they change the model. */
function randomHilo(c: Qwen3Config, options: HiloConfigOptions, seed: number): Lora {
  const lora = createHilo(hiloConfig(c, options), c, { seed });
  let s = seed * 1000;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.2, 0.2));
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

/** Plain LoRA with random B on `targets` of the layers `layers` (all when omitted). */
function randomLora(c: Qwen3Config, seed: number, layers?: number[]): Lora {
  const lora = createLora(
    loraConfig({
      r: 4,
      loraAlpha: 8,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      layersToTransform: layers,
      initLoraWeights: false,
    }),
    c,
    { seed },
  );
  return lora;
}

const cot = (seed: number, c: Qwen3Config) => ({
  dLogprobs: randomArray(B * (T - 1), seed),
  dLastHidden: randomArray(B * T * c.hiddenSize, seed + 1),
});

gpuTest(
  "keepActivations: the fixture's LoRA gradients match PEFT's and equal the recomputing backward's bit for bit",
  async (ctx) => {
    const ref = await openSafetensors(`${dir}/reference.safetensors`);
    const [batch, seqLen] = ref.tensors.get("input_ids")!.shape;
    const flat = readTensorI32(ref, "input_ids");
    const inputIds = Array.from(
      { length: batch },
      (_, b) => Array.from(flat.subarray(b * seqLen, (b + 1) * seqLen)),
    );
    const model = new WebGpuQwen3(ctx, config, weights);
    try {
      const adapter = await loadPeftAdapter(`${dir}/adapter`, config);
      model.setAdapters(adapter);
      const got = await both(model, "fixture LoRA (PEFT cotangents)", {
        mode: "adapters",
        dLogits: readTensorF32(ref, "lora.cot_logits"),
        dLastHidden: readTensorF32(ref, "lora.cot_hidden_last"),
      }, { inputIds });
      let worst = 0;
      for (const m of adapter.modules) {
        for (const matrix of ["A", "B"] as const) {
          const name = loraTensorName(m, { matrix });
          const want = readTensorF32(ref, `grad.${name}`);
          worst = Math.max(worst, assertClose(got.grads.get(name)!, want, 1e-4, name));
        }
      }
      console.log(`keepActivations vs PEFT: worst rel err ${worst.toExponential(2)} (bound 1e-4)`);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "keepActivations on a 4-layer model: LoRA, full fine-tuning, upper-layer adapters and accumulation give the same bits",
  async (ctx) => {
    const model = new WebGpuQwen3(ctx, deep, deepWeights, { maxChunkBytes: 4096 });
    try {
      model.setAdapters(randomLora(deep, 3));
      await both(model, "LoRA (all layers)", { mode: "adapters", ...cot(10, deep) });
      await both(model, "full with LoRA, every cotangent", {
        mode: "full",
        ...cot(12, deep),
        dLogits: randomArray(B * T * deep.vocabSize, 14),
      });
      // Adapters on layers 2-3 only: the backward stops at layer 2, layers 0-1 keep nothing.
      model.setAdapters(randomLora(deep, 4, [2, 3]));
      await both(model, "LoRA on layers 2-3", { mode: "adapters", ...cot(16, deep) });
      // Two micro-batches accumulated (the second one longer: the workspace grows).
      model.setAdapters(null);
      const long: ForwardInput = { inputIds: [[5, 9, 2, 77, 300, 12, 1, 8, 8, 40, 41, 3]] };
      const run = async (keepActivations: boolean) => {
        model.releaseWorkspaces();
        await model.backward(input, { mode: "full", ...cot(18, deep), keepActivations });
        return await model.backward(long, {
          mode: "full",
          dLogprobs: randomArray(11, 20),
          accumulate: true,
          keepActivations,
        });
      };
      assertSameBits("2 accumulated micro-batches (full)", await run(true), await run(false));
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "keepActivations with HILO adapters (top-k, top-p, balance loss) gives the same bits",
  async (ctx) => {
    const model = new WebGpuQwen3(ctx, deep, deepWeights);
    try {
      for (
        const options of [
          { experts: "2-4-3-1", rank: "4-2-3-2", topK: [1, 2, 2, 1] },
          {
            experts: "4-3-2-2",
            rank: "2-2-3-1",
            activation: "top-p",
            topP: 0.6,
            balanceCoef: 0.5,
          },
        ] as HiloConfigOptions[]
      ) {
        model.setAdapters(randomHilo(deep, options, 17));
        await both(model, `HILO ${JSON.stringify(options)}`, {
          mode: "adapters",
          ...cot(30, deep),
        });
      }
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "keepActivations with a hidden-state cotangent at a layer's output gives the same bits",
  async (ctx) => {
    const model = new WebGpuQwen3(ctx, deep, deepWeights);
    try {
      model.setAdapters(randomLora(deep, 6));
      const { dLastHidden, dLogprobs } = cot(40, deep);
      for (const hiddenLayer of [0, 1, 2, 3]) {
        // The hidden term alone (the backward starts at that layer), then with a log-prob term.
        await both(model, `hiddenLayer ${hiddenLayer}, hidden only`, {
          mode: "adapters",
          dLastHidden,
          hiddenLayer,
        });
        await both(model, `hiddenLayer ${hiddenLayer} + logprobs (full)`, {
          mode: "full",
          dLastHidden,
          dLogprobs,
          hiddenLayer,
        });
      }
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "keepActivations adds exactly keptActivationBytes, frees them when off, reallocates them for more tokens, and dispose frees all",
  async (ctx) => {
    const own = new GpuContext(ctx.gpu);
    const model = new WebGpuQwen3(own, deep, deepWeights);
    model.setAdapters(randomLora(deep, 8, [1, 2, 3]));
    const step = (batch: ForwardInput, keepActivations: boolean) =>
      model.backward(batch, {
        mode: "adapters",
        dLogprobs: randomArray(B * (T - 1), 50),
        keepActivations,
      });
    await step(input, false);
    const plain = own.allocatedBytes;
    await step(input, true);
    // Adapters on layers 1-3: layers 1 and 2 keep theirs (layer 3 is the last).
    const perLayer = keptActivationBytes(deep, B * T, 1);
    assert.equal(keptActivationBytes(deep, B * T), 3 * perLayer);
    assert.equal(own.allocatedBytes - plain, 2 * perLayer, "kept bytes at 18 tokens");
    await step(input, false);
    assert.equal(own.allocatedBytes, plain, "switching keepActivations off frees the kept layers");
    // More tokens: the workspace (kept layers included) is reallocated at the new size.
    const bigger: ForwardInput = { inputIds: [...input.inputIds, input.inputIds[0]] };
    await model.backward(bigger, { mode: "adapters", dLogprobs: randomArray(3 * 8, 51) });
    const plainBig = own.allocatedBytes;
    await model.backward(bigger, {
      mode: "adapters",
      dLogprobs: randomArray(3 * 8, 51),
      keepActivations: true,
    });
    assert.equal(own.allocatedBytes - plainBig, 2 * keptActivationBytes(deep, 27, 1));
    model.releaseWorkspaces();
    assert.ok(own.allocatedBytes < plain, "releaseWorkspaces kept the training workspace");
    await step(input, true);
    model.dispose();
    assert.equal(own.allocatedBytes, 0, "bytes still allocated after dispose()");
  },
);

/** 3 sequences of 50 tokens (the second and third padded): 150 tokens, 3 LM-head blocks of 64. */
const wide: ForwardInput = {
  inputIds: [0, 1, 2].map((b) => Array.from({ length: 50 }, (_, t) => (b * 131 + t * 37) % 384)),
  attentionMask: [0, 1, 2].map((b) =>
    Array.from({ length: 50 }, (_, t) => (t < 50 - 9 * b ? 1 : 0))
  ),
};
const HEAD_BLOCK = 64;

gpuTest(
  "keepActivations with the LM head in 3 blocks: each block's head matmul runs once, the same bits, keptLogitsBytes more memory, dispose frees all",
  async (ctx) => {
    const own = new GpuContext(ctx.gpu);
    // Vocabulary rows in chunks of 96 (4 chunks): a block's head matmul is one dispatch per chunk.
    const model = new WebGpuQwen3(own, deep, deepWeights, { maxChunkBytes: 96 * 64 * 4 });
    const n = 150;
    const V = deep.vocabSize;
    // Dispatches of a matmul writing a training logits buffer: the LM head's forward matmuls.
    let headMatmuls = 0;
    const dispatch = own.dispatch.bind(own);
    own.dispatch = (pass, pipeline, bindings, workgroups, params) => {
      const y = bindings[2];
      const buffer = y instanceof GPUBuffer ? y : (y as GPUBufferBinding | undefined)?.buffer;
      if (pipeline.label.startsWith("mat") && buffer?.label.startsWith("train.logits")) {
        headMatmuls++;
      }
      dispatch(pass, pipeline, bindings, workgroups, params);
    };
    const chunks = model.lmHead.chunks.length;
    assert.equal(chunks, 4, "LM-head chunks");
    const blocks = Math.ceil(n / HEAD_BLOCK);
    assert.equal(blocks, 3);
    const uploads = {
      dLogprobs: own.upload(randomArray(n, 70), "test.d_logprobs"),
      dLastHidden: own.upload(randomArray(n * deep.hiddenSize, 71), "test.d_last_hidden"),
      dLogits: own.upload(randomArray(n * V, 72), "test.d_logits"),
    };
    /** One step; its gradients, per-position outputs, head matmuls and bytes allocated. */
    const step = async (
      mode: TrainStepOptions["mode"],
      keepActivations: boolean,
      logits: boolean,
    ) => {
      headMatmuls = 0;
      const { grads, reads } = await model.runTrainStep(
        wide,
        {
          mode,
          keepActivations,
          headChunkTokens: HEAD_BLOCK,
          cotangents: { logprobs: true, lastHidden: true, logits },
          lossHook: (pass, _acts, cot) => {
            encodeAdd(own, pass, { x: uploads.dLogprobs, y: cot.dLogprobs, n });
            encodeAdd(own, pass, {
              x: uploads.dLastHidden,
              y: cot.dLastHidden,
              n: n * deep.hiddenSize,
            });
            if (logits) encodeAdd(own, pass, { x: uploads.dLogits, y: cot.dLogits!, n: n * V });
          },
        },
        ({ acts }) =>
          [acts.logprobs, acts.lse, acts.entropy].map((buffer) => ({
            buffer,
            offset: 0,
            size: n * 4,
          })),
      );
      return { grads, reads, headMatmuls, bytes: own.allocatedBytes };
    };
    try {
      model.setAdapters(randomLora(deep, 11));
      for (
        const [mode, logits] of [["adapters", false], ["full", true]] as [
          TrainStepOptions["mode"],
          boolean,
        ][]
      ) {
        const tag = `${mode}${logits ? " (every cotangent)" : ""}`;
        // Kept first, so that no state helps it.
        const kept = await step(mode, true, logits);
        const recomputed = await step(mode, false, logits);
        assert.equal(kept.headMatmuls, blocks * chunks, `${tag}: head matmuls kept`);
        assert.equal(
          recomputed.headMatmuls,
          2 * blocks * chunks,
          `${tag}: head matmuls recomputed`,
        );
        ["logprobs", "lse", "entropy"].forEach((what, i) => {
          assert.deepEqual(
            new Uint32Array(kept.reads[i]),
            new Uint32Array(recomputed.reads[i]),
            `${tag}: ${what}`,
          );
        });
        let nonZero = 0;
        for (const [name, w] of recomputed.grads) {
          const g = kept.grads.get(name)!;
          assert.deepEqual(new Uint32Array(g.buffer), new Uint32Array(w.buffer), `${tag}: ${name}`);
          if (w.some((v) => v !== 0)) nonZero++;
        }
        assert.equal(kept.grads.size, recomputed.grads.size);
        assert.ok(nonZero > 0, `${tag}: every gradient is zero`);
        // Layers 0-2 and blocks 1-2 kept.
        assert.equal(
          kept.bytes - recomputed.bytes,
          keptActivationBytes(deep, n) + keptLogitsBytes(deep, n, HEAD_BLOCK),
          `${tag}: kept bytes`,
        );
        console.log(
          `${tag}: head matmuls ${kept.headMatmuls} kept vs ${recomputed.headMatmuls} ` +
            `recomputed; ${kept.grads.size} gradients (${nonZero} non-zero), log-probs, lse and ` +
            `entropies equal bit for bit; ${kept.bytes - recomputed.bytes} bytes kept`,
        );
      }
      assert.equal(keptLogitsBytes(deep, n, HEAD_BLOCK), 4 * (n - HEAD_BLOCK) * V);
      // One block (the default here): nothing more is kept for the head, nothing recomputed.
      assert.equal(keptLogitsBytes(deep, n, n), 0);
      headMatmuls = 0;
      await model.runTrainStep(wide, {
        mode: "adapters",
        lossHook: (pass, _acts, cot) =>
          encodeAdd(own, pass, { x: uploads.dLogprobs, y: cot.dLogprobs, n }),
      });
      assert.equal(headMatmuls, chunks, "head matmuls in one block");
    } finally {
      model.dispose();
      for (const b of Object.values(uploads)) own.release(b);
    }
    assert.equal(own.allocatedBytes, 0, "bytes still allocated after dispose()");
  },
);

gpuTest(
  "trainer backend with keepActivations: the clipped-PG + Hidden-Align objective gives the same loss and gradients bit for bit",
  async (ctx) => {
    const model = new WebGpuQwen3(ctx, deep, deepWeights);
    try {
      const lora = randomLora(deep, 9);
      model.setAdapters(lora);
      const [kept, recomputed] = [true, false].map((keepActivations) =>
        createTrainBackend(model, { mode: "adapters", params: loraParams(lora), keepActivations })
      );
      const out = await kept.forward(input);
      const noise = randomArray(B * (T - 1), 60, -0.4, 0.4);
      const lossMask = new Float64Array(B * (T - 1));
      for (let t = 2; t < 8; t++) lossMask[t] = 1;
      for (let t = 2; t < 5; t++) lossMask[T - 1 + t] = 1;
      const request: ObjectiveRequest = {
        terms: [
          { name: "clipped_pg", options: {} },
          { name: "hidden_align", weight: 0.1, options: { type: "cos-pairwise" } },
        ],
        inputs: {
          lossMask,
          oldLogprobs: Float64Array.from(out.logprobs, (v, i) => v + noise[i]),
          advantages: Float64Array.from(lossMask, (_, i) => (i < T - 1 ? 1.2 : -0.7)),
          anchors: [6, 4],
          groups: [7, 7],
          correct: [1, 1],
        },
      };
      for (const hiddenLayer of [undefined, 1]) {
        const a = await kept.objectiveAndGrads(input, request, { hiddenLayer });
        const withKept = ctx.allocatedBytes;
        const b = await recomputed.objectiveAndGrads(input, request, { hiddenLayer });
        if (hiddenLayer !== undefined) {
          // The option reached the step: its layers' buffers existed, and are freed without it.
          assert.equal(withKept - ctx.allocatedBytes, keptActivationBytes(deep, B * T));
        }
        assert.ok(a.loss.metrics["align/rows"] >= 2, "no align rows");
        assert.equal(a.loss.value, b.loss.value, `hiddenLayer ${hiddenLayer}: loss`);
        assert.deepEqual(a.loss.metrics, b.loss.metrics, `hiddenLayer ${hiddenLayer}: metrics`);
        for (const [name, g] of Object.entries(b.grads)) {
          assert.deepEqual(a.grads[name], g, `hiddenLayer ${hiddenLayer}: ${name}`);
        }
        console.log(
          `objective (hiddenLayer ${hiddenLayer}): loss ${a.loss.value.toExponential(4)}, ` +
            `${Object.keys(b.grads).length} gradients equal bit for bit`,
        );
      }
      kept.dispose();
      recomputed.dispose();
    } finally {
      model.dispose();
    }
  },
);

Deno.test({
  name: "runSft() with trainer.keepActivations on WebGPU logs the same metrics as without",
  ignore: noGpu,
  async fn() {
    await withTempDir(async (dir) => {
      const extra = ["--trainer.steps=2", "--eval.every=0", "--backend=webgpu", "--model.layers=3"];
      const run = async (keep: boolean) => {
        const out = await runSft(
          await tinyConfig(dir, [
            `--run.name=keep-${keep}`,
            `--trainer.keepActivations=${keep}`,
            ...extra,
          ]),
          QUIET,
        );
        const text = await Deno.readTextFile(join(out.runDir, "metrics.jsonl"));
        return { backend: out.backend, lines: text.trim().split("\n").map((l) => JSON.parse(l)) };
      };
      const [kept, plain] = [await run(true), await run(false)];
      assert.match(
        kept.backend,
        /keepActivations: ≤ \d+ layers × [0-9.e+]+ kB per token of a micro-batch/,
      );
      assert.doesNotMatch(plain.backend, /keepActivations/);
      const strip = (l: Record<string, number>) =>
        Object.fromEntries(Object.entries(l).filter(([k]) => !/time|_s$|per_s|tokens_per/.test(k)));
      assert.deepEqual(kept.lines.map(strip), plain.lines.map(strip));
      assert.ok(kept.lines.some((l) => Number.isFinite(l["loss/nll"])), "no loss logged");
      console.log(`${kept.backend}; ${kept.lines.length} metric lines equal`);
    });
  },
});
