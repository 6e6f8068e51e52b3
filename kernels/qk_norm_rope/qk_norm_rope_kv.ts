/**
 * Launcher of the fused q/k norm + RoPE for decoding with the KV cache append folded in: the
 * rotated keys and the values go straight into their cache slot at the GPU-held cursor.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import { kvVariant, kvWords } from "../_kv_f16.ts";
import { normRopeKernel, qkParams, ROWS_PER_WORKGROUP, type TokenRows } from "./_shape.ts";
import type { QkInputs } from "./qk_norm_rope.ts";
import code from "./qk_norm_rope_kv.wgsl" with { type: "text" };

export type { TokenRows };

const KERNEL = normRopeKernel("qk_norm_rope_kv", code);

/** Storage buffers the kernel binds (WebGPU's default per-stage limit is 8). */
export const QK_NORM_ROPE_KV_STORAGE_BUFFERS = 12;

/** Arguments of {@linkcode encodeQkNormRopeKv}. */
export interface QkNormRopeKvArgs extends QkInputs {
  /** Receives the normalised, rotated queries `[tokens · hq, d]`. */
  q: Binding;
  /** v_proj output `[tokens · hkv, d]`. */
  v: Binding;
  /** Key cache `[cacheRows, slots, hkv · d]`, written at the cursor. */
  kCache: Binding;
  /** Value cache, as the keys. */
  vCache: Binding;
  /** Key mask `[cacheRows, slots]` (u32): the written slots are set to 1. */
  mask: Binding;
  /** Decode cursor `[slot, step]` (u32): token `t` of a row goes to slot `ctrl[0] + t`. */
  ctrl: Binding;
  /** Sequences (cache rows written); `tokens` must be a multiple. */
  rows: number;
  /** Cache capacity (slot stride); slots past it are dropped. */
  slots: number;
  /** First cache row written; default 0. */
  row0?: number;
  /**
   * Where `qRaw`, `kRaw` and `v` hold each token's heads; default contiguous (`stride` = heads·d,
   * `offset` 0 each). A fused q|k|v projection's output `[tokens, (hq + 2·hkv)·d]`, bound as all
   * three, is `{ qRaw: { stride: s, offset: 0 }, kRaw: { stride: s, offset: hq·d }, v: { stride:
   * s, offset: (hq + hkv)·d } }` with `s = (hq + 2·hkv)·d` (see {@linkcode fusedQkvRows}).
   */
  layout?: { qRaw?: TokenRows; kRaw?: TokenRows; v?: TokenRows };
  /**
   * The caches hold f16 values packed two per 32-bit word (a `KvCache` of dtype `"f16"`), each
   * key and value rounded to a neighbouring f16; default false (f32).
   */
  kvF16?: boolean;
}

/**
 * The {@linkcode QkNormRopeKvArgs.layout} of a fused q|k|v projection's output
 * `[tokens, (hq + 2·hkv)·d]` (q, then k, then v columns), bound as `qRaw`, `kRaw` and `v`.
 *
 * @param shape Heads and head size.
 * @returns The three inputs' token rows.
 *
 * @example Qwen3-0.6B's heads
 * ```ts
 * import { fusedQkvRows } from "./qk_norm_rope_kv.ts";
 * console.log(fusedQkvRows({ hq: 16, hkv: 8, d: 128 }).v); // { stride: 4096, offset: 3072 }
 * ```
 */
export function fusedQkvRows(
  { hq, hkv, d }: { hq: number; hkv: number; d: number },
): { qRaw: TokenRows; kRaw: TokenRows; v: TokenRows } {
  const stride = (hq + 2 * hkv) * d;
  return {
    qRaw: { stride, offset: 0 },
    kRaw: { stride, offset: hq * d },
    v: { stride, offset: (hq + hkv) * d },
  };
}

/**
 * Whether the device can bind the kernel's {@linkcode QK_NORM_ROPE_KV_STORAGE_BUFFERS} storage
 * buffers in one shader stage (else use `encodeQkNormRope` then `encodeKvWrite`).
 *
 * @param ctx The GPU context.
 * @returns True when {@linkcode encodeQkNormRopeKv} can run.
 *
 * @example Choose the decode path
 * ```ts ignore
 * import { qkNormRopeKvFits } from "./qk_norm_rope_kv.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * console.log(qkNormRopeKvFits(ctx) ? "1 dispatch" : "2 dispatches");
 * ```
 */
export function qkNormRopeKvFits(ctx: GpuContext): boolean {
  return ctx.device.limits.maxStorageBuffersPerShaderStage >= QK_NORM_ROPE_KV_STORAGE_BUFFERS;
}

/**
 * Records, in one dispatch, what `encodeQkNormRope` then the decode `encodeKvWrite` do, except
 * that the rotated keys are written only into the cache (not into a `k` buffer).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 * @throws {RangeError} If the head size is odd, `tokens` is not a multiple of `rows`, a buffer is
 * smaller than its shape (or layout), a layout's heads overrun its token stride, or the device cannot bind 12 storage buffers (see
 * {@linkcode qkNormRopeKvFits}).
 *
 * @example One decode step of 4 sequences at Qwen3-0.6B's head shapes
 * ```ts ignore
 * import { encodeQkNormRopeKv } from "./qk_norm_rope_kv.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, qRaw: GPUBuffer, kRaw: GPUBuffer, v: GPUBuffer;
 * declare const q: GPUBuffer, qNorm: GPUBuffer, kNorm: GPUBuffer, pos: GPUBuffer, table: GPUBuffer;
 * declare const kCache: GPUBuffer, vCache: GPUBuffer, mask: GPUBuffer, ctrl: GPUBuffer;
 * encodeQkNormRopeKv(ctx, pass, {
 *   qRaw, kRaw, qNorm, kNorm, positions: pos, table, q, v, kCache, vCache, mask, ctrl,
 *   tokens: 4, rows: 4, slots: 512, hq: 16, hkv: 8, d: 128, maxPos: 40960, eps: 1e-6,
 * });
 * ```
 */
export function encodeQkNormRopeKv(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: QkNormRopeKvArgs,
): void {
  const kernel = "q/k norm + RoPE + KV write";
  const { tokens, rows, slots, hkv, d } = args;
  const row0 = args.row0 ?? 0;
  if (!qkNormRopeKvFits(ctx)) {
    throw new RangeError(
      `Cannot record ${kernel}: it binds ${QK_NORM_ROPE_KV_STORAGE_BUFFERS} storage buffers ` +
        `and the device allows ${ctx.device.limits.maxStorageBuffersPerShaderStage} per stage`,
    );
  }
  if (!(rows > 0 && tokens % rows === 0)) {
    throw new RangeError(
      `Cannot record ${kernel}: tokens must be a positive multiple of rows: current values are ` +
        `${tokens} and ${rows}`,
    );
  }
  const at = args.layout ?? {};
  const { params, rows: heads } = qkParams(
    kernel,
    args,
    { q: { q: args.q }, k: { v: args.v } },
    { qRaw: at.qRaw, kRaw: at.kRaw, v: at.v },
  );
  const hq = args.hq;
  const layout = {
    q_ld: at.qRaw?.stride ?? hq * d,
    q_off: at.qRaw?.offset ?? 0,
    k_ld: at.kRaw?.stride ?? hkv * d,
    k_off: at.kRaw?.offset ?? 0,
    v_ld: at.v?.stride ?? hkv * d,
    v_off: at.v?.offset ?? 0,
  };
  const width = hkv * d;
  const cache = `[row0 + rows, slots, hkv · d] = [${row0 + rows}, ${slots}, ${width}]`;
  const f16 = args.kvF16;
  const words = kvWords((row0 + rows) * slots * width, f16);
  checkSize(kernel, "kCache", args.kCache, words, cache);
  checkSize(kernel, "vCache", args.vCache, words, cache);
  checkSize(
    kernel,
    "mask",
    args.mask,
    (row0 + rows) * slots,
    `[row0 + rows, slots] = [${row0 + rows}, ${slots}]`,
  );
  checkSize(kernel, "ctrl", args.ctrl, 1, "[slot, step]");
  // The head size is even (qkParams checks), so an f16 cache's rows lie on whole words.
  const variant = kvVariant(KERNEL.code, f16, GRID_CONSTANTS);
  ctx.dispatch(
    pass,
    ctx.pipeline(KERNEL.name, variant.code, { constants: variant.constants }),
    [
      ...[args.qRaw, args.kRaw, args.qNorm, args.kNorm, args.positions, args.table, args.q],
      ...[args.kCache, args.v, args.vCache, args.mask, args.ctrl],
    ],
    grid(Math.ceil(heads / ROWS_PER_WORKGROUP)),
    packUniform(KERNEL.layout, { ...params, T: tokens / rows, S: slots, row0, ...layout }),
  );
}
