// Private: the one place that picks the matmul kernel for a product and records it. Both
// launchers (matmul.ts, matmul_backward.ts) call it with the Params of matmul.wgsl, which
// matmul_128.wgsl shares: 128x128 tiles with 8x8 outputs per thread when both M and N fill at
// least one such tile, else the 64x64 tiles of matmul.wgsl (4x4 per thread), which waste less on
// small or skinny products.
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { f16Weights } from "../_f16.ts";
import code64 from "./matmul.wgsl" with { type: "text" };
import code128 from "./matmul_128.wgsl" with { type: "text" };

/** Which matmul kernel to record: chosen by shape ("auto"), or forced (tests, benchmarks). */
export type MatmulKernel = "auto" | "tile64" | "tile128";

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
if (LAYOUT.fields.map((f) => f.name).join() !== LAYOUT_128.fields.map((f) => f.name).join()) {
  throw new SyntaxError("Cannot load matmul_128.wgsl: its Params differ from matmul.wgsl's");
}

/**
 * The matmul kernel that `kernel: "auto"` records for an `[m, n]` output: the 128×128-tile one
 * when both sides fill at least one tile, else the 64×64-tile one.
 *
 * @param m Output rows (of `y`, `dx` or `dw`).
 * @param n Output columns.
 * @returns `"tile128"` or `"tile64"`.
 *
 * @example A Qwen3-0.6B MLP projection over 512 tokens, and a 64-token one
 * ```ts
 * import { pickMatmulKernel } from "./matmul.ts";
 * console.log(pickMatmulKernel(512, 3072), pickMatmulKernel(64, 3072)); // tile128 tile64
 * ```
 */
export function pickMatmulKernel(m: number, n: number): "tile64" | "tile128" {
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
  if (kernel === "auto") kernel = pickMatmulKernel(params.M, params.N);
  const big = kernel === "tile128";
  const tile = big ? 128 : 64;
  const code = big ? code128 : code64;
  const label = (big ? "matmul_128" : "matmul") + (options.wF16 ? "_f16" : "");
  const constants: Record<string, number> = {};
  if (options.xT) constants.X_T = 1;
  if (options.wT) constants.W_T = 1;
  ctx.dispatch(
    pass,
    ctx.pipeline(label, options.wF16 ? f16Weights(code, "w") : code, { constants }),
    bindings,
    [Math.ceil(params.N / tile), Math.ceil(params.M / tile), 1],
    packUniform(big ? LAYOUT_128 : LAYOUT, { ...params }),
  );
}
