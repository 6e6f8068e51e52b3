/**
 * Launcher of the backward of the matmul `y = alpha · x · wᵀ`: `dx = alpha · dy · w` and
 * `dw = alpha · dyᵀ · x`, each optionally added into an existing gradient. Both run the tiled
 * kernel of `matmul.wgsl` with its transposed-operand variants.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { checkSize, strided } from "../_check.ts";
import { checkF16, weightWords } from "../_f16.ts";
import { dispatchMatmul, type MatmulKernel, type MatmulLoads } from "./_dispatch.ts";

/** Arguments of {@linkcode encodeMatmulBackward}. */
export interface MatmulBackwardArgs {
  /** Gradient of the output: `[m, n]` at columns `yCol .. yCol + n` of rows of stride `ldy`. */
  dy: Binding;
  /** Rows of `x` and `dy`. */
  m: number;
  /** Rows of `w` (output columns of the forward). */
  n: number;
  /** Inner dimension of the forward. */
  k: number;
  /** Row stride of `dy`; default `n`. */
  ldy?: number;
  /** First column of `dy`, as the forward's `yCol`; default 0. */
  yCol?: number;
  /** Forward left operand `[m, k]` (row stride `ldx`); needed for `dw`. */
  x?: Binding;
  /** Row stride of `x`; default `k`. */
  ldx?: number;
  /** Forward right operand `[n, k]`, contiguous (a row block of a split matrix); needed for `dx`. */
  w?: Binding;
  /** Gradient of `x`, written at columns `dxCol .. dxCol + k` of rows of stride `lddx`. */
  dx?: Binding;
  /** Row stride of `dx`; default `k`. */
  lddx?: number;
  /** First column of `dx`; default 0. */
  dxCol?: number;
  /** Add into `dx` instead of overwriting it (residual and LoRA paths); default false. */
  accumulateDx?: boolean;
  /** Gradient of `w` `[n, k]`, contiguous. */
  dw?: Binding;
  /** Add into `dw` instead of overwriting it (micro-batch accumulation); default false. */
  accumulateDw?: boolean;
  /** Scale of the forward product (e.g. the LoRA scaling), applied to both gradients; default 1. */
  alpha?: number;
  /** `w` holds f16 values (a frozen base weight; "shader-f16"); not with `dw`. Default f32. */
  wF16?: boolean;
  /**
   * Kernel of both products, as `kernel` of `encodeMatmul`; default `"auto"` (by shape; on a
   * hardware adapter a product with few tiles and a long `k` splits it, `"splitK"`, see
   * `pickMatmulKernel`).
   */
  kernel?: MatmulKernel;
  /** Global reads of both products, as `loads` of `encodeMatmul`; default `"auto"`. */
  loads?: MatmulLoads;
}

/**
 * Records the dispatches computing `dx` and/or `dw` (whichever is given) of `y = alpha · x · wᵀ`.
 *
 * For a weight held as a row-split `GpuMatrix`, call once per row block with `w` (or `dw`) the
 * block's buffer, `n` its rows, `yCol` shifted by its first row, and `accumulateDx` true after the
 * first block, exactly as the forward loops over blocks.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands, gradients and shape.
 * @throws {TypeError} If neither `dx` nor `dw` is given, or the operand one needs is missing.
 *
 * @example Gradients of a 16×32 by 8×32 product
 * ```ts ignore
 * import { encodeMatmulBackward } from "./matmul_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const dy: GPUBuffer, x: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, dw: GPUBuffer;
 * encodeMatmulBackward(ctx, pass, { dy, x, w, dx, dw, m: 16, n: 8, k: 32, accumulateDw: true });
 * ```
 */
export function encodeMatmulBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MatmulBackwardArgs,
): void {
  const { m, n, k } = args;
  if (!args.dx && !args.dw) {
    throw new TypeError(
      "Cannot record matmul backward: expected dx or dw: current values are none",
    );
  }
  if (args.dx && !args.w) {
    throw new TypeError("Cannot record matmul backward: dx needs w: current value is undefined");
  }
  if (args.dw && !args.x) {
    throw new TypeError("Cannot record matmul backward: dw needs x: current value is undefined");
  }
  const ldy = args.ldy ?? n;
  const yCol = args.yCol ?? 0;
  const alpha = args.alpha ?? 1;
  const kernel = "matmul backward";
  checkSize(
    kernel,
    "dy",
    args.dy,
    strided(m, ldy, yCol, n),
    `[m, n] = [${m}, ${n}] at column ${yCol}, row stride ${ldy}`,
  );
  if (args.dx) {
    // dx[m, k] = dy[m, n] · w[n, k]: A = dy, B[k', n'] = w[n' * k + k'] (transposed).
    const lddx = args.lddx ?? k;
    const dxCol = args.dxCol ?? 0;
    if (args.wF16) checkF16(ctx, kernel);
    checkSize(kernel, "w", args.w!, weightWords(n * k, args.wF16), `[n, k] = [${n}, ${k}]`);
    checkSize(
      kernel,
      "dx",
      args.dx,
      strided(m, lddx, dxCol, k),
      `[m, k] = [${m}, ${k}] at column ${dxCol}, row stride ${lddx}`,
    );
    dispatchMatmul(ctx, pass, [args.dy, args.w!, args.dx], {
      M: m,
      N: k,
      K: n,
      ldx: ldy,
      ldy: lddx,
      y_col: dxCol,
      accumulate: args.accumulateDx ?? false,
      alpha,
      ldw: k,
      x_col: yCol,
      w_col: 0,
    }, {
      wT: true,
      wF16: args.wF16,
      kernel: args.kernel,
      loads: args.loads,
      splitK: true,
    });
  }
  if (args.dw && args.wF16) {
    throw new TypeError(
      "Cannot record matmul backward: dw of an f16 weight (f16 weights are frozen base weights)",
    );
  }
  if (args.dw) {
    // dw[n, k] = dyᵀ[n, m] · x[m, k]: A[n', m'] = dy[m' * ldy + yCol + n'], B[k', m'] = x[m' * ldx + k'].
    const ldx = args.ldx ?? k;
    checkSize(
      kernel,
      "x",
      args.x!,
      strided(m, ldx, 0, k),
      `[m, k] = [${m}, ${k}], row stride ${ldx}`,
    );
    checkSize(kernel, "dw", args.dw, n * k, `[n, k] = [${n}, ${k}]`);
    dispatchMatmul(ctx, pass, [args.dy, args.x!, args.dw], {
      M: n,
      N: k,
      K: m,
      ldx: ldy,
      ldy: k,
      y_col: 0,
      accumulate: args.accumulateDw ?? false,
      alpha,
      ldw: ldx,
      x_col: yCol,
      w_col: 0,
    }, {
      xT: true,
      wT: true,
      kernel: args.kernel,
      loads: args.loads,
      splitK: true,
    });
  }
}
