/**
 * The exact float64 backward of the Qwen3 forward pass on the CPU, composed from the kernels'
 * backward references: the reference the WebGPU backward is checked against, and a trainer for
 * tiny models. The ops run in the reverse order of the forward in `qwen3_webgpu.ts`, each
 * mirroring one forward kernel launch, so the GPU version can follow it line by line.
 *
 * @module
 */
import { attentionBackwardRef } from "../kernels/attention/attention_backward_ref.ts";
import { embeddingBackwardRef } from "../kernels/embedding/embedding_backward_ref.ts";
import { logprobBackwardRef } from "../kernels/logprob/logprob_backward_ref.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { matmulBackwardRef } from "../kernels/matmul/matmul_backward_ref.ts";
import { rmsNormBackwardRef } from "../kernels/rms_norm/rms_norm_backward_ref.ts";
import { ropeBackwardRef } from "../kernels/rope/rope_backward_ref.ts";
import { swigluBackwardRef } from "../kernels/swiglu/swiglu_backward_ref.ts";
import { loraTensorName } from "../adapters/lora.ts";
import { loraModuleName, type LoraTarget } from "../adapters/lora_config.ts";
import type { ForwardInput } from "./forward_input.ts";
import type { CpuLoraTrace, CpuQwen3 } from "./qwen3_cpu.ts";

/**
 * Which parameters get gradients: `"adapters"` only the LoRA matrices (base frozen; an error
 * without adapters), `"full"` every base weight and, when adapters are set, their matrices too.
 */
export type CpuBackwardMode = "adapters" | "full";

/** Options of {@linkcode cpuBackward}: the cotangents of the scalar loss (at least one). */
export interface CpuBackwardOptions {
  /** Which parameters get gradients. */
  mode: CpuBackwardMode;
  /** `dLoss/dlogits` `[batch, seqLen, vocab]`. */
  dLogits?: ArrayLike<number>;
  /**
   * `dLoss/dlastHidden` `[batch, seqLen, hidden]` at the final-norm output (HF's
   * `hidden_states[-1]`, the Hidden-Align term); zero rows for positions without a term.
   */
  dLastHidden?: ArrayLike<number>;
  /**
   * `dLoss/dlogprobs` `[batch, seqLen − 1]` on the token log-probs `tokenLogprobs` returns
   * (masked targets have log-prob 0 and get no gradient).
   */
  dLogprobs?: ArrayLike<number>;
  /** Training-mode LoRA dropout seed (see `CpuQwen3.trace`); default no dropout. */
  dropoutSeed?: number;
}

/** Result of {@linkcode cpuBackward}. */
export interface CpuBackwardResult {
  /**
   * The linear loss whose gradient this is: `Σ logits·dLogits + Σ lastHidden·dLastHidden +
   * Σ logprobs·dLogprobs`.
   */
  loss: number;
  /** Logits of the forward `[batch, seqLen, vocab]`. */
  logits: Float64Array;
  /** Final-norm hidden states `[batch, seqLen, hidden]`. */
  lastHidden: Float64Array;
  /** Token log-probs `[batch, seqLen − 1]`. */
  logprobs: Float64Array;
  /**
   * Gradients by HF/PEFT name: LoRA matrices as `model.layers.0.self_attn.q_proj.lora_A.weight`
   * (see `loraTensorName`), base weights as in the checkpoint (`model.embed_tokens.weight`,
   * `model.layers.0.input_layernorm.weight`, …, `model.norm.weight`, and `lm_head.weight` when
   * the embeddings are not tied; with tied embeddings the LM head's gradient is added to
   * `model.embed_tokens.weight`).
   */
  grads: Map<string, Float64Array>;
}

function checkLength(what: string, a: ArrayLike<number>, expected: string, n: number): void {
  if (a.length !== n) {
    throw new RangeError(
      `Cannot run the backward: ${what} must have ${expected} = ${n} values: current length is ` +
        `${a.length}`,
    );
  }
}

/**
 * Gradients of a scalar loss of the model's outputs with respect to the adapters (and, in
 * `"full"` mode, every base weight), exact in float64. The loss is given by its cotangents: at the
 * logits, at the final-norm hidden state, and at the token log-probs (turned into logit
 * cotangents by the log-softmax backward). The forward is run here with every activation kept.
 *
 * Order of ops (the reverse of the WebGPU forward): logprob backward → LM head → final norm; per
 * layer from the last: down projection → SwiGLU → gate/up projections → post-attention norm
 * (+ residual) → o projection → attention → RoPE → q/k norms → q/k/v projections → input norm
 * (+ residual); embedding scatter (plus the LM head's gradient when tied). A LoRA projection's
 * backward is the base matmul's plus, per expert, `dB = scale·dyᵀ·u`, `du = scale·dy·B`,
 * `dA = duᵀ·x`, `dx += du·A` (times the dropout mask in training mode).
 *
 * @param model The CPU model with its adapters set.
 * @param input The batch.
 * @param options Cotangents, mode and dropout seed.
 * @returns The loss, the forward's outputs and the gradients.
 * @throws {TypeError} If no cotangent is given, or `"adapters"` mode is asked without adapters.
 * @throws {RangeError} If a cotangent has the wrong length.
 *
 * @example Gradient of the log-likelihood of a sequence with respect to LoRA adapters
 * ```ts
 * import { readQwen3Config } from "./config.ts";
 * import { loadQwen3Weights } from "./weights.ts";
 * import { CpuQwen3 } from "./qwen3_cpu.ts";
 * import { cpuBackward } from "./qwen3_cpu_backward.ts";
 * import { loraConfig } from "../adapters/lora_config.ts";
 * import { createLora } from "../adapters/lora.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const model = new CpuQwen3(config, await loadQwen3Weights(dir, config));
 * model.setAdapters(createLora(loraConfig({ r: 2 }), config, { seed: 0 }));
 * const { loss, grads } = cpuBackward(model, { inputIds: [[1, 2, 3]] }, {
 *   mode: "adapters",
 *   dLogprobs: [1, 1],
 * });
 * console.log(loss < 0, grads.has("model.layers.0.self_attn.q_proj.lora_B.weight")); // true true
 * ```
 */
export function cpuBackward(
  model: CpuQwen3,
  input: ForwardInput,
  options: CpuBackwardOptions,
): CpuBackwardResult {
  const { mode } = options;
  if (mode !== "adapters" && mode !== "full") {
    throw new TypeError(
      `Cannot run the backward: option "mode" must be "adapters" or "full": current value is ` +
        `${JSON.stringify(mode)}`,
    );
  }
  if (mode === "adapters" && model.adapters === null) {
    throw new TypeError(
      `Cannot run the backward: mode "adapters" needs adapters (call setAdapters first)`,
    );
  }
  if (!options.dLogits && !options.dLastHidden && !options.dLogprobs) {
    throw new TypeError(
      `Cannot run the backward: give at least one of dLogits, dLastHidden and dLogprobs`,
    );
  }
  const c = model.config;
  const w = model.weights;
  const t = model.trace(input, { dropoutSeed: options.dropoutSeed });
  const { batch: B, seqLen: T, ids, mask, positions, targets } = t.batch;
  const n = B * T;
  const [H, hq, hkv, D, I, V] = [
    c.hiddenSize,
    c.numAttentionHeads,
    c.numKeyValueHeads,
    c.headDim,
    c.intermediateSize,
    c.vocabSize,
  ];
  const eps = c.rmsNormEps;
  const full = mode === "full";
  const grads = new Map<string, Float64Array>();
  const last = t.hidden[t.hidden.length - 1];

  // Loss and the cotangent at the logits.
  let loss = 0;
  const dLogits = new Float64Array(n * V);
  if (options.dLogits) {
    checkLength("dLogits", options.dLogits, `batch·seqLen·vocab = ${B}·${T}·${V}`, n * V);
    for (let i = 0; i < n * V; i++) {
      dLogits[i] = options.dLogits[i];
      loss += t.logits[i] * options.dLogits[i];
    }
  }
  const lp = logprobRef(t.logits, targets, V).logprobs;
  const logprobs = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let s = 0; s + 1 < T; s++) logprobs[b * (T - 1) + s] = lp[b * T + s];
  }
  if (options.dLogprobs) {
    checkLength("dLogprobs", options.dLogprobs, `batch·(seqLen−1) = ${B}·${T - 1}`, B * (T - 1));
    const dLp = new Float64Array(n);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s + 1 < T; s++) {
        dLp[b * T + s] = options.dLogprobs[b * (T - 1) + s];
        loss += logprobs[b * (T - 1) + s] * dLp[b * T + s];
      }
    }
    const g = logprobBackwardRef(dLp, t.logits, targets, V);
    for (let i = 0; i < g.length; i++) dLogits[i] += g[i];
  }

  // LM head: logits = last · lmHeadᵀ.
  const head = matmulBackwardRef(dLogits, last, w.lmHead, [n, V, H]);
  const dLast = head.dx;
  if (options.dLastHidden) {
    checkLength("dLastHidden", options.dLastHidden, `batch·seqLen·hidden = ${B}·${T}·${H}`, n * H);
    for (let i = 0; i < n * H; i++) {
      dLast[i] += options.dLastHidden[i];
      loss += last[i] * options.dLastHidden[i];
    }
  }
  // Final norm.
  const fin = rmsNormBackwardRef(dLast, t.hFinal, w.norm, { d: H, eps });
  let dh = fin.dx;
  if (full) grads.set("model.norm.weight", fin.dw);

  /** Backward of `y = x·Wᵀ + LoRA(x)`; returns dx, records dW (full) and the LoRA grads. */
  const linearBackward = (
    dy: Float64Array,
    x: Float64Array,
    weight: Float32Array,
    shape: [number, number],
    name: string,
    lora: CpuLoraTrace | undefined,
  ): Float64Array => {
    const [out, inn] = shape;
    const base = matmulBackwardRef(dy, x, weight, [n, out, inn]);
    if (full) grads.set(`${name}.weight`, base.dw);
    const dx = base.dx;
    if (!lora) return dx;
    const m = lora.module;
    const dxd = new Float64Array(n * inn);
    m.experts.forEach((e, i) => {
      const dyScaled = new Float64Array(dy.length);
      for (let j = 0; j < dy.length; j++) dyScaled[j] = dy[j] * e.scale;
      const up = matmulBackwardRef(dyScaled, lora.down[i], e.b, [n, out, e.r]);
      const down = matmulBackwardRef(up.dx, lora.input, e.a, [n, e.r, inn]);
      grads.set(loraTensorName(m, { matrix: "A", expert: i }), down.dw);
      grads.set(loraTensorName(m, { matrix: "B", expert: i }), up.dw);
      for (let j = 0; j < dxd.length; j++) dxd[j] += down.dx[j];
    });
    const dm = lora.dropoutMask;
    for (let j = 0; j < dx.length; j++) dx[j] += dm ? dxd[j] * dm[j] : dxd[j];
    return dx;
  };

  for (let l = w.layers.length - 1; l >= 0; l--) {
    const lw = w.layers[l];
    const a = t.layers[l];
    const name = (target: LoraTarget) => loraModuleName(l, target);
    const p = `model.layers.${l}`;
    // MLP: h = hMid + down(swiglu(gate(x2), up(x2))), x2 = norm(hMid).
    const dAct = linearBackward(
      dh,
      a.act,
      lw.downProj,
      [H, I],
      name("down_proj"),
      a.lora.down_proj,
    );
    const sw = swigluBackwardRef(dAct, a.gate, a.up);
    const dx2 = linearBackward(
      sw.dGate,
      a.x2,
      lw.gateProj,
      [I, H],
      name("gate_proj"),
      a.lora.gate_proj,
    );
    const dx2u = linearBackward(sw.dUp, a.x2, lw.upProj, [I, H], name("up_proj"), a.lora.up_proj);
    for (let j = 0; j < dx2.length; j++) dx2[j] += dx2u[j];
    const post = rmsNormBackwardRef(dx2, a.hMid, lw.postAttentionLayernorm, { d: H, eps });
    if (full) grads.set(`${p}.post_attention_layernorm.weight`, post.dw);
    const dhMid = dh;
    for (let j = 0; j < dhMid.length; j++) dhMid[j] += post.dx[j];
    // Attention: hMid = hIn + o(attention(rope(qnorm(q(x1))), rope(knorm(k(x1))), v(x1))).
    const dAtt = linearBackward(dhMid, a.att, lw.oProj, [H, hq * D], name("o_proj"), a.lora.o_proj);
    const att = attentionBackwardRef(dAtt, a.q, a.k, a.v, {
      b: B,
      tq: T,
      s: T,
      hq,
      hkv,
      d: D,
      mask,
    });
    const rope = { d: D, theta: c.ropeTheta };
    const dqn = ropeBackwardRef(att.dq, positions, { ...rope, heads: hq });
    const dkn = ropeBackwardRef(att.dk, positions, { ...rope, heads: hkv });
    const qn = rmsNormBackwardRef(dqn, a.qRaw, lw.qNorm, { d: D, eps });
    const kn = rmsNormBackwardRef(dkn, a.kRaw, lw.kNorm, { d: D, eps });
    if (full) {
      grads.set(`${p}.self_attn.q_norm.weight`, qn.dw);
      grads.set(`${p}.self_attn.k_norm.weight`, kn.dw);
    }
    const dx1 = linearBackward(qn.dx, a.x1, lw.qProj, [hq * D, H], name("q_proj"), a.lora.q_proj);
    const dx1k = linearBackward(kn.dx, a.x1, lw.kProj, [hkv * D, H], name("k_proj"), a.lora.k_proj);
    const dx1v = linearBackward(
      att.dv,
      a.x1,
      lw.vProj,
      [hkv * D, H],
      name("v_proj"),
      a.lora.v_proj,
    );
    for (let j = 0; j < dx1.length; j++) dx1[j] += dx1k[j] + dx1v[j];
    const inp = rmsNormBackwardRef(dx1, a.hIn, lw.inputLayernorm, { d: H, eps });
    if (full) grads.set(`${p}.input_layernorm.weight`, inp.dw);
    for (let j = 0; j < dhMid.length; j++) dhMid[j] += inp.dx[j];
    dh = dhMid;
  }

  if (full) {
    const dEmbed = embeddingBackwardRef(dh, ids, { vocab: V, h: H });
    if (w.lmHead === w.embedTokens) {
      for (let j = 0; j < dEmbed.length; j++) dEmbed[j] += head.dw[j];
    } else {
      grads.set("lm_head.weight", head.dw);
    }
    grads.set("model.embed_tokens.weight", dEmbed);
  }
  return { loss, logits: t.logits, lastHidden: last, logprobs, grads };
}
