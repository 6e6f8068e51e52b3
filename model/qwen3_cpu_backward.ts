/**
 * The exact float64 backward of the Qwen3 forward pass on the CPU, composed from the kernels'
 * backward references: the reference the WebGPU backward is checked against, and a trainer for
 * tiny models. The ops run in the reverse order of the forward in `qwen3_webgpu.ts`, each
 * mirroring one forward kernel launch, so the GPU version can follow it line by line.
 *
 * @module
 */
import { embeddingBackwardRef } from "../kernels/embedding/embedding_backward_ref.ts";
import { logprobBackwardRef } from "../kernels/logprob/logprob_backward_ref.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { matmulBackwardRef } from "../kernels/matmul/matmul_backward_ref.ts";
import { rmsNormBackwardRef } from "../kernels/rms_norm/rms_norm_backward_ref.ts";
import { checkBackwardArgs, checkTemperature } from "./backward_args.ts";
import { type ForwardInput, packBatch } from "./forward_input.ts";
import type { CpuQwen3 } from "./qwen3_cpu.ts";
import {
  cpuBalanceLoss,
  type CpuBalanceStats,
  cpuDecoderLayerBackward,
} from "./qwen3_cpu_layer.ts";
import { modelTensorTable } from "./tensor_table.ts";

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
   * `hidden_states[-1]`, the Hidden-Align term), or at decoder layer `hiddenLayer`'s output;
   * zero rows for positions without a term.
   */
  dLastHidden?: ArrayLike<number>;
  /**
   * Decoder layer whose output the loss reads as `lastHidden` and whose gradient receives
   * `dLastHidden`; default the final-norm output. Layer `l` in `[0, numHiddenLayers)` is HF's
   * `hidden_states[l + 1]`.
   */
  hiddenLayer?: number;
  /**
   * `dLoss/dlogprobs` `[batch, seqLen − 1]` on the token log-probs `tokenLogprobs` returns
   * (masked targets have log-prob 0 and get no gradient).
   */
  dLogprobs?: ArrayLike<number>;
  /** Training-mode LoRA dropout seed (see `CpuQwen3.trace`); default no dropout. */
  dropoutSeed?: number;
  /**
   * Coefficient of HILO's load-balancing loss (`E · Σ_e f_e·P_e` per routed projection over the
   * real tokens, summed over projections and layers; see `cpuBalanceLoss`), added to the loss
   * with its router gradient; default the adapters' `hilo.balanceCoef`, else 0.
   */
  balanceCoef?: number;
  /**
   * The balance statistics (per layer, `cpuBalanceStats`) of the whole micro-batch this call is
   * one row of: the loss and its gradient use them instead of this call's own, so that rows run
   * one at a time add up to the micro-batch's gradient. Default this call's own.
   */
  balanceStats?: readonly CpuBalanceStats[];
  /**
   * The token log-probs (and entropies) are those of `softmax(logits / temperature)`, and their
   * cotangent `dLogprobs` reaches the logits times `1 / temperature` (the chain rule); `dLogits`
   * stays the cotangent of the raw logits. A finite number ≥ 1e-6; default 1.
   */
  temperature?: number;
}

/**
 * The logits of the tempered policy `softmax(logits / temperature)`: `logits` itself at
 * temperature 1 (no copy, no rounding), else `logits[i] / temperature` in float64.
 *
 * @param logits Logits `[rows, vocab]`.
 * @param temperature The temperature (> 0).
 * @returns The scaled logits.
 *
 * @example Halving the temperature doubles the logits
 * ```ts
 * import { temperedLogits } from "./qwen3_cpu_backward.ts";
 * console.log(temperedLogits(new Float64Array([1, -2]), 0.5)); // Float64Array(2) [ 2, -4 ]
 * ```
 */
export function temperedLogits(logits: Float64Array, temperature: number): Float64Array {
  if (temperature === 1) return logits;
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] / temperature;
  return out;
}

/** Result of {@linkcode cpuBackward}. */
export interface CpuBackwardResult {
  /**
   * The linear loss whose gradient this is: `Σ logits·dLogits + Σ lastHidden·dLastHidden +
   * Σ logprobs·dLogprobs`, plus `balanceCoef · balanceLoss`.
   */
  loss: number;
  /**
   * HILO's load-balancing loss summed over routed projections and layers (before the
   * coefficient; from `balanceStats` when given); 0 without routers.
   */
  balanceLoss: number;
  /** Logits of the forward `[batch, seqLen, vocab]`. */
  logits: Float64Array;
  /**
   * The hidden states `dLastHidden` applies to `[batch, seqLen, hidden]`: the final-norm output,
   * or layer `hiddenLayer`'s output.
   */
  lastHidden: Float64Array;
  /** Token log-probs `[batch, seqLen − 1]` (of the tempered policy with `temperature`). */
  logprobs: Float64Array;
  /**
   * Entropy of the next-token distribution at each of those positions `[batch, seqLen − 1]`
   * (0 where the target is masked out), from the same log-softmax pass.
   */
  entropy: Float64Array;
  /**
   * Gradients by HF/PEFT name: LoRA matrices as `model.layers.0.self_attn.q_proj.lora_A.weight`
   * (see `loraTensorName`), HILO routers as `….q_proj.router.weight` (see `routerTensorName`), base weights as in the checkpoint (`model.embed_tokens.weight`,
   * `model.layers.0.input_layernorm.weight`, …, `model.norm.weight`, and `lm_head.weight` when
   * the embeddings are not tied; with tied embeddings the LM head's gradient is added to
   * `model.embed_tokens.weight`).
   */
  grads: Map<string, Float64Array>;
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
 * (+ residual), each layer by `cpuDecoderLayerBackward` (with `dLastHidden` added at layer
 * `hiddenLayer`'s output when given); embedding scatter (plus the LM head's gradient when tied).
 *
 * @param model The CPU model with its adapters set.
 * @param input The batch.
 * @param options Cotangents, mode and dropout seed.
 * @returns The loss, the forward's outputs and the gradients.
 * @throws {TypeError} If no cotangent is given, or `"adapters"` mode is asked without adapters.
 * @throws {RangeError} If a cotangent has the wrong length, or `hiddenLayer` is not a layer.
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
  const c = model.config;
  const w = model.weights;
  const { mode, hiddenLayer } = options;
  const packed = packBatch(input, c);
  checkBackwardArgs({
    mode,
    hasAdapters: model.adapters !== null,
    batch: packed.batch,
    seqLen: packed.seqLen,
    hiddenSize: c.hiddenSize,
    vocabSize: c.vocabSize,
    numHiddenLayers: c.numHiddenLayers,
    dLogits: options.dLogits,
    dLastHidden: options.dLastHidden,
    dLogprobs: options.dLogprobs,
    hiddenLayer,
  });
  const temperature = checkTemperature(options.temperature, "run the backward");
  const t = model.trace(input, { dropoutSeed: options.dropoutSeed });
  const { batch: B, seqLen: T, ids, mask, positions, targets } = t.batch;
  const n = B * T;
  const [H, V] = [c.hiddenSize, c.vocabSize];
  const eps = c.rmsNormEps;
  const full = mode === "full";
  const grads = new Map<string, Float64Array>();
  // Checkpoint names of the embedding, final norm and LM head, from the tensor table.
  const name = Object.fromEntries(
    modelTensorTable({ ...c, tieWordEmbeddings: false })
      .filter((e) => e.layer === null)
      .map((e) => [e.field, e.name]),
  );
  const last = t.hidden[t.hidden.length - 1];
  const state = hiddenLayer === undefined ? last : t.layers[hiddenLayer].hOut;

  // Loss and the cotangent at the logits.
  let loss = 0;
  const dLogits = new Float64Array(n * V);
  if (options.dLogits) {
    for (let i = 0; i < n * V; i++) {
      dLogits[i] = options.dLogits[i];
      loss += t.logits[i] * options.dLogits[i];
    }
  }
  // The policy's logits: z / T (z itself at T = 1).
  const policyLogits = temperedLogits(t.logits, temperature);
  const softmax = logprobRef(policyLogits, targets, V);
  const logprobs = new Float64Array(B * (T - 1));
  const entropy = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let s = 0; s + 1 < T; s++) {
      const i = b * T + s;
      logprobs[b * (T - 1) + s] = softmax.logprobs[i];
      entropy[b * (T - 1) + s] = targets[i] >= 0 ? softmax.entropy[i] : 0;
    }
  }
  if (options.dLogprobs) {
    const dLp = new Float64Array(n);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s + 1 < T; s++) {
        dLp[b * T + s] = options.dLogprobs[b * (T - 1) + s];
        loss += logprobs[b * (T - 1) + s] * dLp[b * T + s];
      }
    }
    const g = logprobBackwardRef(dLp, policyLogits, targets, V);
    if (temperature === 1) {
      for (let i = 0; i < g.length; i++) dLogits[i] += g[i];
    } else {
      for (let i = 0; i < g.length; i++) dLogits[i] += g[i] / temperature;
    }
  }
  /** Adds `dLastHidden` to the cotangent of the state it applies to. */
  const inject = (d: Float64Array): void => {
    const dh = options.dLastHidden;
    if (!dh) return;
    for (let i = 0; i < n * H; i++) {
      d[i] += dh[i];
      loss += state[i] * dh[i];
    }
  };

  // LM head: logits = last · lmHeadᵀ.
  const head = matmulBackwardRef(dLogits, last, w.lmHead, [n, V, H]);
  const dLast = head.dx;
  if (hiddenLayer === undefined) inject(dLast);
  // Final norm.
  const fin = rmsNormBackwardRef(dLast, t.hFinal, w.norm, { d: H, eps });
  let dh = fin.dx;
  if (full) grads.set(name.norm, fin.dw);

  const balanceCoef = options.balanceCoef ?? model.adapters?.hilo?.balanceCoef ?? 0;
  const balanceStats = options.balanceStats;
  if (balanceStats !== undefined && balanceStats.length !== t.layers.length) {
    throw new RangeError(
      `Cannot run the backward: option "balanceStats" must hold one entry per layer ` +
        `(${t.layers.length}): current length is ${balanceStats.length}`,
    );
  }
  let balanceLoss = 0;
  t.layers.forEach((layer, l) => {
    balanceLoss += cpuBalanceLoss(layer, mask, balanceStats?.[l]).loss;
  });
  loss += balanceCoef * balanceLoss;
  for (let l = w.layers.length - 1; l >= 0; l--) {
    if (hiddenLayer === l) inject(dh);
    dh = cpuDecoderLayerBackward(dh, t.layers[l], {
      config: c,
      weights: w.layers[l],
      layer: l,
      rows: B,
      tokens: T,
      positions,
      mask,
      full,
      grads,
      balanceCoef,
      balanceStats: balanceStats?.[l],
    });
  }

  if (full) {
    const dEmbed = embeddingBackwardRef(dh, ids, { vocab: V, h: H });
    if (w.lmHead === w.embedTokens) {
      for (let j = 0; j < dEmbed.length; j++) dEmbed[j] += head.dw[j];
    } else {
      grads.set(name.lmHead, head.dw);
    }
    grads.set(name.embedTokens, dEmbed);
  }
  return { loss, balanceLoss, logits: t.logits, lastHidden: state, logprobs, entropy, grads };
}
