// Both kernels: matvec.wgsl (scalar, any k) and matvec_vec4.wgsl (k % 4 == 0, "auto" takes it),
// each forced, with every K split of the vec4 one, on shapes off the block sizes (rows past MB = 8,
// columns past 4 and 256 / TK), poisoned outputs, a strided accumulate, f16 weights and a grid
// sliced at the device's workgroup limit.
import assert from "node:assert/strict";
import { uploadMatrix } from "../../gpu/matrix.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { matmulRef } from "../matmul/matmul_ref.ts";
import { encodeMatvec, type MatvecKernel, pickMatvecSplit } from "./matvec.ts";

// f32 sums of up to 1000 products split over 64 threads: 1e-5 relative is ample.
const TOL = 1e-5;

Deno.test({
  name: "encodeMatvec() scalar kernel matches the f64 matmul reference on shapes off the blocks",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (
      const [m, n, k] of [[1, 1, 1], [1, 7, 100], [3, 130, 64], [5, 33, 65], [8, 64, 257], [
        13,
        9,
        1000,
      ]]
    ) {
      const x = randomArray(m * k, m + k, -2, 2);
      const w = randomArray(n * k, n + k);
      const y = poisoned(ctx, m * n, "y");
      const enc = recordPass(ctx, (pass) =>
        encodeMatvec(ctx, pass, {
          x: ctx.upload(x, "x"),
          w: ctx.upload(w, "w"),
          y,
          m,
          n,
          k,
          kernel: "scalar",
        }));
      const err = assertClose(
        await readFloats(ctx, y, m * n, enc),
        matmulRef(x, w, [m, n, k]),
        TOL,
        `matvec ${m}x${n}x${k}`,
      );
      console.log(`matvec ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test("pickMatvecSplit() splits K only when 4 columns per thread leave under 8 workgroups", () => {
  assert.equal(pickMatvecSplit(1, 3072, 1024), 1); // 12 workgroups
  assert.equal(pickMatvecSplit(1, 151936, 1024), 1);
  assert.equal(pickMatvecSplit(1, 1024, 3072), 2); // 4 workgroups with TK = 1
  assert.equal(pickMatvecSplit(32, 1024, 3072), 1); // 4 row blocks x 4
  assert.equal(pickMatvecSplit(1, 16, 1024), 16); // LoRA A: capped at 16 steps per thread
  assert.equal(pickMatvecSplit(1, 16, 65536), 64);
  assert.equal(pickMatvecSplit(1, 4, 64), 1);
  // A hardware adapter's 256 workgroups: q_proj (8 column blocks) splits K 16 ways (the most
  // 1024 allows); the LM head (594 blocks) not at all; 32 rows of the MLP (12 column blocks × 4
  // row blocks = 48 at TK 1) 8 ways (384).
  assert.equal(pickMatvecSplit(1, 2048, 1024, { fill: 256 }), 16);
  assert.equal(pickMatvecSplit(1, 151936, 1024, { fill: 256 }), 1);
  assert.equal(pickMatvecSplit(32, 3072, 1024, { fill: 256 }), 8);
});

Deno.test({
  name: "encodeMatvec() vec4 kernel matches the f64 reference with every K split",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const shapes = [[1, 1, 4], [1, 7, 100], [3, 130, 64], [5, 33, 68], [8, 259, 256], [
      13,
      9,
      1000,
    ], [2, 600, 1024]];
    for (const [m, n, k] of shapes) {
      const x = randomArray(m * k, m + k, -2, 2);
      const w = randomArray(n * k, n + k);
      const xb = ctx.upload(x, "x");
      const wb = ctx.upload(w, "w");
      const want = matmulRef(x, w, [m, n, k]);
      let worst = 0;
      for (const splitK of [undefined, 1, 2, 8, 64]) {
        const y = poisoned(ctx, m * n, "y");
        const enc = recordPass(
          ctx,
          (pass) => encodeMatvec(ctx, pass, { x: xb, w: wb, y, m, n, k, kernel: "vec4", splitK }),
        );
        const got = await readFloats(ctx, y, m * n, enc);
        const tag = `matvec vec4 ${m}x${n}x${k} TK ${splitK ?? "auto"}`;
        worst = Math.max(worst, assertClose(got, want, TOL, tag));
        ctx.release(y);
      }
      console.log(`matvec vec4 ${m}x${n}x${k}: worst rel err ${worst.toExponential(2)}`);
      ctx.release(xb);
      ctx.release(wb);
    }
    assert.throws(
      () =>
        recordPass(ctx, (pass) =>
          encodeMatvec(ctx, pass, {
            x: ctx.upload(new Float32Array(6), "x"),
            w: ctx.upload(new Float32Array(6), "w"),
            y: ctx.createBuffer(4, "y"),
            m: 1,
            n: 1,
            k: 6,
            kernel: "vec4",
          })),
      /k, ldx and xCol must be multiples of 4: current values are 6, 6, 0/,
    );
  },
});

Deno.test({
  name: "encodeMatvec() vec4 kernel reads f16 weights as the f64 product of their f16 values",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    if (!ctx.gpu.features.has("shader-f16")) {
      console.log(
        "the adapter has no shader-f16: not run (refusal tested in kernels/_f16_test.ts)",
      );
      return;
    }
    const [m, n, k] = [3, 70, 132];
    const x = randomArray(m * k, 5);
    const w = randomArray(n * k, 6);
    const w16 = Float32Array.from(Float16Array.from(w));
    const mat = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype: "f16" });
    const xb = ctx.upload(x, "x");
    for (const splitK of [1, 8]) {
      const y = poisoned(ctx, m * n, "y");
      const enc = recordPass(ctx, (pass) =>
        encodeMatvec(ctx, pass, {
          x: xb,
          w: mat.chunks[0].buffer,
          y,
          m,
          n,
          k,
          wF16: true,
          splitK,
        }));
      assertClose(
        await readFloats(ctx, y, m * n, enc),
        matmulRef(x, w16, [m, n, k]),
        TOL,
        `matvec vec4 f16 TK ${splitK}`,
      );
    }
  },
});

Deno.test({
  name: "encodeMatvec() accumulates into a column range of a wider output (both kernels)",
  ignore: noGpu,
  async fn() {
    for (const kernel of ["scalar", "vec4"] as MatvecKernel[]) await accumulate(kernel);
  },
});

// y[:, 7 .. 17] (rows of 25) += x · wᵀ with the kernel, against the f64 product.
async function accumulate(kernel: MatvecKernel): Promise<void> {
  const ctx = (await testContext())!;
  const [m, n, k, ldy, yCol] = [3, 10, 48, 25, 7];
  const x = randomArray(m * k, 1);
  const w = randomArray(n * k, 2);
  const y0 = randomArray(m * ldy, 3);
  const y = ctx.upload(y0, "y");
  const enc = recordPass(
    ctx,
    (pass) =>
      encodeMatvec(ctx, pass, {
        x: ctx.upload(x, "x"),
        w: ctx.upload(w, "w"),
        y,
        m,
        n,
        k,
        ldy,
        yCol,
        accumulate: true,
        kernel,
      }),
  );
  const got = await readFloats(ctx, y, m * ldy, enc);
  const want = Float64Array.from(y0);
  const prod = matmulRef(x, w, [m, n, k]);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) want[i * ldy + yCol + j] += prod[i * n + j];
  }
  assertClose(got, want, TOL, `matvec ${kernel} accumulate`);
}

Deno.test({
  name: "encodeMatvec() vec4 kernel reads a strided x view and scales the product",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // x: columns 8 .. 8 + 44 of rows of 60; y = 0.25 · x · wᵀ, poisoned.
    const [m, n, k, ldx, xCol, alpha] = [11, 37, 44, 60, 8, 0.25];
    const xFull = randomArray(m * ldx, 7);
    const w = randomArray(n * k, 8);
    const y = poisoned(ctx, m * n, "y");
    const enc = recordPass(ctx, (pass) =>
      encodeMatvec(ctx, pass, {
        x: ctx.upload(xFull, "x"),
        w: ctx.upload(w, "w"),
        y,
        m,
        n,
        k,
        ldx,
        xCol,
        alpha,
        splitK: 2,
      }));
    const xs = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let t = 0; t < k; t++) xs[i * k + t] = xFull[i * ldx + xCol + t];
    }
    assertClose(
      await readFloats(ctx, y, m * n, enc),
      matmulRef(xs, w, [m, n, k], { alpha }),
      TOL,
      "matvec vec4 strided x",
    );
    assert.throws(
      () =>
        recordPass(
          ctx,
          (pass) =>
            encodeMatvec(ctx, pass, {
              x: ctx.upload(xFull, "x"),
              w: y,
              y,
              m: 1,
              n: 1,
              k: 3,
              alpha,
            }),
        ),
      /scalar kernel .* takes no "ldx", "xCol" or "alpha"/,
    );
  },
});

Deno.test({
  name: "encodeMatvec() slices a grid wider than the device's workgroup limit",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const limit = ctx.device.limits.maxComputeWorkgroupsPerDimension;
    // k = 2 takes the scalar kernel (4 columns per workgroup); k = 4 with TK = 64 the vec4 one
    // (4 columns per workgroup too).
    for (const k of [2, 4]) {
      const [m, n] = [1, 4 * limit + 9];
      const x = Float32Array.from({ length: k }, (_, i) => i + 1);
      const w = randomArray(n * k, 4);
      const y = poisoned(ctx, n, "y");
      const wb = ctx.upload(w, "w");
      const enc = recordPass(ctx, (pass) =>
        encodeMatvec(ctx, pass, {
          x: ctx.upload(x, "x"),
          w: wb,
          y,
          m,
          n,
          k,
          splitK: k === 4 ? 64 : undefined,
        }));
      const got = await readFloats(ctx, y, n, enc);
      assertClose(got, matmulRef(x, w, [m, n, k]), TOL, `matvec wide k = ${k}`);
      ctx.release(y);
      ctx.release(wb);
    }
  },
});
