/**
 * Launcher of the backward of the token log-probabilities: the gradient of the logits from that
 * of the log-probabilities and the forward's log-sum-exps.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./logprob_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "logprob_backward");

/** Arguments of {@linkcode encodeLogprobBackward}. */
export interface LogprobBackwardArgs {
  /** Forward logits `[rows, v]`. */
  logits: Binding;
  /** Target id per row (i32; negative = none, which gets a zero gradient row). */
  targets: Binding;
  /** Log-sum-exp per row `[rows]`, as written by the forward `encodeLogprob`. */
  lse: Binding;
  /** Gradient of the log-probabilities `[rows]`. */
  dLogprob: Binding;
  /**
   * Gradient of the logits `[rows, v]`; omit to overwrite `logits` with it in place (saves a
   * `[rows, v]` buffer).
   */
  dLogits?: Binding;
  /** Number of rows. */
  rows: number;
  /** Vocabulary size. */
  v: number;
}

/**
 * Records `dLogits[r, :] = dLogprob[r] · (onehot(t_r) − softmax(logits[r, :]))`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 *
 * @example Turn the logits of 32 rows into their gradient in place
 * ```ts ignore
 * import { encodeLogprobBackward } from "./logprob_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, logits: GPUBuffer, targets: GPUBuffer;
 * declare const lse: GPUBuffer, dLogprob: GPUBuffer;
 * encodeLogprobBackward(ctx, pass, { logits, targets, lse, dLogprob, rows: 32, v: 384 });
 * ```
 */
export function encodeLogprobBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LogprobBackwardArgs,
): void {
  const { rows, v } = args;
  const matrix = `[rows, v] = [${rows}, ${v}]`;
  checkSize("logprob backward", "logits", args.logits, rows * v, matrix);
  for (const name of ["targets", "lse", "dLogprob"] as const) {
    checkSize("logprob backward", name, args[name], rows, `[rows] = [${rows}]`);
  }
  if (args.dLogits) checkSize("logprob backward", "dLogits", args.dLogits, rows * v, matrix);
  const inputs = [args.targets, args.lse, args.dLogprob];
  const workgroups = grid(Math.ceil((rows * v) / 256));
  const params = packUniform(PARAMS, { R: rows, V: v });
  if (args.dLogits) {
    ctx.dispatch(
      pass,
      ctx.pipeline("logprob_backward", code, { constants: GRID_CONSTANTS }),
      [args.logits, ...inputs, args.dLogits],
      workgroups,
      params,
    );
  } else {
    ctx.dispatch(
      pass,
      ctx.pipeline("logprob_backward", code, {
        entryPoint: "in_place",
        constants: GRID_CONSTANTS,
      }),
      [args.logits, ...inputs],
      workgroups,
      params,
    );
  }
}
