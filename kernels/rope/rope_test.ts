import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeRope } from "./rope.ts";
import { ropeRef, ropeTable } from "./rope_ref.ts";

// One rotation with f32 cos/sin rounded from f64: a few ulps, so 1e-6 relative.
const TOL = 1e-6;

Deno.test({
  name: "encodeRope() matches the f64 reference at scattered positions",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const maxPos = 4096;
    for (const [tokens, heads, d] of [[1, 1, 2], [5, 3, 16], [37, 4, 64], [9, 2, 128]]) {
      const x = randomArray(tokens * heads * d, tokens + d);
      const positions = Uint32Array.from({ length: tokens }, (_, i) => (i * 997) % maxPos);
      const table = ropeTable(maxPos, { d, theta: 1e6 });
      const xb = ctx.upload(x, "x");
      const enc = recordPass(ctx, (pass) =>
        encodeRope(ctx, pass, {
          x: xb,
          positions: ctx.upload(positions, "positions"),
          table: ctx.upload(table, "table"),
          rows: tokens * heads,
          d,
          heads,
          maxPos,
        }));
      const got = await readFloats(ctx, xb, x.length, enc);
      const want = ropeRef(x, positions, { d, heads, theta: 1e6 });
      const err = assertClose(got, want, TOL, `rope ${tokens}x${heads}x${d}`);
      console.log(`rope ${tokens}x${heads}x${d}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeRope() clamps positions past the table to its last row",
  ignore: noGpu,
  async fn() {
    // The launcher's doc: larger positions are clamped (callers validate). Without the clamp the
    // table read falls outside it (zeros on wgpu: the rows would be zeroed, not rotated).
    const ctx = (await testContext())!;
    const [tokens, heads, d, maxPos] = [3, 2, 8, 16];
    const x = randomArray(tokens * heads * d, 5);
    const positions = Uint32Array.from([3, 16, 100]);
    const xb = ctx.upload(x, "x");
    const enc = recordPass(ctx, (pass) =>
      encodeRope(ctx, pass, {
        x: xb,
        positions: ctx.upload(positions, "positions"),
        table: ctx.upload(ropeTable(maxPos, { d, theta: 1e6 }), "table"),
        rows: tokens * heads,
        d,
        heads,
        maxPos,
      }));
    const got = await readFloats(ctx, xb, x.length, enc);
    const want = ropeRef(x, [3, maxPos - 1, maxPos - 1], { d, heads, theta: 1e6 });
    assertClose(got, want, TOL, "rope past the table");
  },
});
