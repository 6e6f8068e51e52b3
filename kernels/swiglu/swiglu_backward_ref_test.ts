import { assertClose, randomArray } from "../_test_utils.ts";
import { swigluBackwardRef } from "./swiglu_backward_ref.ts";
import { swigluRef } from "./swiglu_ref.ts";

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

Deno.test("swigluBackwardRef() matches central differences of swigluRef", () => {
  const n = 40;
  const gate = rand(n, 1, -8, 8);
  const up = rand(n, 2, -2, 2);
  const ct = rand(n, 3);
  const loss = () => dot(ct, swigluRef(gate, up));
  const { dGate, dUp } = swigluBackwardRef(ct, gate, up);
  assertClose(dGate, centralDiff(gate, loss), TOL, "dGate");
  assertClose(dUp, centralDiff(up, loss), TOL, "dUp");
});
