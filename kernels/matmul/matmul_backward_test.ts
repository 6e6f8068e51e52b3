import { throws } from "node:assert/strict";
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
import { uploadMatrix } from "../../gpu/matrix.ts";
import { encodeMatmulBackward } from "./matmul_backward.ts";
import { matmulBackwardRef } from "./matmul_backward_ref.ts";

// f32 accumulation of up to 130 products per output: ~sqrt(K)·2^-24 ≈ 1e-7; 1e-5 as the forward.
const TOL = 1e-5;

Deno.test({
  name: "encodeMatmulBackward() matches the f64 reference on shapes off the tile size",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [65, 63, 17], [70, 130, 33]]) {
      const dy = randomArray(m * n, m * 13 + n);
      const x = randomArray(m * k, m * 31 + k);
      const w = randomArray(n * k, n * 17 + k);
      const dx = poisoned(ctx, m * k, "dx");
      const dw = poisoned(ctx, n * k, "dw");
      const bufs = [ctx.upload(dy, "dy"), ctx.upload(x, "x"), ctx.upload(w, "w")];
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeMatmulBackward(ctx, pass, { dy: bufs[0], x: bufs[1], w: bufs[2], dx, dw, m, n, k }),
      );
      const [gx, gw] = await readback(ctx, [
        { buffer: dx, offset: 0, size: m * k * 4 },
        { buffer: dw, offset: 0, size: n * k * 4 },
      ], enc);
      const want = matmulBackwardRef(dy, x, w, [m, n, k]);
      const ex = assertClose(new Float32Array(gx), want.dx, TOL, `dx ${m}x${n}x${k}`);
      const ew = assertClose(new Float32Array(gw), want.dw, TOL, `dw ${m}x${n}x${k}`);
      console.log(
        `matmul backward ${m}x${n}x${k}: dx ${ex.toExponential(2)}, dw ${ew.toExponential(2)}`,
      );
      for (const b of [...bufs, dx, dw]) b.destroy();
    }
  },
});

Deno.test({
  name:
    "encodeMatmulBackward() accumulates scaled gradients of a column block over a row-split weight",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // The forward wrote y = 0.5 · x · wᵀ into columns 3 .. 3+n of a [m, 20] buffer, x was a
    // [m, k] view of rows of stride 11, and w is split into row blocks of 4 rows (3 blocks).
    // dx lands in columns 2 .. 2+k of a [m, 12] buffer; both gradients add to existing values.
    const [m, n, k, ldy, yCol, ldx, lddx, dxCol, alpha] = [9, 10, 7, 20, 3, 11, 12, 2, 0.5];
    const dyFull = randomArray(m * ldy, 1);
    const xFull = randomArray(m * ldx, 2);
    const w = randomArray(n * k, 3);
    const dx0 = randomArray(m * lddx, 4);
    const dw0 = randomArray(n * k, 5);
    const wm = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, {
      maxChunkBytes: 4 * k * 4,
    });
    const dwm = uploadMatrix(ctx, { name: "dw", data: dw0, rows: n, cols: k }, {
      maxChunkBytes: 4 * k * 4,
    });
    if (wm.chunks.length !== 3) throw new Error(`expected 3 blocks, got ${wm.chunks.length}`);
    const dyb = ctx.upload(dyFull, "dy");
    const xb = ctx.upload(xFull, "x");
    const dx = ctx.upload(dx0, "dx");
    const enc = recordPass(ctx, (pass) => {
      wm.chunks.forEach((chunk, i) =>
        encodeMatmulBackward(ctx, pass, {
          dy: dyb,
          m,
          n: chunk.rows,
          k,
          ldy,
          yCol: yCol + chunk.rowStart,
          x: xb,
          ldx,
          w: chunk.buffer,
          dx,
          lddx,
          dxCol,
          accumulateDx: true,
          dw: dwm.chunks[i].buffer,
          accumulateDw: true,
          alpha,
        })
      );
    });
    const got = await readback(ctx, [
      { buffer: dx, offset: 0, size: m * lddx * 4 },
      ...dwm.chunks.map((c) => ({ buffer: c.buffer, offset: 0, size: c.rows * k * 4 })),
    ], enc);
    const dy = new Float64Array(m * n);
    const x = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) dy[i * n + j] = dyFull[i * ldy + yCol + j];
      for (let t = 0; t < k; t++) x[i * k + t] = xFull[i * ldx + t];
    }
    const ref = matmulBackwardRef(dy, x, w, [m, n, k]);
    const wantDx = Float64Array.from(dx0);
    for (let i = 0; i < m; i++) {
      for (let t = 0; t < k; t++) wantDx[i * lddx + dxCol + t] += alpha * ref.dx[i * k + t];
    }
    const wantDw = Float64Array.from(dw0, (v, i) => v + alpha * ref.dw[i]);
    const gotDw = new Float32Array(n * k);
    let off = 0;
    for (const bytes of got.slice(1)) {
      gotDw.set(new Float32Array(bytes), off);
      off += bytes.byteLength / 4;
    }
    assertClose(new Float32Array(got[0]), wantDx, TOL, "dx accumulate");
    assertClose(gotDw, wantDw, TOL, "dw accumulate");
  },
});

Deno.test({
  name: "encodeMatmulBackward() computes only the gradient asked for",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [m, n, k] = [5, 3, 4];
    const dy = randomArray(m * n, 7);
    const x = randomArray(m * k, 8);
    const dw = poisoned(ctx, n * k, "dw");
    const enc = recordPass(ctx, (pass) =>
      encodeMatmulBackward(ctx, pass, {
        dy: ctx.upload(dy, "dy"),
        x: ctx.upload(x, "x"),
        dw,
        m,
        n,
        k,
      }));
    const want = matmulBackwardRef(dy, x, new Float64Array(n * k), [m, n, k]);
    assertClose(await readFloats(ctx, dw, n * k, enc), want.dw, TOL, "dw only");
    let message = "";
    try {
      recordPass(ctx, (pass) => encodeMatmulBackward(ctx, pass, { dy: dw, dx: dw, m, n, k }));
    } catch (e) {
      if (e instanceof TypeError) message = e.message;
    }
    if (!message.includes("dx needs w")) throw new Error(`expected a TypeError, got "${message}"`);
  },
});

Deno.test({
  name: "encodeMatmulBackward() names a gradient buffer too small for its shape",
  ignore: noGpu,
  fn: async () => {
    const ctx = (await testContext())!;
    const dy = ctx.createBuffer(4 * 4 * 3, "dy");
    const w = ctx.createBuffer(4 * 3 * 5, "w");
    const dx = ctx.createBuffer(4 * 4 * 5 - 4, "dx");
    const pass = ctx.device.createCommandEncoder().beginComputePass();
    try {
      throws(() => encodeMatmulBackward(ctx, pass, { dy, w, dx, m: 4, n: 3, k: 5 }), {
        name: "RangeError",
        message: 'Cannot record matmul backward: "dx" must hold at least 20 elements ' +
          "([m, k] = [4, 5] at column 0, row stride 5): current size is 19 elements",
      });
    } finally {
      pass.end();
      for (const b of [dy, w, dx]) ctx.release(b);
    }
  },
});
