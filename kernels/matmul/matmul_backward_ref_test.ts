import { assertClose, randomArray } from "../_test_utils.ts";
import { matmulBackwardRef } from "./matmul_backward_ref.ts";
import { matmulRef } from "./matmul_ref.ts";

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

Deno.test("matmulBackwardRef() matches central differences of matmulRef", () => {
  for (const [m, n, k] of [[1, 1, 1], [3, 4, 5], [6, 2, 7]] as const) {
    const x = rand(m * k, 1 + m);
    const w = rand(n * k, 2 + n);
    const ct = rand(m * n, 3 + k);
    const loss = () => dot(ct, matmulRef(x, w, [m, n, k]));
    const { dx, dw } = matmulBackwardRef(ct, x, w, [m, n, k]);
    assertClose(dx, centralDiff(x, loss), TOL, `dx ${m}x${n}x${k}`);
    assertClose(dw, centralDiff(w, loss), TOL, `dw ${m}x${n}x${k}`);
  }
});
