import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { RMS_NORM_BACKWARD_BLOCK_ROWS } from "../rms_norm/rms_norm_backward.ts";
import { rmsNormBackwardRef } from "../rms_norm/rms_norm_backward_ref.ts";
import { ropeBackwardRef } from "../rope/rope_backward_ref.ts";
import { ropeTable } from "../rope/rope_ref.ts";
import { encodeNormRopeBackward } from "./norm_rope_backward.ts";

// dx and dw: f32 sums over a row and over ≤ 300 rows (blocks of 256), dx subtracting two similar
// terms: 1e-5 relative, as rms_norm backward. The un-rotated gradient left in dy: one rotation,
// 1e-6.
const TOL = 1e-5;
const TOL_ROTATION = 1e-6;
const [MAX_POS, THETA] = [4096, 1e6];

Deno.test({
  name: "encodeNormRopeBackward() matches rope then rms_norm backward (dx, accumulated dw) in f64",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // [tokens, heads, d]; 300 rows span two 256-row blocks of the dw sum.
    const shapes = [[1, 1, 2], [5, 3, 8], [7, 1, 12], [9, 2, 128], [300, 1, 64], [3, 2, 256]];
    for (const [tokens, heads, d] of shapes) {
      const rows = tokens * heads;
      const eps = d === 2 ? 0.1 : 1e-6;
      const seed = rows * 7 + d;
      const x = randomArray(rows * d, seed, -3, 3);
      const w = randomArray(d, seed + 1, 0.5, 1.5);
      const g = randomArray(rows * d, seed + 2);
      const dw0 = randomArray(d, seed + 3);
      // The last of several tokens sits past the table: the kernel clamps it to the last row.
      const past = (i: number) => i > 0 && i === tokens - 1;
      const positions = Uint32Array.from(
        { length: tokens },
        (_, i) => past(i) ? MAX_POS + 7 : (i * 997 + 1) % MAX_POS,
      );
      const refPositions = positions.map((p) => Math.min(p, MAX_POS - 1));
      const dy = ctx.upload(g, "dy");
      const dx = poisoned(ctx, rows * d, "dx");
      const dw = ctx.upload(dw0, "dw");
      const blocks = Math.ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS);
      const enc = recordPass(ctx, (pass) =>
        encodeNormRopeBackward(ctx, pass, {
          dy,
          x: ctx.upload(x, "x"),
          w: ctx.upload(w, "w"),
          dx,
          dw,
          accumulateDw: true,
          rstd: poisoned(ctx, rows, "rstd"),
          partials: poisoned(ctx, blocks * d, "partials"),
          positions: ctx.upload(positions, "positions"),
          table: ctx.upload(ropeTable(MAX_POS, { d, theta: THETA }), "table"),
          tokens,
          heads,
          d,
          maxPos: MAX_POS,
          eps,
        }));
      const [gdy, gdx, gdw] = await readback(ctx, [
        { buffer: dy, offset: 0, size: rows * d * 4 },
        { buffer: dx, offset: 0, size: rows * d * 4 },
        { buffer: dw, offset: 0, size: d * 4 },
      ], enc);
      const dn = ropeBackwardRef(g, refPositions, { d, heads, theta: THETA });
      const want = rmsNormBackwardRef(dn, x, w, { d, eps });
      const what = `${tokens}x${heads}x${d}`;
      assertClose(new Float32Array(gdy), dn, TOL_ROTATION, `dn ${what}`);
      const ex = assertClose(new Float32Array(gdx), want.dx, TOL, `dx ${what}`);
      const ew = assertClose(
        new Float32Array(gdw),
        want.dw.map((v, i) => v + dw0[i]),
        TOL,
        `dw ${what}`,
      );
      console.log(
        `norm_rope backward ${what}: dx ${ex.toExponential(2)}, dw ${ew.toExponential(2)}`,
      );
    }
  },
});
