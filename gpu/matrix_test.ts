import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { noGpu, readFloats, testContext } from "./test_utils.ts";
import { recordingGpu } from "./recording_gpu.ts";
import { fusedMatrixReason, uploadFusedMatrix, uploadMatrix } from "./matrix.ts";
import { readback } from "./readback.ts";
import { GpuContext } from "./context.ts";

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

/** A context on a stand-in device that records the f16 words written (no GPU needed). */
function fakeContext(maxBindingSize = 1 << 20) {
  const { gpu, calls } = recordingGpu(maxBindingSize);
  const ctx = new GpuContext(gpu);
  const writes = {
    get length() {
      return calls.filter((c) => c.op === "write").length;
    },
    at(i: number): Uint8Array {
      const w = calls.filter((c) => c.op === "write")[i];
      if (w?.op !== "write") throw new Error(`no write ${i}`);
      return w.bytes;
    },
  };
  return { ctx, writes };
}

Deno.test("uploadMatrix() f16 keeps values up to ±65504 and refuses one that would become ±Inf, naming the tensor", () => {
  const { ctx, writes } = fakeContext(2 * 2 * 2); // 2 rows of 2 halves a block
  const ok = Float32Array.from([1, -2, 65504, -65504, 65519, 0.5, 3, 4]);
  const m = uploadMatrix(ctx, { name: "fine", data: ok, rows: 4, cols: 2 }, { dtype: "f16" });
  deepStrictEqual(m.chunks.map((c) => c.rows), [2, 2]);
  deepStrictEqual([...new Float16Array(writes.at(0).buffer)], [1, -2, 65504, -65504]);
  strictEqual(
    new Float16Array(writes.at(1).buffer)[0],
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
  const before = writes.length;
  uploadMatrix(ctx, { name: "w", data: Float32Array.from([70000, 1]), rows: 1, cols: 2 });
  deepStrictEqual([...new Float32Array(writes.at(before).buffer)], [70000, 1]);
});

Deno.test("uploadMatrix() f16 takes f16 bits as they are, pads odd blocks, and applies the same range rule", () => {
  const { ctx, writes } = fakeContext(3 * 3 * 2); // 3 rows of 3 halves a block: 9 halves, odd
  const values = Float32Array.from({ length: 5 * 3 }, (_, i) => (i - 7) * 0.37);
  const bits = new Uint16Array(new Float16Array(values).buffer);
  const fromBits = uploadMatrix(ctx, { name: "w", data: bits, rows: 5, cols: 3 }, { dtype: "f16" });
  const fromF32 = uploadMatrix(ctx, { name: "w", data: values, rows: 5, cols: 3 }, {
    dtype: "f16",
  });
  deepStrictEqual(fromBits.chunks.map((c) => c.rows), [3, 2]);
  deepStrictEqual(fromF32.chunks.map((c) => c.rows), [3, 2]);
  strictEqual(writes.length, 4);
  for (let i = 0; i < 2; i++) {
    deepStrictEqual(writes.at(i), writes.at(i + 2), `block ${i}: bits vs f32 path`);
    strictEqual(writes.at(i).length % 4, 0, "whole 4-byte words");
  }
  deepStrictEqual([...new Uint16Array(writes.at(0).buffer).subarray(0, 9)], [
    ...bits.subarray(0, 9),
  ]);
  deepStrictEqual([...new Uint16Array(writes.at(1).buffer)], [...bits.subarray(9)]);
  for (
    const [half, what] of [[0x7c00, /value Infinity .*not finite/], [
      0xfe00,
      /value NaN .*not finite/,
    ]] as const
  ) {
    const bad = bits.slice();
    bad[10] = half; // row 3, column 1
    throws(
      () => uploadMatrix(ctx, { name: "bad", data: bad, rows: 5, cols: 3 }, { dtype: "f16" }),
      (e: Error) =>
        e instanceof RangeError &&
        /"bad" as f16: value .* at row 3, column 1 is /.test(e.message) &&
        what.test(e.message),
    );
  }
  throws(
    () => uploadMatrix(ctx, { name: "w", data: bits, rows: 5, cols: 3 }),
    (e: Error) => e instanceof TypeError && /"w" as f32: its data are f16 bits/.test(e.message),
  );
});

Deno.test({
  name: "uploadFusedMatrix() stacks members in one buffer with views at aligned offsets, as " +
    "many bytes as separate uploads; fusedMatrixReason() refuses what would not fit or align",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const align = ctx.device.limits.minStorageBufferOffsetAlignment;
    // Columns so that every member's bytes are a multiple of the alignment at f32 and f16.
    const cols = align / 2;
    const rows = [3, 1, 2];
    const data = rows.map((r, m) =>
      Float32Array.from({ length: r * cols }, (_, i) => (m + 1) * 1000 + i * 0.25)
    );
    const parts = rows.map((r, m) => ({ name: `p${m}`, rows: r, data: () => data[m] }));
    strictEqual(fusedMatrixReason(ctx, rows, cols), null);
    const rest = ctx.allocatedBytes;
    const { whole, parts: views } = uploadFusedMatrix(ctx, "whole", parts, cols);
    strictEqual(ctx.allocatedBytes - rest, 4 * 6 * cols, "bytes");
    deepStrictEqual([whole.rows, whole.cols, whole.chunks.length], [6, cols, 1]);
    const buffer = whole.chunks[0].buffer;
    let at = 0;
    views.forEach((v, m) => {
      deepStrictEqual([v.name, v.rows, v.cols, v.dtype], [`p${m}`, rows[m], cols, "f32"]);
      strictEqual(v.chunks[0].buffer, buffer);
      strictEqual(v.chunks[0].offset ?? 0, at);
      at += 4 * rows[m] * cols;
    });
    const all = await readFloats(ctx, buffer, 6 * cols);
    deepStrictEqual([...all], data.flatMap((d) => [...d]));
    ctx.release(buffer);
    // f16: the same layout at 2 bytes a value, the values rounded as uploadMatrix rounds them.
    if (ctx.gpu.features.has("shader-f16")) {
      const half = uploadFusedMatrix(ctx, "half", parts, cols, { dtype: "f16" });
      strictEqual(half.parts[2].chunks[0].offset, 2 * 4 * cols);
      const one = uploadMatrix(ctx, { name: "p2", data: data[2], rows: 2, cols }, { dtype: "f16" });
      const [fused, alone] = (await readback(ctx, [
        { buffer: half.whole.chunks[0].buffer, offset: 2 * 4 * cols, size: 2 * 2 * cols },
        { buffer: one.chunks[0].buffer, offset: 0, size: 2 * 2 * cols },
      ])).map((b) => [...new Uint16Array(b)]);
      deepStrictEqual(fused, alone);
      ctx.release(half.whole.chunks[0].buffer);
      ctx.release(one.chunks[0].buffer);
      // A value f16 cannot hold in the last member: an error naming it, nothing left allocated.
      const bad = data.map((d) => d.slice());
      bad[2][cols + 1] = 1e6;
      const before = ctx.allocatedBytes;
      throws(
        () =>
          uploadFusedMatrix(
            ctx,
            "bad",
            parts.map((p, m) => ({ ...p, data: () => bad[m] })),
            cols,
            {
              dtype: "f16",
            },
          ),
        (e: Error) =>
          e instanceof RangeError && /"p2" as f16: .* at row 1, column 1 /.test(e.message),
      );
      strictEqual(ctx.allocatedBytes, before);
    }
    // Misaligned members, a whole above one block, a member of the wrong length.
    ok(/member 1 would start at byte 4, not a multiple/.test(fusedMatrixReason(ctx, [1, 1], 1)!));
    ok(
      /more than one block/.test(
        fusedMatrixReason(ctx, rows, cols, { maxChunkBytes: 4 * 5 * cols })!,
      ),
    );
    throws(
      () =>
        uploadFusedMatrix(ctx, "w", [
          { name: "odd", rows: 1, data: () => new Float32Array(1) },
          parts[0],
        ], 1),
      (e: Error) => e instanceof RangeError && /"w" as one buffer: member 1/.test(e.message),
    );
    const before = ctx.allocatedBytes;
    throws(
      () => uploadFusedMatrix(ctx, "w", [{ ...parts[0], data: () => data[1] }], cols),
      (e: Error) => e instanceof RangeError && /"p0": expected 3×/.test(e.message),
    );
    strictEqual(ctx.allocatedBytes, before);
  },
});
