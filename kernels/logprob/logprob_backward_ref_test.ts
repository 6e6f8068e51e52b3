import { assertClose, randomArray } from "../_test_utils.ts";
import { logprobBackwardRef } from "./logprob_backward_ref.ts";
import { logprobRef } from "./logprob_ref.ts";

// Central differences in float64: truncation ~h² and rounding ~1e-16/h, both far below TOL.
const H = 1e-5;
// Analytic vs numeric gradient in float64: agreement is ~1e-9; 1e-6 leaves room for curvature.
const TOL = 1e-6;

/** d loss / d x by central differences, perturbing `x` in place (restored afterwards). */
function centralDiff(x: Float64Array, loss: () => number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + H;
    const up = loss();
    x[i] = x0 - H;
    const down = loss();
    x[i] = x0;
    g[i] = (up - down) / (2 * H);
  }
  return g;
}

/** Σ a ⊙ b. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Seeded uniform float64 values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from(randomArray(n, seed, lo, hi));
}

Deno.test("logprobBackwardRef() matches central differences of logprobRef", () => {
  for (const [rows, v] of [[1, 1], [4, 6], [3, 17]] as const) {
    const logits = rand(rows * v, rows + v, -4, 4);
    const targets = Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : (r * 5) % v));
    const ct = rand(rows, 9 + v);
    const loss = () => dot(ct, logprobRef(logits, targets, v).logprobs);
    const got = logprobBackwardRef(ct, logits, targets, v);
    const want = centralDiff(logits, loss);
    assertClose(got, want, TOL, `logprob ${rows}x${v}`);
    if (rows > 1 && got.subarray(v, 2 * v).some((g) => g !== 0)) {
      throw new Error("a row without a target must get a zero gradient");
    }
  }
});
