import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeMoeBalanceBackward, encodeMoeBalanceStats } from "./moe_balance.ts";
import { moeBalanceBackwardRef, moeBalanceStatsRef } from "./moe_balance_ref.ts";

// Counts are exact (the same selection); f32 probability sums over ≤ 67 tokens: 1e-6 relative.
const TOL = 1e-6;
// The gradient p·(dp − Σ p·dp) cancels in the difference: measured up to 1.1e-6, so 1e-5.
const GRAD_TOL = 1e-5;

Deno.test({
  name: "encodeMoeBalanceStats() and encodeMoeBalanceBackward() equal the f64 references",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let seed = 1;
    for (const activation of ["top-k", "top-p"] as const) {
      for (const [m, E, topK] of [[1, 2, 1], [9, 3, 2], [67, 6, 2]]) {
        const opts = { experts: E, activation, topK, topP: 0.6 };
        const mask = Uint32Array.from({ length: m }, (_, t) => (t % 4 === 3 ? 0 : 1));
        mask[0] = 1;
        // Two projections of the layer; the second's logits sit after an offset.
        const la = randomArray(m * E, seed++, -3, 3);
        const lb = randomArray(m * E, seed++, -3, 3);
        const offset = 7;
        const bufB = new Float32Array(offset + m * E);
        bufB.set(lb, offset);
        const a = ctx.upload(la, "a");
        const b = ctx.upload(bufB, "b");
        const mk = ctx.upload(mask, "mask");
        const stats = ctx.upload(new Float32Array(2 * E + 1).fill(99), "stats");
        const enc = recordPass(ctx, (pass) => {
          encodeMoeBalanceStats(ctx, pass, { logits: a, mask: mk, stats, reset: true, m, ...opts });
          encodeMoeBalanceStats(ctx, pass, { logits: b, offset, mask: mk, stats, m, ...opts });
          encodeMoeBalanceBackward(ctx, pass, {
            buffer: b,
            offset,
            mask: mk,
            stats,
            m,
            experts: E,
            coef: 0.3,
          });
        });
        const gotStats = await readFloats(ctx, stats, 2 * E + 1, enc);
        const gotD = await readFloats(ctx, b, offset + m * E, ctx.device.createCommandEncoder());
        for (const x of [a, b, mk, stats]) ctx.release(x);
        const want = moeBalanceStatsRef(lb, mask, opts, moeBalanceStatsRef(la, mask, opts));
        const e1 = assertClose(gotStats, want, TOL, `stats ${activation} m=${m} E=${E}`);
        const wantD = moeBalanceBackwardRef(lb, mask, want, { experts: E, coef: 0.3 });
        const e2 = assertClose(
          gotD.subarray(offset),
          wantD,
          GRAD_TOL,
          `gradient ${activation} m=${m} E=${E}`,
        );
        console.log(
          `moe_balance ${activation} m=${m} E=${E}: stats ${e1.toExponential(2)}, gradient ${
            e2.toExponential(2)
          }`,
        );
      }
    }
  },
});
