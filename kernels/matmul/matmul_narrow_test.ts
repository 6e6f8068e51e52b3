// The kernel for narrow outputs (matmul_narrow.wgsl, one thread per two rows), forced through
// `kernel: "narrow"`, against the float64 references: forward, d x (W_T) and d w (X_T + W_T) with
// n ≤ 8 output columns, strided views, accumulate with a scale, f16 weights, a K past Mesa's loop
// limit, an empty output (no dispatch); outputs poisoned. It sums each output in k order with one
// fma per k as the 64×64 tiles do, so it also equals them bit for bit. Tolerance: 1e-5 relative
// (as matmul_test.ts) up to K = 70; the LM head's K = 151,931 sums that many f32 products: 1e-4
// (as matmul_test.ts there).
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
import { encodeMatmul, type MatmulKernel, NARROW_MIN_K, pickMatmulKernel } from "./matmul.ts";
import { encodeMatmulBackward } from "./matmul_backward.ts";
import { matmulRef } from "./matmul_ref.ts";
import { checkAccumulate, checkBackward, checkForward, checkRefuses } from "./_test_cases.ts";

const TOL = 1e-5;

Deno.test("pickMatmulKernel() takes the narrow kernel for n ≤ 8 and a long k on llvmpipe only", () => {
  // The LM head's d x of 128 tokens at hidden size 8 (the real-vocabulary test's shape).
  assert.equal(pickMatmulKernel(128, 8, 151936, { splitK: true }), "narrow");
  assert.equal(pickMatmulKernel(128, 8, 151936), "narrow");
  assert.equal(pickMatmulKernel(4096, 1, NARROW_MIN_K), "narrow");
  assert.equal(pickMatmulKernel(4096, 8, NARROW_MIN_K - 1), "tile64");
  assert.equal(pickMatmulKernel(4096, 9, NARROW_MIN_K), "tile64");
  // Few rows: the matvec (k % 4 == 0) or the one-thread-per-output kernel first.
  assert.equal(pickMatmulKernel(32, 8, 151936), "matvec");
  // A hardware adapter: split-K for the backward, the tiles for the forward.
  assert.equal(pickMatmulKernel(128, 8, 151936, { fill: 256, splitK: true }), "splitK");
  assert.equal(pickMatmulKernel(128, 8, 151936, { fill: 256 }), "tile64");
});

Deno.test({
  name: "encodeMatmul() with narrow matches the f64 reference, plain, strided and accumulating",
  ignore: noGpu,
  async fn() {
    await checkForward(
      "narrow",
      [[1, 1, 1], [3, 8, 7], [33, 5, 17], [70, 8, 64], [65, 3, 250]],
      TOL,
    );
    // y[:, 5 .. 5 + 7] of rows of 20 += 0.5 · x[37, 19] (rows of 23) · wᵀ.
    await checkAccumulate("narrow", [37, 7, 19, 23, 20, 5], TOL);
  },
});

Deno.test({
  name: "encodeMatmulBackward() with narrow gives dx and dw (transposed variants)",
  ignore: noGpu,
  async fn() {
    // Both outputs have k columns: k <= 8.
    await checkBackward("narrow", [[1, 1, 1], [7, 45, 8], [70, 33, 5]], TOL);
  },
});

Deno.test({
  name: "encodeMatmul() with narrow reads f16 weights",
  ignore: noGpu,
  async fn() {
    // checkF16Weights' shapes have 133 and 136 output columns: narrow takes at most 8, so the
    // f16 case here is its own.
    await checkForward("narrow", [[40, 6, 45]], TOL, { wF16: true });
  },
});

Deno.test({
  name: "encodeMatmulBackward() with narrow sums the LM head's d x over 151,931 k (past Mesa's " +
    "loop limit) and equals the 64×64 tiles bit for bit",
  ignore: noGpu,
  async fn() {
    // dx[m, 8] = dy[m, V] · w[V, 8]: K = 151,931 (a tail of 11 past the steps of 16) against the
    // f64 reference; then, at K = 4,099 (the 64×64 tiles over 151,931 k take ~15 s here),
    // bit for bit against the tiles.
    const ctx = (await testContext())!;
    const h = 8;
    const dxOf = async (kernel: MatmulKernel, m: number, v: number) => {
      const dy = randomArray(m * v, 71 + v);
      const w = randomArray(v * h, 72 + v);
      const dx = poisoned(ctx, m * h, "dx");
      const [dyb, wb] = [ctx.upload(dy, "dy"), ctx.upload(w, "w")];
      const enc = recordPass(
        ctx,
        (pass) => encodeMatmulBackward(ctx, pass, { dy: dyb, w: wb, dx, m, n: v, k: h, kernel }),
      );
      const got = await readFloats(ctx, dx, m * h, enc);
      for (const b of [dyb, wb, dx]) ctx.release(b);
      return { got, dy, w };
    };
    const [m, v] = [3, 151931];
    const { got, dy, w } = await dxOf("narrow", m, v);
    // matmulRef(x [m, K], w [N, K]): the [V, 8] head transposed to [8, V].
    const wt = new Float32Array(h * v);
    for (let j = 0; j < v; j++) for (let c = 0; c < h; c++) wt[c * v + j] = w[j * h + c];
    const err = assertClose(got, matmulRef(dy, wt, [m, h, v]), 1e-4, `narrow dx K ${v}`);
    console.log(`narrow dx ${m}x${h} over K ${v}: rel err ${err.toExponential(2)}`);
    const [a, b] = [await dxOf("narrow", 70, 4099), await dxOf("tile64", 70, 4099)];
    assert.deepEqual(new Uint32Array(a.got.buffer), new Uint32Array(b.got.buffer));
  },
});

Deno.test({
  name: "encodeMatmul() with narrow refuses n > 8",
  ignore: noGpu,
  async fn() {
    await checkRefuses("narrow", [1, 9, 16], /N must be <= 8: current value is 9/);
  },
});

Deno.test({
  name: "encodeMatmul() and encodeMatmulBackward() record nothing for an empty output (n = 0)",
  ignore: noGpu,
  async fn() {
    // With N = 0 the narrow kernel read w at column min(n, N - 1) = 2^32 - 1 (out of range,
    // clamped by the adapter) for each of its rows; an empty product has nothing to write, so
    // no dispatch is recorded (any kernel). Same for dx and dw of a product with k = 0.
    const ctx = (await testContext())!;
    const [m, k] = [70, NARROW_MIN_K];
    assert.equal(pickMatmulKernel(m, 0, k), "narrow"); // "auto" takes it too on llvmpipe
    const x = ctx.upload(randomArray(m * k, 3), "x");
    const w = ctx.createBuffer(0, "w");
    const y = poisoned(ctx, 1, "y");
    const counted = (record: (pass: GPUComputePassEncoder) => void) => {
      let dispatches = 0;
      const enc = recordPass(ctx, (pass) => {
        const dispatch = pass.dispatchWorkgroups.bind(pass);
        pass.dispatchWorkgroups = (...a: Parameters<typeof dispatch>) => {
          dispatches++;
          dispatch(...a);
        };
        record(pass);
      });
      ctx.device.queue.submit([enc.finish()]);
      return dispatches;
    };
    for (const kernel of ["narrow", "auto", "tile64", "smallK"] as const) {
      const n = counted((pass) =>
        encodeMatmul(ctx, pass, { x, w, y, m, n: 0, k: kernel === "smallK" ? 8 : k, kernel })
      );
      assert.equal(n, 0, `${kernel}: dispatches for m ${m}, n 0`);
    }
    // The backward of a product with k = 0: dx [m, 0] and dw [n, 0] are empty.
    const dy = ctx.upload(randomArray(m * 4, 4), "dy");
    const n = counted((pass) =>
      encodeMatmulBackward(ctx, pass, { dy, w, x: w, dx: y, dw: y, m, n: 4, k: 0 })
    );
    assert.equal(n, 0, "backward dispatches for k 0");
    assert.ok(Number.isNaN((await readFloats(ctx, y, 1))[0]), "the poisoned y was written");
    for (const b of [x, w, y, dy]) ctx.release(b);
  },
});
