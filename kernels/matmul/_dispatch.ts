// Private: the one place that picks the matmul kernel for a product and records it. Both
// launchers (matmul.ts, matmul_backward.ts) call it with the Params of matmul.wgsl, which
// matmul_128.wgsl and matmul_small_k.wgsl share: the vec4 matvec of kernels/matvec for <= 32 rows
// (aligned, untransposed operands); one thread per output for a short K and few rows; 128x128 tiles with 8x8 outputs per thread when both M and N are >= 32 (on llvmpipe they
// beat the 64x64 tiles even mostly empty); on llvmpipe, one thread per row for <= 8 columns and a
// long K (matmul_narrow.wgsl, two rows per thread); else the 64x64 tiles of matmul.wgsl (4x4 per thread).
// On a hardware adapter a backward product with few tiles and a long K is split along K
// (split-K): matmul.wgsl's partial products over chunks of K into a scratch buffer of the
// context, summed by matmul_split_k.wgsl.
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { f16Weights } from "../_f16.ts";
import { encodeMatvec } from "../matvec/matvec.ts";
import code64 from "./matmul.wgsl" with { type: "text" };
import code128 from "./matmul_128.wgsl" with { type: "text" };
import codeNarrow from "./matmul_narrow.wgsl" with { type: "text" };
import codeSmallK from "./matmul_small_k.wgsl" with { type: "text" };
import codeSplitK from "./matmul_split_k.wgsl" with { type: "text" };

/** Which matmul kernel to record: chosen by shape ("auto"), or forced (tests, benchmarks). */
export type MatmulKernel =
  | "auto"
  | "tile64"
  | "tile128"
  | "smallK"
  | "narrow"
  | "matvec"
  | "splitK";

/** The uniform fields of matmul.wgsl (and matmul_128.wgsl), by name, less `k_chunk` (split-K's, set by the dispatcher). */
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
const LAYOUT_NARROW = uniformLayout(codeNarrow, "matmul_narrow");
const LAYOUT_SPLIT_K = uniformLayout(codeSplitK, "matmul_split_k");
for (
  const [name, layout] of [
    ["matmul_128", LAYOUT_128],
    ["matmul_small_k", LAYOUT_SMALL_K],
    ["matmul_narrow", LAYOUT_NARROW],
  ] as const
) {
  if (LAYOUT.fields.map((f) => f.name).join() !== layout.fields.map((f) => f.name).join()) {
    throw new SyntaxError(`Cannot load ${name}.wgsl: its Params differ from matmul.wgsl's`);
  }
}
/** The longest inner dimension the one-thread-per-output kernel takes. */
export const SMALL_K_MAX = 32;
/** The most output rows for which "auto" takes the one-thread-per-output kernel. */
export const SMALL_K_ROWS = 16;

/** The most output columns of the narrow kernel (one thread per two rows, their columns in registers). */
export const NARROW_MAX_N = 8;
/** The shortest inner dimension for which "auto" takes the narrow kernel (on a software adapter). */
export const NARROW_MIN_K = 1024;

/** The fewest output rows and columns for which "auto" takes the 128×128 tiles. */
export const TILE128_MIN = 32;
/** The most output rows for which "auto" takes the vec4 matvec kernel (k % 4 == 0). */
export const MATVEC_ROWS = 32;

/** The shortest inner dimension "auto" splits (split-K, on a hardware adapter). */
export const SPLIT_K_MIN_K = 1024;
/** The fewest k each split of an "auto" split-K product sums. */
export const SPLIT_K_MIN_CHUNK = 256;
/** The most splits of a split-K product. */
export const SPLIT_K_MAX_SPLITS = 64;
/** The most partial sums (splits × m × n) of a split-K product: 16 MiB of scratch. */
export const SPLIT_K_MAX_PARTIALS = 1 << 22;
// K depth of matmul.wgsl's tiles: a split-K chunk is a whole number of them.
const BK64 = 16;

/**
 * How a split-K product splits its inner dimension: into `splits` chunks of `chunk` k each (the
 * last one shorter), `chunk` a multiple of 16 (the depth of the 64×64 tiles). The splits are the
 * fewest that bring the 64×64-tile grid `⌈m/64⌉·⌈n/64⌉` times the splits to `fill`, capped so
 * that each chunk has at least `minChunk` k, at {@linkcode SPLIT_K_MAX_SPLITS} and at
 * {@linkcode SPLIT_K_MAX_PARTIALS} partial sums, and raised to `minSplits`; at least 1.
 *
 * @param m Output rows.
 * @param n Output columns.
 * @param k Inner dimension.
 * @param options `fill`: workgroups the product should launch; `minChunk` (default
 *   {@linkcode SPLIT_K_MIN_CHUNK}); `minSplits` (default 1; a forced `"splitK"` asks 2).
 * @returns The splits and the k of each.
 *
 * @example The LoRA A gradient of a Qwen3-0.6B layer (rank 16, 1024 inputs) over 4096 tokens:
 * 16 workgroups of 64×64 tiles, so 16 splits of 256 tokens on a GPU
 * ```ts
 * import { pickSplitK } from "./matmul.ts";
 * console.log(pickSplitK(16, 1024, 4096, { fill: 256 })); // { splits: 16, chunk: 256 }
 * ```
 */
export function pickSplitK(
  m: number,
  n: number,
  k: number,
  options: { fill: number; minChunk?: number; minSplits?: number },
): { splits: number; chunk: number } {
  const grid = Math.ceil(m / 64) * Math.ceil(n / 64);
  const want = Math.max(Math.ceil(options.fill / Math.max(grid, 1)), options.minSplits ?? 1);
  const cap = Math.min(
    Math.floor(k / (options.minChunk ?? SPLIT_K_MIN_CHUNK)),
    SPLIT_K_MAX_SPLITS,
    Math.floor(SPLIT_K_MAX_PARTIALS / Math.max(m * n, 1)),
  );
  const s = Math.max(1, Math.min(want, cap));
  const chunk = Math.max(BK64, Math.ceil(Math.ceil(k / s) / BK64) * BK64);
  return { splits: Math.max(1, Math.ceil(k / chunk)), chunk };
}

/**
 * The matmul kernel that `kernel: "auto"` records for an `[m, n]` output summing over `k`: the
 * vec4 matvec of kernels/matvec (`"matvec"`, 4 columns × up to 8 rows per thread in registers)
 * when `m ≤ 32` and `k % 4 == 0` (LoRA B and other products of a decode step; only untransposed
 * operands with aligned rows, else the next choice); else one thread per output (`"smallK"`)
 * when `k ≤ 32` and `m ≤ 16`; else, on a software adapter (no `fill`), one thread per 2 output rows
 * (`"narrow"`, matmul_narrow.wgsl) when `n ≤ 8` and `k ≥ 1024`: e.g. the LM head's `d x` at a
 * tiny hidden size, `[tokens, 8]` over a 151,936 vocabulary, which the 64×64 tiles compute with
 * 7/8 padding columns in two workgroups per 128 tokens (on llvmpipe 12–13× faster there, 4–12× at
 * `[1024, 8]` over k = 1024; bench/lm_head_dx_bench.ts, docs/perf.md); else the 128×128-tile one when both output sides are ≥ 32 and,
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
 * Before all these, a product that may be split (`splitK`: the backward's gradient products, whose
 * operands are transposed, so never the matvec) takes split-K (`"splitK"`) on a hardware adapter
 * (`fill` given) when its 64×64-tile grid is below half of `fill` (half counts as occupied, as
 * for the 128×128 tiles above), `k ≥ 1024`, and
 * {@linkcode pickSplitK} gives at least 2 splits of at least 256 k each: e.g. a rank-16 LoRA's
 * `dA` `[16, 1024]` and `dB` `[2048, 16]` over 4096 tokens (16 and 32 workgroups unsplit) take 16
 * and 8 splits. Each split's workgroups sum their chunk of k in order into a scratch buffer, and a
 * second dispatch adds the splits in order: deterministic, but rounded differently from the
 * unsplit sum, which is why forward products (whose rounding the decode path shares) never split.
 * On llvmpipe (no `fill`) nothing splits. (Not yet measured on a GPU; docs/perf.md.)
 *
 * @param m Output rows (of `y`, `dx` or `dw`).
 * @param n Output columns.
 * @param k Inner dimension.
 * @param options `fill`: workgroups a product should launch (`GpuContext.fillWorkgroups` on a
 *   hardware adapter); default none (the software adapter's rule). `splitK`: the product may be
 *   split along k (the backward's products); default false.
 * @returns `"splitK"`, `"matvec"`, `"smallK"`, `"narrow"`, `"tile128"` or `"tile64"`.
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
 *
 * @example The gradient of a rank-16 LoRA A over 4096 tokens, on a GPU and on llvmpipe
 * ```ts
 * import { pickMatmulKernel } from "./matmul.ts";
 * console.log(pickMatmulKernel(16, 1024, 4096, { fill: 256, splitK: true })); // splitK
 * console.log(pickMatmulKernel(16, 1024, 4096, { splitK: true })); // matvec
 * ```
 *
 * @example The LM head's `d x` of 128 tokens at hidden size 8 over Qwen3's vocabulary, on
 * llvmpipe and on a GPU
 * ```ts
 * import { pickMatmulKernel } from "./matmul.ts";
 * console.log(pickMatmulKernel(128, 8, 151936, { splitK: true })); // narrow
 * console.log(pickMatmulKernel(128, 8, 151936, { fill: 256, splitK: true })); // splitK
 * ```
 */
export function pickMatmulKernel(
  m: number,
  n: number,
  k: number,
  options: { fill?: number; splitK?: boolean } = {},
): "tile64" | "tile128" | "smallK" | "narrow" | "matvec" | "splitK" {
  const { fill } = options;
  if (
    options.splitK && fill !== undefined && k >= SPLIT_K_MIN_K &&
    2 * Math.ceil(m / 64) * Math.ceil(n / 64) < fill && pickSplitK(m, n, k, { fill }).splits >= 2
  ) {
    return "splitK";
  }
  return pickUnsplit(m, n, k, fill);
}

// The choice of pickMatmulKernel when the product does not split.
function pickUnsplit(
  m: number,
  n: number,
  k: number,
  fill: number | undefined,
): "tile64" | "tile128" | "smallK" | "narrow" | "matvec" {
  if (m <= MATVEC_ROWS && k % 4 === 0) return "matvec";
  return pickTiles(m, n, k, fill);
}

/** The `GpuContext.scratch` name of split-K's partial products. */
export const SPLIT_K_SCRATCH = "matmul split-K";

/**
 * The split-K plan that a matmul records for an `[m, n]` output summing over `k`, or null when it
 * does not split: with `kernel` `"auto"` (default), {@linkcode pickMatmulKernel}'s choice (only
 * where `splitK` allows it and `fill` is given, i.e. a backward product on a hardware adapter);
 * with `"splitK"` forced, at least 2 splits of at least one tile depth (16 k) towards `fill`, or
 * `fillWorkgroups` without one (so a software context can force it); any other kernel, or an empty
 * output, never. `scratchBytes` is what the product asks of `GpuContext.scratch` under
 * {@linkcode SPLIT_K_SCRATCH}: `splits · m · n` floats (the buffer it gets is rounded up to a power
 * of two). The launchers call this to decide, and `trainer/rl/gpu_memory_estimate.ts` to size the
 * scratch.
 *
 * @param m Output rows.
 * @param n Output columns.
 * @param k Inner dimension.
 * @param options `fill` ({@linkcode matmulFill}: none on a software adapter), `splitK` (the
 *   product may split: the backward's products), `kernel` (default `"auto"`), `fillWorkgroups`
 *   (`GpuContext.fillWorkgroups`, for a forced split without `fill`; default 8).
 * @returns The splits, the k of each and the scratch bytes, or null.
 *
 * @example A rank-16 LoRA A gradient over 4096 tokens on a GPU, and on llvmpipe
 * ```ts
 * import { matmulSplitK } from "./matmul.ts";
 * console.log(matmulSplitK(16, 1024, 4096, { fill: 256, splitK: true }));
 * // { splits: 16, chunk: 256, scratchBytes: 1048576 }
 * console.log(matmulSplitK(16, 1024, 4096, { splitK: true })); // null
 * ```
 */
export function matmulSplitK(
  m: number,
  n: number,
  k: number,
  options: { fill?: number; splitK?: boolean; kernel?: MatmulKernel; fillWorkgroups?: number },
): { splits: number; chunk: number; scratchBytes: number } | null {
  if (m === 0 || n === 0) return null;
  const { fill } = options;
  const kernel = options.kernel ?? "auto";
  let plan: { splits: number; chunk: number };
  if (kernel === "splitK") {
    // Forced (tests, benchmarks): at least 2 splits of at least one tile depth, towards the
    // adapter's fill (the context's fillWorkgroups on llvmpipe too, so a test can set it).
    plan = pickSplitK(m, n, k, {
      fill: fill ?? options.fillWorkgroups ?? 8,
      minChunk: BK64,
      minSplits: 2,
    });
  } else if (
    kernel === "auto" && pickMatmulKernel(m, n, k, { fill, splitK: options.splitK }) === "splitK"
  ) {
    plan = pickSplitK(m, n, k, { fill: fill! });
  } else return null;
  return { ...plan, scratchBytes: plan.splits * m * n * 4 };
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
): "tile64" | "tile128" | "smallK" | "narrow" {
  if (k <= SMALL_K_MAX && m <= SMALL_K_ROWS) return "smallK";
  if (fill === undefined && n <= NARROW_MAX_N && k >= NARROW_MIN_K) return "narrow";
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

/** Options of {@linkcode dispatchMatmul}. */
interface DispatchOptions {
  xT?: boolean;
  wT?: boolean;
  wF16?: boolean;
  kernel?: MatmulKernel;
  loads?: MatmulLoads;
  /** "auto" may split k (the backward's gradient products); default false. */
  splitK?: boolean;
}

/** Records `y = [y +] alpha · A · Bᵀ` with the kernel picked for `params.M × params.N`. */
export function dispatchMatmul(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  bindings: readonly [Binding, Binding, Binding],
  params: MatmulParams,
  options: DispatchOptions,
): void {
  // An empty output has nothing to write (whatever K and accumulate): no dispatch. The kernels
  // assume M, N ≥ 1 (the narrow kernel reads column min(n, N - 1) of w).
  if (params.M === 0 || params.N === 0) return;
  const fill = matmulFill(ctx);
  const plan = matmulSplitK(params.M, params.N, params.K, {
    fill,
    splitK: options.splitK,
    kernel: options.kernel,
    fillWorkgroups: ctx.fillWorkgroups,
  });
  if (plan !== null) {
    dispatchSplitK(ctx, pass, bindings, params, options, plan);
    return;
  }
  // Not split (a forced "splitK" always is, the output not being empty): "auto" takes the kernel
  // pickMatmulKernel picks without split-K.
  const forced = options.kernel ?? "auto";
  let kernel = forced === "auto" || forced === "splitK"
    ? pickUnsplit(params.M, params.N, params.K, fill)
    : forced;
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
  if (kernel === "narrow" && params.N > NARROW_MAX_N) {
    throw new RangeError(
      `Cannot record matmul with the narrow kernel: N must be <= ${NARROW_MAX_N}: current ` +
        `value is ${params.N}`,
    );
  }
  if (kernel === "smallK" && params.K > SMALL_K_MAX) {
    throw new RangeError(
      `Cannot record matmul with the small-K kernel: K must be <= ${SMALL_K_MAX}: current ` +
        `value is ${params.K}`,
    );
  }
  const grid: [number, number, number] = kernel === "tile128"
    ? [Math.ceil(params.N / 128), Math.ceil(params.M / 128), 1]
    : kernel === "smallK"
    ? [Math.ceil(params.N / 64), params.M, 1]
    : kernel === "narrow"
    ? [Math.ceil(params.M / 64), 1, 1]
    : [Math.ceil(params.N / 64), Math.ceil(params.M / 64), 1];
  dispatchKernel(ctx, pass, kernel, bindings, { ...params, k_chunk: 0 }, options, grid);
}

// Records one dispatch of a tile or small-K kernel with its uniform fields (k_chunk included).
function dispatchKernel(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  kernel: "tile64" | "tile128" | "smallK" | "narrow",
  bindings: readonly [Binding, Binding, Binding],
  params: MatmulParams & { k_chunk: number },
  options: DispatchOptions,
  grid: [number, number, number],
): void {
  let [name, code, layout] = kernel === "tile128"
    ? ["matmul_128", code128, LAYOUT_128]
    : kernel === "smallK"
    ? ["matmul_small_k", codeSmallK, LAYOUT_SMALL_K]
    : kernel === "narrow"
    ? ["matmul_narrow", codeNarrow, LAYOUT_NARROW]
    : ["matmul", code64, LAYOUT];
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
    grid,
    packUniform(layout, { ...params }),
  );
}

// Split-K: the 64x64 tiles write each chunk's partial product [M, N] (rows of N) into block z of
// the context's scratch buffer (every element of the splits' blocks, so nothing stale is summed),
// then matmul_split_k.wgsl adds the blocks in order into y as the other kernels write it. Later
// products reuse the scratch buffer: the dispatches of a pass run in order.
function dispatchSplitK(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  bindings: readonly [Binding, Binding, Binding],
  params: MatmulParams,
  options: DispatchOptions,
  plan: { splits: number; chunk: number; scratchBytes: number },
): void {
  const { M, N } = params;
  const scratch = ctx.scratch(SPLIT_K_SCRATCH, plan.scratchBytes);
  dispatchKernel(
    ctx,
    pass,
    "tile64",
    [bindings[0], bindings[1], scratch],
    {
      ...params,
      ldy: N,
      y_col: 0,
      accumulate: false,
      alpha: 1,
      k_chunk: plan.chunk,
    },
    options,
    [Math.ceil(N / 64), Math.ceil(M / 64), plan.splits],
  );
  const groups = Math.ceil((M * N) / 256);
  const gx = Math.min(groups, ctx.device.limits.maxComputeWorkgroupsPerDimension);
  ctx.dispatch(
    pass,
    ctx.pipeline("matmul_split_k", codeSplitK),
    [scratch, bindings[2]],
    [gx, gx === 0 ? 0 : Math.ceil(groups / gx), 1],
    packUniform(LAYOUT_SPLIT_K, {
      M,
      N,
      splits: plan.splits,
      ldy: params.ldy,
      y_col: params.y_col,
      accumulate: params.accumulate,
      alpha: params.alpha,
    }),
  );
}
