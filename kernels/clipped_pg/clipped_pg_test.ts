import type { GpuContext } from "../../gpu/context.ts";
import { readback } from "../../gpu/readback.ts";
import { AGGREGATIONS } from "../../trainer/losses/agg_loss.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import {
  CLIPPED_PG_METRICS,
  CLIPPED_PG_OUT_FLOATS,
  CLIPPED_PG_STATS_FLOATS,
  type ClippedPgArgs,
  clippedPgMetrics,
  encodeClippedPg,
} from "./clipped_pg.ts";
import { clippedPgRef } from "../../trainer/losses/clipped_pg_ref.ts";

// f32 exp of a log-ratio and f32 sums of ≤ 600 terms per sequence, then ≤ 8 per batch: the
// value, metrics and gradient agree with the f64 reference (on the same f32 inputs) to ~1e-6
// relative; 1e-5 leaves a margin. Ratios are kept away from the clip kinks, where f32 and f64
// could pick different branches.
const TOL = 1e-5;

/** Seeded inputs with ratios away from the kinks; sequence 1 (when there is one) is empty. */
function inputs(batch: number, width: number, seed: number) {
  const ratios = [0.3, 0.7, 0.95, 1.05, 1.2, 1.6, 3.5, 5];
  const n = batch * width;
  const u = randomArray(3 * n, seed, 0, 1);
  const oldLogprobs = randomArray(n, seed + 1, -4, -0.05);
  const logprobs = oldLogprobs.map((o, i) => o + Math.log(ratios[Math.floor(u[i] * 8)]));
  const advantages = Float32Array.from(
    { length: n },
    (_, i) => (u[n + i] < 0.5 ? -1 : 1) * (0.2 + 1.5 * u[2 * n + i]),
  );
  const lossMask = Float32Array.from({ length: n }, (_, i) => {
    const b = Math.floor(i / width);
    const t = i % width;
    return b === 1 ? 0 : t >= b % 3 && t < width - 1 ? 1 : 0; // last position: no target
  });
  if (n === 1) lossMask[0] = 1;
  return { logprobs, oldLogprobs, advantages, lossMask };
}

Deno.test({
  name:
    "encodeClippedPg() matches clippedPolicyLoss on odd shapes, every aggregation, poisoned outputs",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let worstOut = 0;
    let worstGrad = 0;
    type Extra = {
      dualClip?: number;
      normalizer?: number;
      maxResponseLength?: number;
      weight?: number;
    };
    const extras: Extra[] = [
      {},
      { dualClip: 3, normalizer: 50, maxResponseLength: 64, weight: 0.25 },
    ];
    const every = AGGREGATIONS.flatMap((aggregation) =>
      extras.map((extra) => ({ aggregation, extra }))
    );
    const configs = [
      { batch: 1, width: 1, cases: every },
      { batch: 3, width: 37, cases: every },
      { batch: 7, width: 300, cases: every }, // width > the 256 threads of a sequence's workgroup
      // batch > the 256 threads of finish: two sequences a thread. Its loop does not depend on the
      // aggregation, and each case is 300 workgroups on a software adapter, so two cases only:
      // seq-mean-token-mean reads every finish field (Σ of sequence means, sequences, tokens,
      // max ratio), and the extra adds the dual-clip count and a given normalizer.
      {
        batch: 300,
        width: 3,
        cases: [
          { aggregation: "seq-mean-token-mean" as const, extra: extras[0] },
          { aggregation: "token-mean" as const, extra: extras[1] },
        ],
      },
    ];
    for (const { batch, width, cases } of configs) {
      const data = inputs(batch, width, batch * 100 + width);
      const buf = {
        logprobs: ctx.upload(data.logprobs, "lp"),
        oldLogprobs: ctx.upload(data.oldLogprobs, "old"),
        advantages: ctx.upload(data.advantages, "adv"),
        lossMask: ctx.upload(data.lossMask, "mask"),
      };
      for (const { aggregation, extra } of cases) {
        const { gotOut, gotGrad } = await runClippedPg(ctx, buf, {
          batch,
          width,
          aggregation,
          ...extra,
        });
        const ref = clippedPgRef({ ...data, batch, aggregation, ...extra });
        const what = `${batch}x${width} ${aggregation} ${JSON.stringify(extra)}`;
        // Each scalar on its own (relative, or absolute below 1).
        CLIPPED_PG_METRICS.forEach((key, i) => {
          const err = Math.abs(gotOut[i] - ref.out[i]) / Math.max(1, Math.abs(ref.out[i]));
          if (!(err <= TOL)) {
            throw new Error(`${what} ${key}: ${gotOut[i]} vs reference ${ref.out[i]}`);
          }
          worstOut = Math.max(worstOut, err);
        });
        worstGrad = Math.max(worstGrad, assertClose(gotGrad, ref.dLogprobs, TOL, what));
        const m = clippedPgMetrics(gotOut);
        if (m["loss/pg_tokens"] !== ref.out[7]) throw new Error(`${what}: metrics record`);
      }
      for (const b of Object.values(buf)) b.destroy();
    }
    console.log(
      `clipped_pg: worst scalar error ${worstOut.toExponential(2)}, dLogprobs rel err ` +
        `${worstGrad.toExponential(2)}`,
    );
  },
});

Deno.test({
  name: "encodeClippedPg() accumulates a weighted gradient and handles no loss token",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [batch, width] = [4, 19];
    const n = batch * width;
    const data = inputs(batch, width, 9);
    const prior = randomArray(n, 10);
    const dLogprobs = ctx.upload(prior, "dLogprobs");
    const stats = poisoned(ctx, batch * CLIPPED_PG_STATS_FLOATS, "stats");
    const out = poisoned(ctx, CLIPPED_PG_OUT_FLOATS, "out");
    const up = (a: Float32Array, l: string) => ctx.upload(a, l);
    const args: ClippedPgArgs = {
      logprobs: up(data.logprobs, "lp"),
      oldLogprobs: up(data.oldLogprobs, "old"),
      advantages: up(data.advantages, "adv"),
      lossMask: up(data.lossMask, "mask"),
      dLogprobs,
      stats,
      out,
      batch,
      width,
      aggregation: "seq-mean-token-mean",
      weight: 0.5,
      accumulate: true,
    };
    const enc = recordPass(ctx, (pass) => encodeClippedPg(ctx, pass, args));
    const got = await readFloats(ctx, dLogprobs, n, enc);
    const ref = clippedPgRef({ ...data, batch, aggregation: "seq-mean-token-mean", weight: 0.5 });
    const want = prior.map((p, i) => p + ref.dLogprobs[i]);
    assertClose(got, want, TOL, "accumulated dLogprobs");

    // No loss token: value, metrics, denominator and gradient are 0 (no NaN from 0 / 0).
    const empty = ctx.upload(new Float32Array(n), "empty mask");
    const grad2 = poisoned(ctx, n, "dLogprobs");
    const enc2 = recordPass(
      ctx,
      (pass) =>
        encodeClippedPg(ctx, pass, {
          ...args,
          lossMask: empty,
          dLogprobs: grad2,
          accumulate: false,
        }),
    );
    const [o, g] = await readback(ctx, [
      { buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS },
      { buffer: grad2, offset: 0, size: 4 * n },
    ], enc2);
    if (!new Float32Array(o).every((x) => x === 0)) throw new Error(`out ${new Float32Array(o)}`);
    if (!new Float32Array(g).every((x) => x === 0)) throw new Error("gradient not 0");
    for (const b of [dLogprobs, stats, out, empty, grad2, args.logprobs]) {
      (b as GPUBuffer).destroy();
    }
  },
});

Deno.test({
  name:
    "encodeClippedPg() on the train step's [batch, seqLen] layout equals the CPU loss on [batch, seqLen − 1]",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [batch, seqLen] = [5, 23];
    const w = seqLen - 1;
    const cpu = inputs(batch, w, 31); // [batch, seqLen − 1], as clippedPolicyLoss takes them
    // The train step's logprobs are [batch, seqLen] with no target (logprob 0) at position
    // seqLen − 1; the uploaded per-token inputs follow it with mask 0 there.
    const pad = (a: Float32Array, fill: number) => {
      const out = new Float32Array(batch * seqLen).fill(fill);
      for (let b = 0; b < batch; b++) out.set(a.subarray(b * w, (b + 1) * w), b * seqLen);
      return out;
    };
    const bufs = {
      logprobs: ctx.upload(pad(cpu.logprobs, 0), "lp"),
      oldLogprobs: ctx.upload(pad(cpu.oldLogprobs, -3), "old"),
      advantages: ctx.upload(pad(cpu.advantages, 5), "adv"),
      lossMask: ctx.upload(pad(cpu.lossMask, 0), "mask"),
    };
    for (const aggregation of AGGREGATIONS) {
      const dLogprobs = poisoned(ctx, batch * seqLen, "dLogprobs");
      const stats = poisoned(ctx, batch * CLIPPED_PG_STATS_FLOATS, "stats");
      const out = poisoned(ctx, CLIPPED_PG_OUT_FLOATS, "out");
      const enc = recordPass(ctx, (pass) =>
        encodeClippedPg(ctx, pass, {
          ...bufs,
          dLogprobs,
          stats,
          out,
          batch,
          width: seqLen,
          aggregation,
          maxResponseLength: seqLen - 1, // the CPU default for [batch, seqLen − 1]
        }));
      const [o, g] = await readback(ctx, [
        { buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS },
        { buffer: dLogprobs, offset: 0, size: 4 * batch * seqLen },
      ], enc);
      const ref = clippedPgRef({ ...cpu, batch, aggregation });
      const grad = new Float32Array(g);
      const unpadded = new Float32Array(batch * w);
      for (let b = 0; b < batch; b++) {
        unpadded.set(grad.subarray(b * seqLen, b * seqLen + w), b * w);
        if (grad[b * seqLen + w] !== 0) throw new Error(`${aggregation}: padding gradient`);
      }
      assertClose(unpadded, ref.dLogprobs, TOL, `${aggregation} padded dLogprobs`);
      assertClose(new Float32Array(o).subarray(0, 8), ref.out, TOL, `${aggregation} padded out`);
      for (const b of [dLogprobs, stats, out]) b.destroy();
    }
    for (const b of Object.values(bufs)) b.destroy();
  },
});

Deno.test({
  name: "encodeClippedPg() clamps the log-ratio at ±20 with no gradient beyond, as the reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // Log-ratios 25 (A < 0: l = −A·e^20, unclipped, gradient 0) and −25 (A > 0: r = e^−20,
    // unclipped, gradient 0), then two ordinary tokens; the reference's clamp is checked by hand
    // in clipped_policy_loss_test.ts. f32 tolerance TOL (relative; the value is ~e^20).
    const data = {
      logprobs: Float32Array.from([-1, -30, Math.log(1.1) - 2, Math.log(0.9) - 1]),
      oldLogprobs: Float32Array.from([-26, -5, -2, -1]),
      advantages: Float32Array.from([-1, 1, 0.5, -2]),
      lossMask: Float32Array.from([1, 1, 1, 1]),
    };
    const bufs = {
      logprobs: ctx.upload(data.logprobs, "lp"),
      oldLogprobs: ctx.upload(data.oldLogprobs, "old"),
      advantages: ctx.upload(data.advantages, "adv"),
      lossMask: ctx.upload(data.lossMask, "mask"),
    };
    const dLogprobs = poisoned(ctx, 4, "dLogprobs");
    const stats = poisoned(ctx, CLIPPED_PG_STATS_FLOATS, "stats");
    const out = poisoned(ctx, CLIPPED_PG_OUT_FLOATS, "out");
    const enc = recordPass(
      ctx,
      (pass) => encodeClippedPg(ctx, pass, { ...bufs, dLogprobs, stats, out, batch: 1, width: 4 }),
    );
    const [o, g] = await readback(ctx, [
      { buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS },
      { buffer: dLogprobs, offset: 0, size: 16 },
    ], enc);
    const ref = clippedPgRef({ ...data, batch: 1 });
    const grad = new Float32Array(g);
    if (grad[0] !== 0 || grad[1] !== 0) throw new Error(`clamped tokens' gradient ${grad}`);
    assertClose(grad, ref.dLogprobs, TOL, "clamped dLogprobs");
    assertClose(new Float32Array(o).subarray(0, 8), ref.out, TOL, "clamped out");
    for (const b of [...Object.values(bufs), dLogprobs, stats, out]) b.destroy();
  },
});

/** Token weights in [0, 2] with exact 0s and exact caps (2), as TIS weights look. */
/** The input bindings of encodeClippedPg. */
type InputName = "logprobs" | "oldLogprobs" | "advantages" | "lossMask" | "tokenWeights";

/**
 * encodeClippedPg over the uploaded inputs `buf` into poisoned outputs, read back (one readback),
 * its output buffers then destroyed: the scalars and dLogprobs.
 */
async function runClippedPg(
  ctx: GpuContext,
  buf: Pick<ClippedPgArgs, InputName>,
  args: Omit<ClippedPgArgs, InputName | "dLogprobs" | "stats" | "out">,
): Promise<{ gotOut: Float32Array; gotGrad: Float32Array }> {
  const n = args.batch * args.width;
  const dLogprobs = poisoned(ctx, n, "dLogprobs");
  const stats = poisoned(ctx, args.batch * CLIPPED_PG_STATS_FLOATS, "stats");
  const out = poisoned(ctx, CLIPPED_PG_OUT_FLOATS, "out");
  const enc = recordPass(
    ctx,
    (pass) => encodeClippedPg(ctx, pass, { ...buf, ...args, dLogprobs, stats, out }),
  );
  const [outBytes, gradBytes] = await readback(ctx, [
    { buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS },
    { buffer: dLogprobs, offset: 0, size: 4 * n },
  ], enc);
  for (const b of [dLogprobs, stats, out]) b.destroy();
  return { gotOut: new Float32Array(outBytes), gotGrad: new Float32Array(gradBytes) };
}

function weights(n: number, seed: number): Float32Array {
  const u = randomArray(n, seed, 0, 1);
  return u.map((x, i) => (i % 7 === 3 ? 0 : i % 5 === 1 ? 2 : 2 * x));
}

Deno.test({
  name: "encodeClippedPg() with tokenWeights matches the f64 reference on odd shapes, poisoned " +
    "outputs, every aggregation",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let worstOut = 0;
    let worstGrad = 0;
    for (
      const { batch, width } of [{ batch: 1, width: 1 }, { batch: 3, width: 37 }, {
        batch: 5,
        width: 300,
      }]
    ) {
      const data = inputs(batch, width, batch * 7 + width);
      const n = batch * width;
      const tokenWeights = weights(n, width);
      const buf = {
        logprobs: ctx.upload(data.logprobs, "lp"),
        oldLogprobs: ctx.upload(data.oldLogprobs, "old"),
        advantages: ctx.upload(data.advantages, "adv"),
        lossMask: ctx.upload(data.lossMask, "mask"),
        tokenWeights: ctx.upload(tokenWeights, "tw"),
      };
      for (const aggregation of AGGREGATIONS) {
        for (const extra of [{}, { dualClip: 3, normalizer: 50, weight: 0.25 }]) {
          const { gotOut: got, gotGrad: g } = await runClippedPg(ctx, buf, {
            batch,
            width,
            aggregation,
            ...extra,
          });
          const ref = clippedPgRef({ ...data, tokenWeights, batch, aggregation, ...extra });
          const what = `weighted ${batch}x${width} ${aggregation} ${JSON.stringify(extra)}`;
          CLIPPED_PG_METRICS.forEach((key, i) => {
            const err = Math.abs(got[i] - ref.out[i]) / Math.max(1, Math.abs(ref.out[i]));
            if (!(err <= TOL)) throw new Error(`${what} ${key}: ${got[i]} vs ${ref.out[i]}`);
            worstOut = Math.max(worstOut, err);
          });
          worstGrad = Math.max(
            worstGrad,
            assertClose(g, ref.dLogprobs, TOL, what),
          );
        }
      }
      for (const b of Object.values(buf)) b.destroy();
    }
    console.log(
      `clipped_pg tokenWeights: worst scalar error ${worstOut.toExponential(2)}, dLogprobs rel ` +
        `err ${worstGrad.toExponential(2)}`,
    );
  },
});

Deno.test({
  name: "encodeClippedPg() with tokenWeights: the kernel's gradient matches central differences " +
    "of its own value, and weights of 1 give the unweighted numbers bit for bit",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [batch, width] = [3, 11];
    const n = batch * width;
    const data = inputs(batch, width, 77);
    const tokenWeights = weights(n, 78);
    const run = async (lp: Float32Array, tw: Float32Array | null) => {
      const bufs = [
        ctx.upload(lp, "lp"),
        ctx.upload(data.oldLogprobs, "old"),
        ctx.upload(data.advantages, "adv"),
        ctx.upload(data.lossMask, "mask"),
        ...(tw ? [ctx.upload(tw, "tw")] : []),
      ];
      const dLogprobs = poisoned(ctx, n, "d");
      const stats = poisoned(ctx, batch * CLIPPED_PG_STATS_FLOATS, "stats");
      const out = poisoned(ctx, CLIPPED_PG_OUT_FLOATS, "out");
      const enc = recordPass(ctx, (pass) =>
        encodeClippedPg(ctx, pass, {
          logprobs: bufs[0],
          oldLogprobs: bufs[1],
          advantages: bufs[2],
          lossMask: bufs[3],
          tokenWeights: bufs[4],
          dLogprobs,
          stats,
          out,
          batch,
          width,
          aggregation: "seq-mean-token-mean",
        }));
      const [o, g] = await readback(ctx, [
        { buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS },
        { buffer: dLogprobs, offset: 0, size: 4 * n },
      ], enc);
      for (const b of [...bufs, dLogprobs, stats, out]) b.destroy();
      return { out: new Float32Array(o), grad: new Float32Array(g) };
    };
    // Central differences of the f32 value with h = 1e-2 at unclipped loss tokens with weight
    // > 0 (their ratios sit ≥ 5% from the clip bounds, so ±h stays on one branch): truncation
    // error ~h²/6·|d³l| ≈ 2e-5 relative and f32 rounding of the value ~1e-7/h = 1e-5 relative;
    // tolerance 1e-3 · max(|g|, 1e-3).
    const base = await run(data.logprobs, tokenWeights);
    const h = 1e-2;
    let checked = 0;
    let worst = 0;
    for (let i = 0; i < n && checked < 8; i++) {
      if (data.lossMask[i] === 0 || base.grad[i] === 0) continue;
      const plus = Float32Array.from(data.logprobs);
      const minus = Float32Array.from(data.logprobs);
      plus[i] += h;
      minus[i] -= h;
      const fd =
        ((await run(plus, tokenWeights)).out[0] - (await run(minus, tokenWeights)).out[0]) /
        (2 * h);
      const err = Math.abs(fd - base.grad[i]) / Math.max(Math.abs(base.grad[i]), 1e-3);
      if (!(err <= 1e-3)) throw new Error(`token ${i}: kernel ${base.grad[i]} vs FD ${fd}`);
      worst = Math.max(worst, err);
      checked++;
    }
    if (checked < 4) throw new Error(`only ${checked} tokens checked`);
    console.log(
      `clipped_pg tokenWeights: ${checked} tokens, worst FD rel err ${worst.toExponential(2)}`,
    );
    // Weights of exactly 1 (x · 1 is exact in f32): the weighted variant equals the plain one.
    const ones = await run(data.logprobs, new Float32Array(n).fill(1));
    const plain = await run(data.logprobs, null);
    for (let i = 0; i < CLIPPED_PG_OUT_FLOATS; i++) {
      if (!Object.is(ones.out[i], plain.out[i])) throw new Error(`out[${i}] differs`);
    }
    for (let i = 0; i < n; i++) {
      if (!Object.is(ones.grad[i], plain.grad[i])) throw new Error(`grad[${i}] differs`);
    }
  },
});
