import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { noGpu, readFloats, testContext } from "./test_utils.ts";
import { uploadMatrix } from "./matrix.ts";
import type { GpuContext } from "./context.ts";

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

/** A stand-in context that records the f16 words written, for the checks that need no GPU. */
function fakeContext(maxBindingSize = 1 << 20) {
  const writes: Uint16Array[] = [];
  const ctx = {
    gpu: { maxBindingSize },
    createBuffer: (size: number, label: string) => ({ size, label, destroy() {} }),
    device: {
      queue: {
        writeBuffer: (_b: unknown, _o: number, data: ArrayBufferView) => {
          writes.push(new Uint16Array(data.buffer.slice(0)));
        },
      },
    },
  } as unknown as GpuContext;
  return { ctx, writes };
}

Deno.test("uploadMatrix() f16 keeps values up to ±65504 and refuses one that would become ±Inf, naming the tensor", () => {
  const { ctx, writes } = fakeContext(2 * 2 * 2); // 2 rows of 2 halves a block
  const ok = Float32Array.from([1, -2, 65504, -65504, 65519, 0.5, 3, 4]);
  const m = uploadMatrix(ctx, { name: "fine", data: ok, rows: 4, cols: 2 }, { dtype: "f16" });
  deepStrictEqual(m.chunks.map((c) => c.rows), [2, 2]);
  deepStrictEqual([...new Float16Array(writes[0].buffer)], [1, -2, 65504, -65504]);
  strictEqual(
    new Float16Array(writes[1].buffer)[0],
    65504,
    "65519 rounds down to the largest half",
  );
  for (
    const [value, what] of [[70000, /beyond the f16 range .*±65504.*±Inf/], [-1e6, /±Inf/], [
      NaN,
      /not finite/,
    ]] as const
  ) {
    const data = new Float32Array(8);
    data[5] = value; // row 2, column 1: in the second block
    throws(
      () =>
        uploadMatrix(ctx, { name: "model.layers.0.mlp.down_proj.weight", data, rows: 4, cols: 2 }, {
          dtype: "f16",
        }),
      (e: Error) =>
        e instanceof RangeError &&
        e.message.startsWith(
          'Cannot upload "model.layers.0.mlp.down_proj.weight" as f16: value ',
        ) &&
        /at row 2, column 1 is /.test(e.message) && what.test(e.message) &&
        /model\.weightDtype: f32/.test(e.message),
    );
  }
  // f32 storage takes them as they are.
  const big = Float32Array.from([70000, 1]);
  const uploaded: Float32Array[] = [];
  const f32ctx = {
    ...ctx,
    upload: (d: Float32Array) => (uploaded.push(d), {}),
  } as unknown as GpuContext;
  uploadMatrix(f32ctx, { name: "w", data: big, rows: 1, cols: 2 });
  deepStrictEqual([...uploaded[0]], [70000, 1]);
});
