// Private: the f16-weight variant of a shader whose weight operand is `var<storage, read> NAME:
// array<f32>` read as `NAME[i]`: `enable f16;`, the binding as `array<f16>`, each read widened to
// f32 (`f32(NAME[i])`), so the arithmetic stays f32. A binding `array<vec4f>` (vec4 reads, e.g.
// matmul_128's aligned variant) becomes `array<vec4<f16>>`, each read widened by `vec4f(...)`.
// Needs the device feature "shader-f16".
import type { GpuContext } from "../gpu/context.ts";

const cache = new Map<string, string>();

/** The f16-weight variant of `code` for the weight binding `name` (cached). */
export function f16Weights(code: string, name: string): string {
  const key = `${name}\u0000${code}`;
  let out = cache.get(key);
  if (out !== undefined) return out;
  const decl = `var<storage, read> ${name}: array<f32>;`;
  const decl4 = `var<storage, read> ${name}: array<vec4f>;`;
  const vec4 = !code.includes(decl) && code.includes(decl4);
  if (!code.includes(decl) && !vec4) {
    throw new TypeError(`Cannot make an f16-weight shader: no binding "${decl}" in the shader`);
  }
  out = "enable f16;\n" +
    (vec4
      ? code.replace(decl4, `var<storage, read> ${name}: array<vec4<f16>>;`)
      : code.replace(decl, `var<storage, read> ${name}: array<f16>;`)).replace(
        new RegExp(`\\b${name}\\[([^\\[\\]]+)\\]`, "g"),
        `${vec4 ? "vec4f" : "f32"}(${name}[$1])`,
      );
  cache.set(key, out);
  return out;
}

/** Throws unless the device can read f16 weights. */
export function checkF16(ctx: GpuContext, kernel: string): void {
  if (!ctx.gpu.features.has("shader-f16")) {
    throw new TypeError(
      `Cannot record ${kernel} with f16 weights: the WebGPU device has no "shader-f16" feature ` +
        `(adapter "${ctx.gpu.description}"): store the weights as f32`,
    );
  }
}

/** Elements of 4 bytes that hold `n` weights of the given type. */
export function weightWords(n: number, f16: boolean | undefined): number {
  return f16 ? Math.ceil(n / 2) : n;
}
