import { assertClose, randomArray } from "../_test_utils.ts";
import { rmsNormBackwardRef } from "./rms_norm_backward_ref.ts";
import { rmsNormRef } from "./rms_norm_ref.ts";

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

Deno.test("rmsNormBackwardRef() matches central differences of rmsNormRef", () => {
  for (const [rows, d, eps] of [[1, 1, 0.1], [3, 8, 1e-6], [4, 5, 0.5]] as const) {
    const x = rand(rows * d, rows + d, -2, 2);
    const w = rand(d, d, 0.5, 1.5);
    const ct = rand(rows * d, 7 + rows);
    const loss = () => dot(ct, rmsNormRef(x, w, { d, eps }));
    const { dx, dw } = rmsNormBackwardRef(ct, x, w, { d, eps });
    assertClose(dx, centralDiff(x, loss), TOL, `dx ${rows}x${d}`);
    assertClose(dw, centralDiff(w, loss), TOL, `dw ${rows}x${d}`);
  }
});
