/**
 * Launcher of the skinny matmul `y = [y +] x · wᵀ` for a few rows (decode steps).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize, strided } from "../_check.ts";
import { checkF16, f16Weights, weightWords } from "../_f16.ts";
import code from "./matvec.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "matvec");

/** Arguments of {@linkcode encodeMatvec}. */
export interface MatvecArgs {
  /** Left operand `[m, k]`. */
  x: Binding;
  /** Right operand `[n, k]`, row-major (PyTorch's `[out, in]` weight). */
  w: Binding;
  /** Output with row stride `ldy`; columns `yCol .. yCol + n` are written. */
  y: Binding;
  /** Rows of `x` and `y`. */
  m: number;
  /** Rows of `w` (output columns). */
  n: number;
  /** Inner dimension. */
  k: number;
  /** Row stride of `y`; default `n`. */
  ldy?: number;
  /** First output column; default 0. */
  yCol?: number;
  /** Add to `y` instead of overwriting it; default false. */
  accumulate?: boolean;
  /** `w` holds f16 values (2 bytes each; the device needs "shader-f16"); default f32. */
  wF16?: boolean;
}

/**
 * Records a skinny matmul: 64 threads split the inner dimension of 4 output columns × up to 8
 * rows, for decode steps where `m` is small (`encodeMatmul`'s 64×64 tiles would be mostly
 * padding); the grid is sliced when the column blocks exceed the device's dimension limit.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands and shape.
 *
 * @example One decode token through a 3072×1024 projection
 * ```ts ignore
 * import { encodeMatvec } from "./matvec.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer;
 * encodeMatvec(ctx, pass, { x, w, y, m: 1, n: 3072, k: 1024 });
 * ```
 */
export function encodeMatvec(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MatvecArgs,
): void {
  const { m, n, k } = args;
  const mb = Math.min(8, 2 ** Math.ceil(Math.log2(Math.max(1, m))));
  const blocks = Math.ceil(n / 4);
  const ldy = args.ldy ?? n;
  const yCol = args.yCol ?? 0;
  checkSize("matvec", "x", args.x, m * k, `[m, k] = [${m}, ${k}]`);
  if (args.wF16) checkF16(ctx, "matvec");
  checkSize("matvec", "w", args.w, weightWords(n * k, args.wF16), `[n, k] = [${n}, ${k}]`);
  checkSize(
    "matvec",
    "y",
    args.y,
    strided(m, ldy, yCol, n),
    `[m, n] = [${m}, ${n}] at column ${yCol}, row stride ${ldy}`,
  );
  const limit = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  for (let b0 = 0; b0 < blocks; b0 += limit) {
    ctx.dispatch(
      pass,
      args.wF16
        ? ctx.pipeline("matvec_f16", f16Weights(code, "w"), { constants: { MB: mb } })
        : ctx.pipeline("matvec", code, { constants: { MB: mb } }),
      [args.x, args.w, args.y],
      [Math.min(limit, blocks - b0), Math.ceil(m / mb), 1],
      packUniform(PARAMS, {
        M: m,
        N: n,
        K: k,
        ldy,
        y_col: yCol,
        accumulate: args.accumulate ?? false,
        n_block0: b0,
      }),
    );
  }
}
