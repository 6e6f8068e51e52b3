/**
 * Launcher of the log-softmax-and-gather kernel (token log-probabilities).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./logprob.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "logprob");

/** Arguments of {@linkcode encodeLogprob}. */
export interface LogprobArgs {
  /** Logits `[rows, v]`. */
  logits: Binding;
  /** Target id per row (i32; negative = none). */
  targets: Binding;
  /** Output log-probabilities `[rows]`. */
  out: Binding;
  /** Output log-sum-exp per row `[rows]` (kept for the backward pass). */
  lse: Binding;
  /**
   * Output entropy `−Σ p log p` of each row's softmax `[rows]` (from the same pass; logged by
   * the RL trainer, not optimised).
   */
  entropy: Binding;
  /** Number of rows. */
  rows: number;
  /** Vocabulary size. */
  v: number;
}

/**
 * Records the per-row log-softmax gathered at the targets, the log-sum-exp and the entropy.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 *
 * @example Log-probs of 32 rows
 * ```ts ignore
 * import { encodeLogprob } from "./logprob.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, logits: GPUBuffer, targets: GPUBuffer;
 * declare const out: GPUBuffer, lse: GPUBuffer, entropy: GPUBuffer;
 * encodeLogprob(ctx, pass, { logits, targets, out, lse, entropy, rows: 32, v: 384 });
 * ```
 */
export function encodeLogprob(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LogprobArgs,
): void {
  const { rows, v } = args;
  checkSize("logprob", "logits", args.logits, rows * v, `[rows, v] = [${rows}, ${v}]`);
  for (const name of ["targets", "out", "lse", "entropy"] as const) {
    checkSize("logprob", name, args[name], rows, `[rows] = [${rows}]`);
  }
  ctx.dispatch(
    pass,
    ctx.pipeline("logprob", code, { constants: GRID_CONSTANTS }),
    [args.logits, args.targets, args.out, args.lse, args.entropy],
    grid(rows),
    packUniform(PARAMS, { R: rows, V: v }),
  );
}
