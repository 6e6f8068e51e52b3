/**
 * An AlphaLoRA-style automatic expert allocation for HILO: layers whose weights look less
 * converged (a larger heavy-tail exponent of their eigenvalue spectrum, in the Heavy-Tailed
 * Self-Regularisation sense) get more experts, under a total-expert budget.
 *
 * For each weight matrix `W` (`[out, in]`): the eigenvalues `λ` of the Gram matrix of its smaller
 * side (`W·Wᵀ` or `Wᵀ·W`, the squared singular values), ascending, those above `1e-5` kept (N of
 * them); the Hill estimator with `x_min` at the middle eigenvalue (`i = ⌊N/2⌋`, as the
 * WeightWatcher / TempBalance code AlphaLoRA builds on, `fix_fingers = "xmin_mid"`):
 *
 * `α = 1 + (N − i) / Σ_{j=i}^{N−1} ln(λ_j / λ_i)`.
 *
 * A layer's `α_l` is the mean over its adapted projections' weights. Experts:
 * every layer gets `minExperts`, and the remaining `T − L·minExperts` are shared in proportion to
 * `max(0, T·w_l/Σw − minExperts)` with `w_l = α_l^β`, rounded by largest remainder (ties to the
 * shallower layer), so `Σ E_l = T` exactly.
 *
 * @module
 */
import type { Qwen3Config } from "../model/config.ts";
import { projectionShape } from "../model/adapter_types.ts";
import { PROJECTION_FIELD, type ProjectionName, PROJECTIONS } from "../model/tensor_table.ts";
import type { Qwen3LayerWeights } from "../model/weights.ts";
import { symmetricEigenvalues } from "./_symmetric_eigenvalues.ts";

/** Eigenvalues at or below this are dropped before the fit (the reference code's threshold). */
const EVALS_THRESH = 1e-5;

/**
 * The Hill estimate of the power-law exponent of a spectrum's tail, `x_min` at the middle
 * eigenvalue (see the module doc).
 *
 * @param eigenvalues The eigenvalues (any order).
 * @returns `α`; `Infinity` when the kept tail is flat (all equal), NaN with fewer than 2 kept.
 *
 * @example Eigenvalues 1, 1, 2, 4: x_min = 2, α = 1 + 2 / ln 2
 * ```ts
 * import { hillAlpha } from "./hilo_alpha_allocation.ts";
 * console.log(hillAlpha([4, 1, 2, 1])); // 3.885…
 * ```
 */
export function hillAlpha(eigenvalues: ArrayLike<number>): number {
  const nz = Array.from(eigenvalues).filter((v) => v > EVALS_THRESH).sort((a, b) => a - b);
  const N = nz.length;
  if (N < 2) return NaN;
  const i = Math.floor(N / 2);
  const xmin = nz[i];
  let sum = 0;
  for (let j = i; j < N; j++) sum += Math.log(nz[j] / xmin);
  return 1 + (N - i) / sum;
}

/**
 * The heavy-tail exponent of a weight matrix's eigen-spectrum (squared singular values).
 *
 * @param weight `[rows, cols]` row-major.
 * @param shape `[rows, cols]`.
 * @returns {@linkcode hillAlpha} of the Gram matrix's eigenvalues.
 *
 * @example A diagonal matrix with singular values 1, 1, √2, 2
 * ```ts
 * import { weightAlpha } from "./hilo_alpha_allocation.ts";
 * const w = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, Math.SQRT2, 0, 0, 0, 0, 2];
 * console.log(weightAlpha(w, [4, 4])); // 3.885…
 * ```
 */
export function weightAlpha(weight: ArrayLike<number>, shape: readonly [number, number]): number {
  const [rows, cols] = shape;
  if (weight.length !== rows * cols) {
    throw new RangeError(
      `Cannot compute a weight's alpha: it must hold ${rows}·${cols} values: current length is ` +
        `${weight.length}`,
    );
  }
  const n = Math.min(rows, cols);
  const gram = new Float64Array(n * n);
  if (rows <= cols) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let k = 0; k < cols; k++) s += weight[i * cols + k] * weight[j * cols + k];
        gram[i * n + j] = s;
        gram[j * n + i] = s;
      }
    }
  } else {
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let k = 0; k < rows; k++) s += weight[k * cols + i] * weight[k * cols + j];
        gram[i * n + j] = s;
        gram[j * n + i] = s;
      }
    }
  }
  return hillAlpha(symmetricEigenvalues(gram, n));
}

/** Options of {@linkcode allocateExperts}. */
export interface AllocateExpertsOptions {
  /** Total experts T over all layers. */
  totalExperts: number;
  /** Exponent β of the weights `α_l^β`; default 1. */
  beta?: number;
  /** Experts every layer gets at least; default 1. */
  minExperts?: number;
}

/**
 * Shares a total-expert budget among layers in proportion to `α_l^β` (see the module doc).
 *
 * @param alphas Per-layer heavy-tail exponents.
 * @param options Budget, β and the per-layer minimum.
 * @returns Experts per layer, summing to `totalExperts`.
 * @throws {RangeError} If the budget is below `L·minExperts`, or an α is not positive and finite.
 *
 * @example 16 experts over 4 layers, the deeper ones less converged
 * ```ts
 * import { allocateExperts } from "./hilo_alpha_allocation.ts";
 * console.log(allocateExperts([2, 2, 4, 8], { totalExperts: 16 })); // [2, 2, 4, 8]
 * ```
 */
export function allocateExperts(
  alphas: readonly number[],
  options: AllocateExpertsOptions,
): number[] {
  const { totalExperts: T } = options;
  const beta = options.beta ?? 1;
  const min = options.minExperts ?? 1;
  const L = alphas.length;
  const where = "Cannot allocate experts";
  if (!Number.isSafeInteger(T) || !Number.isSafeInteger(min) || min < 1 || T < L * min) {
    throw new RangeError(
      `${where}: "totalExperts" must be an integer ≥ layers × minExperts = ${L * min}: current ` +
        `value is ${T}`,
    );
  }
  for (const [l, a] of alphas.entries()) {
    if (!(Number.isFinite(a) && a > 0)) {
      throw new RangeError(
        `${where}: the alpha of layer ${l} must be positive and finite: current value is ${a}`,
      );
    }
  }
  const w = alphas.map((a) => a ** beta);
  const sw = w.reduce((s, x) => s + x, 0);
  const extra = w.map((x) => Math.max(0, (T * x) / sw - min));
  const se = extra.reduce((s, x) => s + x, 0);
  const R = T - L * min;
  const share = extra.map((x) => (se > 0 ? (R * x) / se : R / L));
  const out = share.map((x) => min + Math.floor(x));
  let left = T - out.reduce((s, x) => s + x, 0);
  const order = share
    .map((x, l) => ({ l, frac: x - Math.floor(x) }))
    .sort((a, b) => b.frac - a.frac || a.l - b.l);
  for (const { l } of order) {
    if (left === 0) break;
    out[l]++;
    left--;
  }
  return out;
}

/** Options of {@linkcode alphaLoraAllocation}. */
export interface AlphaLoraAllocationOptions extends AllocateExpertsOptions {
  /** Projections whose weights enter each layer's α; default all seven. */
  projections?: readonly ProjectionName[];
}

/** Result of {@linkcode alphaLoraAllocation}. */
export interface AlphaLoraAllocation {
  /** Per-layer mean heavy-tail exponent. */
  alphas: number[];
  /** Experts per layer (a schedule for `hiloConfig`'s `experts`). */
  experts: number[];
}

/**
 * Per-layer experts from the base model's weights under a total budget (AlphaLoRA-style; see
 * the module doc). O(n³) per matrix with n its smaller side, plus the Gram product: measured
 * 0.3 s for a 512 × 1024 matrix on one CPU core, so a few seconds per matrix and minutes for a
 * 28-layer model.
 *
 * @param layers The decoder layers' weights.
 * @param modelConfig The model's shapes.
 * @param options Budget, β, minimum and projections.
 * @returns The per-layer exponents and expert counts.
 *
 * @example The fixture model, 6 experts over its 2 layers
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { loadQwen3Weights } from "../model/weights.ts";
 * import { alphaLoraAllocation } from "./hilo_alpha_allocation.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const { layers } = await loadQwen3Weights(dir, config);
 * console.log(alphaLoraAllocation(layers, config, { totalExperts: 6 }).experts); // two counts, sum 6
 * ```
 */
export function alphaLoraAllocation(
  layers: readonly Qwen3LayerWeights[],
  modelConfig: Qwen3Config,
  options: AlphaLoraAllocationOptions,
): AlphaLoraAllocation {
  const projections = options.projections ?? PROJECTIONS;
  const alphas = layers.map((lw) => {
    let s = 0;
    for (const p of projections) {
      s += weightAlpha(lw[PROJECTION_FIELD[p]], projectionShape(modelConfig, p));
    }
    return s / projections.length;
  });
  return { alphas, experts: allocateExperts(alphas, options) };
}
