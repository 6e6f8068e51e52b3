import { deepStrictEqual, rejects } from "node:assert/strict";
import type { GpuContext } from "../../gpu/context.ts";
import { assertClose, noGpu, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { uploadMatrix } from "../../gpu/matrix.ts";
import { encodeEmbeddingBackward } from "./embedding_backward.ts";
import { embeddingBackwardRef } from "./embedding_backward_ref.ts";

// f32 sums of at most 3 terms per element (each id occurs ≤ 3 times): 1e-6 relative.
const TOL = 1e-6;

Deno.test({
  name: "encodeEmbeddingBackward() scatter-adds repeated ids into a matrix split into row blocks",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [vocab, h, tokens] = [37, 24, 50];
    const ids = Uint32Array.from({ length: tokens }, (_, i) => (i * 7 + 3) % 23); // ≤ 3 repeats
    const dOut = randomArray(tokens * h, 5);
    const want = embeddingBackwardRef(dOut, ids, { vocab, h });
    const dTable0 = randomArray(vocab * h, 6);
    for (const accumulate of [false, true]) {
      // Start from NaN when overwriting (rows of absent ids must be cleared), else from data.
      const start = accumulate ? dTable0 : new Float32Array(vocab * h).fill(NaN);
      // 5 rows per block: 8 blocks, ids cross every block boundary, rows 23.. never occur.
      const { table: got, blocks } = await runSplit(
        ctx,
        dOut,
        ids,
        { vocab, h, blockRows: 5 },
        start,
        accumulate,
      );
      if (blocks !== 8) throw new Error(`expected 8 blocks, got ${blocks}`);
      const expected = accumulate ? want.map((g, i) => g + dTable0[i]) : want;
      const err = assertClose(got, expected, TOL, `embedding backward accumulate=${accumulate}`);
      console.log(`embedding backward accumulate=${accumulate}: rel err ${err.toExponential(2)}`);
    }
  },
});

/**
 * Runs the backward over a table split in blocks of `blockRows` rows; returns the whole table
 * and the number of blocks it was split into.
 */
async function runSplit(
  ctx: GpuContext,
  dOut: Float32Array,
  ids: Uint32Array,
  shape: { vocab: number; h: number; blockRows: number },
  start: Float32Array,
  accumulate: boolean,
  tokensPerDispatch?: number,
): Promise<{ table: Float32Array; blocks: number }> {
  const { vocab, h, blockRows } = shape;
  const dTable = uploadMatrix(ctx, { name: "dTable", data: start, rows: vocab, cols: h }, {
    maxChunkBytes: blockRows * h * 4,
  });
  const enc = recordPass(ctx, (pass) =>
    encodeEmbeddingBackward(ctx, pass, {
      ids: ctx.upload(ids, "ids"),
      dOut: ctx.upload(dOut, "dOut"),
      dTable,
      tokens: ids.length,
      accumulate,
      tokensPerDispatch,
    }));
  const blocks = await readback(
    ctx,
    dTable.chunks.map((c) => ({ buffer: c.buffer, offset: 0, size: c.rows * h * 4 })),
    enc,
  );
  const got = new Float32Array(vocab * h);
  blocks.forEach((b, i) => got.set(new Float32Array(b), dTable.chunks[i].rowStart * h));
  return { table: got, blocks: dTable.chunks.length };
}

Deno.test({
  name: "encodeEmbeddingBackward() split over token ranges gives the same bits as one dispatch",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // Odd shape: 41 tokens, h = 13 (not a multiple of 256 / h), blocks of 4 rows (29 = 7·4 + 1).
    const [vocab, h, tokens, blockRows] = [29, 13, 41, 4];
    // 10 distinct ids (5i² + 3 mod 19), each 3 to 5 times, far apart (across every token range
    // below); ids 19.. never occur.
    const ids = Uint32Array.from({ length: tokens }, (_, i) => (i * i * 5 + 3) % 19);
    const dOut = randomArray(tokens * h, 11);
    const want = embeddingBackwardRef(dOut, ids, { vocab, h });
    const dTable0 = randomArray(vocab * h, 12);
    const shape = { vocab, h, blockRows };
    for (const accumulate of [false, true]) {
      const start = () => accumulate ? dTable0.slice() : new Float32Array(vocab * h).fill(NaN);
      const whole = (await runSplit(ctx, dOut, ids, shape, start(), accumulate)).table;
      const expected = accumulate ? want.map((g, i) => g + dTable0[i]) : want;
      assertClose(whole, expected, TOL, `one dispatch, accumulate=${accumulate}`);
      for (const per of [1, 3, 7, 40, 41, 100]) {
        const got = (await runSplit(ctx, dOut, ids, shape, start(), accumulate, per)).table;
        deepStrictEqual(
          new Uint32Array(got.buffer),
          new Uint32Array(whole.buffer),
          `tokensPerDispatch ${per}, accumulate=${accumulate}: not the bits of one dispatch`,
        );
      }
    }
    for (const bad of [0, 2.5, -1]) {
      await rejects(
        () => runSplit(ctx, dOut, ids, shape, dTable0, true, bad),
        /"tokensPerDispatch" must be a positive integer/,
      );
    }
  },
});
