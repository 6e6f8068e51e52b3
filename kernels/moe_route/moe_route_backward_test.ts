import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeMoeRouteBackward } from "./moe_route_backward.ts";
import { moeRouteBackwardRef } from "./moe_route_backward_ref.ts";
import { moeRouteRef } from "./moe_route_ref.ts";

// E-term f32 sums of products of O(1) values: 1e-6 relative.
const TOL = 1e-6;

Deno.test({
  name: "encodeMoeRouteBackward() gives the f64 reference's logit gradients (odd shapes, offsets)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (
      const [m, E, topK, poison] of [[1, 2, 1, 0], [7, 3, 2, 0], [130, 6, 4, 0], [33, 8, 2, 1]]
    ) {
      const gates = Float32Array.from(
        moeRouteRef(randomArray(m * E, m, -3, 3), { experts: E, topK }).gates,
      );
      const dg = randomArray(m * E, m + 1, -2, 2);
      // poison: NaN in dg where g = 0 (the grouped backward leaves those entries unwritten); the
      // kernel must not read them, so the reference gets 0 there.
      const dgIn = dg.map((v, i) => poison && gates[i] === 0 ? NaN : v);
      if (poison) dg.forEach((_, i) => gates[i] === 0 && (dg[i] = 0));
      const gateOffset = 5;
      const offset = 9;
      const gbuf = new Float32Array(gateOffset + m * E);
      gbuf.set(gates, gateOffset);
      const dbuf = new Float32Array(offset + m * E).fill(4);
      dbuf.set(dgIn, offset);
      const gb = ctx.upload(gbuf, "gates");
      const db = ctx.upload(dbuf, "d");
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeMoeRouteBackward(ctx, pass, {
            gates: gb,
            gateOffset,
            d: db,
            offset,
            m,
            experts: E,
          }),
      );
      const got = await readFloats(ctx, db, dbuf.length, enc);
      ctx.release(gb);
      ctx.release(db);
      const err = assertClose(
        got.subarray(offset),
        moeRouteBackwardRef(gates, dg, E),
        TOL,
        `m=${m} E=${E}${poison ? " NaN where g = 0" : ""}`,
      );
      assertClose(got.subarray(0, offset), dbuf.subarray(0, offset), 0, "before the offset");
      console.log(`moe_route_backward m=${m} E=${E}: rel err ${err.toExponential(2)}`);
    }
  },
});
