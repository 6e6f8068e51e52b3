import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { embeddingBackwardRef } from "./embedding_backward_ref.ts";
import { embeddingRef } from "./embedding_ref.ts";

Deno.test("embeddingBackwardRef() matches central differences of embeddingRef", () => {
  const [vocab, h] = [7, 3];
  const ids = [2, 5, 2, 0, 2, 5]; // repeated ids, and rows 1, 3, 4, 6 unused
  const table = rand(vocab * h, 1);
  const ct = rand(ids.length * h, 2);
  const loss = () => dot(ct, embeddingRef(ids, table, h));
  assertClose(
    embeddingBackwardRef(ct, ids, { vocab, h }),
    centralDiff(table, loss),
    TOL,
    "embedding",
  );
});

Deno.test("embeddingBackwardRef() rejects ids outside the vocabulary", () => {
  let message = "";
  try {
    embeddingBackwardRef([1], [4], { vocab: 4, h: 1 });
  } catch (e) {
    if (e instanceof RangeError) message = e.message;
  }
  if (!message.includes("[0, 4)")) throw new Error(`expected a RangeError, got "${message}"`);
});
