// Golden tests of LoRA and the backward pass on WebGPU. The LoRA forward and every LoRA gradient
// are checked against HF transformers + PEFT in float64 (tests/fixtures/qwen3-tiny; see
// ../shared/fixtures/README.md); full fine-tuning gradients, the log-prob cotangent path with
// right padding, LM-head row blocks, micro-batch accumulation and a loss computed on the GPU are
// checked against `cpuBackward` (model/qwen3_cpu_backward.ts), an independent float64
// implementation whose LoRA gradients match the fixture to 4.5e-7. Every comparison is
// ‖gpu − ref‖₂ / ‖ref‖₂ per tensor.
import assert from "node:assert/strict";
import { assertArrayEqual, fixtureDir } from "../internal/test_utils.ts";
import { assertClose, noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import type { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { createLora, type Lora, loraTensorName } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { readQwen3Config } from "../model/config.ts";
import type { Qwen3Config } from "../model/config.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward, type CpuBackwardOptions } from "../model/qwen3_cpu_backward.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { openSafetensors, readTensorF32, readTensorI32 } from "../internal/safetensors.ts";
import { loadQwen3Weights, type Qwen3Weights } from "../model/weights.ts";
import { randomWeights } from "../bench/random_model.ts";

// The bound. f32 kernels land near 1e-6 on this model (sums of at most a few hundred
// products per output; the fixture's references are float32 roundings, ~6e-8).
const TOL = 1e-4;

const dir = fixtureDir();
const ref = await openSafetensors(`${dir}/reference.safetensors`);
const [batch, seqLen] = ref.tensors.get("input_ids")!.shape;
const rows = (flat: Int32Array) =>
  Array.from({ length: batch }, (_, b) => Array.from(flat.subarray(b * seqLen, (b + 1) * seqLen)));
const inputIds = rows(readTensorI32(ref, "input_ids"));
const attentionMask = rows(readTensorI32(ref, "masked.attention_mask"));
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
const adapter = await loadPeftAdapter(`${dir}/adapter`, config);

function report(what: string, got: ArrayLike<number>, want: ArrayLike<number>): number {
  const err = assertClose(got, want, TOL, what);
  return err;
}

/** Compares every gradient of the CPU result; the GPU must give exactly the same names. */
function compareGrads(
  tag: string,
  gpu: Map<string, Float32Array>,
  cpu: Map<string, ArrayLike<number>>,
): number {
  assert.deepEqual([...gpu.keys()].sort(), [...cpu.keys()].sort(), `${tag}: gradient names`);
  let worst = 0;
  for (const [name, want] of cpu) {
    worst = Math.max(worst, report(`${tag} ${name}`, gpu.get(name)!, want));
  }
  console.log(`${tag}: ${cpu.size} gradients, worst rel err ${worst.toExponential(2)}`);
  return worst;
}

function gpuModel(
  ctx: GpuContext,
  options: { config?: Qwen3Config; weights?: Qwen3Weights; maxChunkBytes?: number } = {},
): WebGpuQwen3 {
  return new WebGpuQwen3(ctx, options.config ?? config, options.weights ?? weights, {
    maxChunkBytes: options.maxChunkBytes,
  });
}

function cpuModel(lora: Lora | null, c = config, w = weights): CpuQwen3 {
  const m = new CpuQwen3(c, w);
  m.setAdapters(lora);
  return m;
}

function gpuTest(name: string, fn: (ctx: GpuContext) => Promise<void>): void {
  Deno.test({ name, ignore: noGpu, fn: async () => fn((await testContext())!) });
}

/** Random token ids, deterministic. */
function randomIds(b: number, t: number, seed: number, vocab = config.vocabSize): number[][] {
  const r = randomArray(b * t, seed, 0, vocab);
  return Array.from(
    { length: b },
    (_, i) => Array.from(r.subarray(i * t, (i + 1) * t), Math.floor),
  );
}

gpuTest(
  "WebGpuQwen3.setAdapters() with the PEFT adapter reproduces lora.logits and lora.hidden_last",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      model.setAdapters(adapter);
      const out = await model.forward({ inputIds, outputHiddenStates: true });
      const e1 = report("lora.logits", out.logits, readTensorF32(ref, "lora.logits"));
      const last = readTensorF32(ref, "lora.hidden_last");
      const e2 = report("lora.hidden_last", out.hiddenStates![config.numHiddenLayers], last);
      const lp = await model.tokenLogprobs({ inputIds, outputHiddenStates: true });
      const e3 = report("tokenLogprobs lastHidden", lp.lastHidden!, last);
      console.log(
        `lora.logits rel err ${e1.toExponential(2)}, lora.hidden_last ${e2.toExponential(2)}, ` +
          `tokenLogprobs lastHidden ${e3.toExponential(2)}`,
      );
      // The values come back bit for bit, with the same layout.
      const back = await model.readAdapters();
      assert.equal(back.config, adapter.config);
      assert.deepEqual(
        back.modules.map((m) => [m.name, m.layer, m.target, m.experts.map((e) => [e.r, e.scale])]),
        adapter.modules.map((
          m,
        ) => [m.name, m.layer, m.target, m.experts.map((e) => [e.r, e.scale])]),
      );
      back.modules.forEach((m, i) => {
        assertArrayEqual(m.experts[0].a, adapter.modules[i].experts[0].a, `${m.name} A`);
        assertArrayEqual(m.experts[0].b, adapter.modules[i].experts[0].b, `${m.name} B`);
      });
      // Removing the adapters gives the base model back and frees their buffers.
      const before = ctx.allocatedBytes;
      model.setAdapters(null);
      const adapterBytes = adapter.modules.reduce(
        (s, m) => s + m.experts.reduce((t, e) => t + e.a.byteLength + e.b.byteLength, 0),
        0,
      );
      assert.equal(before - ctx.allocatedBytes, adapterBytes);
      const plain = await model.forward({ inputIds });
      report("logits after setAdapters(null)", plain.logits, readTensorF32(ref, "logits"));
      await assert.rejects(() => model.readAdapters(), TypeError);
    } finally {
      model.dispose();
    }
  },
);

gpuTest("WebGpuQwen3.backward() gives every PEFT LoRA gradient of lora.loss", async (ctx) => {
  const model = gpuModel(ctx);
  try {
    model.setAdapters(adapter);
    const t0 = performance.now();
    const { grads, lastHidden } = await model.backward({ inputIds }, {
      mode: "adapters",
      dLogits: readTensorF32(ref, "lora.cot_logits"),
      dLastHidden: readTensorF32(ref, "lora.cot_hidden_last"),
    });
    const ms = performance.now() - t0;
    report("backward lastHidden", lastHidden, readTensorF32(ref, "lora.hidden_last"));
    const want = new Map<string, Float32Array>();
    for (const m of adapter.modules) {
      for (const matrix of ["A", "B"] as const) {
        const name = loraTensorName(m, { matrix });
        want.set(name, readTensorF32(ref, `grad.${name}`));
      }
    }
    // Every grad.* tensor of the fixture, and no base-weight gradient.
    const refCount = [...ref.tensors.keys()].filter((k) => k.startsWith("grad.")).length;
    assert.equal(want.size, refCount);
    compareGrads("fixture LoRA grads (WebGPU)", grads, want);
    console.log(`backward (forward + backward, one submit) ${ms.toFixed(0)} ms`);
  } finally {
    model.dispose();
  }
});

gpuTest(
  "WebGPU full fine-tuning gradients of every base weight match cpuBackward (weights split into row blocks)",
  async (ctx) => {
    // 4 KiB blocks: every projection, the embedding and the LM head (tied or not) span several
    // buffers, so dW, dx and the embedding scatter cross block boundaries.
    const model = gpuModel(ctx, { maxChunkBytes: 4096 });
    try {
      model.setAdapters(adapter);
      const n = batch * seqLen;
      const opts: CpuBackwardOptions = {
        mode: "full",
        dLogits: readTensorF32(ref, "lora.cot_logits"),
        dLastHidden: readTensorF32(ref, "lora.cot_hidden_last"),
        dLogprobs: randomArray(batch * (seqLen - 1), 7),
      };
      const cpu = cpuBackward(cpuModel(adapter), { inputIds }, opts);
      const gpu = await model.backward({ inputIds }, opts);
      // Tied: one gradient for the shared matrix; untied: one for lm_head.weight as well.
      assert.ok(cpu.grads.has("model.embed_tokens.weight"));
      assert.equal(cpu.grads.has("lm_head.weight"), !config.tieWordEmbeddings);
      const tied = config.tieWordEmbeddings ? "tied" : "untied";
      compareGrads(`full (${tied}, split, with LoRA)`, gpu.grads, cpu.grads);
      report("logprobs", gpu.logprobs, cpu.logprobs);
      assert.equal(gpu.lastHidden.length, n * config.hiddenSize);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "WebGPU full fine-tuning of an untied model gives lm_head.weight and matches cpuBackward",
  async (ctx) => {
    const c: Qwen3Config = { ...config, tieWordEmbeddings: false };
    const w = randomWeights(c, 3);
    const model = gpuModel(ctx, { config: c, weights: w });
    try {
      const opts: CpuBackwardOptions = {
        mode: "full",
        dLogprobs: randomArray(batch * (seqLen - 1), 8),
        dLastHidden: randomArray(batch * seqLen * c.hiddenSize, 9),
      };
      const cpu = cpuBackward(cpuModel(null, c, w), { inputIds }, opts);
      assert.ok(cpu.grads.has("lm_head.weight"));
      const gpu = await model.backward({ inputIds }, opts);
      compareGrads("full (untied, no adapters)", gpu.grads, cpu.grads);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "WebGPU LoRA with per-layer expert counts and ranks (HILO layout) matches cpuBackward",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      // Layer 0: two experts of ranks 2 and 5 on q/v/up; layer 1: one expert of rank 3; random B
      // (init false) so the adapters change the output.
      const lora = createLora(
        loraConfig({
          r: 3,
          loraAlpha: 6,
          targetModules: ["q_proj", "v_proj", "up_proj"],
          initLoraWeights: false,
        }),
        config,
        { seed: 4, expertRanks: (m) => (m.layer === 0 ? [2, 5] : [3]) },
      );
      model.setAdapters(lora);
      const cpuM = cpuModel(lora);
      const out = await model.forward({ inputIds });
      const want = await cpuM.forward({ inputIds });
      const e = report("HILO logits", out.logits, want.logits);
      console.log(`HILO-layout LoRA logits: rel err ${e.toExponential(2)}`);
      const opts: CpuBackwardOptions = {
        mode: "adapters",
        dLogprobs: randomArray(batch * (seqLen - 1), 41),
        dLastHidden: randomArray(batch * seqLen * config.hiddenSize, 42),
      };
      const gpu = await model.backward({ inputIds }, opts);
      compareGrads(
        "HILO-layout LoRA (adapters)",
        gpu.grads,
        cpuBackward(cpuM, { inputIds }, opts).grads,
      );
    } finally {
      model.dispose();
    }
  },
);

gpuTest("WebGPU dLogprobs cotangent with right padding matches cpuBackward", async (ctx) => {
  const model = gpuModel(ctx);
  try {
    model.setAdapters(adapter);
    const input: ForwardInput = { inputIds, attentionMask };
    const dLogprobs = randomArray(batch * (seqLen - 1), 11);
    const cpu = cpuBackward(cpuModel(adapter), input, { mode: "adapters", dLogprobs });
    const gpu = await model.backward(input, { mode: "adapters", dLogprobs });
    // Masked targets: log-prob 0 on both.
    report("padded logprobs", gpu.logprobs, cpu.logprobs);
    compareGrads("dLogprobs, right padding (adapters)", gpu.grads, cpu.grads);
    const full = await model.backward(input, { mode: "full", dLogprobs });
    const cpuFull = cpuBackward(cpuModel(adapter), input, { mode: "full", dLogprobs });
    compareGrads("dLogprobs, right padding (full)", full.grads, cpuFull.grads);
  } finally {
    model.dispose();
  }
});

gpuTest(
  "WebGPU backward with the LM head in row blocks of 64 tokens matches cpuBackward",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      model.setAdapters(adapter);
      // 96 tokens: blocks of 64 and 32; every cotangent at once.
      const ids = randomIds(2, 48, 21);
      const opts: CpuBackwardOptions = {
        mode: "full",
        dLogprobs: randomArray(2 * 47, 22),
        dLastHidden: randomArray(96 * config.hiddenSize, 23),
        dLogits: randomArray(96 * config.vocabSize, 24),
      };
      const cpu = cpuBackward(cpuModel(adapter), { inputIds: ids }, opts);
      const gpu = await model.backward({ inputIds: ids }, { ...opts, headChunkTokens: 64 });
      report("blocked logprobs", gpu.logprobs, cpu.logprobs);
      compareGrads("LM head in 64-token blocks (full)", gpu.grads, cpu.grads);
      const lpOnly = await model.backward({ inputIds: ids }, {
        mode: "adapters",
        dLogprobs: opts.dLogprobs,
        headChunkTokens: 64,
      });
      const cpuLp = cpuBackward(cpuModel(adapter), { inputIds: ids }, {
        mode: "adapters",
        dLogprobs: opts.dLogprobs,
      });
      compareGrads("LM head in 64-token blocks, dLogprobs only", lpOnly.grads, cpuLp.grads);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "WebGPU gradients accumulate over 2 micro-batches to the sum of cpuBackward's",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      model.setAdapters(adapter);
      const mb1: ForwardInput = { inputIds };
      const mb2: ForwardInput = { inputIds: randomIds(3, 9, 31) };
      const o1: CpuBackwardOptions = {
        mode: "full",
        dLogprobs: randomArray(batch * (seqLen - 1), 32),
      };
      const o2: CpuBackwardOptions = {
        mode: "full",
        dLastHidden: randomArray(27 * config.hiddenSize, 33),
        dLogprobs: randomArray(3 * 8, 34),
      };
      const c1 = cpuBackward(cpuModel(adapter), mb1, o1).grads;
      const c2 = cpuBackward(cpuModel(adapter), mb2, o2).grads;
      const sum = new Map([...c1].map(([k, v]) => [k, v.map((x, i) => x + c2.get(k)![i])]));
      // A stale gradient first: accumulate: false must clear it.
      await model.backward(mb2, o2);
      await model.backward(mb1, { ...o1, accumulate: false });
      const { grads } = await model.backward(mb2, { ...o2, accumulate: true });
      compareGrads("2 accumulated micro-batches (full)", grads, sum);
      compareGrads("readGradients() after accumulation", await model.readGradients(), sum);
      // zeroGrads clears every gradient buffer.
      model.zeroGrads();
      for (const [name, g] of await model.readGradients()) {
        assert.ok(g.every((x) => x === 0), `${name} not zeroed`);
      }
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "encodeTrainStep() runs a loss computed on the GPU between forward and backward, one submit",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      model.setAdapters(adapter);
      // loss = ½ Σ logprobs² + Σ lastHidden²: the hook writes d/dlogprobs = logprobs and
      // d/dlastHidden = 2·lastHidden from the activations, without a readback.
      const enc = ctx.device.createCommandEncoder();
      const n = batch * seqLen;
      const { acts } = await model.encodeTrainStep(enc, { inputIds }, {
        mode: "adapters",
        lossHook: (pass, a, cot) => {
          encodeAdd(ctx, pass, { x: a.logprobs, y: cot.dLogprobs, n });
          encodeAdd(ctx, pass, {
            x: a.lastHidden,
            y: cot.dLastHidden,
            n: n * config.hiddenSize,
            alpha: 2,
          });
        },
      });
      await assert.rejects(
        () => model.encodeTrainStep(enc, { inputIds }, { mode: "adapters", lossHook: () => {} }),
        TypeError,
      );
      const [lpBytes] = await readback(
        ctx,
        [{ buffer: acts.logprobs, offset: 0, size: n * 4 }],
        enc,
      );
      const gpu = await model.readGradients();
      const cpuModelA = cpuModel(adapter);
      const fwd = cpuBackward(cpuModelA, { inputIds }, {
        mode: "adapters",
        dLastHidden: new Float64Array(n * config.hiddenSize),
      });
      const dLogprobs = fwd.logprobs;
      const dLastHidden = fwd.lastHidden.map((x) => 2 * x);
      const cpu = cpuBackward(cpuModelA, { inputIds }, {
        mode: "adapters",
        dLogprobs,
        dLastHidden,
      });
      const lp = new Float32Array(lpBytes);
      const lpRows = Array.from(
        { length: batch },
        (_, b) => [...lp.subarray(b * seqLen, (b + 1) * seqLen - 1)],
      );
      report("hook logprobs", lpRows.flat(), cpu.logprobs);
      compareGrads("GPU-side loss hook (adapters)", gpu, cpu.grads);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "WebGPU training keeps one [tokens, hidden] buffer per layer and frees it all on releaseWorkspaces/dispose",
  async (ctx) => {
    const base = ctx.allocatedBytes;
    const stepBytes = async (layers: number) => {
      const c: Qwen3Config = { ...config, numHiddenLayers: layers };
      const model = gpuModel(ctx, { config: c, weights: randomWeights(c, 5) });
      try {
        const lora = createLora(loraConfig({ r: 4, targetModules: "all-linear" }), c, { seed: 1 });
        model.setAdapters(lora);
        model.gradients("adapters"); // allocate the LoRA gradients before measuring
        const before = ctx.allocatedBytes;
        await model.backward({ inputIds }, {
          mode: "adapters",
          dLogprobs: new Float32Array(batch * (seqLen - 1)).fill(1),
        });
        const bytes = ctx.allocatedBytes - before;
        // Releasing the workspaces leaves weights, adapters and gradients.
        model.releaseWorkspaces();
        assert.equal(ctx.allocatedBytes, before);
        return bytes;
      } finally {
        model.dispose();
      }
    };
    const two = await stepBytes(2);
    const four = await stepBytes(4);
    const perLayer = batch * seqLen * config.hiddenSize * 4;
    console.log(
      `train workspace: ${two} bytes with 2 layers, ${four} with 4 (${(four - two) / 2} per ` +
        `layer = tokens·hidden·4 = ${perLayer})`,
    );
    assert.equal(four - two, 2 * perLayer);
    assert.equal(ctx.allocatedBytes, base, "bytes left allocated after dispose");
  },
);

gpuTest(
  "WebGpuQwen3.backward() rejects bad modes, missing adapters and bad cotangents",
  async (ctx) => {
    const model = gpuModel(ctx);
    try {
      const dLogprobs = new Float32Array(batch * (seqLen - 1));
      await assert.rejects(
        () => model.backward({ inputIds }, { mode: "adapters", dLogprobs }),
        (e: Error) => e instanceof TypeError && e.message.includes("setAdapters"),
      );
      await assert.rejects(
        () => model.backward({ inputIds }, { mode: "lora" as "full", dLogprobs }),
        (e: Error) => e instanceof TypeError && e.message.includes(`"lora"`),
      );
      await assert.rejects(
        () => model.backward({ inputIds }, { mode: "full" }),
        (e: Error) => e instanceof TypeError && e.message.includes("at least one"),
      );
      await assert.rejects(
        () => model.backward({ inputIds }, { mode: "full", dLogprobs: [1, 2] }),
        (e: Error) => e instanceof RangeError && e.message.includes("current length is 2"),
      );
      await assert.rejects(
        () => model.backward({ inputIds }, { mode: "full", dLogprobs, headChunkTokens: 20 }),
        (e: Error) => e instanceof RangeError && e.message.includes("headChunkTokens"),
      );
      // An adapted projection needs the LoRA scratch buffer.
      model.setAdapters(adapter);
      // q_proj maps hidden → heads · head_dim; the scratch needs m · (largest rank) floats.
      const x = ctx.createBuffer(4 * config.hiddenSize * 4, "x");
      const y = ctx.createBuffer(4 * config.numAttentionHeads * config.headDim * 4, "y");
      const rank = Math.max(...adapter.modules.flatMap((m) => m.experts.map((e) => e.r)));
      const pass = ctx.device.createCommandEncoder().beginComputePass();
      assert.throws(
        () => model.encodeProjection(pass, { layer: 1, target: "q_proj", x, y, m: 4 }),
        (e: Error) =>
          e instanceof TypeError &&
          e.message.includes(`"loraScratch" (at least ${4 * rank} floats)`),
      );
      pass.end();
      ctx.release(x);
      ctx.release(y);
    } finally {
      model.dispose();
    }
  },
);
