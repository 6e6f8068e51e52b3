import assert from "node:assert/strict";
import { noGpu, testContext } from "./test_utils.ts";
import { destroyMatrix, uploadMatrix } from "./matrix.ts";

Deno.test({
  name: "GpuContext counts allocated and peak bytes, whoever frees the buffer",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const base = ctx.allocatedBytes;
    ctx.resetPeak();
    const a = ctx.createBuffer(1000, "a");
    const b = ctx.upload(new Float32Array(6), "b"); // 24 bytes
    const m = uploadMatrix(ctx, { name: "m", data: new Float32Array(64), rows: 8, cols: 8 }, {
      maxChunkBytes: 64,
    });
    assert.equal(ctx.allocatedBytes - base, 1000 + 24 + 256);
    ctx.release(a);
    ctx.release(a); // twice is harmless
    b.destroy(); // a plain destroy() is counted too
    destroyMatrix(m);
    assert.equal(ctx.allocatedBytes, base);
    assert.equal(ctx.peakBytes - base, 1280);
    ctx.resetPeak();
    assert.equal(ctx.peakBytes, base);
  },
});
