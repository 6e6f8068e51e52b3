/**
 * Launcher of the tiled matmul kernel `y = [y +] alpha · x · wᵀ`.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { checkSize, strided } from "../_check.ts";
import { checkF16, weightWords } from "../_f16.ts";
import { dispatchMatmul, type MatmulKernel, type MatmulLoads } from "./_dispatch.ts";

export {
  matmulFill,
  type MatmulKernel,
  type MatmulLoads,
  matmulSplitK,
  NARROW_MAX_N,
  NARROW_MIN_K,
  pickMatmulKernel,
  pickSplitK,
  SPLIT_K_MAX_PARTIALS,
  SPLIT_K_MAX_SPLITS,
  SPLIT_K_MIN_CHUNK,
  SPLIT_K_MIN_K,
  SPLIT_K_SCRATCH,
} from "./_dispatch.ts";

/** Arguments of {@linkcode encodeMatmul}. */
export interface MatmulArgs {
  /** Left operand `[m, k]` (row stride `ldx`). */
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
  /** Row stride of `x`; default `k`. */
  ldx?: number;
  /** Row stride of `y`; default `n`. */
  ldy?: number;
  /** First output column; default 0. */
  yCol?: number;
  /** Add to `y` instead of overwriting it; default false. */
  accumulate?: boolean;
  /** Scale of the product; default 1. */
  alpha?: number;
  /** `w` holds f16 values (2 bytes each; the device needs "shader-f16"); default f32. */
  wF16?: boolean;
  /**
   * Kernel: `"auto"` (default) picks by shape (see {@linkcode pickMatmulKernel}); `"tile64"`,
   * `"tile128"` (8×8 outputs per thread), `"smallK"` (one thread per output, `k ≤ 32`),
   * `"narrow"` (one thread per two output rows, `n ≤ 8`) or
   * `"matvec"` (kernels/matvec's vec4 one: `k`, `ldx` multiples of 4) or `"splitK"` (k in
   * chunks, at least 2, towards `ctx.fillWorkgroups` workgroups, summed by a second dispatch; see
   * `pickSplitK`) force one (tests, benchmarks). All compute the same product (split-K rounds
   * differently: "auto" takes it only for the backward's products, on a hardware adapter).
   */
  kernel?: MatmulKernel;
  /**
   * Global reads of the tile kernels (64×64 and 128×128): `"auto"` (default: vec4 reads of each
   * operand whose inner dimension, row stride and column offset are multiples of 4, else scalar),
   * `"scalar"`, or `"vec4Split"` (benchmarks: the vec4 pattern as 4 scalar reads). Same product.
   */
  loads?: MatmulLoads;
}

/**
 * Records one matmul dispatch into `pass` (the kernel picked by shape, see `kernel`).
 *
 * @param ctx The GPU context (pipeline and bind-group caches).
 * @param pass The compute pass being recorded.
 * @param args Operands and shape.
 *
 * @example y = x · wᵀ for a 2×3 by 4×3
 * ```ts ignore
 * import { createGpu, GpuContext, readback } from "../../gpu/mod.ts";
 * import { encodeMatmul } from "./matmul.ts";
 * const ctx = new GpuContext(await createGpu());
 * const x = ctx.upload(new Float32Array(6).fill(1), "x");
 * const w = ctx.upload(new Float32Array(12).fill(2), "w");
 * const y = ctx.createBuffer(32, "y");
 * const enc = ctx.device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * encodeMatmul(ctx, pass, { x, w, y, m: 2, n: 4, k: 3 });
 * pass.end();
 * const [bytes] = await readback(ctx, [{ buffer: y, offset: 0, size: 32 }], enc);
 * console.log(new Float32Array(bytes)); // all 6
 * ```
 */
export function encodeMatmul(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MatmulArgs,
): void {
  const { m, n, k } = args;
  const ldx = args.ldx ?? k;
  const ldy = args.ldy ?? n;
  const yCol = args.yCol ?? 0;
  checkSize(
    "matmul",
    "x",
    args.x,
    strided(m, ldx, 0, k),
    `[m, k] = [${m}, ${k}], row stride ${ldx}`,
  );
  if (args.wF16) checkF16(ctx, "matmul");
  checkSize("matmul", "w", args.w, weightWords(n * k, args.wF16), `[n, k] = [${n}, ${k}]`);
  checkSize(
    "matmul",
    "y",
    args.y,
    strided(m, ldy, yCol, n),
    `[m, n] = [${m}, ${n}] at column ${yCol}, row stride ${ldy}`,
  );
  dispatchMatmul(ctx, pass, [args.x, args.w, args.y], {
    M: m,
    N: n,
    K: k,
    ldx,
    ldy,
    y_col: yCol,
    accumulate: args.accumulate ?? false,
    alpha: args.alpha ?? 1,
    ldw: k, // w is [n, k] contiguous
    x_col: 0,
    w_col: 0,
  }, { wF16: args.wF16, kernel: args.kernel, loads: args.loads });
}
