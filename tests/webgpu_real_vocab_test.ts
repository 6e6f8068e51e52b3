// Qwen3's real vocabulary (151,936) on WebGPU with a tiny hidden size: token log-probs of
// 2 × 1,024 tokens and a LoRA training step over them, whose logits (1.2 GB in float32) never
// exist whole: the LM head runs in blocks of tokens. Checked against the float64 CPU backend.
//
// The CPU reference does not materialise the logits either: a CPU model with the same layers and
// the first 4,096 embedding rows (every id here is below 4,096, so its hidden states are the real
// model's) gives the final-norm states x in float64; the log-softmax over the real head is then
// streamed row by row at 48 positions spread over every block (and the log-prob gradient
// d lp / d x = e_target − Σ_j p_j e_j, pushed through the CPU backward as a final-norm
// cotangent, gives the LoRA gradient of Σ_p c_p · lp_p).
//
// Tolerances: log-probs and entropies 1e-4 absolute (a float32 log-sum-exp over 151,936 terms;
// measured 4.2e-6), LoRA gradients 1e-4 relative to each tensor's largest entry (float32 forward
// and backward, the LM head's d x summing 151,936 products; measured 4.1e-5). The gradient test
// caught Mesa's loop limit cutting that sum off at ~58,000 terms (kernels/matmul/matmul.wgsl).
//
// `keepActivations` at the real vocabulary: 256 tokens in the default LM-head blocks (each
// block's logits kept in a buffer within one binding, not recomputed) give the same LoRA
// gradients and log-probs bit for bit as the recomputing step.
import assert from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import type { Qwen3Config } from "../model/config.ts";
import { initQwen3Weights } from "../model/init.ts";
import { lmHeadBlockRows } from "../model/lm_head_webgpu.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward } from "../model/qwen3_cpu_backward.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { keptActivationBytes, keptLogitsBytes } from "../model/qwen3_webgpu_backward.ts";
import { GpuContext } from "../gpu/context.ts";
import type { Lora } from "../model/adapter_types.ts";

const LP_TOL = 1e-4;
const GRAD_TOL = 1e-4;
const V = 151936;
const SMALL_V = 4096;
const [B, T] = [2, 1024];
// An explicit block size for the training step (the default, 192 here, is exercised above).
const BLOCK = 128;

const config: Qwen3Config = {
  vocabSize: V,
  hiddenSize: 8,
  intermediateSize: 16,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-6,
  ropeTheta: 1e4,
  maxPositionEmbeddings: T,
  tieWordEmbeddings: true,
  eosTokenIds: [],
  bosTokenId: null,
  padTokenId: null,
};
const H = config.hiddenSize;
// Large embeddings: peaked next-token distributions (not all near log V).
const weights = initQwen3Weights(config, { seed: 5, std: 0.6 });
const embed = weights.embedTokens;
const ids = Array.from(
  { length: B },
  (_, b) => Array.from({ length: T }, (_, t) => (b * 7919 + t * 104729 + t * t) % SMALL_V),
);
// 48 scored positions (flat index b·T + t, t < T − 1) over both sequences and every block.
const positions = Array.from({ length: 48 }, (_, i) => {
  const flat = Math.floor((i * (B * T - 2)) / 47);
  return flat % T === T - 1 ? flat - 1 : flat;
});

/** A CPU model with the same layers and the first SMALL_V embedding rows (untied, zero head). */
function smallCpu(lora?: Lora): CpuQwen3 {
  const c = { ...config, vocabSize: SMALL_V, tieWordEmbeddings: false };
  const cpu = new CpuQwen3(c, {
    ...weights,
    embedTokens: embed.slice(0, SMALL_V * H),
    lmHead: new Float32Array(SMALL_V * H),
  });
  if (lora) cpu.setAdapters(lora);
  return cpu;
}

/** Streams the real head over one final-norm row: lse, the target's log-prob, entropy, Σ p e. */
function headRow(x: Float64Array, offset: number, target: number) {
  const z = new Float64Array(V);
  let max = -Infinity;
  for (let j = 0; j < V; j++) {
    let s = 0;
    for (let k = 0; k < H; k++) s += embed[j * H + k] * x[offset + k];
    z[j] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(z[j] - max);
  const lse = max + Math.log(sum);
  let entropy = 0;
  const meanE = new Float64Array(H);
  for (let j = 0; j < V; j++) {
    const p = Math.exp(z[j] - lse);
    if (p > 0) entropy -= p * (z[j] - lse);
    for (let k = 0; k < H; k++) meanE[k] += p * embed[j * H + k];
  }
  return { logprob: z[target] - lse, entropy, meanE };
}

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary (151,936): token log-probs of 2 × 1,024 tokens in " +
    "LM-head blocks equal the float64 CPU",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, config, weights);
    try {
      const auto = lmHeadBlockRows(ctx, V, B * T, { action: "test" });
      console.log(`default LM-head block: ${auto} of ${B * T} tokens`);
      assert.ok(auto < B * T, `the LM head ran in one block of ${auto} tokens: nothing is tested`);
      const got = await model.tokenLogprobs({ inputIds: ids });
      const x = smallCpu().trace({ inputIds: ids }).hidden[config.numHiddenLayers];
      let worst = 0;
      for (const p of positions) {
        const [b, t] = [Math.floor(p / T), p % T];
        const ref = headRow(x, p * H, ids[b][t + 1]);
        const i = b * (T - 1) + t;
        const e = Math.max(
          Math.abs(got.logprobs[i] - ref.logprob),
          Math.abs(got.entropy[i] - ref.entropy),
        );
        assert.ok(e <= LP_TOL, `position ${p}: error ${e} > ${LP_TOL}`);
        worst = Math.max(worst, e);
      }
      assert.ok(got.logprobs.every(Number.isFinite));
      console.log(`worst log-prob/entropy error ${worst.toExponential(2)}`);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary: a LoRA training step over 2 × 1,024 tokens (LM head " +
    "in blocks) equals the float64 CPU gradient",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, config, weights);
    const lora = createLora(
      loraConfig({ r: 4, targetModules: ["q_proj", "v_proj", "down_proj"] }),
      config,
      {
        seed: 2,
      },
    );
    // Random B (PEFT starts it at 0, which would make every A gradient 0).
    lora.modules.forEach((m, i) =>
      m.experts[0].b.set(randomArray(m.experts[0].b.length, 40 + i, -0.5, 0.5))
    );
    model.setAdapters(lora);
    try {
      // The loss Σ_p c_p · lp_p over the 48 positions.
      const coef = randomArray(positions.length, 9, 0.5, 1.5);
      const dLogprobs = new Float64Array(B * (T - 1));
      positions.forEach((p, k) => (dLogprobs[Math.floor(p / T) * (T - 1) + (p % T)] = coef[k]));
      const { grads } = await model.backward({ inputIds: ids }, {
        mode: "adapters",
        dLogprobs,
        headChunkTokens: BLOCK,
      });
      // CPU: d loss / d x at the scored rows, then the float64 backward from the final norm.
      const cpu = smallCpu(lora);
      const x = cpu.trace({ inputIds: ids }).hidden[config.numHiddenLayers];
      const dx = new Float64Array(B * T * H);
      positions.forEach((p, k) => {
        const [b, t] = [Math.floor(p / T), p % T];
        const target = ids[b][t + 1];
        const { meanE } = headRow(x, p * H, target);
        for (let j = 0; j < H; j++) dx[p * H + j] = coef[k] * (embed[target * H + j] - meanE[j]);
      });
      const want = cpuBackward(cpu, { inputIds: ids }, { mode: "adapters", dLastHidden: dx }).grads;
      let worst = 0;
      for (const [name, g] of want) {
        const got = grads.get(name)!;
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < g.length; i++) {
          diff = Math.max(diff, Math.abs(got[i] - g[i]));
          scale = Math.max(scale, Math.abs(g[i]));
        }
        assert.ok(scale > 0, `${name}: zero gradient`);
        assert.ok(
          diff / scale <= GRAD_TOL,
          `${name}: relative error ${diff / scale} > ${GRAD_TOL}`,
        );
        worst = Math.max(worst, diff / scale);
      }
      console.log(`worst LoRA gradient error ${worst.toExponential(2)} over ${want.size} tensors`);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary: keepActivations keeps every LM-head block's logits " +
    "(256 tokens, default blocks) and gives the recomputing step's gradients bit for bit",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext((await testContext())!.gpu);
    const model = new WebGpuQwen3(ctx, config, weights);
    const lora = createLora(loraConfig({ r: 4, targetModules: ["q_proj", "down_proj"] }), config, {
      seed: 3,
    });
    lora.modules.forEach((m, i) =>
      m.experts[0].b.set(randomArray(m.experts[0].b.length, 60 + i, -0.5, 0.5))
    );
    model.setAdapters(lora);
    try {
      const n = 256;
      const input = { inputIds: [ids[0].slice(0, n)] };
      const rows = lmHeadBlockRows(ctx, V, n, { action: "test" });
      assert.ok(rows < n, `the LM head ran in one block of ${rows} tokens: nothing is tested`);
      const dLogprobs = randomArray(n - 1, 61, 0.5, 1.5);
      const step = async (keepActivations: boolean) => {
        const out = await model.backward(input, { mode: "adapters", dLogprobs, keepActivations });
        return { ...out, bytes: ctx.allocatedBytes };
      };
      const kept = await step(true);
      const recomputed = await step(false);
      assert.deepEqual(kept.logprobs, recomputed.logprobs, "logprobs");
      for (const [name, g] of recomputed.grads) {
        assert.ok(g.some((v) => v !== 0), `${name}: zero gradient`);
        assert.deepEqual(
          new Uint32Array(kept.grads.get(name)!.buffer),
          new Uint32Array(g.buffer),
          name,
        );
      }
      // The last layer keeps its activations anyway: layer 0's and the head's blocks are extra.
      const extra = kept.bytes - recomputed.bytes;
      assert.equal(
        extra,
        keptActivationBytes(config, n, 1) + keptLogitsBytes(config, n, rows),
        "kept bytes",
      );
      console.log(
        `blocks of ${rows} of ${n} tokens: ${recomputed.grads.size} gradients equal bit for bit; ` +
          `${(extra / 1e6).toFixed(1)} MB kept (${
            (keptLogitsBytes(config, n, rows) / 1e6).toFixed(1)
          } MB of logits)`,
      );
    } finally {
      model.dispose();
    }
    assert.equal(ctx.allocatedBytes, 0, "bytes still allocated after dispose()");
  },
});
