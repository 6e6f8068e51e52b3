import { readback } from "../../gpu/readback.ts";
import type { GpuContext } from "../../gpu/context.ts";
import { assertClose, noGpu, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { ADAMW_HYPER_FLOATS, type AdamwArgs, createAdamwHyper, encodeAdamw } from "./adamw.ts";
import { adamwRef, type AdamwRefResult } from "./adamw_ref.ts";

// f32 state against the f64 reference: a handful of roundings per element per step (the
// division and sqrt are within 3 ulp in WGSL); 1e-6 relative over 4 steps leaves ample margin.
const TOL = 1e-6;
// The first moment is a signed EMA: cancellation between steps can leave |m| well below the sum
// of its terms, which magnifies the same roundings in relative terms (seen: 1.4e-6 at n = 1).
const M_TOL = 1e-5;

type Hyper = Pick<AdamwArgs, "lr" | "b1" | "b2" | "eps" | "weightDecay" | "gradScale">;

async function readAll(ctx: GpuContext, buffers: GPUBuffer[], n: number): Promise<Float32Array[]> {
  const bytes = await readback(ctx, buffers.map((buffer) => ({ buffer, offset: 0, size: 4 * n })));
  return bytes.map((b) => new Float32Array(b));
}

Deno.test({
  name: "encodeAdamw() matches the f64 PyTorch AdamW over 4 steps on sizes off the workgroup",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const hyperBuf = createAdamwHyper(ctx);
    for (const n of [1, 255, 1000, 70_001]) {
      const p0 = randomArray(n, n, -1, 1);
      const param = ctx.upload(p0, "param");
      const grad = ctx.createBuffer(4 * n, "grad");
      const m = ctx.createBuffer(4 * n, "m");
      const v = ctx.createBuffer(4 * n, "v");
      let ref: AdamwRefResult = {
        param: Float64Array.from(p0),
        m: new Float64Array(n),
        v: new Float64Array(n),
      };
      let lastGrad: Float32Array = new Float32Array(0);
      for (let step = 1; step <= 4; step++) {
        const h: Hyper = {
          lr: 0.02 / step,
          b1: 0.9,
          b2: 0.95,
          eps: 1e-8,
          weightDecay: 0.1,
          gradScale: 0.5,
        };
        lastGrad = randomArray(n, 1000 * step + n, -2, 2);
        ctx.device.queue.writeBuffer(grad, 0, lastGrad as Float32Array<ArrayBuffer>);
        const enc = recordPass(
          ctx,
          (pass) => encodeAdamw(ctx, pass, { param, grad, m, v, n, hyper: hyperBuf, step, ...h }),
        );
        ctx.device.queue.submit([enc.finish()]);
        ref = adamwRef({ ...ref, grad: lastGrad }, { ...h, step });
      }
      const [gotP, gotM, gotV, gotG] = await readAll(ctx, [param, m, v, grad], n);
      const errs = [
        assertClose(gotP, ref.param, TOL, `adamw param n=${n}`),
        assertClose(gotM, ref.m, M_TOL, `adamw m n=${n}`),
        assertClose(gotV, ref.v, TOL, `adamw v n=${n}`),
      ];
      assertClose(gotG, lastGrad, 0, `adamw grad untouched without zeroGrad n=${n}`);
      console.log(`adamw n=${n}: rel err p/m/v ${errs.map((e) => e.toExponential(2)).join(" ")}`);
      for (const b of [param, grad, m, v]) b.destroy();
    }
    hyperBuf.destroy();
  },
});

Deno.test({
  name: "encodeAdamw() reads the clip scale from a buffer, zeroes grad, and keeps groups apart",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const n = 300;
    // Two parameter groups in one submit, each with its own hyper buffer (different decay and
    // lr), both scaled by the same clip factor 0.25 read from storage and by gradScale 2.
    const groups = [
      { lr: 0.01, weightDecay: 0.1, seed: 1 },
      { lr: 0.03, weightDecay: 0, seed: 2 },
    ].map((g) => {
      const p0 = randomArray(n, g.seed, -1, 1);
      const g0 = randomArray(n, g.seed + 10, -1, 1);
      const m0 = randomArray(n, g.seed + 20, -0.1, 0.1);
      const v0 = randomArray(n, g.seed + 30, 0, 0.01);
      return {
        ...g,
        p0,
        g0,
        m0,
        v0,
        bufs: [ctx.upload(p0, "p"), ctx.upload(g0, "g"), ctx.upload(m0, "m"), ctx.upload(v0, "v")],
        hyper: createAdamwHyper(ctx),
      };
    });
    const clipScale = ctx.upload(new Float32Array([0.25]), "clip");
    // eps 0.05, a tenth of the bias-corrected sqrt(v) (~0.6 here), so its placement shows (added
    // after the bias correction, outside the square root); the 4-step test's 1e-8 is invisible.
    const common = { b1: 0.8, b2: 0.99, eps: 0.05, step: 3, gradScale: 2 };
    const enc = recordPass(ctx, (pass) => {
      for (const g of groups) {
        const [param, grad, m, v] = g.bufs;
        encodeAdamw(ctx, pass, {
          param,
          grad,
          m,
          v,
          n,
          hyper: g.hyper,
          clipScale,
          zeroGrad: true,
          lr: g.lr,
          weightDecay: g.weightDecay,
          ...common,
        });
      }
    });
    ctx.device.queue.submit([enc.finish()]);
    for (const g of groups) {
      const [p, gr, m, v] = await readAll(ctx, g.bufs, n);
      const ref = adamwRef(
        { param: g.p0, grad: g.g0, m: g.m0, v: g.v0 },
        { ...common, lr: g.lr, weightDecay: g.weightDecay, gradScale: 0.5 },
      );
      assertClose(p, ref.param, TOL, `param lr=${g.lr}`);
      assertClose(m, ref.m, M_TOL, `m lr=${g.lr}`);
      assertClose(v, ref.v, TOL, `v lr=${g.lr}`);
      if (gr.some((x) => x !== 0)) throw new Error("grad was not zeroed");
      for (const b of [...g.bufs, g.hyper]) b.destroy();
    }
    clipScale.destroy();
  },
});

Deno.test({
  name: "encodeAdamw() rejects bad hyperparameters and short buffers",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const b = ctx.createBuffer(16, "b");
    const hyper = createAdamwHyper(ctx);
    const storageOnly = ctx.createBuffer(4 * ADAMW_HYPER_FLOATS, "storage only");
    const ok: AdamwArgs = {
      param: b,
      grad: b,
      m: b,
      v: b,
      n: 4,
      hyper,
      lr: 1e-3,
      b1: 0.9,
      b2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
    };
    const bad: [Partial<AdamwArgs>, ErrorConstructor][] = [
      [{ step: 0 }, RangeError],
      [{ b1: 1 }, RangeError],
      [{ lr: -1 }, RangeError],
      [{ n: 5 }, RangeError],
      [{ hyper: b }, RangeError],
      [{ gradScale: NaN }, RangeError],
      [{ hyper: storageOnly }, TypeError],
    ];
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const [change, kind] of bad) {
      let threw = false;
      try {
        encodeAdamw(ctx, pass, { ...ok, ...change });
      } catch (e) {
        threw = e instanceof kind;
      }
      if (!threw) throw new Error(`no ${kind.name} for ${Object.keys(change)}`);
    }
    pass.end();
    enc.finish();
    for (const x of [b, hyper, storageOnly]) x.destroy();
  },
});
