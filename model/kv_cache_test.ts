import { ok, strictEqual } from "node:assert/strict";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "./config.ts";
import { KvCache } from "./kv_cache.ts";

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
