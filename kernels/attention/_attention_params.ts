// The shape checks and uniform parameters shared by the attention forward and backward launchers
// (both shaders declare the same struct Params).
import type { Binding } from "../../gpu/context.ts";
import { packUniform, type UniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import type { AttentionShape } from "./attention_ref.ts";

/**
 * Checks that the query-shaped buffers hold `[b, tq, hq, d]`, the key-shaped ones `[b, s, hkv, d]`
 * and the mask `[b, s]`, then packs the shape (and `extra`, the fields a shader declares after
 * `scale`, in order) into `layout`'s words.
 */
export function attentionParams<A extends AttentionShape & { mask: Binding }>(
  kernel: string,
  layout: UniformLayout,
  args: A,
  queryShaped: readonly (keyof A & string)[],
  keyShaped: readonly (keyof A & string)[],
  extra: Readonly<Record<string, number>> = {},
): number[] {
  const { b, tq, s, hq, hkv, d } = args;
  const qShape = `[b, tq, hq, d] = [${b}, ${tq}, ${hq}, ${d}]`;
  const kvShape = `[b, s, hkv, d] = [${b}, ${s}, ${hkv}, ${d}]`;
  for (const name of queryShaped) {
    checkSize(kernel, name, args[name] as Binding, b * tq * hq * d, qShape);
  }
  for (const name of keyShaped) {
    checkSize(kernel, name, args[name] as Binding, b * s * hkv * d, kvShape);
  }
  checkSize(kernel, "mask", args.mask, b * s, `[b, s] = [${b}, ${s}]`);
  return packUniform(layout, {
    B: b,
    Tq: tq,
    S: s,
    kv_len: args.kvLen ?? s,
    q_start: args.qStart ?? 0,
    Hq: hq,
    Hkv: hkv,
    D: d,
    scale: args.scale ?? 1 / Math.sqrt(d),
    ...extra,
  });
}

/**
 * The `DJ` override of the flash kernels (attention_flash.wgsl, attention_backward_flash.wgsl)
 * for head size `d` (≤ 128): the vec4 slices of its quarter of d that a thread uses, `⌈d / 16⌉`;
 * the other slices of the 128-wide padded head hold zeros, which the kernels then skip.
 *
 * @param d The head size.
 * @returns 1 to 8.
 *
 * @example Qwen3's head of 128 and a test model's head of 4
 * ```ts
 * import { flashSlices } from "./_attention_params.ts";
 * console.log(flashSlices(128), flashSlices(4)); // 8 1
 * ```
 */
export function flashSlices(d: number): number {
  return Math.min(8, Math.max(1, Math.ceil(d / 16)));
}
