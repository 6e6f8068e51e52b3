/**
 * One Qwen3 decoder layer on the CPU in float64, with LoRA experts: the single layer function
 * ({@linkcode cpuDecoderLayer}) that the CPU forward, the backward's trace and KV-cache
 * generation all run, and its exact backward ({@linkcode cpuDecoderLayerBackward}). Named hook
 * points ({@linkcode LayerHookPoint}) let a caller capture a hidden state inside a layer; the
 * backward takes the cotangent at the layer's output, where a loss on that output injects its own.
 *
 * @example Run layer 0 of the fixture model over three tokens
 * ```ts
 * import { readQwen3Config } from "./config.ts";
 * import { loadQwen3Weights } from "./weights.ts";
 * import { cpuDecoderLayer } from "./qwen3_cpu_layer.ts";
 * import { embeddingRef } from "../kernels/embedding/embedding_ref.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const weights = await loadQwen3Weights(dir, config);
 * const h = embeddingRef([1, 2, 3], weights.embedTokens, config.hiddenSize);
 * const t = cpuDecoderLayer(h, {
 *   config, weights: weights.layers[0], layer: 0, rows: 1, tokens: 3,
 *   positions: new Uint32Array([0, 1, 2]),
 * });
 * console.log(t.hOut.length === h.length); // true
 * ```
 *
 * @module
 */
import { attentionRef } from "../kernels/attention/attention_ref.ts";
import { attentionBackwardRef } from "../kernels/attention/attention_backward_ref.ts";
import { matmulBackwardRef } from "../kernels/matmul/matmul_backward_ref.ts";
import { matmulRef } from "../kernels/matmul/matmul_ref.ts";
import { rmsNormBackwardRef } from "../kernels/rms_norm/rms_norm_backward_ref.ts";
import { rmsNormRef } from "../kernels/rms_norm/rms_norm_ref.ts";
import { ropeBackwardRef } from "../kernels/rope/rope_backward_ref.ts";
import { ropeRef } from "../kernels/rope/rope_ref.ts";
import { swigluBackwardRef } from "../kernels/swiglu/swiglu_backward_ref.ts";
import { swigluRef } from "../kernels/swiglu/swiglu_ref.ts";
import { fmix32, mixNumber } from "../internal/random.ts";
import { moeRouteRef } from "../kernels/moe_route/moe_route_ref.ts";
import { type LoraModule, loraTensorName, routerTensorName } from "./adapter_types.ts";
import type { Qwen3Config } from "./config.ts";
import {
  LAYER_TENSORS,
  layerTensorName,
  PROJECTION_FIELD,
  projectionModuleName,
  type ProjectionName,
  PROJECTIONS,
} from "./tensor_table.ts";
import type { Qwen3LayerWeights } from "./weights.ts";

/**
 * Named points inside a decoder layer (the same names as the WebGPU layer's hooks):
 * `"attention"` the residual stream after the attention block (`h + o_proj(attention)`),
 * `"mlp"` the MLP block's output (`down_proj(…)`, before the residual add), `"output"` the layer's
 * output (HF's `hidden_states[l + 1]`; the backward injects a cotangent here).
 *
 * @example Usage
 * ```ts
 * import type { LayerHookPoint } from "./qwen3_cpu_layer.ts";
 * const point: LayerHookPoint = "output";
 * ```
 */
export type LayerHookPoint = "attention" | "mlp" | "output";

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
  /** With a router: what it computed (each `[tokens, E]`) and its input. */
  route?: {
    /** The router's input: the projection's input without dropout `[tokens, in]`. */
    x: Float64Array;
    /** `softmax(x·W_rᵀ)`. */
    probs: Float64Array;
    /** Renormalised gates, 0 outside the selected experts. */
    gates: Float64Array;
    /** 1 where the expert is selected. */
    selected: Uint8Array;
  };
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
  /** Residual stream after attention `[tokens, hidden]` (hook point `"attention"`). */
  hMid: Float64Array;
  /** `post_attention_layernorm(hMid)`. */
  x2: Float64Array;
  /** gate_proj output `[tokens, intermediate]`. */
  gate: Float64Array;
  /** up_proj output. */
  up: Float64Array;
  /** `silu(gate) · up` (down_proj's input). */
  act: Float64Array;
  /** The layer's output `[tokens, hidden]` (hook point `"output"`). */
  hOut: Float64Array;
  /** The LoRA branches run in this layer, by projection. */
  lora: Partial<Record<ProjectionName, CpuLoraTrace>>;
}

/**
 * Training-mode LoRA dropout of a layer call. Each mask element is a hash of (seed, the row's
 * key, layer, projection, the token's index among its row's real tokens, feature), so a
 * sequence's masks depend only on the seed and the sequence (its key), never on its
 * batch-mates, its row, its padding or the number of workers.
 */
export interface CpuLayerDropout {
  /** Probability of zeroing an element. */
  p: number;
  /** The seed. */
  seed: number;
  /** One key per row (see {@linkcode sequenceDropoutKey}). */
  rowKeys: ArrayLike<number>;
  /**
   * Each token's index among the real tokens of its row `[rows, tokens]` (padding may take any
   * value); default the token's position.
   */
  tokenIndex?: ArrayLike<number>;
}

/**
 * A key/value cache for {@linkcode cpuDecoderLayer}: per layer and row, `[capacity, kvHeads ·
 * headDim]` keys (after k_norm and RoPE) and values, slot = token position.
 *
 * @example A cache for two sequences of up to 16 tokens
 * ```ts
 * import { CpuKvCache } from "./qwen3_cpu_layer.ts";
 * const cache = new CpuKvCache({ numHiddenLayers: 2, numKeyValueHeads: 1, headDim: 4 }, {
 *   rows: 2, capacity: 16,
 * });
 * console.log(cache.k[1][0].length); // 64
 * ```
 */
export class CpuKvCache {
  /** Slots per row. */
  readonly capacity: number;
  /** Keys `[layer][row]`, each `[capacity, kvHeads·headDim]`. */
  readonly k: Float64Array[][];
  /** Values, as `k`. */
  readonly v: Float64Array[][];

  /**
   * Allocates the cache.
   *
   * @param config The model's layer count and key/value width.
   * @param options Rows and slots per row.
   */
  constructor(
    config: Pick<Qwen3Config, "numHiddenLayers" | "numKeyValueHeads" | "headDim">,
    options: { rows: number; capacity: number },
  ) {
    const { rows, capacity } = options;
    if (
      !Number.isSafeInteger(rows) || rows < 1 || !Number.isSafeInteger(capacity) || capacity < 1
    ) {
      throw new RangeError(
        `Cannot allocate a CPU KV cache: rows and capacity must be positive integers: current ` +
          `values are ${rows} and ${capacity}`,
      );
    }
    const width = config.numKeyValueHeads * config.headDim;
    const make = () =>
      Array.from(
        { length: config.numHiddenLayers },
        () => Array.from({ length: rows }, () => new Float64Array(capacity * width)),
      );
    this.capacity = capacity;
    this.k = make();
    this.v = make();
  }
}

/**
 * Options of {@linkcode cpuDecoderLayer}.
 *
 * @example Usage
 * ```ts ignore
 * import type { CpuLayerOptions } from "./qwen3_cpu_layer.ts";
 * declare const base: Omit<CpuLayerOptions, "capture">;
 * const options: CpuLayerOptions = { ...base, capture: { attention: (h) => console.log(h[0]) } };
 * ```
 */
export interface CpuLayerOptions {
  /** The model config. */
  config: Qwen3Config;
  /** The layer's weights. */
  weights: Qwen3LayerWeights;
  /** The layer index (adapter names, dropout keys). */
  layer: number;
  /** Adapters by module name (`model.layers.0.self_attn.q_proj`); default none. */
  adapters?: ReadonlyMap<string, LoraModule>;
  /** Rows (sequences) of the call. */
  rows: number;
  /** Tokens per row. */
  tokens: number;
  /** Position of each token `[rows, tokens]`. */
  positions: ArrayLike<number>;
  /** Key mask `[rows, tokens]` for in-batch attention (1 = real token); default all real. */
  mask?: ArrayLike<number>;
  /**
   * Attend through a KV cache instead of in-batch: each row's keys and values are written at
   * their positions and its queries see the cache's slots up to their own position.
   */
  cache?: { k: Float64Array[]; v: Float64Array[]; capacity: number; rows: readonly number[] };
  /** Training-mode LoRA dropout; default none. */
  dropout?: CpuLayerDropout;
  /** Called with the hidden state at each named point asked for. */
  capture?: Partial<Record<LayerHookPoint, (value: Float64Array) => void>>;
}

/**
 * The dropout key of a sequence: a hash of its real tokens (those whose mask is 1), so the same
 * sequence gets the same masks in any batch.
 *
 * @param ids The row's token ids.
 * @param mask The row's attention mask; default all 1.
 * @returns A uint32 key.
 *
 * @example Padding does not change the key
 * ```ts
 * import { sequenceDropoutKey } from "./qwen3_cpu_layer.ts";
 * console.log(sequenceDropoutKey([5, 6]) === sequenceDropoutKey([5, 6, 0], [1, 1, 0])); // true
 * ```
 */
export function sequenceDropoutKey(ids: ArrayLike<number>, mask?: ArrayLike<number>): number {
  let key = 0x9e3779b9;
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    if (mask !== undefined && !mask[i]) continue;
    key = mixNumber(key, ids[i]);
    n++;
  }
  return mixNumber(key, n);
}

/** `[accumulate +] x·Wᵀ + Σ_e scale_e·(drop(x)·A_eᵀ)·B_eᵀ`, recording the LoRA branch. */
function linear(
  x: Float64Array,
  projection: ProjectionName,
  o: CpuLayerOptions,
  lora: CpuLayerTrace["lora"] | null,
  accumulate?: Float64Array,
): Float64Array {
  const n = o.rows * o.tokens;
  const weight = o.weights[PROJECTION_FIELD[projection]];
  const inn = x.length / n;
  const out = weight.length / inn;
  let y = matmulRef(x, weight, [n, out, inn], { accumulate });
  const m = o.adapters?.get(projectionModuleName(o.layer, projection));
  if (!m) return y;
  let xd = x;
  let dropoutMask: Float64Array | undefined;
  const drop = o.dropout;
  if (drop !== undefined && drop.p > 0) {
    dropoutMask = new Float64Array(x.length);
    xd = new Float64Array(x.length);
    const keep = 1 / (1 - drop.p);
    const base = mixNumber(mixNumber(drop.seed, o.layer), PROJECTIONS.indexOf(projection));
    for (let r = 0; r < o.rows; r++) {
      const rowBase = mixNumber(base, drop.rowKeys[r]);
      for (let t = 0; t < o.tokens; t++) {
        const token = r * o.tokens + t;
        const tokenBase = mixNumber(rowBase, (drop.tokenIndex ?? o.positions)[token]);
        for (let i = 0; i < inn; i++) {
          const j = token * inn + i;
          const u = fmix32((tokenBase ^ i) >>> 0) / 4294967296;
          dropoutMask[j] = u < drop.p ? 0 : keep;
          xd[j] = x[j] * dropoutMask[j];
        }
      }
    }
  }
  const down: Float64Array[] = [];
  let route: CpuLoraTrace["route"];
  const E = m.experts.length;
  if (m.router) {
    const logits = matmulRef(x, m.router.weight, [n, E, inn]);
    const { activation, topK, topP } = m.router;
    route = { x, ...moeRouteRef(logits, { experts: E, activation, topK, topP }) };
  }
  m.experts.forEach((e, i) => {
    const u = matmulRef(xd, e.a, [n, e.r, inn]);
    down.push(u);
    let ug = u;
    if (route) {
      // Gate each token's row: y += scale · (g_e ⊙ u)·Bᵀ.
      ug = new Float64Array(u.length);
      for (let t = 0; t < n; t++) {
        const g = route.gates[t * E + i];
        for (let j = 0; j < e.r; j++) ug[t * e.r + j] = g * u[t * e.r + j];
      }
    }
    y = matmulRef(ug, e.b, [n, out, e.r], { alpha: e.scale, accumulate: y });
  });
  if (lora) lora[projection] = { module: m, input: xd, dropoutMask, down, route };
  return y;
}

/**
 * HILO balance statistics of a layer, per routed projection (each has its own router):
 * `[count_0..count_{E−1}, psum_0..psum_{E−1}, N]` over N real tokens, as
 * `moeBalanceStatsRef` lays them out. Statistics of several rows of one micro-batch add up.
 */
export type CpuBalanceStats = Partial<Record<ProjectionName, Float64Array>>;

/** Result of {@linkcode cpuBalanceLoss}. */
export interface CpuBalanceLoss {
  /**
   * The layer's balance loss: `E · Σ_e f_e·P_e` of each routed projection, summed over them (0
   * when no projection of the layer has a router).
   */
  loss: number;
  /** `dloss/dprobs` `[tokens, E]` of each routed projection. */
  dProbs: Partial<Record<ProjectionName, Float64Array>>;
}

/**
 * The balance statistics of a layer's routed projections over its real tokens (mask 1), added to
 * `into` when given (the rows of one micro-batch, run one at a time, add up to the micro-batch's).
 *
 * @param trace The layer's activations.
 * @param mask Key mask `[rows·tokens]` (1 = real token); default all real.
 * @param into Statistics to add to.
 * @returns The statistics (`into` when given).
 *
 * @example A layer without routers has no statistics
 * ```ts ignore
 * import { cpuBalanceStats } from "./qwen3_cpu_layer.ts";
 * declare const trace: import("./qwen3_cpu_layer.ts").CpuLayerTrace;
 * console.log(Object.keys(cpuBalanceStats(trace)));
 * ```
 */
export function cpuBalanceStats(
  trace: CpuLayerTrace,
  mask?: ArrayLike<number>,
  into: CpuBalanceStats = {},
): CpuBalanceStats {
  for (const p of PROJECTIONS) {
    const lt = trace.lora[p];
    const r = lt?.route;
    if (!lt || !r) continue;
    const E = lt.module.experts.length;
    const s = into[p] ?? (into[p] = new Float64Array(2 * E + 1));
    if (s.length !== 2 * E + 1) {
      throw new RangeError(
        `Cannot add the balance statistics of "${lt.module.name}": they must have 2E + 1 = ` +
          `${2 * E + 1} values: current length is ${s.length}`,
      );
    }
    const n = r.probs.length / E;
    for (let t = 0; t < n; t++) {
      if (mask !== undefined && !mask[t]) continue;
      s[2 * E]++;
      for (let e = 0; e < E; e++) {
        s[e] += r.selected[t * E + e];
        s[E + e] += r.probs[t * E + e];
      }
    }
  }
  return into;
}

/**
 * HILO's load-balancing loss of one decoder layer, one term per routed projection in the form of
 * MoLA/AdaMoLE's `TopKMoeLayer.get_layer_loss` (zefang-liu/AdaMoLE `src/mole/layer.py`, after the
 * Switch Transformer): `E · Σ_e f_e·P_e` with `f_e = count_e / N` the share of the N real tokens
 * (mask 1) that selected expert e (non-differentiable; `Σ_e f_e = k` for top-k) and `P_e` the
 * mean router probability of e, summed over the layer's routed projections. The statistics are
 * those of the whole backward call (`stats`, e.g. summed over the rows of a micro-batch by
 * {@linkcode cpuBalanceStats}; default this trace's own). Its gradient reaches each router through
 * `P` only: `dloss/dp_{t,e} = E·count_e / N²` at this trace's real tokens.
 *
 * @param trace The layer's activations.
 * @param mask Key mask `[rows·tokens]` (1 = real token); default all real.
 * @param stats The micro-batch's statistics of this layer; default `cpuBalanceStats(trace, mask)`.
 * @returns The loss (from `stats`) and its gradient with respect to this trace's probabilities.
 * @throws {RangeError} If `stats` lacks a routed projection of the trace.
 *
 * @example A layer without routers has no balance loss
 * ```ts ignore
 * import { cpuBalanceLoss } from "./qwen3_cpu_layer.ts";
 * declare const trace: import("./qwen3_cpu_layer.ts").CpuLayerTrace;
 * console.log(cpuBalanceLoss(trace).loss);
 * ```
 */
export function cpuBalanceLoss(
  trace: CpuLayerTrace,
  mask?: ArrayLike<number>,
  stats?: CpuBalanceStats,
): CpuBalanceLoss {
  const all = stats ?? cpuBalanceStats(trace, mask);
  const dProbs: CpuBalanceLoss["dProbs"] = {};
  let loss = 0;
  for (const p of PROJECTIONS) {
    const lt = trace.lora[p];
    const r = lt?.route;
    if (!lt || !r) continue;
    const E = lt.module.experts.length;
    const s = all[p];
    if (s === undefined || s.length !== 2 * E + 1) {
      throw new RangeError(
        `Cannot compute the balance loss of "${lt.module.name}": its statistics must have ` +
          `2E + 1 = ${2 * E + 1} values: current value has ${s?.length ?? "none"}`,
      );
    }
    const N = s[2 * E];
    const d = new Float64Array(r.probs.length);
    dProbs[p] = d;
    if (N === 0) continue;
    for (let e = 0; e < E; e++) loss += E * (s[e] / N) * (s[E + e] / N);
    const n = r.probs.length / E;
    for (let t = 0; t < n; t++) {
      if (mask !== undefined && !mask[t]) continue;
      for (let e = 0; e < E; e++) d[t * E + e] = E * s[e] / (N * N);
    }
  }
  return { loss, dProbs };
}

/**
 * Runs one decoder layer: input norm, q/k/v projections, q/k norms, RoPE, attention (in-batch
 * with the key mask, or through a KV cache), o projection added to the residual, post-attention
 * norm, gate/up projections, SwiGLU, down projection added to the residual. The order of ops is
 * the WebGPU layer's.
 *
 * @param h The residual stream entering the layer `[rows·tokens, hidden]`.
 * @param options Weights, shapes, adapters, cache, dropout and hooks.
 * @returns Every activation (the backward's input); `hOut` is the layer's output.
 *
 * @example See the module example.
 * ```ts ignore
 * import { cpuDecoderLayer, type CpuLayerOptions } from "./qwen3_cpu_layer.ts";
 * declare const h: Float64Array, options: CpuLayerOptions;
 * const { hOut } = cpuDecoderLayer(h, options);
 * ```
 */
export function cpuDecoderLayer(h: Float64Array, options: CpuLayerOptions): CpuLayerTrace {
  const o = options;
  const c = o.config;
  const lw = o.weights;
  const [hsz, hq, hkv, d] = [c.hiddenSize, c.numAttentionHeads, c.numKeyValueHeads, c.headDim];
  const eps = c.rmsNormEps;
  const lora: CpuLayerTrace["lora"] = {};
  const hIn = h;
  const x1 = rmsNormRef(h, lw.inputLayernorm, { d: hsz, eps });
  const qRaw = linear(x1, "q_proj", o, lora);
  const kRaw = linear(x1, "k_proj", o, lora);
  const v = linear(x1, "v_proj", o, lora);
  const rope = { d, theta: c.ropeTheta };
  const q = ropeRef(rmsNormRef(qRaw, lw.qNorm, { d, eps }), o.positions, { ...rope, heads: hq });
  const k = ropeRef(rmsNormRef(kRaw, lw.kNorm, { d, eps }), o.positions, { ...rope, heads: hkv });
  const shape = { hq, hkv, d };
  let att: Float64Array;
  if (o.cache === undefined) {
    att = attentionRef(q, k, v, { ...shape, b: o.rows, tq: o.tokens, s: o.tokens, mask: o.mask });
  } else {
    const cache = o.cache;
    const kw = hkv * d;
    const qw = hq * d;
    att = new Float64Array(o.rows * o.tokens * qw);
    for (let r = 0; r < o.rows; r++) {
      const ck = cache.k[cache.rows[r]];
      const cv = cache.v[cache.rows[r]];
      for (let t = 0; t < o.tokens; t++) {
        const token = r * o.tokens + t;
        const slot = o.positions[token];
        ck.set(k.subarray(token * kw, (token + 1) * kw), slot * kw);
        cv.set(v.subarray(token * kw, (token + 1) * kw), slot * kw);
      }
      const first = o.positions[r * o.tokens];
      const rowAtt = attentionRef(
        q.subarray(r * o.tokens * qw, (r + 1) * o.tokens * qw),
        ck,
        cv,
        {
          ...shape,
          b: 1,
          tq: o.tokens,
          s: cache.capacity,
          kvLen: first + o.tokens,
          qStart: first,
        },
      );
      att.set(rowAtt, r * o.tokens * qw);
    }
  }
  const hMid = linear(att, "o_proj", o, lora, h);
  o.capture?.attention?.(hMid);
  const x2 = rmsNormRef(hMid, lw.postAttentionLayernorm, { d: hsz, eps });
  const gate = linear(x2, "gate_proj", o, lora);
  const up = linear(x2, "up_proj", o, lora);
  const act = swigluRef(gate, up);
  const hOut = linear(act, "down_proj", o, lora, hMid);
  // The MLP's own output (not otherwise materialised: down_proj accumulates into the residual).
  if (o.capture?.mlp) o.capture.mlp(linear(act, "down_proj", o, null));
  o.capture?.output?.(hOut);
  return { hIn, x1, qRaw, kRaw, v, q, k, att, hMid, x2, gate, up, act, hOut, lora };
}

/**
 * Options of {@linkcode cpuDecoderLayerBackward}.
 *
 * @example Usage
 * ```ts ignore
 * import type { CpuLayerBackwardOptions } from "./qwen3_cpu_layer.ts";
 * declare const base: CpuLayerBackwardOptions;
 * const options: CpuLayerBackwardOptions = { ...base, full: false };
 * ```
 */
export interface CpuLayerBackwardOptions {
  /** The model config. */
  config: Qwen3Config;
  /** The layer's weights. */
  weights: Qwen3LayerWeights;
  /** The layer index (gradient names). */
  layer: number;
  /** Rows of the forward call. */
  rows: number;
  /** Tokens per row. */
  tokens: number;
  /** Token positions `[rows, tokens]`. */
  positions: ArrayLike<number>;
  /** Key mask `[rows, tokens]`; default all real. */
  mask?: ArrayLike<number>;
  /** Record the base weights' gradients too (full fine-tuning). */
  full: boolean;
  /** Where the gradients go, by HF/PEFT name. */
  grads: Map<string, Float64Array>;
  /**
   * Coefficient of the layer's load-balancing loss ({@linkcode cpuBalanceLoss}) whose router
   * gradient is added; default 0 (none).
   */
  balanceCoef?: number;
  /**
   * The micro-batch's balance statistics of this layer (when this backward runs one row of it);
   * default this call's own.
   */
  balanceStats?: CpuBalanceStats;
}

/**
 * The exact backward of {@linkcode cpuDecoderLayer} (in-batch attention): from the cotangent at
 * the layer's output to the cotangent at its input, recording the LoRA matrices' gradients (and
 * the base weights' in full mode) in `options.grads`. Ops in reverse: down projection → SwiGLU →
 * gate/up projections → post-attention norm (+ residual) → o projection → attention → RoPE →
 * q/k norms → q/k/v projections → input norm (+ residual). A LoRA projection's backward is the
 * base matmul's plus, per expert, `dB = scale·dyᵀ·u`, `du = scale·dy·B`, `dA = duᵀ·x`,
 * `dx += du·A` (times the dropout mask in training mode). With a HILO router each expert's `dy`
 * is first multiplied by its gate per token, and the router gets `dz_i = g_i·(dg_i − Σ_e g_e·dg_e)`
 * (`dg_e = scale·dy·B_e·u_e`; the gates are a softmax over the selected experts), plus the
 * balance loss's `p_i·(dp_i − Σ_j p_j·dp_j)` when `balanceCoef` is set: `dW_r = dzᵀ·x` and
 * `dx += dz·W_r` on the un-dropped input.
 *
 * @param dOut `dLoss/dhOut` `[rows·tokens, hidden]` (consumed: updated in place).
 * @param trace The layer's forward activations.
 * @param options Shapes, weights and where the gradients go.
 * @returns `dLoss/dhIn`.
 *
 * @example Backward of one layer
 * ```ts ignore
 * import { cpuDecoderLayer, cpuDecoderLayerBackward } from "./qwen3_cpu_layer.ts";
 * declare const h: Float64Array, dOut: Float64Array;
 * declare const options: import("./qwen3_cpu_layer.ts").CpuLayerOptions;
 * const grads = new Map<string, Float64Array>();
 * const dIn = cpuDecoderLayerBackward(dOut, cpuDecoderLayer(h, options), { ...options, full: true, grads });
 * ```
 */
export function cpuDecoderLayerBackward(
  dOut: Float64Array,
  trace: CpuLayerTrace,
  options: CpuLayerBackwardOptions,
): Float64Array {
  const o = options;
  const c = o.config;
  const lw = o.weights;
  const a = trace;
  const n = o.rows * o.tokens;
  const [hq, hkv, D] = [c.numAttentionHeads, c.numKeyValueHeads, c.headDim];
  const H = c.hiddenSize;
  const eps = c.rmsNormEps;
  const { grads, full } = o;
  const coef = o.balanceCoef ?? 0;
  const balance: CpuBalanceLoss = coef !== 0
    ? cpuBalanceLoss(trace, o.mask, o.balanceStats)
    : { loss: 0, dProbs: {} };
  const normName = (field: keyof Qwen3LayerWeights): string =>
    layerTensorName(o.layer, LAYER_TENSORS.find((t) => t.field === field)!);

  /** Backward of `y = x·Wᵀ + LoRA(x)`; returns dx, records dW (full) and the LoRA grads. */
  const linearBackward = (
    dy: Float64Array,
    x: Float64Array,
    projection: ProjectionName,
  ): Float64Array => {
    const weight = lw[PROJECTION_FIELD[projection]];
    const inn = x.length / n;
    const out = weight.length / inn;
    const base = matmulBackwardRef(dy, x, weight, [n, out, inn]);
    if (full) grads.set(`${projectionModuleName(o.layer, projection)}.weight`, base.dw);
    const dx = base.dx;
    const lora = a.lora[projection];
    if (!lora) return dx;
    const m = lora.module;
    const dxd = new Float64Array(n * inn);
    const route = lora.route;
    const E = m.experts.length;
    // d loss / d g_e per token (with a router): scale · dy·(B_e·u_e).
    const dGates = route ? new Float64Array(n * E) : null;
    m.experts.forEach((e, i) => {
      const dyScaled = new Float64Array(dy.length);
      for (let t = 0; t < n; t++) {
        const f = route ? e.scale * route.gates[t * E + i] : e.scale;
        for (let j = 0; j < out; j++) dyScaled[t * out + j] = dy[t * out + j] * f;
      }
      const u = lora.down[i];
      const up = matmulBackwardRef(dyScaled, u, e.b, [n, out, e.r]);
      const down = matmulBackwardRef(up.dx, lora.input, e.a, [n, e.r, inn]);
      grads.set(loraTensorName(m, { matrix: "A", expert: i }), down.dw);
      grads.set(loraTensorName(m, { matrix: "B", expert: i }), up.dw);
      for (let j = 0; j < dxd.length; j++) dxd[j] += down.dx[j];
      if (dGates) {
        for (let t = 0; t < n; t++) {
          let s = 0;
          for (let o = 0; o < out; o++) {
            let c = 0;
            for (let j = 0; j < e.r; j++) c += e.b[o * e.r + j] * u[t * e.r + j];
            s += dy[t * out + o] * c;
          }
          dGates[t * E + i] = e.scale * s;
        }
      }
    });
    const dm = lora.dropoutMask;
    for (let j = 0; j < dx.length; j++) dx[j] += dm ? dxd[j] * dm[j] : dxd[j];
    if (route && dGates) {
      // g = softmax over S of the logits, so dz_i = g_i·(dg_i − Σ_e g_e·dg_e) (0 outside S);
      // the balance loss adds p_i·(dp_i − Σ_j p_j·dp_j) through the probabilities.
      const dz = new Float64Array(n * E);
      const dp = balance.dProbs[projection];
      for (let t = 0; t < n; t++) {
        const o = t * E;
        let mean = 0;
        for (let e = 0; e < E; e++) mean += route.gates[o + e] * dGates[o + e];
        for (let e = 0; e < E; e++) dz[o + e] = route.gates[o + e] * (dGates[o + e] - mean);
        if (dp && coef !== 0) {
          let pm = 0;
          for (let e = 0; e < E; e++) pm += route.probs[o + e] * dp[o + e];
          for (let e = 0; e < E; e++) {
            dz[o + e] += coef * route.probs[o + e] * (dp[o + e] - pm);
          }
        }
      }
      const r = matmulBackwardRef(dz, route.x, m.router!.weight, [n, E, inn]);
      grads.set(routerTensorName(m), r.dw);
      for (let j = 0; j < dx.length; j++) dx[j] += r.dx[j];
    }
    return dx;
  };

  // MLP: hOut = hMid + down(swiglu(gate(x2), up(x2))), x2 = norm(hMid).
  const dAct = linearBackward(dOut, a.act, "down_proj");
  const sw = swigluBackwardRef(dAct, a.gate, a.up);
  const dx2 = linearBackward(sw.dGate, a.x2, "gate_proj");
  const dx2u = linearBackward(sw.dUp, a.x2, "up_proj");
  for (let j = 0; j < dx2.length; j++) dx2[j] += dx2u[j];
  const post = rmsNormBackwardRef(dx2, a.hMid, lw.postAttentionLayernorm, { d: H, eps });
  if (full) grads.set(normName("postAttentionLayernorm"), post.dw);
  const dhMid = dOut;
  for (let j = 0; j < dhMid.length; j++) dhMid[j] += post.dx[j];
  // Attention: hMid = hIn + o(attention(rope(qnorm(q(x1))), rope(knorm(k(x1))), v(x1))).
  const dAtt = linearBackward(dhMid, a.att, "o_proj");
  const att = attentionBackwardRef(dAtt, a.q, a.k, a.v, {
    b: o.rows,
    tq: o.tokens,
    s: o.tokens,
    hq,
    hkv,
    d: D,
    mask: o.mask,
  });
  const rope = { d: D, theta: c.ropeTheta };
  const dqn = ropeBackwardRef(att.dq, o.positions, { ...rope, heads: hq });
  const dkn = ropeBackwardRef(att.dk, o.positions, { ...rope, heads: hkv });
  const qn = rmsNormBackwardRef(dqn, a.qRaw, lw.qNorm, { d: D, eps });
  const kn = rmsNormBackwardRef(dkn, a.kRaw, lw.kNorm, { d: D, eps });
  if (full) {
    grads.set(normName("qNorm"), qn.dw);
    grads.set(normName("kNorm"), kn.dw);
  }
  const dx1 = linearBackward(qn.dx, a.x1, "q_proj");
  const dx1k = linearBackward(kn.dx, a.x1, "k_proj");
  const dx1v = linearBackward(att.dv, a.x1, "v_proj");
  for (let j = 0; j < dx1.length; j++) dx1[j] += dx1k[j] + dx1v[j];
  const inp = rmsNormBackwardRef(dx1, a.hIn, lw.inputLayernorm, { d: H, eps });
  if (full) grads.set(normName("inputLayernorm"), inp.dw);
  for (let j = 0; j < dhMid.length; j++) dhMid[j] += inp.dx[j];
  return dhMid;
}
