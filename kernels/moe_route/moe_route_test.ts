import assert from "node:assert/strict";
import { noGpu, randomArray, readFloats, recordPass, testContext } from "../../gpu/test_utils.ts";
import { encodeMoeRoute } from "./moe_route.ts";
import { moeRouteRef } from "./moe_route_ref.ts";

// f32 exp and division of values in [0, 1]: within a few ulps, so 1e-6 absolute on every gate.
const TOL = 1e-6;

Deno.test({
  name: "encodeMoeRoute() gives the f64 reference's gates (top-k, top-p, ties, odd shapes)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let worst = 0;
    let seed = 1;
    for (const activation of ["top-k", "top-p"] as const) {
      for (
        const [m, E, topK] of [[1, 1, 1], [7, 2, 1], [33, 3, 2], [130, 5, 2], [9, 8, 3], [3, 64, 7]]
      ) {
        for (const ties of [false, true]) {
          // Ties: logits on a coarse grid give exactly equal f32 probabilities.
          const logits = ties
            ? randomArray(m * E, seed++, 0, 3).map(Math.round)
            : randomArray(m * E, seed++, -4, 4);
          // The last token's last logit 100 above the rest: exp overflows f32 unless the max
          // subtracted is that logit.
          if (!ties && E > 1) logits[m * E - 1] = 100;
          const offset = 13;
          const data = new Float32Array(offset + m * E).fill(7);
          data.set(logits, offset);
          const buf = ctx.upload(data, "route");
          const opts = { experts: E, activation, topK, topP: 0.6 };
          const enc = recordPass(
            ctx,
            (pass) => encodeMoeRoute(ctx, pass, { buffer: buf, offset, m, ...opts }),
          );
          const got = await readFloats(ctx, buf, offset + m * E, enc);
          ctx.release(buf);
          const ref = moeRouteRef(logits, opts);
          for (let i = 0; i < offset; i++) assert.equal(got[i], 7, "data before the offset");
          for (let i = 0; i < m * E; i++) {
            const err = Math.abs(got[offset + i] - ref.gates[i]);
            worst = Math.max(worst, err);
            assert.ok(
              err <= TOL,
              `${activation} m=${m} E=${E} ties=${ties} at ${i}: ${got[offset + i]} vs ${
                ref.gates[i]
              }`,
            );
          }
        }
      }
    }
    console.log(`moe_route: worst abs error ${worst.toExponential(2)}`);
  },
});
