/**
 * Launcher of the fused AdamW kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./adamw.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "adamw");

/** Floats of the per-step scalars buffer `hyper` of {@linkcode encodeAdamw} (48 bytes). */
export const ADAMW_HYPER_FLOATS = 12;
/** Usage flags `hyper` needs: UNIFORM | STORAGE | COPY_DST. */
const HYPER_USAGE = 0x40 | 0x80 | 0x08;
/** Index in `hyper` of the constant 1.0 read as the clip scale when none is given. */
const HYPER_ONE = 9;

/** Arguments of {@linkcode encodeAdamw}. */
export interface AdamwArgs {
  /** Parameters `[n]`, updated in place. */
  param: Binding;
  /** Gradient `[n]` (before `gradScale`); zeroed after the update when `zeroGrad`. */
  grad: Binding;
  /** First moment `[n]`, updated in place (zeros before the first step). */
  m: Binding;
  /** Second moment `[n]`, updated in place (zeros before the first step). */
  v: Binding;
  /** Number of elements. */
  n: number;
  /**
   * The buffer this call fills with the step's scalars, from {@linkcode createAdamwHyper} (see
   * {@linkcode encodeAdamw} for when the write happens).
   */
  hyper: GPUBuffer;
  /** Learning rate of this step (≥ 0). */
  lr: number;
  /** First-moment decay in [0, 1), e.g. 0.9. */
  b1: number;
  /** Second-moment decay in [0, 1), e.g. 0.999. */
  b2: number;
  /** Denominator epsilon (≥ 0), e.g. 1e-8. */
  eps: number;
  /** Decoupled weight decay (≥ 0); 0 for tensors that are not decayed. */
  weightDecay: number;
  /** 1-based number of this update, for the bias corrections `1 − b^step`. */
  step: number;
  /**
   * Known multiplier of the gradient, e.g. `1 / k` to average `k` accumulated micro-batches or
   * `1 / tokens` for a token mean; default 1.
   */
  gradScale?: number;
  /**
   * A buffer whose first float multiplies the gradient too: the clip scale written by
   * `encodeGradNorm` earlier in the same submit, so clipping needs no readback. Default: none.
   */
  clipScale?: Binding;
  /** Zero `grad` after reading it, ready for the next accumulation; default false. */
  zeroGrad?: boolean;
}

/**
 * Records one fused AdamW step (PyTorch `torch.optim.AdamW`, decoupled weight decay, bias
 * correction) over `n` parameters, on the gradient `grad · gradScale · clipScale[0]`.
 *
 * Per-step scalars (learning rate, bias corrections, `gradScale`) do not go through
 * `GpuContext.uniform`, which caches one buffer (and bind group) per distinct content forever and
 * would grow every step. Instead this call writes them into the caller's `hyper` buffer with
 * `queue.writeBuffer`, which takes effect before the next `queue.submit`; the context's uniform
 * holds only `n` and flags, so the caches stay bounded. `hyper` is bound as a uniform block:
 * llvmpipe takes about half the time per update as with the same values in a storage buffer
 * (1M parameters, alternating runs on a 2-core host: 110–175 ms against 290–305 ms, and the same
 * as a minimal kernel with literal constants). It is also bound as read-only storage for the
 * constant 1.0 used as clip scale when `clipScale` is absent, hence its usage flags.
 *
 * Because the write happens at record time, all dispatches recorded before one submit that share
 * a `hyper` buffer see the values of the last call: give each set of values (e.g. each parameter
 * group with its own weight decay) its own `hyper` buffer, and do not record two steps that share
 * one into one submit. The moments, parameters and gradient never leave the GPU.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, size, hyperparameters and step.
 *
 * @example Clip by the global norm, then AdamW, in one pass
 * ```ts ignore
 * import { createAdamwHyper, encodeAdamw } from "./adamw.ts";
 * import { encodeGradNorm, GRAD_NORM_OUT_FLOATS, gradNormPartialCount } from "../grad_norm/grad_norm.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const param: GPUBuffer, grad: GPUBuffer, m: GPUBuffer, v: GPUBuffer;
 * const n = 4096;
 * const partials = ctx.createBuffer(4 * gradNormPartialCount([n]), "partials");
 * const norm = ctx.createBuffer(4 * GRAD_NORM_OUT_FLOATS, "grad norm");
 * const hyper = createAdamwHyper(ctx);
 * encodeGradNorm(ctx, pass, { grads: [{ grad, n }], partials, out: norm, maxNorm: 1 });
 * encodeAdamw(ctx, pass, {
 *   param, grad, m, v, n, hyper, clipScale: norm, zeroGrad: true,
 *   lr: 1e-4, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1,
 * });
 * ```
 */
export function encodeAdamw(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: AdamwArgs,
): void {
  const { n, lr, b1, b2, eps, weightDecay, step, gradScale = 1 } = args;
  check(Number.isInteger(n) && n >= 0, "n", "an integer ≥ 0", n);
  check(Number.isFinite(lr) && lr >= 0, "lr", "a finite number ≥ 0", lr);
  check(b1 >= 0 && b1 < 1, "b1", "in [0, 1)", b1);
  check(b2 >= 0 && b2 < 1, "b2", "in [0, 1)", b2);
  check(Number.isFinite(eps) && eps >= 0, "eps", "a finite number ≥ 0", eps);
  check(
    Number.isFinite(weightDecay) && weightDecay >= 0,
    "weightDecay",
    "a finite number ≥ 0",
    weightDecay,
  );
  check(Number.isInteger(step) && step >= 1, "step", "an integer ≥ 1", step);
  check(
    Number.isFinite(gradScale) && gradScale >= 0,
    "gradScale",
    "a finite number ≥ 0",
    gradScale,
  );
  for (const name of ["param", "grad", "m", "v"] as const) checkSize(args[name], name, 4 * n);
  checkSize(args.hyper, "hyper", 4 * ADAMW_HYPER_FLOATS);
  if ((args.hyper.usage & HYPER_USAGE) !== HYPER_USAGE) {
    throw new TypeError(
      `Cannot encode adamw: "hyper" must have UNIFORM | STORAGE | COPY_DST usage (0x${
        HYPER_USAGE.toString(16)
      }), as from createAdamwHyper(): current usage is 0x${args.hyper.usage.toString(16)}`,
    );
  }
  if (args.clipScale) checkSize(args.clipScale, "clipScale", 4);

  const bc1 = 1 - b1 ** step;
  const bc2 = 1 - b2 ** step;
  const hyper = new Float32Array([
    b1,
    1 - b1,
    b2,
    1 - b2,
    eps,
    1 - lr * weightDecay,
    lr / bc1,
    1 / Math.sqrt(bc2),
    gradScale,
    1,
    0,
    0,
  ]);
  ctx.device.queue.writeBuffer(args.hyper, 0, hyper);

  ctx.dispatch(
    pass,
    ctx.pipeline("adamw", code, { constants: GRID_CONSTANTS }),
    [args.param, args.grad, args.m, args.v, args.hyper, args.clipScale ?? args.hyper],
    grid(Math.ceil(n / 256)),
    packUniform(PARAMS, {
      n,
      clip_at: args.clipScale ? 0 : HYPER_ONE,
      zero_grad: args.zeroGrad ?? false,
    }),
  );
}

/**
 * Creates the small per-step scalars buffer that {@linkcode encodeAdamw} writes and binds
 * (48 bytes, UNIFORM | STORAGE | COPY_DST). Use one per set of hyperparameter values recorded
 * into one submit, e.g. one per parameter group, reused every step.
 *
 * @param ctx The GPU context.
 * @param label Debug label; default `"adamw hyper"`.
 * @returns The buffer.
 *
 * @example One buffer per parameter group
 * ```ts ignore
 * import { createAdamwHyper } from "./adamw.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * const loraHyper = createAdamwHyper(ctx, "lora hyper");
 * const routerHyper = createAdamwHyper(ctx, "router hyper");
 * ```
 */
export function createAdamwHyper(ctx: GpuContext, label = "adamw hyper"): GPUBuffer {
  return ctx.device.createBuffer({ label, size: 4 * ADAMW_HYPER_FLOATS, usage: HYPER_USAGE });
}

function check(ok: boolean, name: string, rule: string, value: number): void {
  if (!ok) {
    throw new RangeError(
      `Cannot encode adamw: "${name}" must be ${rule}: current value is ${value}`,
    );
  }
}

function checkSize(binding: Binding, name: string, bytes: number): void {
  if (binding.size < bytes) {
    throw new RangeError(
      `Cannot encode adamw: "${name}" must hold at least ${bytes} bytes: current size is ` +
        `${binding.size}`,
    );
  }
}
