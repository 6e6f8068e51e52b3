/**
 * Launcher of the f16 LoRA merge: `out = f16(f32(w) + alpha · b·a)` for f16 weights packed two
 * per 32-bit word (`GpuMatrix` dtype `"f16"`), the f32 sum rounded to f16 once, at the end; values
 * beyond the f16 range are counted in a status buffer (and written clamped to ±65504), for the
 * caller to refuse. `model/merge_adapters_webgpu.ts` merges plain LoRA adapters into f16 copies
 * of f16 base weights with it.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { weightWords } from "../_f16.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./lora_merge_f16.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "lora_merge_f16");

/** 32-bit words of the status buffer: `[overflowing elements, largest tag + 1]`. */
export const LORA_MERGE_F16_STATUS_WORDS = 2;

/** Arguments of {@linkcode encodeLoraMergeF16}. */
export interface LoraMergeF16Args {
  /** Base weight `[n, k]`, f16 packed two per word (`ceil(n·k / 2)` words). */
  w: Binding;
  /** `A` `[r, k]` f32. */
  a: Binding;
  /** `B` `[n, r]` f32. */
  b: Binding;
  /** Merged weight `[n, k]`, f16 packed as `w` (must not alias `w`, `a` or `b`). */
  out: Binding;
  /**
   * {@linkcode LORA_MERGE_F16_STATUS_WORDS} u32 words, zeroed by the caller before the first
   * merge it checks: word 0 counts the elements beyond the f16 range, word 1 is the largest
   * `tag + 1` of a merge that had any (0: none).
   */
  status: Binding;
  /** Rows of the weight (output features). */
  n: number;
  /** Columns of the weight (input features). */
  k: number;
  /** Rank. */
  r: number;
  /** Scale of the product (`lora_alpha / r`); default 1. */
  alpha?: number;
  /** Which merge this is, recorded in the status on overflow; default 0. */
  tag?: number;
  /**
   * `"blocked"`: one thread per 4 rows × 8 columns (needs `k % 8 == 0`); `"pairs"`: one thread
   * per two elements (any shape); default `"auto"`, blocked where it applies (tests compare them).
   */
  kernel?: "auto" | "blocked" | "pairs";
}

/**
 * Records `out = f16(f32(w) + alpha · b·a)` over an `[n, k]` f16 weight.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands, shape, scale and status.
 * @throws {RangeError} When a buffer is smaller than its shape needs, `tag` is not a u32 below
 * 2^32 − 1, or the blocked kernel is asked for with `k` not a multiple of 8.
 *
 * @example Merge a rank-8 expert into a 1024×1024 f16 weight
 * ```ts ignore
 * import { encodeLoraMergeF16 } from "./lora_merge_f16.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const w: GPUBuffer, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, status: GPUBuffer;
 * encodeLoraMergeF16(ctx, pass, { w, a, b, out, status, n: 1024, k: 1024, r: 8, alpha: 2 });
 * ```
 */
export function encodeLoraMergeF16(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LoraMergeF16Args,
): void {
  const { n, k, r } = args;
  const tag = args.tag ?? 0;
  if (!(Number.isInteger(tag) && tag >= 0 && tag < 2 ** 32 - 1)) {
    throw new RangeError(
      `Cannot record lora_merge_f16: "tag" must be an integer in [0, 2^32 - 1): current value ` +
        `is ${tag}`,
    );
  }
  const words = weightWords(n * k, true);
  const shape = `[n, k] = [${n}, ${k}] f16, ${words} words`;
  checkSize("lora_merge_f16", "w", args.w, words, shape);
  checkSize("lora_merge_f16", "a", args.a, r * k, `[r, k] = [${r}, ${k}]`);
  checkSize("lora_merge_f16", "b", args.b, n * r, `[n, r] = [${n}, ${r}]`);
  checkSize("lora_merge_f16", "out", args.out, words, shape);
  checkSize("lora_merge_f16", "status", args.status, LORA_MERGE_F16_STATUS_WORDS, "[2] u32");
  const kernel = args.kernel ?? "auto";
  if (kernel === "blocked" && k % 8 !== 0) {
    throw new RangeError(
      `Cannot record lora_merge_f16 with the blocked kernel: k must be a multiple of 8: current ` +
        `value is ${k}`,
    );
  }
  if (words === 0) return;
  const blocked = kernel === "blocked" || (kernel === "auto" && k % 8 === 0);
  // Threads: one per 4 rows × 8 columns, or one per word.
  const threads = blocked ? Math.ceil(n / 4) * (k / 8) : words;
  ctx.dispatch(
    pass,
    ctx.pipeline("lora_merge_f16", code, {
      constants: { ...GRID_CONSTANTS, BLOCKED: blocked ? 1 : 0 },
    }),
    [args.w, args.a, args.b, args.out, args.status],
    grid(Math.ceil(threads / 256)),
    packUniform(PARAMS, { n, k, r, alpha: args.alpha ?? 1, tag }),
  );
}
