/**
 * The CPU backend: the Qwen3 forward pass composed from the kernels' float64 references, for
 * machines without a WebGPU adapter and as the independent check of the WGSL path.
 *
 * @module
 */
import { attentionRef } from "../kernels/attention/attention_ref.ts";
import { embeddingRef } from "../kernels/embedding/embedding_ref.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { matmulRef } from "../kernels/matmul/matmul_ref.ts";
import { rmsNormRef } from "../kernels/rms_norm/rms_norm_ref.ts";
import { ropeRef } from "../kernels/rope/rope_ref.ts";
import { swigluRef } from "../kernels/swiglu/swiglu_ref.ts";
import type { Qwen3Config } from "./config.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import type { ForwardOutput, Qwen3Model, TokenLogprobsOutput } from "./model.ts";
import type { Qwen3Weights } from "./weights.ts";

interface CpuActivations {
  batch: PackedBatch;
  /** Hidden states as HF returns them (float64). */
  hidden: Float64Array[];
}

/**
 * A Qwen3 model running on the CPU in float64 with the reference ops (slow: for small models,
 * tests and machines without WebGPU).
 *
 * @example Run the fixture model on the CPU
 * ```ts
 * import { readQwen3Config } from "./config.ts";
 * import { loadQwen3Weights } from "./weights.ts";
 * import { CpuQwen3 } from "./qwen3_cpu.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const model = new CpuQwen3(config, await loadQwen3Weights(dir, config));
 * const { logits } = await model.forward({ inputIds: [[1, 2, 3]] });
 * console.log(logits.length); // 3 * 384
 * ```
 */
export class CpuQwen3 implements Qwen3Model {
  /** The model config. */
  readonly config: Qwen3Config;
  /** Always `"cpu"`. */
  readonly backend = "cpu" as const;
  /** Always `"cpu (float64 reference ops)"`. */
  readonly device = "cpu (float64 reference ops)";
  #weights: Qwen3Weights;

  /**
   * Wraps loaded weights.
   *
   * @param config The model config.
   * @param weights The weights (float32, used as float64).
   */
  constructor(config: Qwen3Config, weights: Qwen3Weights) {
    this.config = config;
    this.#weights = weights;
  }

  /**
   * Runs the model over a batch.
   *
   * @param input The batch.
   * @returns Logits and, when asked, hidden states.
   */
  forward(input: ForwardInput): Promise<ForwardOutput> {
    try {
      const acts = this.#run(input);
      const last = acts.hidden[acts.hidden.length - 1];
      const n = acts.batch.batch * acts.batch.seqLen;
      const logits = matmulRef(last, this.#weights.lmHead, [
        n,
        this.config.vocabSize,
        this.config.hiddenSize,
      ]);
      return Promise.resolve({
        logits: Float32Array.from(logits),
        hiddenStates: input.outputHiddenStates
          ? acts.hidden.map((h) => Float32Array.from(h))
          : undefined,
        batch: acts.batch.batch,
        seqLen: acts.batch.seqLen,
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Log-probability of each next token.
   *
   * @param input The batch.
   * @returns `[batch, seqLen − 1]` log-probs.
   */
  tokenLogprobs(input: ForwardInput): Promise<TokenLogprobsOutput> {
    try {
      const acts = this.#run(input);
      const { batch, seqLen, targets } = acts.batch;
      const last = acts.hidden[acts.hidden.length - 1];
      const v = this.config.vocabSize;
      const logits = matmulRef(last, this.#weights.lmHead, [
        batch * seqLen,
        v,
        this.config.hiddenSize,
      ]);
      const { logprobs } = logprobRef(logits, targets, v);
      return Promise.resolve({
        logprobs: dropLastPosition(logprobs, batch, seqLen),
        lastHidden: input.outputHiddenStates ? Float32Array.from(last) : undefined,
        batch,
        seqLen,
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Nothing to free on the CPU. */
  dispose(): void {}

  #run(input: ForwardInput): CpuActivations {
    const c = this.config;
    const w = this.#weights;
    const batch = packBatch(input, c);
    const n = batch.batch * batch.seqLen;
    const [hsz, hq, hkv, d, inter] = [
      c.hiddenSize,
      c.numAttentionHeads,
      c.numKeyValueHeads,
      c.headDim,
      c.intermediateSize,
    ];
    const eps = c.rmsNormEps;
    let h = embeddingRef(batch.ids, w.embedTokens, hsz);
    const hidden: Float64Array[] = [h];
    for (const layer of w.layers) {
      let x = rmsNormRef(h, layer.inputLayernorm, { d: hsz, eps });
      let q = matmulRef(x, layer.qProj, [n, hq * d, hsz]);
      let k = matmulRef(x, layer.kProj, [n, hkv * d, hsz]);
      const v = matmulRef(x, layer.vProj, [n, hkv * d, hsz]);
      q = ropeRef(rmsNormRef(q, layer.qNorm, { d, eps }), batch.positions, {
        d,
        heads: hq,
        theta: c.ropeTheta,
      });
      k = ropeRef(rmsNormRef(k, layer.kNorm, { d, eps }), batch.positions, {
        d,
        heads: hkv,
        theta: c.ropeTheta,
      });
      const att = attentionRef(q, k, v, {
        b: batch.batch,
        tq: batch.seqLen,
        s: batch.seqLen,
        hq,
        hkv,
        d,
        mask: batch.mask,
      });
      h = matmulRef(att, layer.oProj, [n, hsz, hq * d], { accumulate: h });
      x = rmsNormRef(h, layer.postAttentionLayernorm, { d: hsz, eps });
      const act = swigluRef(
        matmulRef(x, layer.gateProj, [n, inter, hsz]),
        matmulRef(x, layer.upProj, [n, inter, hsz]),
      );
      h = matmulRef(act, layer.downProj, [n, hsz, inter], { accumulate: h });
      hidden.push(h);
    }
    hidden[hidden.length - 1] = rmsNormRef(h, w.norm, { d: hsz, eps });
    return { batch, hidden };
  }
}

/**
 * `[batch, seqLen]` per-position values → `[batch, seqLen − 1]` (the last position has no
 * next token).
 */
export function dropLastPosition(
  values: ArrayLike<number>,
  batch: number,
  seqLen: number,
): Float32Array {
  const out = new Float32Array(batch * (seqLen - 1));
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seqLen; t++) out[b * (seqLen - 1) + t] = values[b * seqLen + t];
  }
  return out;
}
