// Shared helpers of the loss tests: central differences in float64 and seeded data. (Not
// kernels/_finite_diff.ts: that one pulls in the GPU test context.)
import { mulberry32 } from "../../model/_random.ts";

/** Step of the central differences: truncation ~H² and rounding ~1e-16/H, both ≪ FD_TOL. */
export const H = 1e-5;
/**
 * Analytic vs numeric gradient in float64, absolute per element on O(1) values: the measured
 * agreement is ~1e-10; 1e-7 leaves room for curvature.
 */
export const FD_TOL = 1e-7;

/** d f / d x by central differences, perturbing `x` in place (restored afterwards). */
export function centralDiff(x: Float64Array, f: () => number, h = H): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const up = f();
    x[i] = x0 - h;
    const down = f();
    x[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** max_i |a_i − b_i|; throws with the worst element when it exceeds `tol`. */
export function assertGradClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): number {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} vs ${want.length}`);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (!(worst <= tol)) {
    throw new Error(
      `${what}: max abs error ${worst} at ${at} (${got[at]} vs ${want[at]}) > ${tol}`,
    );
  }
  return worst;
}

/** Seeded uniform float64 values in [lo, hi). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const next = mulberry32(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * next());
}
