// The one-thread-per-output kernel for short inner dimensions (matmul_small_k.wgsl), forced
// through `kernel: "smallK"`, against the float64 references: forward, d x (W_T) and d w
// (X_T + W_T) with K <= 32, strided views, accumulate with a scale, f16 weights; outputs
// poisoned. Tolerance: sums of at most 32 f32 products, 1e-5 relative (as matmul_test.ts).
import assert from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { uploadMatrix } from "../../gpu/matrix.ts";
import { encodeMatmul } from "./matmul.ts";
import { matmulRef } from "./matmul_ref.ts";
import { checkAccumulate, checkBackward } from "./_test_cases.ts";

const TOL = 1e-5;

Deno.test({
  name: "encodeMatmul() with smallK matches the f64 reference, plain, strided and accumulating",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, n, k] of [[1, 1, 1], [1, 1030, 16], [3, 65, 7], [16, 200, 32]]) {
      const x = randomArray(m * k, m * 31 + k);
      const w = randomArray(n * k, n * 17 + k);
      const y = poisoned(ctx, m * n, "y");
      const enc = recordPass(ctx, (pass) =>
        encodeMatmul(ctx, pass, {
          x: ctx.upload(x, "x"),
          w: ctx.upload(w, "w"),
          y,
          m,
          n,
          k,
          kernel: "smallK",
        }));
      const got = await readFloats(ctx, y, m * n, enc);
      const err = assertClose(got, matmulRef(x, w, [m, n, k]), TOL, `smallK ${m}x${n}x${k}`);
      console.log(`smallK ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
    }
    // LoRA B in decode: y[:, 5 .. 5 + n] of rows of 80 += 0.5 · x[m, k] (rows of 20) · Bᵀ.
    await checkAccumulate("smallK", [5, 70, 16, 20, 80, 5], TOL);
  },
});

Deno.test({
  name: "encodeMatmulBackward() with smallK gives dx and dw (transposed variants)",
  ignore: noGpu,
  async fn() {
    // dx's inner dimension is n, dw's is m: both <= 32.
    await checkBackward("smallK", [[1, 1, 1], [7, 16, 45], [32, 9, 70]], TOL);
  },
});

Deno.test({
  name: "encodeMatmul() with smallK reads f16 weights and refuses K > 32",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [m, n, k] = [4, 130, 16];
    const x = randomArray(m * k, 5);
    const w = randomArray(n * k, 6);
    const xb = ctx.upload(x, "x");
    if (ctx.gpu.features.has("shader-f16")) {
      const mat = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype: "f16" });
      const y = poisoned(ctx, m * n, "y");
      const enc = recordPass(ctx, (pass) =>
        encodeMatmul(ctx, pass, {
          x: xb,
          w: mat.chunks[0].buffer,
          y,
          m,
          n,
          k,
          wF16: true,
          kernel: "smallK",
        }));
      const w16 = Float32Array.from(Float16Array.from(w));
      assertClose(
        await readFloats(ctx, y, m * n, enc),
        matmulRef(x, w16, [m, n, k]),
        TOL,
        "smallK f16",
      );
    } else console.log("the adapter has no shader-f16: f16 variant not run");
    const big = ctx.createBuffer(4 * 33 * 130, "big");
    const pass = ctx.device.createCommandEncoder().beginComputePass();
    try {
      assert.throws(
        () =>
          encodeMatmul(ctx, pass, { x: big, w: big, y: big, m: 1, n: 1, k: 33, kernel: "smallK" }),
        /K must be <= 32: current value is 33/,
      );
    } finally {
      pass.end();
      ctx.release(big);
    }
  },
});
