import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { uploadMatrix } from "../../gpu/matrix.ts";
import { encodeEmbedding } from "./embedding.ts";
import { embeddingRef } from "./embedding_ref.ts";

Deno.test({
  name: "encodeEmbedding() gathers exactly from a matrix split into row blocks",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [vocab, h, tokens] = [37, 24, 50];
    const table = randomArray(vocab * h, 5);
    const ids = Uint32Array.from({ length: tokens }, (_, i) => (i * 7 + 3) % vocab);
    // 5 rows per block: the 37 rows land in 8 blocks, ids cross every block boundary.
    const matrix = uploadMatrix(ctx, { name: "embed", data: table, rows: vocab, cols: h }, {
      maxChunkBytes: 5 * h * 4,
    });
    if (matrix.chunks.length !== 8) {
      throw new Error(`expected 8 blocks, got ${matrix.chunks.length}`);
    }
    const out = poisoned(ctx, tokens * h, "out");
    const enc = recordPass(
      ctx,
      (pass) =>
        encodeEmbedding(ctx, pass, { ids: ctx.upload(ids, "ids"), table: matrix, out, tokens }),
    );
    assertClose(
      await readFloats(ctx, out, tokens * h, enc),
      embeddingRef(ids, table, h),
      0,
      "embedding",
    );
  },
});
