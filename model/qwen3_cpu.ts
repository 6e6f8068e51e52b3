/**
 * The CPU backend: the Qwen3 forward pass composed from the kernels' float64 references, for
 * machines without a WebGPU adapter and as the independent check of the WGSL path. It also runs
 * LoRA adapters (see {@linkcode CpuQwen3.setAdapters}) and records every activation
 * ({@linkcode CpuQwen3.trace}) for the exact float64 backward in `qwen3_cpu_backward.ts`.
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
import { checkLoraFits, type Lora, type LoraModule } from "../adapters/lora.ts";
import { loraModuleName, type LoraTarget } from "../adapters/lora_config.ts";
import type { Qwen3Config } from "./config.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import type { ForwardOutput, Qwen3Model, TokenLogprobsOutput } from "./model.ts";
import type { Qwen3Weights } from "./weights.ts";
import { mulberry32 } from "../internal/random.ts";

/** What the LoRA branch of one projection computed, for the backward. */
export interface CpuLoraTrace {
  /** The adapter. */
  module: LoraModule;
  /** The branch's input after dropout `[tokens, in]` (the projection's input without dropout). */
  input: Float64Array;
  /** Inverted-dropout factors `[tokens, in]` (0 or `1/(1−p)`); absent without dropout. */
  dropoutMask?: Float64Array;
  /** `input · A_eᵀ` `[tokens, r_e]` of each expert. */
  down: Float64Array[];
}

/** Activations of one decoder layer (all `[tokens, …]`, float64). */
export interface CpuLayerTrace {
  /** Residual stream entering the layer `[tokens, hidden]`. */
  hIn: Float64Array;
  /** `input_layernorm(hIn)`. */
  x1: Float64Array;
  /** q_proj output before q_norm `[tokens, heads·headDim]`. */
  qRaw: Float64Array;
  /** k_proj output before k_norm `[tokens, kvHeads·headDim]`. */
  kRaw: Float64Array;
  /** v_proj output. */
  v: Float64Array;
  /** Queries after q_norm and RoPE. */
  q: Float64Array;
  /** Keys after k_norm and RoPE. */
  k: Float64Array;
  /** Attention output `[tokens, heads·headDim]` (o_proj's input). */
  att: Float64Array;
  /** Residual stream after attention `[tokens, hidden]`. */
  hMid: Float64Array;
  /** `post_attention_layernorm(hMid)`. */
  x2: Float64Array;
  /** gate_proj output `[tokens, intermediate]`. */
  gate: Float64Array;
  /** up_proj output. */
  up: Float64Array;
  /** `silu(gate) · up` (down_proj's input). */
  act: Float64Array;
  /** The LoRA branches run in this layer, by projection. */
  lora: Partial<Record<LoraTarget, CpuLoraTrace>>;
}

/** Everything one forward pass computed, float64. */
export interface CpuForwardTrace {
  /** The validated batch. */
  batch: PackedBatch;
  /** Per-layer activations. */
  layers: CpuLayerTrace[];
  /** Residual stream after the last layer, before the final norm `[tokens, hidden]`. */
  hFinal: Float64Array;
  /** Hidden states as HF returns them; the last is the final-norm output (`lastHidden`). */
  hidden: Float64Array[];
  /** Logits `[tokens, vocab]`. */
  logits: Float64Array;
}

/** Options of {@linkcode CpuQwen3.trace}. */
export interface CpuTraceOptions {
  /**
   * Training mode: apply the adapters' `lora_dropout` with masks drawn from a mulberry32 stream
   * with this seed (module by module in forward order, row-major over `[tokens, in]`); the same
   * seed gives the same masks. Default: no dropout (evaluation, as `forward`).
   */
  dropoutSeed?: number;
}

/**
 * A Qwen3 model running on the CPU in float64 with the reference ops (slow: for small models,
 * tests and machines without WebGPU), optionally with LoRA adapters.
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
  #lora: Lora | null = null;
  #loraByName = new Map<string, LoraModule>();

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

  /** The base weights (shared, not copied: changing them changes the model). */
  get weights(): Qwen3Weights {
    return this.#weights;
  }

  /** The adapters every pass applies, or null. */
  get adapters(): Lora | null {
    return this.#lora;
  }

  /**
   * Applies LoRA adapters to every later pass (`null` removes them). The adapters are used by
   * reference, so an optimizer updating their arrays in place is seen by the next pass. Each
   * adapted projection computes `y = x·Wᵀ + Σ_e scale_e·(x·A_eᵀ)·B_eᵀ`.
   *
   * @param lora The adapters, or null.
   * @throws {RangeError} If the adapters do not fit this model (see `checkLoraFits`).
   *
   * @example Apply the fixture's PEFT adapter
   * ```ts ignore
   * import { loadPeftAdapter } from "../adapters/peft_io.ts";
   * declare const model: import("./qwen3_cpu.ts").CpuQwen3;
   * model.setAdapters(await loadPeftAdapter("tests/fixtures/qwen3-tiny/adapter", model.config));
   * ```
   */
  setAdapters(lora: Lora | null): void {
    if (lora !== null) checkLoraFits(lora, this.config);
    this.#lora = lora;
    this.#loraByName = new Map(lora?.modules.map((m) => [m.name, m]) ?? []);
  }

  /**
   * Runs the model over a batch (adapters applied, no dropout).
   *
   * @param input The batch.
   * @returns Logits and, when asked, hidden states.
   */
  forward(input: ForwardInput): Promise<ForwardOutput> {
    try {
      const t = this.trace(input);
      return Promise.resolve({
        logits: Float32Array.from(t.logits),
        hiddenStates: input.outputHiddenStates
          ? t.hidden.map((h) => Float32Array.from(h))
          : undefined,
        batch: t.batch.batch,
        seqLen: t.batch.seqLen,
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
      const t = this.trace(input);
      const { batch, seqLen, targets } = t.batch;
      const { logprobs } = logprobRef(t.logits, targets, this.config.vocabSize);
      const last = t.hidden[t.hidden.length - 1];
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

  /**
   * Runs the forward pass and keeps every activation (the backward's input). The order of ops is
   * the WebGPU backend's: embedding; per layer input norm, q/k/v projections, q/k norms, RoPE,
   * attention, o projection added to the residual, post-attention norm, gate/up projections,
   * SwiGLU, down projection added to the residual; final norm; LM head.
   *
   * @param input The batch.
   * @param options Training-mode dropout.
   * @returns The activations.
   *
   * @example Trace a short sequence
   * ```ts ignore
   * declare const model: import("./qwen3_cpu.ts").CpuQwen3;
   * const t = model.trace({ inputIds: [[1, 2, 3]] });
   * console.log(t.layers.length, t.logits.length);
   * ```
   */
  trace(input: ForwardInput, options: CpuTraceOptions = {}): CpuForwardTrace {
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
    const p = this.#lora?.config.loraDropout ?? 0;
    const rand = options.dropoutSeed !== undefined && p > 0
      ? mulberry32(options.dropoutSeed)
      : null;

    let h = embeddingRef(batch.ids, w.embedTokens, hsz);
    const hidden: Float64Array[] = [h];
    const layers: CpuLayerTrace[] = [];
    w.layers.forEach((lw, l) => {
      const lora: CpuLayerTrace["lora"] = {};
      /** `[accumulate +] x·Wᵀ + Σ_e scale_e·(drop(x)·A_eᵀ)·B_eᵀ`. */
      const linear = (
        x: Float64Array,
        weight: Float32Array,
        target: LoraTarget,
        shape: [number, number],
        accumulate?: Float64Array,
      ): Float64Array => {
        const [out, inn] = shape;
        let y = matmulRef(x, weight, [n, out, inn], { accumulate });
        const m = this.#loraByName.get(loraModuleName(l, target));
        if (!m) return y;
        let xd = x;
        let dropoutMask: Float64Array | undefined;
        if (rand) {
          dropoutMask = new Float64Array(x.length);
          xd = new Float64Array(x.length);
          for (let i = 0; i < x.length; i++) {
            dropoutMask[i] = rand() < p ? 0 : 1 / (1 - p);
            xd[i] = x[i] * dropoutMask[i];
          }
        }
        const down: Float64Array[] = [];
        for (const e of m.experts) {
          const u = matmulRef(xd, e.a, [n, e.r, inn]);
          down.push(u);
          y = matmulRef(u, e.b, [n, out, e.r], { alpha: e.scale, accumulate: y });
        }
        lora[target] = { module: m, input: xd, dropoutMask, down };
        return y;
      };
      const hIn = h;
      const x1 = rmsNormRef(h, lw.inputLayernorm, { d: hsz, eps });
      const qRaw = linear(x1, lw.qProj, "q_proj", [hq * d, hsz]);
      const kRaw = linear(x1, lw.kProj, "k_proj", [hkv * d, hsz]);
      const v = linear(x1, lw.vProj, "v_proj", [hkv * d, hsz]);
      const rope = { d, theta: c.ropeTheta };
      const q = ropeRef(rmsNormRef(qRaw, lw.qNorm, { d, eps }), batch.positions, {
        ...rope,
        heads: hq,
      });
      const k = ropeRef(rmsNormRef(kRaw, lw.kNorm, { d, eps }), batch.positions, {
        ...rope,
        heads: hkv,
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
      const hMid = linear(att, lw.oProj, "o_proj", [hsz, hq * d], h);
      const x2 = rmsNormRef(hMid, lw.postAttentionLayernorm, { d: hsz, eps });
      const gate = linear(x2, lw.gateProj, "gate_proj", [inter, hsz]);
      const up = linear(x2, lw.upProj, "up_proj", [inter, hsz]);
      const act = swigluRef(gate, up);
      h = linear(act, lw.downProj, "down_proj", [hsz, inter], hMid);
      hidden.push(h);
      layers.push({ hIn, x1, qRaw, kRaw, v, q, k, att, hMid, x2, gate, up, act, lora });
    });
    const hFinal = h;
    const last = rmsNormRef(h, w.norm, { d: hsz, eps });
    hidden[hidden.length - 1] = last;
    const logits = matmulRef(last, w.lmHead, [n, c.vocabSize, hsz]);
    return { batch, layers, hFinal, hidden, logits };
  }
}

/**
 * `[batch, seqLen]` per-position values → `[batch, seqLen − 1]` (the last position has no
 * next token).
 *
 * @param values `[batch, seqLen]` values.
 * @param batch Number of sequences.
 * @param seqLen Tokens per sequence.
 * @returns The values without each sequence's last position.
 *
 * @example Two sequences of three
 * ```ts
 * import { dropLastPosition } from "./qwen3_cpu.ts";
 * console.log(dropLastPosition([1, 2, 3, 4, 5, 6], 2, 3)); // Float32Array [1, 2, 4, 5]
 * ```
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
