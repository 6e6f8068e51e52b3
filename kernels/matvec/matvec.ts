/**
 * Launcher of the skinny matmul `y = [y +] x · wᵀ` for a few rows (decode steps).
 *
 * @module
 */
import { type Binding, DEFAULT_FILL_WORKGROUPS, type GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize, strided } from "../_check.ts";
import { checkF16, f16Weights, weightWords } from "../_f16.ts";
import code from "./matvec.wgsl" with { type: "text" };
import codeVec4 from "./matvec_vec4.wgsl" with { type: "text" };
import codePrologue from "./matvec_prologue.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "matvec");
const PARAMS_VEC4 = uniformLayout(codeVec4, "matvec_vec4");

/** matvec_vec4.wgsl with matvec_prologue.wgsl in place of its prologue block and uniform. */
const codeVec4Prologue = splicePrologue(codeVec4, codePrologue);

function splicePrologue(base: string, prologue: string): string {
  const block = /\/\/ prologue \{\n[\s\S]*?\/\/ prologue \}\n/;
  const uniform = "@group(0) @binding(3) var<uniform> p: Params;\n";
  if (!block.test(base) || !base.includes(uniform)) {
    throw new SyntaxError(
      `Cannot splice the matvec prologue: matvec_vec4.wgsl must hold a "// prologue {" ... ` +
        `"// prologue }" block and the line "${uniform.trim()}"`,
    );
  }
  return base.replace(block, "").replace(uniform, prologue);
}

/**
 * An input prologue of the vec4 matvec: the `x` operand is computed in the kernel from other
 * operands (instead of by a separate dispatch; each workgroup stages it in shared memory a K chunk
 * at a time), and written into `x` by the workgroups of the first column block, for the
 * dispatches that read it next. Operands are `[m, k]` contiguous (no `ldx`/`xCol`), except
 * SwiGLU's `gate` and `up` with a `stride` (each bound from its first row: e.g. a fused gate|up
 * projection's output `[m, 2k]` bound twice, the second binding from byte offset `4k`).
 *
 * - `"rmsnorm"`: `x = h · rsqrt(mean(h²) + eps) · g` per row, the output of `encodeRmsNorm` bit
 *   for bit (same sum order);
 * - `"swiglu"`: `x = silu(gate) · up`, the output of `encodeSwiglu`.
 */
export type MatvecPrologue =
  | {
    /** RMSNorm of the rows of `h`. */
    kind: "rmsnorm";
    /** Raw rows `[m, k]` (the residual stream). */
    h: Binding;
    /** Norm weight `[k]` (f32). */
    g: Binding;
    /** Added to the mean square. */
    eps: number;
    /** Write the normalised rows into `x`; default true (false: another dispatch does). */
    write?: boolean;
  }
  | {
    /** SwiGLU of `gate` and `up`. */
    kind: "swiglu";
    /** Gate projection output `[m, k]`. */
    gate: Binding;
    /** Up projection output `[m, k]`. */
    up: Binding;
    /**
     * Floats from one row of `gate` (and of `up`) to the next: a multiple of 4, at least `k`;
     * default `k`.
     */
    stride?: number;
    /** Write `silu(gate)·up` into `x`; default true (false: another dispatch does). */
    write?: boolean;
  };

/**
 * Which matvec kernel to record: `"auto"` (the vec4 one when `k` is a multiple of 4, else the
 * scalar one), or forced: `"scalar"` (matvec.wgsl: 64 threads split K of 4 columns), `"vec4"`
 * (matvec_vec4.wgsl; `k % 4 == 0` only).
 */
export type MatvecKernel = "auto" | "scalar" | "vec4";

/** Arguments of {@linkcode encodeMatvec}. */
export interface MatvecArgs {
  /**
   * Left operand `[m, k]` (row stride `ldx`, from column `xCol`); with a `prologue`, written (not
   * read): it receives the prologue's rows.
   */
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
  /** Row stride of `x`; default `k`. Other than `k`: the vec4 kernel only (a multiple of 4). */
  ldx?: number;
  /** First column of `x`; default 0. Other than 0: the vec4 kernel only (a multiple of 4). */
  xCol?: number;
  /** Row stride of `y`; default `n`. */
  ldy?: number;
  /** First output column; default 0. */
  yCol?: number;
  /** Add to `y` instead of overwriting it; default false. */
  accumulate?: boolean;
  /** Scale of the product; default 1. Other than 1: the vec4 kernel only. */
  alpha?: number;
  /** `w` holds f16 values (2 bytes each; the device needs "shader-f16"); default f32. */
  wF16?: boolean;
  /** Kernel (tests, benchmarks); default `"auto"`, see {@linkcode MatvecKernel}. */
  kernel?: MatvecKernel;
  /**
   * Threads splitting K per 4 output columns in the vec4 kernel (a power of two, 1..64); default
   * {@linkcode pickMatvecSplit}'s choice.
   */
  splitK?: number;
  /**
   * Compute `x` in the kernel (vec4 kernel only, `ldx = k`, `xCol = 0`); see
   * {@linkcode MatvecPrologue}. Default none.
   */
  prologue?: MatvecPrologue;
}

/** Output columns per 64-thread workgroup of the vec4 kernel, for `tk` threads per column block. */
const colsPerGroup = (tk: number) => 256 / tk;

/**
 * The K split of the vec4 matvec kernel for an `[m, n]` output summing over `k`: one thread per
 * 4 columns (no shared memory, no barrier) while that gives at least `fill` workgroups, else the
 * smallest power of two TK that does, at most 64 and keeping ≥ 16 vec4 steps per thread
 * (`64·TK ≤ k`): the LoRA A projection (`n` = rank) or a router (`n` = experts) of a decode
 * step, and on a hardware adapter (`fill` 256) most decode projections.
 *
 * @param m Rows.
 * @param n Output columns.
 * @param k Inner dimension.
 * @param options `fill`: the workgroups to reach (`GpuContext.fillWorkgroups`); default 8, the
 *   software adapter's.
 * @returns TK, a power of two in 1..64.
 *
 * @example A decode step's q_proj, o_proj, and a LoRA A projection of rank 16; then q_proj on a
 * hardware adapter
 * ```ts
 * import { pickMatvecSplit } from "./matvec.ts";
 * console.log(pickMatvecSplit(1, 2048, 1024), pickMatvecSplit(1, 1024, 2048)); // 1 2
 * console.log(pickMatvecSplit(1, 16, 1024)); // 16
 * console.log(pickMatvecSplit(1, 2048, 1024, { fill: 256 })); // 16
 * ```
 */
export function pickMatvecSplit(
  m: number,
  n: number,
  k: number,
  options: { fill?: number } = {},
): number {
  const fill = options.fill ?? DEFAULT_FILL_WORKGROUPS.software;
  let tk = 1;
  while (tk < 64 && 128 * tk <= k && Math.ceil(n / colsPerGroup(tk)) * Math.ceil(m / 8) < fill) {
    tk *= 2;
  }
  return tk;
}

/**
 * Records a skinny matmul, for decode steps where `m` is small (`encodeMatmul`'s 64×64 tiles
 * would be mostly padding): when `k` is a multiple of 4, matvec_vec4.wgsl (vec4 reads along k,
 * each thread 4 output columns × up to 8 rows in registers, K split over
 * {@linkcode pickMatvecSplit} threads); else matvec.wgsl (64 threads split the inner dimension of
 * 4 output columns × up to 8 rows). The grid is sliced when the column blocks exceed the device's
 * dimension limit. With a {@linkcode MatvecPrologue} (matvec_prologue.wgsl spliced into the vec4
 * kernel), the RMSNorm or SwiGLU that produces `x` runs inside the same dispatch.
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
 *
 * @example The same with the RMSNorm of the residual row `h` folded in (normalised row into `x`)
 * ```ts ignore
 * import { encodeMatvec } from "./matvec.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, h: GPUBuffer, g: GPUBuffer, x: GPUBuffer;
 * declare const w: GPUBuffer, y: GPUBuffer;
 * const prologue = { kind: "rmsnorm", h, g, eps: 1e-6 } as const;
 * encodeMatvec(ctx, pass, { x, w, y, m: 1, n: 3072, k: 1024, prologue });
 * ```
 */
export function encodeMatvec(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MatvecArgs,
): void {
  const { m, n, k } = args;
  const mb = Math.min(8, 2 ** Math.ceil(Math.log2(Math.max(1, m))));
  const ldx = args.ldx ?? k;
  const xCol = args.xCol ?? 0;
  const alpha = args.alpha ?? 1;
  const kernel = args.kernel ?? "auto";
  const aligned = k % 4 === 0 && ldx % 4 === 0 && xCol % 4 === 0;
  const vec4 = kernel === "vec4" || (kernel === "auto" && aligned);
  if (vec4 && !aligned) {
    throw new RangeError(
      `Cannot record matvec with the vec4 kernel: k, ldx and xCol must be multiples of 4: ` +
        `current values are ${k}, ${ldx}, ${xCol}`,
    );
  }
  if (!vec4 && (ldx !== k || xCol !== 0 || alpha !== 1)) {
    throw new RangeError(
      `Cannot record matvec with the scalar kernel (k, ldx or xCol not a multiple of 4): it ` +
        `takes no "ldx", "xCol" or "alpha": current values are ${ldx}, ${xCol}, ${alpha}`,
    );
  }
  const pro = args.prologue;
  if (pro && (!vec4 || ldx !== k || xCol !== 0)) {
    throw new RangeError(
      `Cannot record matvec with a "${pro.kind}" prologue: it needs the vec4 kernel (k a ` +
        `multiple of 4) on contiguous rows (ldx = k, xCol = 0): current values are kernel ` +
        `"${kernel}", k ${k}, ldx ${ldx}, xCol ${xCol}`,
    );
  }
  const proStride = pro?.kind === "swiglu" ? pro.stride ?? k : k;
  if (pro?.kind === "swiglu" && !(proStride >= k && proStride % 4 === 0)) {
    throw new RangeError(
      `Cannot record matvec with a "swiglu" prologue: its "stride" must be a multiple of 4 and ` +
        `at least k = ${k}: current value is ${proStride}`,
    );
  }
  const tk = vec4 ? args.splitK ?? pickMatvecSplit(m, n, k, { fill: ctx.fillWorkgroups }) : 1;
  if (!(Number.isInteger(Math.log2(tk)) && tk >= 1 && tk <= 64)) {
    throw new RangeError(
      `Cannot record matvec: "splitK" must be a power of two in 1..64: current value is ${tk}`,
    );
  }
  const blocks = vec4 ? Math.ceil(n / colsPerGroup(tk)) : Math.ceil(n / 4);
  const ldy = args.ldy ?? n;
  const yCol = args.yCol ?? 0;
  checkSize(
    "matvec",
    "x",
    args.x,
    strided(m, ldx, xCol, k),
    `[m, k] = [${m}, ${k}] at column ${xCol}, row stride ${ldx}`,
  );
  if (args.wF16) checkF16(ctx, "matvec");
  checkSize("matvec", "w", args.w, weightWords(n * k, args.wF16), `[n, k] = [${n}, ${k}]`);
  checkSize(
    "matvec",
    "y",
    args.y,
    strided(m, ldy, yCol, n),
    `[m, n] = [${m}, ${n}] at column ${yCol}, row stride ${ldy}`,
  );
  const layout = vec4 ? PARAMS_VEC4 : PARAMS;
  let [name, src] = vec4 ? ["matvec_vec4", codeVec4] : ["matvec", code];
  const constants: Record<string, number> = { MB: mb };
  if (vec4) constants.TK = tk;
  // Storage bindings after x, w, y: the prologue's second operand, then x (written).
  const bindings: Binding[] = [args.x, args.w, args.y];
  if (pro) {
    const rows = `[m, k] = [${m}, ${k}]`;
    if (pro.kind === "rmsnorm") {
      checkSize("matvec", "prologue.h", pro.h, m * k, rows);
      checkSize("matvec", "prologue.g", pro.g, k, `[k] = [${k}]`);
      bindings.splice(0, 1, pro.h);
      bindings.push(pro.g);
    } else {
      const at = proStride === k ? rows : `${rows}, row stride ${proStride}`;
      checkSize("matvec", "prologue.gate", pro.gate, strided(m, proStride, 0, k), at);
      checkSize("matvec", "prologue.up", pro.up, strided(m, proStride, 0, k), at);
      bindings.splice(0, 1, pro.gate);
      bindings.push(pro.up);
    }
    bindings.push(args.x);
    [name, src] = [`matvec_vec4_${pro.kind}`, codeVec4Prologue];
    constants.PROLOGUE = pro.kind === "rmsnorm" ? 0 : 1;
    constants.CH = 512 / mb;
  }
  const pipeline = args.wF16
    ? ctx.pipeline(name + "_f16", f16Weights(src, "w"), { constants })
    : ctx.pipeline(name, src, { constants });
  const limit = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  for (let b0 = 0; b0 < blocks; b0 += limit) {
    ctx.dispatch(
      pass,
      pipeline,
      bindings,
      [Math.min(limit, blocks - b0), Math.ceil(m / mb), 1],
      packUniform(
        layout,
        vec4
          ? {
            M: m,
            N: n,
            K4: k / 4,
            // With a prologue: the row stride of its inputs (the SwiGLU `stride`).
            ldx4: (pro ? proStride : ldx) / 4,
            x_col4: xCol / 4,
            ldy,
            y_col: yCol,
            accumulate: args.accumulate ?? false,
            alpha,
            n_block0: b0,
            eps: pro?.kind === "rmsnorm" ? pro.eps : 0,
            write_x: pro !== undefined && (pro.write ?? true) && b0 === 0,
          }
          : {
            M: m,
            N: n,
            K: k,
            ldy,
            y_col: yCol,
            accumulate: args.accumulate ?? false,
            n_block0: b0,
          },
      ),
    );
  }
}
