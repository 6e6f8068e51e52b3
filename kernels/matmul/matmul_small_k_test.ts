// The one-thread-per-output kernel for short inner dimensions (matmul_small_k.wgsl), forced
// through `kernel: "smallK"`, against the float64 references: forward, d x (W_T) and d w
// (X_T + W_T) with K <= 32, strided views, accumulate with a scale, f16 weights; outputs
// poisoned. Tolerance: sums of at most 32 f32 products, 1e-5 relative (as matmul_test.ts).
import { noGpu } from "../../gpu/test_utils.ts";
import { checkAccumulate, checkBackward, checkForward, checkRefuses } from "./_test_cases.ts";

const TOL = 1e-5;

Deno.test({
  name: "encodeMatmul() with smallK matches the f64 reference, plain, strided and accumulating",
  ignore: noGpu,
  async fn() {
    await checkForward("smallK", [[1, 1, 1], [1, 1030, 16], [3, 65, 7], [16, 200, 32]], TOL);
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
    await checkForward("smallK", [[4, 130, 16]], TOL, { wF16: true });
    await checkRefuses("smallK", [1, 1, 33], /K must be <= 32: current value is 33/);
  },
});
