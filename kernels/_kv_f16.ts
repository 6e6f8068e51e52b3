// Private: the packed-f16 KV cache variant of the kernels that write or read a KV cache
// (kv_write, qk_norm_rope_kv, the attention forward kernels). Their WGSL declares the cache
// bindings as `array<KvWord>` with `alias KvWord = f32;` and branches on `override KV_F16: bool`:
// the f16 variant substitutes that one alias by `u32` and sets KV_F16, so element i of the cache
// is half i % 2 of word i / 2 (pack2x16float / unpack2x16float, core WGSL: every adapter, no
// "shader-f16" feature), the arithmetic staying f32.

const ALIAS = "alias KvWord = f32;";
const cache = new Map<string, string>();

/** The source of `code`'s packed-f16 KV variant (cached): its `KvWord` alias made `u32`. */
export function kvF16Code(code: string): string {
  let out = cache.get(code);
  if (out !== undefined) return out;
  if (!code.includes(ALIAS)) {
    throw new TypeError(`Cannot make a packed-f16 KV shader: no "${ALIAS}" in the shader`);
  }
  out = code.replace(ALIAS, "alias KvWord = u32;");
  cache.set(code, out);
  return out;
}

/** The source and override constants of a KV kernel for the cache storage `f16` asks for. */
export function kvVariant(
  code: string,
  f16: boolean | undefined,
  constants: Record<string, number>,
): { code: string; constants: Record<string, number> } {
  return f16
    ? { code: kvF16Code(code), constants: { ...constants, KV_F16: 1 } }
    : { code, constants };
}

/** 4-byte words that hold `n` cache values: `n` (f32) or `ceil(n / 2)` (packed f16). */
export function kvWords(n: number, f16: boolean | undefined): number {
  return f16 ? Math.ceil(n / 2) : n;
}

/**
 * Throws unless a packed-f16 cache of rows `width` values wide keeps every row on whole words
 * (`width` even); nothing to check for an f32 cache.
 */
export function checkKvF16Width(
  kernel: string,
  name: string,
  width: number,
  f16: boolean | undefined,
): void {
  if (f16 && width % 2 !== 0) {
    throw new RangeError(
      `Cannot record ${kernel} with an f16 KV cache: ${name} must be even (two f16 values a ` +
        `32-bit word): current value is ${width}`,
    );
  }
}
