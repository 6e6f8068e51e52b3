import { ok, strictEqual } from "node:assert/strict";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "./config.ts";
import { kvBytesPerElement, KvCache, type KvDtype } from "./kv_cache.ts";

const config = await readQwen3Config(fixtureDir());
/** Floats per cached token and layer: the KV heads side by side. */
const width = config.numKeyValueHeads * config.headDim;

Deno.test({
  name: "KvCache allocates per-layer keys, values and one mask, and reports what fits",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const cache = new KvCache(ctx, config, { rows: 3, capacity: 40 });
    try {
      strictEqual(cache.layers.length, config.numHiddenLayers);
      strictEqual(cache.width, width);
      strictEqual(cache.layers[0].k.size, 3 * 40 * width * 4);
      strictEqual(cache.mask.size, 3 * 40 * 4);
      strictEqual(cache.bytes, config.numHiddenLayers * 2 * 3 * 40 * width * 4 + 3 * 40 * 4);
      ok(cache.fits(3, 40) && cache.fits(1, 1));
      ok(!cache.fits(4, 40) && !cache.fits(3, 41));
    } finally {
      cache.dispose();
    }
  },
});

Deno.test({
  name: "KvCache rejects bad sizes and caches larger than one binding",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    await expectError(() => new KvCache(ctx, config, { rows: 0, capacity: 8 }), {
      type: RangeError,
      includes: ["rows must be a positive integer", "current value is 0"],
    });
    await expectError(() => new KvCache(ctx, config, { rows: 2, capacity: 1.5 }), {
      type: RangeError,
      includes: ["capacity must be a positive integer"],
    });
    const rows = Math.ceil(ctx.gpu.maxBindingSize / (1024 * width * 4)) + 1;
    await expectError(() => new KvCache(ctx, config, { rows, capacity: 1024 }), {
      type: RangeError,
      includes: ["more than one storage binding", "fewer sequences"],
    });
  },
});

Deno.test({
  name: "KvCache with dtype f16 holds keys and values in half the bytes",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const before = ctx.allocatedBytes;
    const f32 = new KvCache(ctx, config, { rows: 3, capacity: 40 });
    const f32Bytes = ctx.allocatedBytes - before;
    const f16 = new KvCache(ctx, config, { rows: 3, capacity: 40, dtype: "f16" });
    const f16Bytes = ctx.allocatedBytes - before - f32Bytes;
    try {
      strictEqual(f32.dtype, "f32");
      strictEqual(f16.dtype, "f16");
      strictEqual(f16.bytesPerElement, 2);
      strictEqual(f16.layers[0].k.size, 3 * 40 * width * 2);
      strictEqual(f16.layers[0].v.size, 3 * 40 * width * 2);
      strictEqual(f16.bytes, config.numHiddenLayers * 2 * 3 * 40 * width * 2 + 3 * 40 * 4);
      // Measured on the device: the keys and values halve, the u32 mask does not.
      strictEqual(f32Bytes, f32.bytes);
      strictEqual(f16Bytes, f16.bytes);
      strictEqual(f32Bytes - f16Bytes, config.numHiddenLayers * 2 * 3 * 40 * width * 2);
      console.log(`KvCache 3 x 40 slots: f32 ${f32Bytes} bytes, f16 ${f16Bytes} bytes`);
    } finally {
      f32.dispose();
      f16.dispose();
    }
  },
});

Deno.test({
  name: "KvCache refuses an unknown dtype and an f16 cache of odd width",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    await expectError(
      () => new KvCache(ctx, config, { rows: 1, capacity: 8, dtype: "bf16" as KvDtype }),
      { type: TypeError, includes: ['must be "f32" or "f16"', 'current value is "bf16"'] },
    );
    const odd = { ...config, numKeyValueHeads: 1, headDim: 3 };
    await expectError(() => new KvCache(ctx, odd, { rows: 1, capacity: 8, dtype: "f16" }), {
      type: RangeError,
      includes: ["must be even", "current value is 3"],
    });
    new KvCache(ctx, odd, { rows: 1, capacity: 8 }).dispose(); // f32: any width
  },
});

Deno.test("kvBytesPerElement() gives 4 bytes for f32 (the default) and 2 for f16", () => {
  strictEqual(kvBytesPerElement(), 4);
  strictEqual(kvBytesPerElement("f32"), 4);
  strictEqual(kvBytesPerElement("f16"), 2);
});
