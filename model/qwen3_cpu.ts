/**
 * The CPU backend: the Qwen3 forward pass composed from the kernels' float64 references, for
 * machines without a WebGPU adapter and as the independent check of the WGSL path. It also runs
 * LoRA adapters (see {@linkcode CpuQwen3.setAdapters}) and records every activation
 * ({@linkcode CpuQwen3.trace}) for the exact float64 backward in `qwen3_cpu_backward.ts`.
 *
 * @module
 */
import { embeddingRef } from "../kernels/embedding/embedding_ref.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { matmulRef } from "../kernels/matmul/matmul_ref.ts";
import { rmsNormRef } from "../kernels/rms_norm/rms_norm_ref.ts";
import { checkLoraFits, type Lora, type LoraModule } from "./adapter_types.ts";
import type { Qwen3Config } from "./config.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import type { ForwardOutput, Qwen3Model, TokenLogprobsOutput } from "./model.ts";
import {
  cpuDecoderLayer,
  type CpuKvCache,
  type CpuLayerDropout,
  type CpuLayerOptions,
  type CpuLayerTrace,
  type LayerHookPoint,
  sequenceDropoutKey,
} from "./qwen3_cpu_layer.ts";
import type { Qwen3Weights } from "./weights.ts";

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
   * Training mode: apply the adapters' `lora_dropout` with masks from a counter-based hash of
   * (this seed, the sequence's real tokens, layer, projection, the token's index among them,
   * feature): the same seed gives the same masks, and a sequence's masks do not depend on the
   * batch it is in or its padding. Default: no dropout (evaluation, as `forward`).
   */
  dropoutSeed?: number;
  /** Called with the hidden state at each named point of each layer asked for. */
  capture?: Partial<Record<LayerHookPoint, (layer: number, value: Float64Array) => void>>;
}

/**
 * Options of {@linkcode CpuQwen3.decode}.
 *
 * @example Usage
 * ```ts ignore
 * import type { CpuDecodeOptions } from "./qwen3_cpu.ts";
 * declare const cache: import("./qwen3_cpu_layer.ts").CpuKvCache;
 * const options: CpuDecodeOptions = { cache, rows: [0], start: [0], logitsAt: [2] };
 * ```
 */
export interface CpuDecodeOptions {
  /** The cache: keys and values of earlier positions are read, the new ones written. */
  cache: CpuKvCache;
  /** The cache row of each input row. */
  rows: readonly number[];
  /** Position of each row's first new token (the number of tokens already in its cache row). */
  start: readonly number[];
  /** Index, within each row's new tokens, of the token whose next-token logits to return. */
  logitsAt: readonly number[];
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
      const { logprobs, entropy } = logprobRef(t.logits, targets, this.config.vocabSize);
      for (let i = 0; i < entropy.length; i++) if (targets[i] < 0) entropy[i] = 0;
      const last = t.hidden[t.hidden.length - 1];
      return Promise.resolve({
        logprobs: dropLastPosition(logprobs, batch, seqLen),
        entropy: dropLastPosition(entropy, batch, seqLen),
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
    const p = this.#lora?.config.loraDropout ?? 0;
    let dropout: CpuLayerDropout | undefined;
    if (options.dropoutSeed !== undefined && p > 0) {
      const T = batch.seqLen;
      const rowKeys = Array.from(
        { length: batch.batch },
        (_, b) =>
          sequenceDropoutKey(
            batch.ids.subarray(b * T, (b + 1) * T),
            batch.mask.subarray(b * T, (b + 1) * T),
          ),
      );
      // Index among the row's real tokens: the same with left, right or no padding.
      const tokenIndex = new Uint32Array(n);
      for (let b = 0; b < batch.batch; b++) {
        let k = 0;
        for (let t = 0; t < T; t++) {
          tokenIndex[b * T + t] = k;
          if (batch.mask[b * T + t]) k++;
        }
      }
      dropout = { p, seed: options.dropoutSeed, rowKeys, tokenIndex };
    }
    let h = embeddingRef(batch.ids, w.embedTokens, c.hiddenSize);
    const hidden: Float64Array[] = [h];
    const layers: CpuLayerTrace[] = [];
    w.layers.forEach((weights, layer) => {
      const t = cpuDecoderLayer(h, {
        ...this.#layerOptions(weights, layer, options.capture),
        rows: batch.batch,
        tokens: batch.seqLen,
        positions: batch.positions,
        mask: batch.mask,
        dropout,
      });
      layers.push(t);
      h = t.hOut;
      hidden.push(h);
    });
    const hFinal = h;
    const last = rmsNormRef(h, w.norm, { d: c.hiddenSize, eps: c.rmsNormEps });
    hidden[hidden.length - 1] = last;
    const logits = matmulRef(last, w.lmHead, [n, c.vocabSize, c.hiddenSize]);
    return { batch, layers, hFinal, hidden, logits };
  }

  /**
   * Runs new tokens of some sequences through the model with a KV cache (incremental decoding):
   * each row's keys and values go to its cache row at their positions, and its queries attend to
   * everything cached before them. Row `r`'s tokens sit at positions `start[r] …`. The logits of
   * a token equal those of a full forward over the sequence up to it (same float64 ops per row).
   *
   * @param tokens The new tokens, the same count per row (pad the shorter rows; padded tokens
   * write slots that later tokens overwrite).
   * @param options The cache, its rows, the start positions and which token's logits to return.
   * @returns Logits `[rows, vocab]` of the `logitsAt` token of each row.
   * @throws {RangeError} If a row's tokens do not fit its cache row.
   *
   * @example Prefill a prompt, then decode one token
   * ```ts
   * import { loadModel } from "./load_model.ts";
   * import { CpuQwen3 } from "./qwen3_cpu.ts";
   * import { CpuKvCache } from "./qwen3_cpu_layer.ts";
   * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
   * if (!(model instanceof CpuQwen3)) throw new Error("CPU model expected");
   * const cache = new CpuKvCache(model.config, { rows: 1, capacity: 8 });
   * model.decode([[1, 2, 3]], { cache, rows: [0], start: [0], logitsAt: [2] });
   * const logits = model.decode([[4]], { cache, rows: [0], start: [3], logitsAt: [0] });
   * console.log(logits.length === model.config.vocabSize); // true
   * ```
   */
  decode(tokens: readonly (readonly number[])[], options: CpuDecodeOptions): Float64Array {
    const c = this.config;
    const w = this.#weights;
    const rows = tokens.length;
    const T = rows > 0 ? tokens[0].length : 0;
    const { cache } = options;
    const ids = new Int32Array(rows * T);
    const positions = new Uint32Array(rows * T);
    for (let r = 0; r < rows; r++) {
      if (tokens[r].length !== T || options.start[r] + T > cache.capacity) {
        throw new RangeError(
          `Cannot decode: row ${r} must have ${T} tokens from position ${
            options.start[r]
          } within ` +
            `the cache's ${cache.capacity} slots: current length is ${tokens[r].length}`,
        );
      }
      for (let t = 0; t < T; t++) {
        ids[r * T + t] = tokens[r][t];
        positions[r * T + t] = options.start[r] + t;
      }
    }
    let h = embeddingRef(ids, w.embedTokens, c.hiddenSize);
    w.layers.forEach((weights, layer) => {
      h = cpuDecoderLayer(h, {
        ...this.#layerOptions(weights, layer),
        rows,
        tokens: T,
        positions,
        cache: {
          k: cache.k[layer],
          v: cache.v[layer],
          capacity: cache.capacity,
          rows: options.rows,
        },
      }).hOut;
    });
    const H = c.hiddenSize;
    const picked = new Float64Array(rows * H);
    for (let r = 0; r < rows; r++) {
      const at = r * T + options.logitsAt[r];
      picked.set(h.subarray(at * H, (at + 1) * H), r * H);
    }
    const last = rmsNormRef(picked, w.norm, { d: H, eps: c.rmsNormEps });
    return matmulRef(last, w.lmHead, [rows, c.vocabSize, H]);
  }

  #layerOptions(
    weights: Qwen3Weights["layers"][number],
    layer: number,
    capture?: CpuTraceOptions["capture"],
  ): Pick<CpuLayerOptions, "config" | "weights" | "layer" | "adapters" | "capture"> {
    let hooks: CpuLayerOptions["capture"];
    if (capture) {
      hooks = {};
      for (
        const [point, f] of Object.entries(capture) as [LayerHookPoint, typeof capture.output][]
      ) {
        if (f) hooks[point] = (value) => f(layer, value);
      }
    }
    return { config: this.config, weights, layer, adapters: this.#loraByName, capture: hooks };
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
