// Private: the one place that picks the matmul kernel for a product and records it. Both
// launchers (matmul.ts, matmul_backward.ts) call it with the Params of matmul.wgsl, which
// matmul_128.wgsl and matmul_small_k.wgsl share: the vec4 matvec of kernels/matvec for <= 32 rows
// (aligned, untransposed operands); one thread per output for a short K and few rows; 128x128 tiles with 8x8 outputs per thread when both M and N are >= 32 (on llvmpipe they
// beat the 64x64 tiles even mostly empty); else the 64x64 tiles of matmul.wgsl (4x4 per thread).
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { f16Weights } from "../_f16.ts";
import { encodeMatvec } from "../matvec/matvec.ts";
import code64 from "./matmul.wgsl" with { type: "text" };
import code128 from "./matmul_128.wgsl" with { type: "text" };
import codeSmallK from "./matmul_small_k.wgsl" with { type: "text" };

/** Which matmul kernel to record: chosen by shape ("auto"), or forced (tests, benchmarks). */
export type MatmulKernel = "auto" | "tile64" | "tile128" | "smallK" | "matvec";

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

/** The fewest output rows and columns for which "auto" takes the 128×128 tiles. */
export const TILE128_MIN = 32;
/** The most output rows for which "auto" takes the vec4 matvec kernel (k % 4 == 0). */
export const MATVEC_ROWS = 32;

/**
 * The matmul kernel that `kernel: "auto"` records for an `[m, n]` output summing over `k`: the
 * vec4 matvec of kernels/matvec (`"matvec"`, 4 columns × up to 8 rows per thread in registers)
 * when `m ≤ 32` and `k % 4 == 0` (LoRA B and other products of a decode step; only untransposed
 * operands with aligned rows, else the next choice); else one thread per output (`"smallK"`)
 * when `k ≤ 32` and `m ≤ 16`; else the 128×128-tile one when both output sides are ≥ 32 and,
 * with `fill` (a hardware adapter), its grid reaches half of `fill` (about one workgroup per
 * multiprocessor: each of its 256 threads holds 64 accumulators) or the 64×64 tiles would not
 * launch more; else the 64×64-tile one. (On llvmpipe the matvec ran 1.7× the
 * one-thread-per-output kernel at k = 16 and 5× the tiles at 32 rows, and the 128×128 tiles 1.1×
 * (64×64×1024) to 4× (32×3072×1024) the 64×64 ones even when mostly padding; docs/perf.md. A
 * GPU's many cores want more workgroups than the 128×128 tiles give a decode step of 64 rows
 * (16 for a 2048-wide q_proj) or a weight gradient (64 for 1024×1024): hence `fill`, not yet
 * measured on a GPU.) Every tile kernel sums each output in k order with one fma per k, so the
 * choice does not change the result.
 *
 * @param m Output rows (of `y`, `dx` or `dw`).
 * @param n Output columns.
 * @param k Inner dimension.
 * @param options `fill`: workgroups a product should launch (`GpuContext.fillWorkgroups` on a
 *   hardware adapter); default none (the software adapter's rule).
 * @returns `"matvec"`, `"smallK"`, `"tile128"` or `"tile64"`.
 *
 * @example A Qwen3-0.6B MLP projection over 512 tokens, a rank-16 LoRA A over 512 tokens, and a
 * LoRA B of rank 16 in a decode step; then q_proj over a decode step of 64 rows, on llvmpipe and
 * on a GPU
 * ```ts
 * import { pickMatmulKernel } from "./matmul.ts";
 * console.log(pickMatmulKernel(512, 3072, 1024), pickMatmulKernel(512, 16, 1024)); // tile128 tile64
 * console.log(pickMatmulKernel(1, 3072, 16)); // matvec
 * console.log(pickMatmulKernel(64, 2048, 1024), pickMatmulKernel(64, 2048, 1024, { fill: 256 }));
 * // tile128 tile64
 * ```
 */
export function pickMatmulKernel(
  m: number,
  n: number,
  k: number,
  options: { fill?: number } = {},
): "tile64" | "tile128" | "smallK" | "matvec" {
  if (m <= MATVEC_ROWS && k % 4 === 0) return "matvec";
  return pickTiles(m, n, k, options.fill);
}

/**
 * The `fill` that {@linkcode pickMatmulKernel} gets on `ctx`: its `fillWorkgroups` on a hardware
 * adapter, none on a software one (llvmpipe's measured rule ignores occupancy).
 *
 * @param ctx The GPU context.
 * @returns The fill, or undefined.
 *
 * @example The choice "auto" makes for a 64-row decode step's q_proj on this context
 * ```ts ignore
 * import { matmulFill, pickMatmulKernel } from "./matmul.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * console.log(pickMatmulKernel(64, 2048, 1024, { fill: matmulFill(ctx) }));
 * ```
 */
export function matmulFill(ctx: GpuContext): number | undefined {
  return ctx.gpu.isFallbackAdapter ? undefined : ctx.fillWorkgroups;
}

// The choice of pickMatmulKernel without the matvec.
function pickTiles(
  m: number,
  n: number,
  k: number,
  fill: number | undefined,
): "tile64" | "tile128" | "smallK" {
  if (k <= SMALL_K_MAX && m <= SMALL_K_ROWS) return "smallK";
  if (m < TILE128_MIN || n < TILE128_MIN) return "tile64";
  if (fill === undefined) return "tile128";
  const grid = (side: number) => Math.ceil(m / side) * Math.ceil(n / side);
  return 2 * grid(128) >= fill || grid(64) === grid(128) ? "tile128" : "tile64";
}

/**
 * How the tile kernels (matmul_128, matmul) read their operands from global memory: `"auto"`
 * (vec4 reads of each operand whose layout allows them, see {@linkcode vec4Operands}),
 * `"scalar"` (never), or for benchmarks `"vec4Split"` (the vec4 slots, read as 4 scalars from the
 * f32 binding).
 */
export type MatmulLoads = "auto" | "scalar" | "vec4Split";

/**
 * Which operands of a product the tile kernels may read as vec4s: every vec4 of 4 consecutive
 * elements along the operand's contiguous dimension (k, or the rows when transposed) starts at a
 * multiple of 4 elements, i.e. that dimension, the row stride and the column offset are multiples of 4.
 * (Binding offsets are multiples of 256 bytes in WebGPU, so the buffers' 16-byte alignment holds.)
 */
export function vec4Operands(
  params: MatmulParams,
  options: { xT?: boolean; wT?: boolean },
): { x: boolean; w: boolean } {
  const four = (...v: number[]) => v.every((n) => n % 4 === 0);
  return {
    x: four(options.xT ? params.M : params.K, params.ldx, params.x_col),
    w: four(options.wT ? params.N : params.K, params.ldw, params.w_col),
  };
}

const rebound = new Map<string, string>();

// A tile kernel with x and/or w bound as array<vec4f>: its read helpers x1/x4 (w1/w4) swapped.
function rebindVec4(code: string, name: "x" | "w"): string {
  const key = `${name}\u0000${code}`;
  const cached = rebound.get(key);
  if (cached !== undefined) return cached;
  const swaps: [string, string][] = [
    [
      `var<storage, read> ${name}: array<f32>;`,
      `var<storage, read> ${name}: array<vec4f>;`,
    ],
    [
      `fn ${name}1(i: u32) -> f32 { return ${name}[i]; }`,
      `fn ${name}1(i: u32) -> f32 { let v = ${name}[i / 4u]; return v[i % 4u]; }`,
    ],
    [
      `fn ${name}4(i: u32) -> vec4f { return vec4f(${name}[i], ${name}[i + 1u], ${name}[i + 2u], ` +
      `${name}[i + 3u]); }`,
      `fn ${name}4(i: u32) -> vec4f { return ${name}[i / 4u]; }`,
    ],
  ];
  for (const [from, to] of swaps) {
    if (!code.includes(from)) {
      throw new SyntaxError(`Cannot make the vec4 variant of a matmul tile kernel: no "${from}"`);
    }
    code = code.replace(from, to);
  }
  rebound.set(key, code);
  return code;
}

/** Records `y = [y +] alpha · A · Bᵀ` with the kernel picked for `params.M × params.N`. */
export function dispatchMatmul(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  bindings: readonly [Binding, Binding, Binding],
  params: MatmulParams,
  options: {
    xT?: boolean;
    wT?: boolean;
    wF16?: boolean;
    kernel?: MatmulKernel;
    loads?: MatmulLoads;
  },
): void {
  let kernel = options.kernel ?? "auto";
  const fill = matmulFill(ctx);
  if (kernel === "auto") kernel = pickMatmulKernel(params.M, params.N, params.K, { fill });
  if (kernel === "matvec") {
    // The matvec reads w as contiguous [N, K] rows and x's rows as vec4s.
    const ok = !options.xT && !options.wT && params.ldw === params.K && params.w_col === 0 &&
      vec4Operands(params, options).x;
    if (ok) {
      const [x, w, y] = bindings;
      encodeMatvec(ctx, pass, {
        x,
        w,
        y,
        m: params.M,
        n: params.N,
        k: params.K,
        ldx: params.ldx,
        xCol: params.x_col,
        ldy: params.ldy,
        yCol: params.y_col,
        accumulate: params.accumulate,
        alpha: params.alpha,
        wF16: options.wF16,
        kernel: "vec4",
        // No K split: each output is summed in k order with one fma per k, rounding exactly as
        // the tile kernels (training's forward and backward stay consistent).
        splitK: 1,
      });
      return;
    }
    if (options.kernel === "matvec") {
      throw new RangeError(
        `Cannot record matmul with the matvec kernel: it needs untransposed operands, K, the ` +
          `row stride and column of x multiples of 4 and w contiguous: current values are ` +
          `xT ${options.xT ?? false}, wT ${options.wT ?? false}, K ${params.K}, ldx ` +
          `${params.ldx}, x_col ${params.x_col}, ldw ${params.ldw}, w_col ${params.w_col}`,
      );
    }
    kernel = pickTiles(params.M, params.N, params.K, fill);
  }
  if (kernel === "smallK" && params.K > SMALL_K_MAX) {
    throw new RangeError(
      `Cannot record matmul with the small-K kernel: K must be <= ${SMALL_K_MAX}: current ` +
        `value is ${params.K}`,
    );
  }
  let [name, code, layout, grid] = kernel === "tile128"
    ? ["matmul_128", code128, LAYOUT_128, [Math.ceil(params.N / 128), Math.ceil(params.M / 128)]]
    : kernel === "smallK"
    ? ["matmul_small_k", codeSmallK, LAYOUT_SMALL_K, [Math.ceil(params.N / 64), params.M]]
    : ["matmul", code64, LAYOUT, [Math.ceil(params.N / 64), Math.ceil(params.M / 64)]];
  const constants: Record<string, number> = {};
  if (options.xT) constants.X_T = 1;
  if (options.wT) constants.W_T = 1;
  const loads = options.loads ?? "auto";
  if ((kernel === "tile128" || kernel === "tile64") && loads !== "scalar") {
    const v = vec4Operands(params, options);
    if (v.x) constants.XV = 1;
    if (v.w) constants.WV = 1;
    if (loads === "auto") {
      if (v.x) [name, code] = [name + "_xv", rebindVec4(code, "x")];
      if (v.w) [name, code] = [name + "_wv", rebindVec4(code, "w")];
    }
  }
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
