import { ok } from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { centralDiff, rand, TOL as FD_TOL } from "../_finite_diff.ts";
import { encodeMoeBalanceBackward, encodeMoeBalanceStats } from "./moe_balance.ts";
import { moeBalanceBackwardRef, moeBalanceLossRef, moeBalanceStatsRef } from "./moe_balance_ref.ts";

// Counts are exact (the same selection); f32 probability sums over ≤ 67 tokens: 1e-6 relative.
const TOL = 1e-6;
// The gradient p·(dp − Σ p·dp) cancels in the difference: measured up to 1.1e-6, so 1e-5.
const GRAD_TOL = 1e-5;

/**
 * An independent float64 balance loss of one projection (the AdaMoLE `get_layer_loss` form,
 * written out directly): softmax, top-k by sorting (ties to the lower index), f = counts / N,
 * P = mean probabilities, E·Σ f·P. `frozen` replaces the counts (the backward treats f as a
 * constant, as PyTorch's bincount is).
 */
function directLoss(
  logits: ArrayLike<number>,
  mask: ArrayLike<number>,
  E: number,
  topK: number,
  frozen?: ArrayLike<number>,
): number {
  const counts = new Float64Array(E);
  const psum = new Float64Array(E);
  let N = 0;
  for (let t = 0; t < mask.length; t++) {
    if (!mask[t]) continue;
    N++;
    const z = Array.from({ length: E }, (_, e) => logits[t * E + e]);
    const mx = Math.max(...z);
    const ex = z.map((v) => Math.exp(v - mx));
    const s = ex.reduce((a, b) => a + b, 0);
    const p = ex.map((v) => v / s);
    const order = p.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let j = 0; j < topK; j++) counts[order[j][1]]++;
    for (let e = 0; e < E; e++) psum[e] += p[e];
  }
  const c = frozen ?? counts;
  let loss = 0;
  for (let e = 0; e < E; e++) loss += E * (c[e] / N) * (psum[e] / N);
  return loss;
}

Deno.test("moeBalanceLossRef() is MoLA's E·Σ f·P with f = counts / tokens (Σ f = k)", () => {
  for (const [m, E, topK] of [[1, 2, 1], [9, 3, 2], [23, 5, 3]]) {
    const logits = rand(m * E, 7 * m + E, -3, 3);
    const mask = Float64Array.from({ length: m }, (_, t) => (t % 4 === 3 ? 0 : 1));
    const stats = moeBalanceStatsRef(logits, mask, { experts: E, topK });
    let sumF = 0;
    for (let e = 0; e < E; e++) sumF += stats[e] / stats[2 * E];
    ok(Math.abs(sumF - topK) < 1e-12, `Σ f = ${sumF}, want k = ${topK}`);
    const got = moeBalanceLossRef(stats, E);
    const want = directLoss(logits, mask, E, topK);
    ok(Math.abs(got - want) < 1e-12 * want, `m=${m} E=${E}: ${got} vs direct ${want}`);
  }
  // Uniform probabilities and equal top-2 counts give k = 2; every token on one expert (p = 1) E.
  ok(Math.abs(moeBalanceLossRef([2, 2, 2, 1, 1, 1, 3], 3) - 2) < 1e-12);
  ok(Math.abs(moeBalanceLossRef([4, 0, 0, 4, 0, 0, 4], 3) - 3) < 1e-12);
});

Deno.test("moeBalanceBackwardRef() is the finite-difference gradient with the counts frozen", () => {
  for (const [m, E, topK] of [[3, 2, 1], [7, 4, 2], [11, 5, 3]]) {
    const logits = rand(m * E, 100 + m, -2, 2);
    const mask = Float64Array.from({ length: m }, (_, t) => (t === 1 ? 0 : 1));
    const stats = moeBalanceStatsRef(logits, mask, { experts: E, topK });
    const coef = 0.7;
    const got = moeBalanceBackwardRef(logits, mask, stats, { experts: E, coef });
    const counts = stats.subarray(0, E);
    const want = centralDiff(logits, () => coef * directLoss(logits, mask, E, topK, counts));
    assertClose(got, want, FD_TOL, `balance gradient m=${m} E=${E}`);
  }
});

Deno.test({
  name: "encodeMoeBalanceStats() and encodeMoeBalanceBackward() equal the f64 references",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let seed = 1;
    for (const activation of ["top-k", "top-p"] as const) {
      // Two projections with their own routers (and expert counts), the second's logits after
      // an offset; odd token counts, padding every fourth token.
      for (const [m, Ea, Eb, topK] of [[1, 2, 3, 1], [9, 3, 5, 2], [67, 6, 4, 2]]) {
        const mask = Uint32Array.from({ length: m }, (_, t) => (t % 4 === 3 ? 0 : 1));
        mask[0] = 1;
        const oa = { experts: Ea, activation, topK, topP: 0.6 };
        const ob = { experts: Eb, activation, topK, topP: 0.6 };
        const la = randomArray(m * Ea, seed++, -3, 3);
        const lb = randomArray(m * Eb, seed++, -3, 3);
        // Token 1 of the 5-expert router: equal logits, p = 0.2 each, so under top-p 0.6 the
        // fourth expert's predecessors sum to exactly 0.6 in f32 (not selected: mass < topP).
        if (Eb === 5) lb.fill(0, Eb, 2 * Eb);
        const offset = 7;
        const bufB = new Float32Array(offset + m * Eb);
        bufB.set(lb, offset);
        const a = ctx.upload(la, "a");
        const b = ctx.upload(bufB, "b");
        const mk = ctx.upload(mask, "mask");
        const sa = poisoned(ctx, 2 * Ea + 1, "stats a");
        const sb = poisoned(ctx, 2 * Eb + 1, "stats b");
        const total = poisoned(ctx, 1, "total");
        const enc = recordPass(ctx, (pass) => {
          encodeMoeBalanceStats(ctx, pass, {
            logits: a,
            mask: mk,
            stats: sa,
            total,
            resetTotal: true,
            m,
            ...oa,
          });
          encodeMoeBalanceStats(ctx, pass, {
            logits: b,
            offset,
            mask: mk,
            stats: sb,
            total,
            m,
            ...ob,
          });
          encodeMoeBalanceBackward(ctx, pass, {
            buffer: b,
            offset,
            mask: mk,
            stats: sb,
            m,
            experts: Eb,
            coef: 0.3,
          });
        });
        const gotA = await readFloats(ctx, sa, 2 * Ea + 1, enc);
        const gotB = await readFloats(ctx, sb, 2 * Eb + 1);
        const gotTotal = await readFloats(ctx, total, 1);
        const gotD = await readFloats(ctx, b, offset + m * Eb);
        for (const x of [a, b, mk, sa, sb, total]) ctx.release(x);
        const wantA = moeBalanceStatsRef(la, mask, oa);
        const wantB = moeBalanceStatsRef(lb, mask, ob);
        const what = `${activation} m=${m} E=${Ea},${Eb}`;
        const e1 = Math.max(
          assertClose(gotA, wantA, TOL, `stats a ${what}`),
          assertClose(gotB, wantB, TOL, `stats b ${what}`),
        );
        const wantTotal = moeBalanceLossRef(wantA, Ea) + moeBalanceLossRef(wantB, Eb);
        const e2 = assertClose(gotTotal, [wantTotal], TOL, `loss ${what}`);
        const wantD = moeBalanceBackwardRef(lb, mask, wantB, { experts: Eb, coef: 0.3 });
        const e3 = assertClose(gotD.subarray(offset), wantD, GRAD_TOL, `gradient ${what}`);
        console.log(
          `moe_balance ${what}: stats ${e1.toExponential(2)}, loss ${e2.toExponential(2)}, ` +
            `gradient ${e3.toExponential(2)}`,
        );
      }
    }
  },
});
