import { deepStrictEqual, throws } from "node:assert/strict";
import { packBatch } from "./forward_input.ts";
import type { Qwen3Config } from "./config.ts";

const config = { vocabSize: 10, maxPositionEmbeddings: 4 } as Qwen3Config;

Deno.test("packBatch() packs ids, positions, mask and next-token targets", () => {
  const packed = packBatch({
    inputIds: [[1, 2, 3], [4, 5, 0]],
    attentionMask: [[1, 1, 1], [1, 1, 0]],
  }, config);
  deepStrictEqual([...packed.ids], [1, 2, 3, 4, 5, 0]);
  deepStrictEqual([...packed.positions], [0, 1, 2, 0, 1, 2]);
  deepStrictEqual([...packed.mask], [1, 1, 1, 1, 1, 0]);
  // The last position has no target; a masked target is skipped.
  deepStrictEqual([...packed.targets], [2, 3, -1, 5, -1, -1]);
});

Deno.test("packBatch() rejects token ids outside the vocabulary, naming the position", () => {
  throws(
    () => packBatch({ inputIds: [[1, 2], [3, 10]] }, config),
    (e: Error) => e instanceof RangeError && /inputIds\[1\]\[1\].*\[0, 10\).*10/.test(e.message),
  );
  throws(() => packBatch({ inputIds: [[-1]] }, config), RangeError);
  throws(() => packBatch({ inputIds: [[1.5]] }, config), RangeError);
});

Deno.test("packBatch() rejects a sequence longer than max_position_embeddings", () => {
  throws(
    () => packBatch({ inputIds: [[1, 2, 3, 4, 5]] }, config),
    (e: Error) => e instanceof RangeError && /max_position_embeddings = 4.*5/.test(e.message),
  );
});

Deno.test("packBatch() rejects empty, ragged or mismatched input", () => {
  throws(() => packBatch({ inputIds: [] }, config), TypeError);
  throws(() => packBatch({ inputIds: [[]] }, config), TypeError);
  throws(
    () => packBatch({ inputIds: [[1, 2], [3]] }, config),
    (e: Error) => e instanceof TypeError && /inputIds\[1\] has 1/.test(e.message),
  );
  throws(() => packBatch({ inputIds: [[1, 2]], attentionMask: [[1]] }, config), TypeError);
  throws(() => packBatch({ inputIds: [[1, 2]], attentionMask: [] }, config), TypeError);
  throws(
    () => packBatch({ inputIds: [[1, 2]], attentionMask: [[1, 2]] }, config),
    (e: Error) =>
      e instanceof RangeError && /attentionMask\[0\]\[1\] must be 0 or 1/.test(e.message),
  );
});
