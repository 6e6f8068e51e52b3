/**
 * A plain float64 reference of one HILO-adapted projection, token by token, written apart from
 * the model's layer (`model/qwen3_cpu_layer.ts`) and from the router kernel's reference so that
 * each checks the others:
 *
 * `y = W0·x + Σ_{e∈S} g_e · s_e · B_e·A_e·(m ⊙ x)`, `p = softmax(W_r·x)`, `g_e = p_e / Σ_{j∈S} p_j`,
 *
 * with S the top-k or top-p experts (ties to the lower index), `s_e = α/r` and `m` an optional
 * inverted-dropout mask. Without a router every expert has gate 1 (plain LoRA when E = 1).
 *
 * @module
 */
import type { HiloActivation } from "../model/adapter_types.ts";

/** The parameters of one adapted projection. */
export interface HiloProjectionParams {
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
  /** Base weight `[out, in]`. */
  w0: ArrayLike<number>;
  /** Experts: `a` `[r, in]`, `b` `[out, r]`, rank and scale. */
  experts: readonly { a: ArrayLike<number>; b: ArrayLike<number>; r: number; scale: number }[];
  /** Router `weight` `[E, in]` and its activation rule; absent: every gate is 1. */
  router?: {
    weight: ArrayLike<number>;
    activation: HiloActivation;
    topK: number;
    topP: number;
  };
}

/** Options of {@linkcode hiloProjectionRef} and {@linkcode hiloProjectionBackwardRef}. */
export interface HiloProjectionRefOptions {
  /** Inverted-dropout factors `[tokens, in]` on the experts' input; default none. */
  dropoutMask?: ArrayLike<number>;
}

/** Result of {@linkcode hiloProjectionRef}. */
export interface HiloProjectionRefResult {
  /** Output `[tokens, out]`. */
  y: Float64Array;
  /** Router probabilities `[tokens, E]`; empty without a router. */
  probs: Float64Array;
  /** Gates `[tokens, E]` (1 for every expert without a router). */
  gates: Float64Array;
}

/** The selected experts of one token, by sorting (descending p, ties lower index first). */
function select(p: number[], activation: HiloActivation, topK: number, topP: number): number[] {
  const order = p.map((_, i) => i).sort((i, j) => (p[j] - p[i]) || (i - j));
  if (activation === "top-k") return order.slice(0, topK);
  const out: number[] = [];
  let mass = 0;
  for (const i of order) {
    if (out.length > 0 && mass >= topP) break;
    out.push(i);
    mass += p[i];
  }
  return out;
}

/** Per token: probabilities and gates. */
function route(
  x: ArrayLike<number>,
  t: number,
  params: HiloProjectionParams,
): { p: number[]; g: number[] } {
  const E = params.experts.length;
  const inF = params.inFeatures;
  const rt = params.router;
  if (!rt) return { p: [], g: new Array(E).fill(1) };
  const z: number[] = [];
  for (let e = 0; e < E; e++) {
    let s = 0;
    for (let i = 0; i < inF; i++) s += rt.weight[e * inF + i] * x[t * inF + i];
    z.push(s);
  }
  const zmax = Math.max(...z);
  const ex = z.map((v) => Math.exp(v - zmax));
  const sum = ex.reduce((a, b) => a + b, 0);
  const p = ex.map((v) => v / sum);
  const S = select(p, rt.activation, rt.topK, rt.topP);
  const mass = S.reduce((a, i) => a + p[i], 0);
  const g = new Array(E).fill(0);
  for (const i of S) g[i] = p[i] / mass;
  return { p, g };
}

/**
 * The forward of one adapted projection.
 *
 * @param x Input `[tokens, in]`.
 * @param params Weights and router.
 * @param options Dropout mask.
 * @returns Output, probabilities and gates.
 *
 * @example One token, identity base, one rank-1 expert with scale 2 and no router
 * ```ts
 * import { hiloProjectionRef } from "./hilo_projection_ref.ts";
 * const { y } = hiloProjectionRef([1, 2], {
 *   inFeatures: 2, outFeatures: 2, w0: [1, 0, 0, 1],
 *   experts: [{ a: [1, 1], b: [1, 0], r: 1, scale: 2 }],
 * });
 * console.log(Array.from(y)); // [7, 2]
 * ```
 */
export function hiloProjectionRef(
  x: ArrayLike<number>,
  params: HiloProjectionParams,
  options: HiloProjectionRefOptions = {},
): HiloProjectionRefResult {
  const { inFeatures: inF, outFeatures: outF } = params;
  const E = params.experts.length;
  const n = x.length / inF;
  const y = new Float64Array(n * outF);
  const probs = new Float64Array(params.router ? n * E : 0);
  const gates = new Float64Array(n * E);
  const m = options.dropoutMask;
  for (let t = 0; t < n; t++) {
    const { p, g } = route(x, t, params);
    probs.set(p, t * p.length);
    gates.set(g, t * E);
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += params.w0[o * inF + i] * x[t * inF + i];
      y[t * outF + o] = s;
    }
    params.experts.forEach((ex, e) => {
      if (g[e] === 0) return;
      for (let j = 0; j < ex.r; j++) {
        let u = 0;
        for (let i = 0; i < inF; i++) {
          u += ex.a[j * inF + i] * x[t * inF + i] * (m ? m[t * inF + i] : 1);
        }
        for (let o = 0; o < outF; o++) y[t * outF + o] += g[e] * ex.scale * ex.b[o * ex.r + j] * u;
      }
    });
  }
  return { y, probs, gates };
}

/** Options of {@linkcode hiloProjectionBackwardRef}. */
export interface HiloProjectionBackwardRefOptions extends HiloProjectionRefOptions {
  /** An extra cotangent at the router probabilities `[tokens, E]` (the balance loss's). */
  dProbs?: ArrayLike<number>;
}

/** Result of {@linkcode hiloProjectionBackwardRef}. */
export interface HiloProjectionBackwardRefResult {
  /** `dloss/dx` `[tokens, in]`. */
  dx: Float64Array;
  /** `dloss/dW0` `[out, in]`. */
  dw0: Float64Array;
  /** `dloss/dA_e` `[r, in]` per expert. */
  dA: Float64Array[];
  /** `dloss/dB_e` `[out, r]` per expert. */
  dB: Float64Array[];
  /** `dloss/dW_r` `[E, in]`; empty without a router. */
  dRouter: Float64Array;
}

/**
 * The backward of {@linkcode hiloProjectionRef} for the loss `Σ dy·y (+ Σ dProbs·probs)`,
 * written out per token: with `c_e = s_e·B_e·A_e·(m ⊙ x)`, `dg_e = dy·c_e`, and the gates a
 * softmax over S of the logits `z`, `dz_i = g_i·(dg_i − Σ_{e∈S} g_e·dg_e)` for i ∈ S (0 outside);
 * a cotangent `dp` at the probabilities adds `p_i·(dp_i − Σ_j p_j·dp_j)`. The selection is
 * piecewise constant, so it has no gradient.
 *
 * @param dy Cotangent of the output `[tokens, out]`.
 * @param x The forward's input.
 * @param params Weights and router.
 * @param options Dropout mask and probability cotangent.
 * @returns Gradients of the input and of every parameter.
 *
 * @example The gradient of y = 3x with respect to x is 3
 * ```ts
 * import { hiloProjectionBackwardRef } from "./hilo_projection_ref.ts";
 * const { dx } = hiloProjectionBackwardRef([1], [5], {
 *   inFeatures: 1, outFeatures: 1, w0: [1], experts: [{ a: [1], b: [1], r: 1, scale: 2 }],
 * });
 * console.log(dx[0]); // 3
 * ```
 */
export function hiloProjectionBackwardRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  params: HiloProjectionParams,
  options: HiloProjectionBackwardRefOptions = {},
): HiloProjectionBackwardRefResult {
  const { inFeatures: inF, outFeatures: outF } = params;
  const E = params.experts.length;
  const n = x.length / inF;
  const m = options.dropoutMask;
  const dx = new Float64Array(n * inF);
  const dw0 = new Float64Array(outF * inF);
  const dA = params.experts.map((e) => new Float64Array(e.r * inF));
  const dB = params.experts.map((e) => new Float64Array(outF * e.r));
  const dRouter = new Float64Array(params.router ? E * inF : 0);
  for (let t = 0; t < n; t++) {
    const { p, g } = route(x, t, params);
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        dw0[o * inF + i] += dy[t * outF + o] * x[t * inF + i];
        dx[t * inF + i] += dy[t * outF + o] * params.w0[o * inF + i];
      }
    }
    const dg = new Array(E).fill(0);
    params.experts.forEach((ex, e) => {
      for (let j = 0; j < ex.r; j++) {
        let u = 0;
        for (let i = 0; i < inF; i++) {
          u += ex.a[j * inF + i] * x[t * inF + i] * (m ? m[t * inF + i] : 1);
        }
        // du_j = g·s·Σ_o dy_o·B_oj; dg += s·u_j·Σ_o dy_o·B_oj.
        let dyb = 0;
        for (let o = 0; o < outF; o++) {
          dyb += dy[t * outF + o] * ex.b[o * ex.r + j];
          dB[e][o * ex.r + j] += g[e] * ex.scale * dy[t * outF + o] * u;
        }
        dg[e] += ex.scale * u * dyb;
        const du = g[e] * ex.scale * dyb;
        for (let i = 0; i < inF; i++) {
          const xd = x[t * inF + i] * (m ? m[t * inF + i] : 1);
          dA[e][j * inF + i] += du * xd;
          dx[t * inF + i] += du * ex.a[j * inF + i] * (m ? m[t * inF + i] : 1);
        }
      }
    });
    const rt = params.router;
    if (!rt) continue;
    let mean = 0;
    for (let e = 0; e < E; e++) mean += g[e] * dg[e];
    const dz = g.map((ge, e) => ge * (dg[e] - mean));
    if (options.dProbs) {
      let pm = 0;
      for (let e = 0; e < E; e++) pm += p[e] * options.dProbs[t * E + e];
      for (let e = 0; e < E; e++) dz[e] += p[e] * (options.dProbs[t * E + e] - pm);
    }
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < inF; i++) {
        dRouter[e * inF + i] += dz[e] * x[t * inF + i];
        dx[t * inF + i] += dz[e] * rt.weight[e * inF + i];
      }
    }
  }
  return { dx, dw0, dA, dB, dRouter };
}
