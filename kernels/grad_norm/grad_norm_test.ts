import { readback } from "../../gpu/readback.ts";
import { createAdamwHyper, encodeAdamw } from "../adamw/adamw.ts";
import { adamwRef } from "../adamw/adamw_ref.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeGradNorm, GRAD_NORM_OUT_FLOATS, gradNormPartialCount } from "./grad_norm.ts";
import { gradNormRef } from "./grad_norm_ref.ts";

// f32 sums of positive terms: each partial adds ≤ 16·⌈n/4M⌉ values in sequence, then trees of
// depth 8, then ≤ P/256 sequential adds and another tree. The worst-case relative error is
// about (depth) · 2^-24 ≈ 3e-6 for the sizes here, halved by the square root; 1e-5 bounds it.
const TOL = 1e-5;

Deno.test({
  name: "encodeGradNorm() matches the f64 norm and clip scale over many buffers",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // 5M floats exceeds the 1024-workgroup cap (4M), exercising the strided first stage.
    const sizes = [1, 0, 255, 4097, 100_000, 5_000_000];
    const data = sizes.map((n, i) => randomArray(n, 7 + i, -1e-2, 1e-2));
    // The last element of every non-empty buffer is 1 (squares summing to ~170 otherwise), so a
    // bound that skips a buffer's last element is seen: ~0.3% of the norm each.
    for (const d of data) if (d.length > 0) d[d.length - 1] = 1;
    // An empty array is not uploaded: Deno 2.9.6 panics on a 0-byte queue.writeBuffer.
    const grads = data.map((d, i) => ({
      grad: d.length > 0 ? ctx.upload(d, `g${i}`) : ctx.createBuffer(0, `g${i}`),
      n: sizes[i],
    }));
    const partials = poisoned(ctx, gradNormPartialCount(sizes), "partials");
    for (
      const { maxNorm, gradScale } of [
        { maxNorm: 0.5, gradScale: 0.25 }, // clipped
        { maxNorm: 100, gradScale: 1 }, // not clipped
        { maxNorm: undefined, gradScale: 3 }, // norm only
      ]
    ) {
      const out = poisoned(ctx, GRAD_NORM_OUT_FLOATS, "out");
      const enc = recordPass(
        ctx,
        (pass) => encodeGradNorm(ctx, pass, { grads, partials, out, maxNorm, gradScale }),
      );
      const got = await readFloats(ctx, out, 2, enc);
      const ref = gradNormRef(data, { maxNorm, gradScale });
      const errNorm = assertClose([got[1]], [ref.norm], TOL, `norm (maxNorm ${maxNorm})`);
      const errScale = assertClose([got[0]], [ref.scale], TOL, `scale (maxNorm ${maxNorm})`);
      console.log(
        `grad_norm maxNorm=${maxNorm}: norm ${got[1]} (rel err ${errNorm.toExponential(2)}), ` +
          `scale ${got[0]} (rel err ${errScale.toExponential(2)})`,
      );
      out.destroy();
    }
    for (const g of grads) g.grad.destroy();
    partials.destroy();
  },
});

Deno.test({
  name: "encodeGradNorm() is bit-for-bit deterministic and handles no gradients",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const sizes = [3000, 70_000];
    const grads = sizes.map((n, i) => ({ grad: ctx.upload(randomArray(n, 50 + i), "g"), n }));
    const partials = ctx.createBuffer(4 * gradNormPartialCount(sizes), "partials");
    const runs: number[] = [];
    for (let r = 0; r < 2; r++) {
      const out = poisoned(ctx, GRAD_NORM_OUT_FLOATS, "out");
      const enc = recordPass(
        ctx,
        (pass) => encodeGradNorm(ctx, pass, { grads, partials, out, maxNorm: 1 }),
      );
      runs.push((await readFloats(ctx, out, 2, enc))[1]);
      out.destroy();
    }
    if (!Object.is(runs[0], runs[1])) throw new Error(`runs differ: ${runs[0]} vs ${runs[1]}`);
    const out = poisoned(ctx, GRAD_NORM_OUT_FLOATS, "out");
    const enc = recordPass(
      ctx,
      (pass) => encodeGradNorm(ctx, pass, { grads: [], partials, out, maxNorm: 1 }),
    );
    const empty = await readFloats(ctx, out, 2, enc);
    if (empty[0] !== 1 || empty[1] !== 0) throw new Error(`empty: ${empty[0]}, ${empty[1]}`);
    for (const g of grads) g.grad.destroy();
    partials.destroy();
    out.destroy();
  },
});

Deno.test({
  name: "encodeGradNorm() feeds encodeAdamw's clip scale in the same pass without a readback",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const sizes = [500, 1234];
    const p0 = sizes.map((n, i) => randomArray(n, 60 + i));
    const g0 = sizes.map((n, i) => randomArray(n, 70 + i, -0.1, 0.1));
    const params = p0.map((p) => ctx.upload(p, "p"));
    const grads = g0.map((g) => ctx.upload(g, "g"));
    const ms = sizes.map((n) => ctx.createBuffer(4 * n, "m"));
    const vs = sizes.map((n) => ctx.createBuffer(4 * n, "v"));
    const partials = ctx.createBuffer(4 * gradNormPartialCount(sizes), "partials");
    const norm = ctx.createBuffer(4 * GRAD_NORM_OUT_FLOATS, "norm");
    const hyper = createAdamwHyper(ctx);
    const h = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
    const gradScale = 0.5;
    const maxNorm = 0.2;
    const enc = recordPass(ctx, (pass) => {
      encodeGradNorm(ctx, pass, {
        grads: grads.map((grad, i) => ({ grad, n: sizes[i] })),
        partials,
        out: norm,
        maxNorm,
        gradScale,
      });
      sizes.forEach((n, i) =>
        encodeAdamw(ctx, pass, {
          param: params[i],
          grad: grads[i],
          m: ms[i],
          v: vs[i],
          n,
          hyper,
          clipScale: norm,
          gradScale,
          zeroGrad: true,
          ...h,
        })
      );
    });
    const got = await readback(
      ctx,
      params.map((buffer, i) => ({ buffer, offset: 0, size: 4 * sizes[i] })),
      enc,
    );
    const { scale } = gradNormRef(g0, { maxNorm, gradScale });
    if (!(scale < 1)) throw new Error(`test setup: expected clipping, scale ${scale}`);
    sizes.forEach((n, i) => {
      const ref = adamwRef(
        { param: p0[i], grad: g0[i], m: new Float64Array(n), v: new Float64Array(n) },
        { ...h, gradScale: gradScale * scale },
      );
      // Same bound as adamw's own test (1e-6): the clip factor adds one f32 rounding.
      assertClose(new Float32Array(got[i]), ref.param, 1e-6, `clipped adamw param ${i}`);
    });
    for (const b of [...params, ...grads, ...ms, ...vs, partials, norm, hyper]) b.destroy();
  },
});
