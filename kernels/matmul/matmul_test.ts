import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeMatmul } from "./matmul.ts";
import { matmulRef } from "./matmul_ref.ts";

// f32 accumulation of k products: relative error ~ sqrt(k) * 2^-24; 1e-5 bounds k ≤ 10^4.
const TOL = 1e-5;

Deno.test({
  name: "encodeMatmul() matches the f64 reference on shapes off the tile size",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [65, 63, 17], [70, 130, 33], [128, 64, 64]]) {
      const x = randomArray(m * k, m * 31 + k);
      const w = randomArray(n * k, n * 17 + k);
      const y = poisoned(ctx, m * n, "y");
      const xb = ctx.upload(x, "x");
      const wb = ctx.upload(w, "w");
      const enc = recordPass(ctx, (pass) => encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k }));
      const got = await readFloats(ctx, y, m * n, enc);
      const err = assertClose(got, matmulRef(x, w, [m, n, k]), TOL, `matmul ${m}x${n}x${k}`);
      console.log(`matmul ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
      for (const b of [xb, wb, y]) b.destroy();
    }
  },
});

Deno.test({
  name: "encodeMatmul() accumulates with a scale into a column block of a wider output",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [m, n, k, ldy, yCol] = [9, 5, 6, 12, 4];
    const x = randomArray(m * k, 1);
    const w = randomArray(n * k, 2);
    const y0 = randomArray(m * ldy, 3);
    const y = ctx.upload(y0, "y");
    const enc = recordPass(ctx, (pass) =>
      encodeMatmul(ctx, pass, {
        x: ctx.upload(x, "x"),
        w: ctx.upload(w, "w"),
        y,
        m,
        n,
        k,
        ldy,
        yCol,
        accumulate: true,
        alpha: 0.5,
      }));
    const got = await readFloats(ctx, y, m * ldy, enc);
    const want = Float64Array.from(y0);
    const prod = matmulRef(x, w, [m, n, k], { alpha: 0.5 });
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) want[i * ldy + yCol + j] += prod[i * n + j];
    }
    assertClose(got, want, TOL, "matmul accumulate");
  },
});

Deno.test({
  name: "encodeMatmul() sums a reduction longer than Mesa's 65,535-iteration loop limit",
  ignore: noGpu,
  async fn() {
    // K = 151,936 (Qwen3's vocabulary: the LM head's d x). With the tile loads and k steps as
    // loops, llvmpipe/lavapipe stopped the shader after 65,535 iterations in all (~58,000 of K):
    // the rest of the sum was silently missing.
    const ctx = (await testContext())!;
    const [m, n, k] = [3, 5, 151936];
    const x = randomArray(m * k, 91);
    const w = randomArray(n * k, 92);
    const y = poisoned(ctx, m * n, "y");
    const enc = recordPass(ctx, (pass) =>
      encodeMatmul(ctx, pass, {
        x: ctx.upload(x, "x"),
        w: ctx.upload(w, "w"),
        y,
        m,
        n,
        k,
      }));
    const got = await readFloats(ctx, y, m * n, enc);
    // Sums of 151,936 products of values in [-1, 1]: √k · 2^-24 · √k-sized terms; 1e-4 relative.
    const err = assertClose(got, matmulRef(x, w, [m, n, k]), 1e-4, `matmul ${m}x${n}x${k}`);
    console.log(`matmul ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
  },
});
