/**
 * Launcher of the in-place KV cache write.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import { checkKvF16Width, kvVariant, kvWords } from "../_kv_f16.ts";
import code from "./kv_write.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "kv_write");

/** Arguments of {@linkcode encodeKvWrite}. */
export interface KvWriteArgs {
  /** New keys `[rows, tokens, width]`. */
  kNew: Binding;
  /** New values `[rows, tokens, width]`. */
  vNew: Binding;
  /** Key cache `[cacheRows, slots, width]`, written in place. */
  kCache: Binding;
  /** Value cache `[cacheRows, slots, width]`, written in place. */
  vCache: Binding;
  /** Key mask `[cacheRows, slots]` (u32); the decode variant sets the written slots to 1. */
  mask: Binding;
  /** Decode cursor `[slot, step]` (u32); the decode variant writes at slot `ctrl[0] + t`. */
  ctrl: Binding;
  /** Rows of the new keys. */
  rows: number;
  /** Tokens per row. */
  tokens: number;
  /** Cache capacity (slot stride). */
  slots: number;
  /** Key/value width per token (kv heads × head dim). */
  width: number;
  /** First cache row written; default 0. */
  row0?: number;
  /** Write at the GPU-held cursor and mark the mask (decode), else at slots `0 .. tokens` (prefill). */
  decode: boolean;
  /**
   * The caches hold f16 values packed two per 32-bit word (a `KvCache` of dtype `"f16"`; `width`
   * even), each written value rounded to a neighbouring f16; default false (f32).
   */
  kvF16?: boolean;
}

/**
 * Records one KV cache write (keys and values together).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 * @throws {RangeError} If a buffer is smaller than its shape, or `kvF16` with an odd `width`.
 *
 * @example Append one token per row at the decode cursor
 * ```ts ignore
 * import { encodeKvWrite } from "./kv_write.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const k: GPUBuffer, v: GPUBuffer, kc: GPUBuffer, vc: GPUBuffer;
 * declare const mask: GPUBuffer, ctrl: GPUBuffer;
 * encodeKvWrite(ctx, pass, {
 *   kNew: k, vNew: v, kCache: kc, vCache: vc, mask, ctrl,
 *   rows: 8, tokens: 1, slots: 512, width: 1024, decode: true,
 * });
 * ```
 */
export function encodeKvWrite(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: KvWriteArgs,
): void {
  const { rows, tokens, slots, width } = args;
  const row0 = args.row0 ?? 0;
  const fresh = `[rows, tokens, width] = [${rows}, ${tokens}, ${width}]`;
  const cache = `[row0 + rows, slots, width] = [${row0 + rows}, ${slots}, ${width}]`;
  for (const name of ["kNew", "vNew"] as const) {
    checkSize("kv_write", name, args[name], rows * tokens * width, fresh);
  }
  const f16 = args.kvF16;
  checkKvF16Width("kv_write", "width", width, f16);
  for (const name of ["kCache", "vCache"] as const) {
    const n = rows === 0 ? 0 : (row0 + rows) * slots * width;
    checkSize("kv_write", name, args[name], kvWords(n, f16), cache);
  }
  const variant = kvVariant(code, f16, { ...GRID_CONSTANTS, DECODE: args.decode ? 1 : 0 });
  ctx.dispatch(
    pass,
    ctx.pipeline("kv_write", variant.code, { constants: variant.constants }),
    [args.kNew, args.vNew, args.kCache, args.vCache, args.mask, args.ctrl],
    grid(Math.ceil(kvWords(rows * tokens * width, f16) / 256)),
    packUniform(PARAMS, { R: rows, T: tokens, S: slots, W: width, row0 }),
  );
}
