import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { ropeTable } from "../rope/rope_ref.ts";
import type { GpuContext } from "../../gpu/context.ts";
import { encodeQkNormRope, type QkNormRopeArgs } from "./qk_norm_rope.ts";
import { encodeQkNormRopeBackward } from "./qk_norm_rope_backward.ts";
import {
  qkNormRopeBackwardRef,
  type QkNormRopeOptions,
  qkNormRopeRef,
} from "./qk_norm_rope_ref.ts";

// Forward: an f32 sum of d squares (rms_norm's 1e-5), then one rotation (rope's 1e-6): 1e-5.
// Backward: f32 sums over a row, and dx subtracts two terms of similar size: 1e-5.
const TOL = 1e-5;
const MAX_POS = 4096;
const THETA = 1e6;

// [tokens, hq, hkv, d]: heads 3 and 1, GQA 4:2, head sizes 8, 12, 64, 128 and 256 (two pairs a
// thread), token counts off the workgroup size.
const SHAPES = [
  [1, 1, 1, 2],
  [5, 3, 1, 8],
  [7, 3, 3, 12],
  [3, 4, 2, 64],
  [9, 1, 1, 128],
  [2, 16, 8, 128],
  [3, 2, 1, 256],
] as const;

function inputs(tokens: number, hq: number, hkv: number, d: number) {
  const seed = tokens * 31 + hq * 7 + hkv * 3 + d;
  return {
    qRaw: randomArray(tokens * hq * d, seed, -3, 3),
    kRaw: randomArray(tokens * hkv * d, seed + 1, -3, 3),
    qNorm: randomArray(d, seed + 2, 0.5, 1.5),
    kNorm: randomArray(d, seed + 3, 0.5, 1.5),
    dq: randomArray(tokens * hq * d, seed + 4),
    dk: randomArray(tokens * hkv * d, seed + 5),
    // The last of several tokens sits past the table: the kernels clamp it to the last row
    // (`refPositions`, given to the references).
    positions: Uint32Array.from(
      { length: tokens },
      (_, i) => i > 0 && i === tokens - 1 ? MAX_POS + 7 : (i * 997 + 3) % MAX_POS,
    ),
    refPositions: Uint32Array.from(
      { length: tokens },
      (_, i) => i > 0 && i === tokens - 1 ? MAX_POS - 1 : (i * 997 + 3) % MAX_POS,
    ),
  };
}

type Inputs = ReturnType<typeof inputs>;

/**
 * Runs one kernel on every shape of SHAPES: `record` gets the context, the uploaded inputs and
 * shape (the arguments both kernels share) and returns its encoder and two output buffers, compared
 * (under `names`) with the two arrays of the f64 reference `want`; logs the errors.
 */
async function checkShapes(
  label: string,
  names: readonly [string, string],
  record: (
    ctx: GpuContext,
    common: Omit<QkNormRopeArgs, "q" | "k">,
    x: Inputs,
  ) => { enc: GPUCommandEncoder; out: [GPUBuffer, GPUBuffer] },
  want: (x: Inputs, opts: QkNormRopeOptions) => [ArrayLike<number>, ArrayLike<number>],
): Promise<void> {
  const ctx = (await testContext())!;
  for (const [tokens, hq, hkv, d] of SHAPES) {
    const x = inputs(tokens, hq, hkv, d);
    const eps = d === 2 ? 0.1 : 1e-6;
    const common = {
      qRaw: ctx.upload(x.qRaw, "qRaw"),
      kRaw: ctx.upload(x.kRaw, "kRaw"),
      qNorm: ctx.upload(x.qNorm, "qNorm"),
      kNorm: ctx.upload(x.kNorm, "kNorm"),
      positions: ctx.upload(x.positions, "positions"),
      table: ctx.upload(ropeTable(MAX_POS, { d, theta: THETA }), "table"),
      ...{ tokens, hq, hkv, d, maxPos: MAX_POS, eps },
    };
    const { enc, out } = record(ctx, common, x);
    const got = await readback(
      ctx,
      out.map((buffer) => ({ buffer, offset: 0, size: buffer.size })),
      enc,
    );
    const ref = want(x, { d, hq, hkv, theta: THETA, eps });
    const what = `${tokens}x(${hq}+${hkv})x${d}`;
    const errs = names.map((name, i) =>
      assertClose(new Float32Array(got[i]), ref[i], TOL, `${name} ${what}`).toExponential(2)
    );
    console.log(`${label} ${what}: ${names[0]} ${errs[0]}, ${names[1]} ${errs[1]}`);
  }
}

Deno.test({
  name: "encodeQkNormRope() matches rms_norm then rope in f64 on odd head shapes",
  ignore: noGpu,
  fn: () =>
    checkShapes("qk_norm_rope", ["q", "k"], (ctx, common, x) => {
      const q = poisoned(ctx, x.qRaw.length, "q");
      const k = poisoned(ctx, x.kRaw.length, "k");
      const enc = recordPass(ctx, (pass) => encodeQkNormRope(ctx, pass, { ...common, q, k }));
      return { enc, out: [q, k] };
    }, (x, opts) => {
      const want = qkNormRopeRef(x, x.refPositions, opts);
      return [want.q, want.k];
    }),
});

Deno.test({
  name: "encodeQkNormRopeBackward() matches rope then rms_norm backward in f64, in place",
  ignore: noGpu,
  fn: () =>
    checkShapes("qk_norm_rope backward", ["dqRaw", "dkRaw"], (ctx, common, x) => {
      const dq = ctx.upload(x.dq, "dq");
      const dk = ctx.upload(x.dk, "dk");
      const enc = recordPass(ctx, (pass) =>
        encodeQkNormRopeBackward(ctx, pass, { ...common, dq, dk }));
      return { enc, out: [dq, dk] };
    }, (x, opts) => {
      const want = qkNormRopeBackwardRef(x, x.refPositions, opts);
      return [want.dqRaw, want.dkRaw];
    }),
});

Deno.test({
  name: "encodeQkNormRope() names the argument and shape it rejects",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const small = ctx.upload(new Float32Array(4), "small");
    const shape = { tokens: 2, hq: 2, hkv: 1, d: 4, maxPos: 8, eps: 1e-6 };
    const b = { qRaw: small, kRaw: small, qNorm: small, kNorm: small, positions: small };
    const args = { ...b, table: small, q: small, k: small, ...shape };
    const pass = ctx.device.createCommandEncoder().beginComputePass();
    let message = "";
    try {
      encodeQkNormRope(ctx, pass, args);
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes('"qRaw" must hold at least 16 elements ([tokens · hq, d] = [4, 4])')) {
      throw new Error(`unexpected message: ${message}`);
    }
    try {
      encodeQkNormRope(ctx, pass, { ...args, d: 3 });
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes("head size must be even and positive: current value is 3")) {
      throw new Error(`unexpected message: ${message}`);
    }
    pass.end();
  },
});
