/**
 * Launcher of the global gradient norm and clip scale: a deterministic two-stage reduction over
 * any number of gradient buffers.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import partialCode from "./grad_norm_partial.wgsl" with { type: "text" };
import finishCode from "./grad_norm_finish.wgsl" with { type: "text" };

const PARTIAL_PARAMS = uniformLayout(partialCode, "grad_norm_partial");

const FINISH_PARAMS = uniformLayout(finishCode, "grad_norm_finish");

/**
 * Floats of the `out` buffer of {@linkcode encodeGradNorm}: `[clipScale, norm, maxNorm,
 * gradScale]`; `adamw` reads the clip scale at index 0.
 */
export const GRAD_NORM_OUT_FLOATS = 4;

/** Elements per thread (before the workgroup-count cap) of the first stage. */
const ELEMS_PER_THREAD = 16;
/** Largest number of workgroups (so partial sums) per gradient buffer. */
const MAX_WORKGROUPS = 1024;

/** One gradient buffer of {@linkcode GradNormArgs}. */
export interface GradNormInput {
  /** The gradient values. */
  grad: Binding;
  /** Number of floats. */
  n: number;
}

/** Arguments of {@linkcode encodeGradNorm}. */
export interface GradNormArgs {
  /** Every gradient buffer that counts towards the global norm. */
  grads: readonly GradNormInput[];
  /**
   * Scratch of at least `gradNormPartialCount(grads.map((g) => g.n))` floats (one partial sum
   * per first-stage workgroup).
   */
  partials: Binding;
  /**
   * At least {@linkcode GRAD_NORM_OUT_FLOATS} floats; receives `[0]` the clip scale
   * `min(1, maxNorm / (norm + 1e-6))` and `[1]` the norm; `[2]` and `[3]` hold `maxNorm` and
   * `gradScale`, written by this call.
   */
  out: Binding;
  /** Largest allowed norm (> 0); default `Infinity` (no clipping: the scale is 1). */
  maxNorm?: number;
  /**
   * Multiplier of the gradients the norm is taken of (e.g. `1 / k` for accumulated sums), the
   * same value given to `encodeAdamw`; default 1.
   */
  gradScale?: number;
}

/**
 * Number of first-stage workgroups for a buffer of `n` floats: one per 4096 floats, at most
 * 1024.
 *
 * @param sizes Lengths of the gradient buffers.
 * @returns The number of partial sums, i.e. floats `partials` must hold.
 *
 * @example Partials of three buffers
 * ```ts
 * import { gradNormPartialCount } from "./grad_norm.ts";
 * console.log(gradNormPartialCount([10, 4097, 100_000_000])); // 1 + 2 + 1024 = 1027
 * ```
 */
export function gradNormPartialCount(sizes: readonly number[]): number {
  return sizes.reduce((sum, n) => sum + workgroups(n), 0);
}

function workgroups(n: number): number {
  return Math.min(MAX_WORKGROUPS, Math.ceil(n / (256 * ELEMS_PER_THREAD)));
}

/**
 * Records the global L2 norm of `gradScale · grads` and the PyTorch `clip_grad_norm_` factor
 * `min(1, maxNorm / (norm + 1e-6))` into `out`, with no readback: `encodeAdamw` reads the factor
 * from `out` (its `clipScale`) later in the same pass, and the norm can be read back with the
 * step's other metrics.
 *
 * Stage 1 is one dispatch per gradient buffer writing fixed-order partial sums of squares into
 * `partials`; stage 2 is one workgroup adding them in a fixed order. The geometry depends only on
 * the buffer sizes, so the result is bit-for-bit reproducible. `maxNorm` and `gradScale` are
 * written into `out[2..4)` with `queue.writeBuffer` (taking effect before the next submit, as the
 * `hyper` buffer of `encodeAdamw`), so a per-step `gradScale` adds no uniform; do not record two
 * uses of one `out` buffer with different values into one submit.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Gradient buffers, scratch, output and clipping threshold.
 *
 * @example Norm of two LoRA gradients, clipped to 1
 * ```ts ignore
 * import { encodeGradNorm, GRAD_NORM_OUT_FLOATS, gradNormPartialCount } from "./grad_norm.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, gA: GPUBuffer, gB: GPUBuffer;
 * const grads = [{ grad: gA, n: 8192 }, { grad: gB, n: 4096 }];
 * const partials = ctx.createBuffer(4 * gradNormPartialCount([8192, 4096]), "partials");
 * const out = ctx.createBuffer(4 * GRAD_NORM_OUT_FLOATS, "grad norm");
 * encodeGradNorm(ctx, pass, { grads, partials, out, maxNorm: 1 });
 * ```
 */
export function encodeGradNorm(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: GradNormArgs,
): void {
  const { grads, maxNorm = Infinity, gradScale = 1 } = args;
  if (!(maxNorm > 0)) {
    throw new RangeError(
      `Cannot encode grad_norm: "maxNorm" must be > 0: current value is ${maxNorm}`,
    );
  }
  if (!(Number.isFinite(gradScale) && gradScale >= 0)) {
    throw new RangeError(
      `Cannot encode grad_norm: "gradScale" must be a finite number ≥ 0: current value is ` +
        `${gradScale}`,
    );
  }
  grads.forEach(({ grad, n }, i) => {
    if (!Number.isInteger(n) || n < 0) {
      throw new RangeError(
        `Cannot encode grad_norm: grads[${i}].n must be an integer ≥ 0: current value is ${n}`,
      );
    }
    checkSize(grad, `grads[${i}].grad`, 4 * n);
  });
  const count = gradNormPartialCount(grads.map((g) => g.n));
  checkSize(args.partials, "partials", 4 * count);
  checkSize(args.out, "out", 4 * GRAD_NORM_OUT_FLOATS);

  const target = args.out instanceof GPUBuffer
    ? { buffer: args.out, offset: 0 }
    : { buffer: args.out.buffer, offset: args.out.offset };
  const inputs = new Float32Array([Number.isFinite(maxNorm) ? maxNorm : 0, gradScale]);
  ctx.device.queue.writeBuffer(target.buffer, target.offset + 8, inputs);

  const partial = ctx.pipeline("grad_norm_partial", partialCode);
  let offset = 0;
  for (const { grad, n } of grads) {
    const wgs = workgroups(n);
    ctx.dispatch(
      pass,
      partial,
      [grad, args.partials],
      [wgs, 1, 1],
      packUniform(PARTIAL_PARAMS, { n, offset, wgs }),
    );
    offset += wgs;
  }
  ctx.dispatch(
    pass,
    ctx.pipeline("grad_norm_finish", finishCode),
    [args.partials, args.out],
    [1, 1, 1],
    packUniform(FINISH_PARAMS, { count }),
  );
}

function checkSize(binding: Binding, name: string, bytes: number): void {
  if (binding.size < bytes) {
    throw new RangeError(
      `Cannot encode grad_norm: "${name}" must hold at least ${bytes} bytes: current size is ` +
        `${binding.size}`,
    );
  }
}
