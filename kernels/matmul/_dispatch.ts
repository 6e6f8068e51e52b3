// Private: the one place that picks the matmul kernel for a product and records it. Both
// launchers (matmul.ts, matmul_backward.ts) call it with the Params of matmul.wgsl, which
// matmul_128.wgsl and matmul_small_k.wgsl share: one thread per output for a short K and few
// rows; 128x128 tiles with 8x8 outputs per thread when both M and N fill at least one such tile;
// else the 64x64 tiles of matmul.wgsl (4x4 per thread), which waste less on small products.
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { f16Weights } from "../_f16.ts";
import code64 from "./matmul.wgsl" with { type: "text" };
import code128 from "./matmul_128.wgsl" with { type: "text" };
import codeSmallK from "./matmul_small_k.wgsl" with { type: "text" };

/** Which matmul kernel to record: chosen by shape ("auto"), or forced (tests, benchmarks). */
export type MatmulKernel = "auto" | "tile64" | "tile128" | "smallK";

/** The uniform fields of matmul.wgsl (and matmul_128.wgsl), by name. */
export interface MatmulParams {
  M: number;
  N: number;
  K: number;
  ldx: number;
  ldy: number;
  y_col: number;
  accumulate: boolean;
  alpha: number;
  ldw: number;
  x_col: number;
  w_col: number;
}

const LAYOUT = uniformLayout(code64, "matmul");
const LAYOUT_128 = uniformLayout(code128, "matmul_128");
const LAYOUT_SMALL_K = uniformLayout(codeSmallK, "matmul_small_k");
for (
  const [name, layout] of [["matmul_128", LAYOUT_128], ["matmul_small_k", LAYOUT_SMALL_K]] as const
) {
  if (LAYOUT.fields.map((f) => f.name).join() !== layout.fields.map((f) => f.name).join()) {
    throw new SyntaxError(`Cannot load ${name}.wgsl: its Params differ from matmul.wgsl's`);
  }
}
/** The longest inner dimension the one-thread-per-output kernel takes. */
export const SMALL_K_MAX = 32;
/** The most output rows for which "auto" takes the one-thread-per-output kernel. */
export const SMALL_K_ROWS = 16;

/**
 * The matmul kernel that `kernel: "auto"` records for an `[m, n]` output summing over `k`: one
 * thread per output (`"smallK"`) when `k ≤ 32` and `m ≤ 16` (LoRA B in a decode step), else the
 * 128×128-tile one when both output sides fill at least one tile, else the 64×64-tile one.
 *
 * @param m Output rows (of `y`, `dx` or `dw`).
 * @param n Output columns.
 * @param k Inner dimension.
 * @returns `"smallK"`, `"tile128"` or `"tile64"`.
 *
 * @example A Qwen3-0.6B MLP projection over 512 tokens, and a 64-token one
 * ```ts
 * import { pickMatmulKernel } from "./matmul.ts";
 * console.log(pickMatmulKernel(512, 3072, 1024), pickMatmulKernel(64, 3072, 1024)); // tile128 tile64
 * ```
 */
export function pickMatmulKernel(
  m: number,
  n: number,
  k: number,
): "tile64" | "tile128" | "smallK" {
  if (k <= SMALL_K_MAX && m <= SMALL_K_ROWS) return "smallK";
  return m >= 128 && n >= 128 ? "tile128" : "tile64";
}

/** Records `y = [y +] alpha · A · Bᵀ` with the kernel picked for `params.M × params.N`. */
export function dispatchMatmul(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  bindings: readonly [Binding, Binding, Binding],
  params: MatmulParams,
  options: { xT?: boolean; wT?: boolean; wF16?: boolean; kernel?: MatmulKernel },
): void {
  let kernel = options.kernel ?? "auto";
  if (kernel === "auto") kernel = pickMatmulKernel(params.M, params.N, params.K);
  if (kernel === "smallK" && params.K > SMALL_K_MAX) {
    throw new RangeError(
      `Cannot record matmul with the small-K kernel: K must be <= ${SMALL_K_MAX}: current ` +
        `value is ${params.K}`,
    );
  }
  const [name, code, layout, grid] = kernel === "tile128"
    ? ["matmul_128", code128, LAYOUT_128, [Math.ceil(params.N / 128), Math.ceil(params.M / 128)]]
    : kernel === "smallK"
    ? ["matmul_small_k", codeSmallK, LAYOUT_SMALL_K, [Math.ceil(params.N / 64), params.M]]
    : ["matmul", code64, LAYOUT, [Math.ceil(params.N / 64), Math.ceil(params.M / 64)]];
  const constants: Record<string, number> = {};
  if (options.xT) constants.X_T = 1;
  if (options.wT) constants.W_T = 1;
  ctx.dispatch(
    pass,
    ctx.pipeline(name + (options.wF16 ? "_f16" : ""), options.wF16 ? f16Weights(code, "w") : code, {
      constants,
    }),
    bindings,
    [grid[0], grid[1], 1],
    packUniform(layout, { ...params }),
  );
}
