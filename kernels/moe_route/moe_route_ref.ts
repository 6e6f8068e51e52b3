/**
 * Float64 reference of the HILO router's gates: per token, `p = softmax(logits)` over the E
 * experts, the selected set S (top-k: the k largest p, ties to the lower index; top-p: the
 * shortest prefix of the experts sorted by p descending, ties to the lower index, whose
 * cumulative p reaches the threshold), and the renormalised gates `g_e = p_e / Σ_{j∈S} p_j` for
 * e ∈ S, 0 elsewhere.
 *
 * @module
 */

/** Activation rule of a router: a fixed number of experts, or a probability mass. */
export type MoeActivation = "top-k" | "top-p";

/** Options of {@linkcode moeRouteRef}. */
export interface MoeRouteRefOptions {
  /** Experts per token (E, the row width of `logits`). */
  experts: number;
  /** `"top-k"` (default) or `"top-p"`. */
  activation?: MoeActivation;
  /** k of top-k, `1 ≤ k ≤ E`; default `min(2, E)`. */
  topK?: number;
  /** Threshold of top-p, in `(0, 1]`; default 0.8. */
  topP?: number;
}

/** Result of {@linkcode moeRouteRef}, each `[tokens, experts]`. */
export interface MoeRouteRefResult {
  /** Router probabilities `softmax(logits)`. */
  probs: Float64Array;
  /** Renormalised gates (0 for experts outside S). */
  gates: Float64Array;
  /** 1 where the expert is in S. */
  selected: Uint8Array;
}

/**
 * Checks the router options and returns them with defaults filled in.
 *
 * @param options The options.
 * @returns `{ experts, activation, topK, topP }`.
 * @throws {RangeError} Naming the option that is out of range and its value.
 *
 * @example Defaults for four experts
 * ```ts
 * import { resolveMoeRoute } from "./moe_route_ref.ts";
 * console.log(resolveMoeRoute({ experts: 4 }).topK); // 2
 * ```
 */
export function resolveMoeRoute(options: MoeRouteRefOptions): Required<MoeRouteRefOptions> {
  const E = options.experts;
  const activation = options.activation ?? "top-k";
  const topK = options.topK ?? Math.min(2, E);
  const topP = options.topP ?? 0.8;
  const where = "Cannot route tokens to experts";
  if (!Number.isSafeInteger(E) || E < 1) {
    throw new RangeError(`${where}: "experts" must be a positive integer: current value is ${E}`);
  }
  if (activation !== "top-k" && activation !== "top-p") {
    throw new RangeError(
      `${where}: "activation" must be "top-k" or "top-p": current value is ${
        JSON.stringify(activation)
      }`,
    );
  }
  if (!Number.isSafeInteger(topK) || topK < 1 || topK > E) {
    throw new RangeError(
      `${where}: "topK" must be an integer in [1, ${E}] (the expert count): current value is ` +
        `${topK}`,
    );
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`${where}: "topP" must be in (0, 1]: current value is ${topP}`);
  }
  return { experts: E, activation, topK, topP };
}

/**
 * Routes each token: softmax of its logits, the selected experts and the renormalised gates.
 * Selection repeatedly takes the largest remaining probability (strictly larger wins, so the lower
 * index wins ties) until k experts are taken (top-k) or their probabilities sum to at least the
 * threshold (top-p; all E at most).
 *
 * @param logits Router logits `[tokens, experts]` (`x · W_rᵀ`).
 * @param options Expert count and activation rule.
 * @returns Probabilities, gates and the selection mask.
 *
 * @example Top-2 of three experts with logits 0, ln 2, ln 2: the last two, gates ½ and ½
 * ```ts
 * import { moeRouteRef } from "./moe_route_ref.ts";
 * const { gates } = moeRouteRef([0, Math.LN2, Math.LN2], { experts: 3, topK: 2 });
 * console.log(Array.from(gates)); // [0, 0.5, 0.5]
 * ```
 */
export function moeRouteRef(
  logits: ArrayLike<number>,
  options: MoeRouteRefOptions,
): MoeRouteRefResult {
  const { experts: E, activation, topK, topP } = resolveMoeRoute(options);
  if (logits.length % E !== 0) {
    throw new RangeError(
      `Cannot route tokens to experts: "logits" must hold tokens × ${E} values: current length ` +
        `is ${logits.length}`,
    );
  }
  const n = logits.length / E;
  const probs = new Float64Array(n * E);
  const gates = new Float64Array(n * E);
  const selected = new Uint8Array(n * E);
  for (let t = 0; t < n; t++) {
    const o = t * E;
    let max = -Infinity;
    for (let e = 0; e < E; e++) max = Math.max(max, logits[o + e]);
    let sum = 0;
    for (let e = 0; e < E; e++) {
      probs[o + e] = Math.exp(logits[o + e] - max);
      sum += probs[o + e];
    }
    for (let e = 0; e < E; e++) probs[o + e] /= sum;
    let mass = 0;
    for (let taken = 0; taken < E; taken++) {
      if (activation === "top-k" ? taken >= topK : mass >= topP) break;
      let best = -1;
      for (let e = 0; e < E; e++) {
        if (!selected[o + e] && (best < 0 || probs[o + e] > probs[o + best])) best = e;
      }
      selected[o + best] = 1;
      mass += probs[o + best];
    }
    for (let e = 0; e < E; e++) if (selected[o + e]) gates[o + e] = probs[o + e] / mass;
  }
  return { probs, gates, selected };
}
