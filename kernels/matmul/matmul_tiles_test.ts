// The 128x128-tile kernel (matmul_128.wgsl), forced through `kernel: "tile128"` (and, for the
// forward and accumulate tests, the 64x64-tile one, `"tile64"`, which "auto" no longer takes for
// every small shape), against the float64 references on shapes off its tile (M, N, K not multiples of 128 or 8; one row; long K),
// with poisoned outputs, in all its variants: forward, d x (W_T), d w (X_T + W_T), strided views
// with column offsets, accumulate with a scale, and f16 weights. Tolerances: f32 accumulation of
// K products, relative error ~ sqrt(K)·2^-24; 1e-5 for K ≤ 10^4 (as matmul_test.ts), 1e-4 for
// K = 151,936. Both tile kernels read an operand as vec4s where its layout allows ("auto"); the
// vec4, 4-scalar and scalar reads are each forced on aligned and unaligned shapes. "auto" takes
// the vec4 matvec (kernels/matvec) for <= 32 rows: its route, fallback and refusal are tested here.
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
import { readback } from "../../gpu/readback.ts";
import { GpuContext } from "../../gpu/context.ts";
import { encodeMatmul, pickMatmulKernel } from "./matmul.ts";
import { encodeMatmulBackward } from "./matmul_backward.ts";
import { matmulBackwardRef } from "./matmul_backward_ref.ts";
import { matmulRef } from "./matmul_ref.ts";
import { checkAccumulate, checkBackward, checkF16Weights } from "./_test_cases.ts";
import { vec4Operands } from "./_dispatch.ts";

const TOL = 1e-5;
// [m, n, k]: single elements, one row, one column, edges of both tiles in every dimension.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 300, 40],
  [300, 1, 40],
  [3, 5, 7],
  [127, 129, 9],
  [128, 128, 8],
  [129, 257, 33],
  [200, 131, 1000],
];

Deno.test("pickMatmulKernel() takes the matvec up to 32 rows, then 128x128 tiles from 32", () => {
  assert.equal(pickMatmulKernel(128, 128, 64), "tile128");
  assert.equal(pickMatmulKernel(4096, 3072, 1024), "tile128");
  assert.equal(pickMatmulKernel(33, 4096, 1024), "tile128");
  assert.equal(pickMatmulKernel(4096, 32, 1024), "tile128");
  assert.equal(pickMatmulKernel(31, 4096, 1023), "tile64");
  assert.equal(pickMatmulKernel(4096, 16, 1024), "tile64");
  assert.equal(pickMatmulKernel(1, 1, 33), "tile64");
  // A short inner dimension with few rows (LoRA B in decode): the vec4 matvec when k % 4 == 0,
  // else one thread per output.
  assert.equal(pickMatmulKernel(1, 1024, 16), "matvec");
  assert.equal(pickMatmulKernel(32, 3072, 1024), "matvec");
  assert.equal(pickMatmulKernel(16, 3072, 30), "smallK");
  assert.equal(pickMatmulKernel(17, 3072, 30), "tile64");
  assert.equal(pickMatmulKernel(4096, 3072, 16), "tile128");
});

Deno.test("pickMatmulKernel() on a GPU takes 64x64 tiles when 128x128 ones leave it idle", () => {
  const gpu = { fill: 256 };
  // A decode step of 64 rows: q_proj gets 16 workgroups of 128x128, 32 of 64x64.
  assert.equal(pickMatmulKernel(64, 2048, 1024, gpu), "tile64");
  // Training over 4096 tokens: 256 workgroups of 128x128 already.
  assert.equal(pickMatmulKernel(4096, 1024, 1024, gpu), "tile128");
  assert.equal(pickMatmulKernel(4096, 3072, 1024, gpu), "tile128");
  // A weight gradient 1024x1024 over the tokens: 64 workgroups of 128x128, 256 of 64x64.
  assert.equal(pickMatmulKernel(1024, 1024, 4096, gpu), "tile64");
  // The LM head's dx over a block of 3520 tokens: 224 workgroups of 128x128, at least half of
  // 256, so the tiles that do 4x the FMAs per shared-memory read; 127 would not be.
  assert.equal(pickMatmulKernel(3520, 1024, 151936, gpu), "tile128");
  assert.equal(pickMatmulKernel(127 * 128, 128, 1024, gpu), "tile64");
  assert.equal(pickMatmulKernel(128 * 128, 128, 1024, gpu), "tile128");
  // Up to 64x64 outputs both give one workgroup: the 128x128 tiles, as on llvmpipe.
  assert.equal(pickMatmulKernel(64, 64, 1024, gpu), "tile128");
  // The other rules do not depend on it.
  assert.equal(pickMatmulKernel(32, 3072, 1024, gpu), "matvec");
  assert.equal(pickMatmulKernel(16, 3072, 30, gpu), "smallK");
  assert.equal(pickMatmulKernel(4096, 16, 1024, gpu), "tile64");
});

Deno.test({
  name: "encodeMatmul() with the matvec kernel: strided, scaled accumulate; falls back or refuses",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // x rows of stride 28 (aligned), y columns 5.. of rows of 140, y += 0.5 · x · wᵀ.
    await checkAccumulate("matvec", [13, 133, 20, 28, 140, 5], TOL);
    await checkAccumulate("matvec", [1, 300, 64, 64, 300, 0], TOL);
    // "auto" with an unaligned row stride takes the next kernel (smallK here); forced, it throws.
    await checkAccumulate("auto", [13, 133, 20, 30, 140, 5], TOL);
    assert.throws(
      () =>
        recordPass(ctx, (pass) =>
          encodeMatmul(ctx, pass, {
            x: ctx.createBuffer(13 * 30 * 4, "x"),
            w: ctx.createBuffer(133 * 20 * 4, "w"),
            y: ctx.createBuffer(13 * 133 * 4, "y"),
            m: 13,
            n: 133,
            k: 20,
            ldx: 30,
            kernel: "matvec",
          })),
      /Cannot record matmul with the matvec kernel: .* ldx 30,/,
    );
    // The backward's products have transposed operands: "auto" falls back to the tiles.
    await checkBackward("auto", [[4, 8, 12], [3, 130, 44]], TOL);
  },
});

Deno.test({
  name: "encodeMatmul() with tile64 and tile128 matches the f64 reference on shapes off the tiles",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const kernel of ["tile64", "tile128"] as const) {
      for (const [m, n, k] of SHAPES) {
        const x = randomArray(m * k, m * 31 + k);
        const w = randomArray(n * k, n * 17 + k);
        // y holds 2 rows past m, poisoned like the rest: they must stay NaN (a view into a taller
        // matrix must not be written past its rows; the rows past m of a tile compute zeros).
        const y = poisoned(ctx, (m + 2) * n, "y");
        const xb = ctx.upload(x, "x");
        const wb = ctx.upload(w, "w");
        const enc = recordPass(
          ctx,
          (pass) => encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k, kernel }),
        );
        const all = await readFloats(ctx, y, (m + 2) * n, enc);
        const what = `${kernel} ${m}x${n}x${k}`;
        const err = assertClose(all.subarray(0, m * n), matmulRef(x, w, [m, n, k]), TOL, what);
        const past = all.subarray(m * n).findIndex((v) => !Number.isNaN(v));
        if (past >= 0) throw new Error(`${what}: y written past row m (element ${m * n + past})`);
        console.log(`${what}: rel err ${err.toExponential(2)}`);
        for (const b of [xb, wb, y]) ctx.release(b);
      }
    }
  },
});

Deno.test({
  name: "encodeMatmul() auto on a hardware adapter's context gives the software one's bits",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    // The same device seen as a GPU (fill 256) and as llvmpipe: at 64x200 the first takes the
    // 64x64 tiles, the second the 128x128 ones; both sum each output in k order with one fma per
    // k, so the results are identical (tolerance 0), and within 1e-5 of float64.
    const [m, n, k] = [64, 200, 72];
    assert.equal(pickMatmulKernel(m, n, k, { fill: 256 }), "tile64");
    assert.equal(pickMatmulKernel(m, n, k), "tile128");
    const x = randomArray(m * k, 3);
    const w = randomArray(n * k, 4);
    const got: Float32Array[] = [];
    for (const isFallbackAdapter of [false, true]) {
      const ctx = new GpuContext({ ...base.gpu, isFallbackAdapter });
      const y = poisoned(ctx, m * n, "y");
      const xb = ctx.upload(x, "x");
      const wb = ctx.upload(w, "w");
      const enc = recordPass(ctx, (pass) => encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k }));
      got.push(await readFloats(ctx, y, m * n, enc));
      for (const b of [xb, wb, y]) ctx.release(b);
    }
    assert.deepEqual(got[0], got[1]);
    assertClose(got[0], matmulRef(x, w, [m, n, k]), TOL, `auto ${m}x${n}x${k}`);
  },
});

Deno.test({
  name: "encodeMatmul() with tile64 and tile128 accumulates with a scale into a column block",
  ignore: noGpu,
  async fn() {
    for (const kernel of ["tile64", "tile128"] as const) {
      await checkAccumulate(kernel, [130, 133, 21, 25, 140, 5], TOL);
    }
  },
});

Deno.test("vec4Operands() allows vec4 reads only where every vec4 starts at a multiple of 4", () => {
  const p = {
    M: 132,
    N: 136,
    K: 44,
    ldx: 44,
    ldy: 136,
    y_col: 0,
    accumulate: false,
    alpha: 1,
    ldw: 44,
    x_col: 0,
    w_col: 0,
  };
  assert.deepEqual(vec4Operands(p, {}), { x: true, w: true });
  assert.deepEqual(vec4Operands({ ...p, K: 45 }, {}), { x: false, w: false });
  assert.deepEqual(vec4Operands({ ...p, K: 45 }, { xT: true, wT: true }), { x: true, w: true });
  assert.deepEqual(vec4Operands({ ...p, x_col: 3 }, {}), { x: false, w: true });
  assert.deepEqual(vec4Operands({ ...p, ldw: 46 }, {}), { x: true, w: false });
  assert.deepEqual(vec4Operands({ ...p, N: 135 }, { wT: true }), { x: true, w: false });
});

// Shapes whose operands all allow vec4 reads (m, n, k multiples of 4) and one where only some do
// (k = 45: the forward reads scalars; d x reads dy as vec4s, w's transposed rows as scalars).
// k = 236 leaves the remainders k = 1004 left (236 ≡ 1004 mod 128: a partial BK = 8 and BK = 16
// step, an even count of tile128 K steps and an odd one of tile64's, a partial last tile of the
// k columns of d x and d w after full ones) at a quarter of the lavapipe time.
const VEC4_SHAPES: [number, number, number][] = [
  [4, 4, 4],
  [132, 136, 12],
  [260, 132, 236],
  [132, 140, 45],
];

Deno.test({
  name: "encodeMatmul() with tile64 and tile128 matches f64 with vec4, 4-scalar and scalar reads",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // Each shape's inputs and float64 product, made once for the six kernel × loads variants.
    const cases = VEC4_SHAPES.map(([m, n, k]) => {
      const x = randomArray(m * k, m * 7 + k);
      const w = randomArray(n * k, n * 5 + k);
      return { m, n, k, x, w, want: matmulRef(x, w, [m, n, k]) };
    });
    for (const kernel of ["tile64", "tile128"] as const) {
      for (const loads of ["auto", "vec4Split", "scalar"] as const) {
        for (const { m, n, k, x, w, want } of cases) {
          const y = poisoned(ctx, m * n, "y");
          const xb = ctx.upload(x, "x");
          const wb = ctx.upload(w, "w");
          const enc = recordPass(
            ctx,
            (pass) => encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k, kernel, loads }),
          );
          const got = await readFloats(ctx, y, m * n, enc);
          const tag = `${kernel} ${loads} ${m}x${n}x${k}`;
          const err = assertClose(got, want, TOL, tag);
          console.log(`${tag}: rel err ${err.toExponential(2)}`);
          for (const b of [xb, wb, y]) ctx.release(b);
        }
        await checkBackward(kernel, VEC4_SHAPES, TOL, loads);
        // x rows of stride 28 (aligned), y columns 5.. of rows of 140.
        await checkAccumulate(kernel, [132, 133, 20, 28, 140, 5], TOL, loads);
      }
    }
  },
});

Deno.test({
  name: "encodeMatmulBackward() with tile128 matches the f64 reference, plain and strided",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    await checkBackward("tile128", [[1, 1, 1], [3, 5, 7], [129, 131, 150], [200, 140, 9]], TOL);
    // Views: dy is columns 3.. of rows of 150, x rows of stride 141, dx columns 2.. of rows of
    // 145; both gradients add 0.5 x the product to existing values. Then the same with every
    // operand aligned for vec4 reads (dy columns 4.. of rows of 152, x rows of 140).
    for (
      const [m, n, k, ldy, yCol, ldx, lddx, dxCol, alpha] of [
        [130, 129, 137, 150, 3, 141, 145, 2, 0.5],
        [132, 128, 136, 152, 4, 140, 145, 2, 0.5],
      ]
    ) {
      const dyFull = randomArray(m * ldy, 11);
      const xFull = randomArray(m * ldx, 12);
      const w = randomArray(n * k, 13);
      const dx0 = randomArray(m * lddx, 14);
      const dw0 = randomArray(n * k, 15);
      const dx = ctx.upload(dx0, "dx");
      const dw = ctx.upload(dw0, "dw");
      const enc = recordPass(ctx, (pass) =>
        encodeMatmulBackward(ctx, pass, {
          dy: ctx.upload(dyFull, "dy"),
          m,
          n,
          k,
          ldy,
          yCol,
          x: ctx.upload(xFull, "x"),
          ldx,
          w: ctx.upload(w, "w"),
          dx,
          lddx,
          dxCol,
          accumulateDx: true,
          dw,
          accumulateDw: true,
          alpha,
          kernel: "tile128",
        }));
      const [gx, gw] = await readback(ctx, [
        { buffer: dx, offset: 0, size: m * lddx * 4 },
        { buffer: dw, offset: 0, size: n * k * 4 },
      ], enc);
      const dyv = new Float64Array(m * n);
      const xv = new Float64Array(m * k);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) dyv[i * n + j] = dyFull[i * ldy + yCol + j];
        for (let t = 0; t < k; t++) xv[i * k + t] = xFull[i * ldx + t];
      }
      const ref = matmulBackwardRef(dyv, xv, w, [m, n, k]);
      const wantDx = Float64Array.from(dx0);
      for (let i = 0; i < m; i++) {
        for (let t = 0; t < k; t++) wantDx[i * lddx + dxCol + t] += alpha * ref.dx[i * k + t];
      }
      assertClose(
        new Float32Array(gx),
        wantDx,
        TOL,
        `tile128 dx strided accumulate ${m}x${n}x${k}`,
      );
      assertClose(
        new Float32Array(gw),
        Float64Array.from(dw0, (v, i) => v + alpha * ref.dw[i]),
        TOL,
        `tile128 dw accumulate ${m}x${n}x${k}`,
      );
    }
  },
});

Deno.test({
  name: "encodeMatmul() with tile128 reads f16 weights (forward and d x) as float64 of f16 values",
  ignore: noGpu,
  fn: () => checkF16Weights("tile128", TOL),
});

Deno.test({
  name: "encodeMatmul() with tile128 sums a reduction longer than Mesa's 65,535-iteration limit",
  ignore: noGpu,
  async fn() {
    // K = 151,936 (Qwen3's vocabulary): 18,992 iterations of the K loop, the only loop.
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
        kernel: "tile128",
      }));
    const got = await readFloats(ctx, y, m * n, enc);
    const err = assertClose(got, matmulRef(x, w, [m, n, k]), 1e-4, `tile128 ${m}x${n}x${k}`);
    console.log(`tile128 ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
  },
});
