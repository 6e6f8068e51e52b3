import { deepStrictEqual, throws } from "node:assert/strict";
import { noGpu, readFloats, testContext } from "./test_utils.ts";
import { uploadMatrix } from "./matrix.ts";

Deno.test({
  name: "uploadMatrix() splits a matrix into whole-row blocks under the size limit",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const data = Float32Array.from({ length: 10 * 3 }, (_, i) => i);
    const m = uploadMatrix(ctx, { name: "w", data, rows: 10, cols: 3 }, {
      maxChunkBytes: 4 * 3 * 4,
    });
    deepStrictEqual(m.chunks.map((c) => [c.rowStart, c.rows]), [[0, 4], [4, 4], [8, 2]]);
    const last = await readFloats(ctx, m.chunks[2].buffer, 6);
    deepStrictEqual([...last], [24, 25, 26, 27, 28, 29]);
    throws(
      () => uploadMatrix(ctx, { name: "bad", data, rows: 3, cols: 3 }),
      (e: Error) => e instanceof RangeError && /"bad".*3×3 = 9.*30/.test(e.message),
    );
  },
});
