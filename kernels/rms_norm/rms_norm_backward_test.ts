import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { encodeRmsNormBackward, RMS_NORM_BACKWARD_BLOCK_ROWS } from "./rms_norm_backward.ts";
import { rmsNormBackwardRef } from "./rms_norm_backward_ref.ts";

// f32 sums over a row of d ≤ 1000 and over ≤ 600 rows (in blocks of 256), then a few
// multiplies; dx subtracts two terms of similar size, so 1e-5 relative rather than 1e-6.
const TOL = 1e-5;

/** `values` followed by `extra` elements of 100. */
function withTail(values: Float32Array, extra: number): Float32Array {
  const out = new Float32Array(values.length + extra).fill(100);
  out.set(values);
  return out;
}

Deno.test({
  name: "encodeRmsNormBackward() matches the f64 reference on shapes off the workgroup size",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // 600 rows span 3 blocks of 256 rows, the last one partial.
    for (const [rows, d] of [[1, 1], [3, 16], [7, 100], [600, 65], [5, 1000]]) {
      const x = randomArray(rows * d, rows + d, -3, 3);
      const w = randomArray(d, d, 0.5, 1.5);
      const dy = randomArray(rows * d, rows * 7 + d);
      const eps = d === 1 ? 0.1 : d === 16 ? 0.5 : 1e-6;
      const dx = poisoned(ctx, rows * d, "dx");
      const dw = poisoned(ctx, d, "dw");
      const blocks = Math.ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS);
      const enc = recordPass(ctx, (pass) =>
        encodeRmsNormBackward(ctx, pass, {
          // dy, x and rstd in buffers longer than the rows (as pooled scratch buffers are),
          // the rest holding 100s (NaN for rstd): no pass may read past the last row.
          dy: ctx.upload(withTail(dy, 3 * d), "dy"),
          x: ctx.upload(withTail(x, 3 * d), "x"),
          w: ctx.upload(w, "w"),
          dx,
          dw,
          rstd: poisoned(ctx, rows + 3, "rstd"),
          partials: poisoned(ctx, blocks * d, "partials"),
          rows,
          d,
          eps,
        }));
      const [gx, gw] = await readback(ctx, [
        { buffer: dx, offset: 0, size: rows * d * 4 },
        { buffer: dw, offset: 0, size: d * 4 },
      ], enc);
      const want = rmsNormBackwardRef(dy, x, w, { d, eps });
      const ex = assertClose(new Float32Array(gx), want.dx, TOL, `dx ${rows}x${d}`);
      const ew = assertClose(new Float32Array(gw), want.dw, TOL, `dw ${rows}x${d}`);
      console.log(
        `rms_norm backward ${rows}x${d}: dx ${ex.toExponential(2)}, dw ${ew.toExponential(2)}`,
      );
    }
  },
});

Deno.test({
  name: "encodeRmsNormBackward() accumulates, and computes dx alone when dw is not asked for",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, d, eps] = [9, 24, 1e-6];
    const x = randomArray(rows * d, 1, -2, 2);
    const w = randomArray(d, 2, 0.5, 1.5);
    const dy = randomArray(rows * d, 3);
    const dx0 = randomArray(rows * d, 4);
    const dw0 = randomArray(d, 5);
    const want = rmsNormBackwardRef(dy, x, w, { d, eps });
    const [dyb, xb, wb] = [ctx.upload(dy, "dy"), ctx.upload(x, "x"), ctx.upload(w, "w")];
    const dx = ctx.upload(dx0, "dx");
    const dw = ctx.upload(dw0, "dw");
    const dxOnly = poisoned(ctx, rows * d, "dx only");
    const enc = recordPass(ctx, (pass) => {
      const common = { dy: dyb, x: xb, w: wb, rows, d, eps };
      encodeRmsNormBackward(ctx, pass, {
        ...common,
        dx,
        accumulateDx: true,
        dw,
        accumulateDw: true,
        rstd: poisoned(ctx, rows, "rstd"),
        partials: poisoned(ctx, d, "partials"),
      });
      encodeRmsNormBackward(ctx, pass, { ...common, dx: dxOnly });
    });
    const [gx, gw, gxOnly] = await readback(ctx, [
      { buffer: dx, offset: 0, size: rows * d * 4 },
      { buffer: dw, offset: 0, size: d * 4 },
      { buffer: dxOnly, offset: 0, size: rows * d * 4 },
    ], enc);
    assertClose(
      new Float32Array(gx),
      want.dx.map((v, i) => v + dx0[i]),
      TOL,
      "dx accumulate",
    );
    assertClose(new Float32Array(gw), want.dw.map((v, i) => v + dw0[i]), TOL, "dw accumulate");
    assertClose(new Float32Array(gxOnly), want.dx, TOL, "dx only");
  },
});
