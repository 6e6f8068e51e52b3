import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { collateRl } from "./rl_batch.ts";

Deno.test("collateRl() lays out three rows of different lengths by hand", () => {
  // seqLen = 5 (row 0); position t of a `[batch, seqLen − 1]` array is the log-prob of token
  // t + 1, so a row's response token j (after P prompt ids) sits at t = P + j − 1.
  const batch = collateRl([
    {
      promptIds: [1, 2, 3],
      tokens: [4, 5],
      oldLogprobs: new Float64Array([-0.1, -0.2]),
      advantage: 1.5,
      policy: true,
      anchor: 4,
      group: 0,
      correct: true,
    },
    {
      promptIds: [7],
      tokens: [8, 9, 10],
      oldLogprobs: new Float64Array([-1, -2, -3]),
      tokenWeights: new Float64Array([0.5, 2, 1]),
      advantage: -0.5,
      policy: true,
      anchor: 2,
      group: 3,
      correct: false,
    },
    // Align only: its advantage (0.7) and tokens stay out of the policy loss.
    {
      promptIds: [1],
      tokens: [6],
      oldLogprobs: new Float64Array([-0.3]),
      advantage: 0.7,
      policy: false,
      anchor: -1,
      group: 3,
      correct: true,
    },
  ], { padId: 99 });
  strictEqual(batch.seqLen, 5);
  deepStrictEqual(batch.inputIds, [[1, 2, 3, 4, 5], [7, 8, 9, 10, 99], [1, 6, 99, 99, 99]]);
  deepStrictEqual(batch.attentionMask, [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]);
  // deno-fmt-ignore
  deepStrictEqual([...batch.lossMask], [
    0, 0, 1, 1,
    1, 1, 1, 0,
    0, 0, 0, 0,
  ]);
  // deno-fmt-ignore
  deepStrictEqual([...batch.oldLogprobs], [
    0, 0, -0.1, -0.2,
    -1, -2, -3, 0,
    -0.3, 0, 0, 0,
  ]);
  // deno-fmt-ignore
  deepStrictEqual([...batch.advantages], [
    0, 0, 1.5, 1.5,
    -0.5, -0.5, -0.5, 0,
    0, 0, 0, 0,
  ]);
  // A row without token weights gets 1 at its response tokens once any row has them.
  // deno-fmt-ignore
  deepStrictEqual([...batch.tokenWeights!], [
    0, 0, 1, 1,
    0.5, 2, 1, 0,
    1, 0, 0, 0,
  ]);
  deepStrictEqual(batch.anchors, [4, 2, -1]);
  deepStrictEqual(batch.groups, [0, 3, 3]);
  deepStrictEqual(batch.correct, [true, false, true]);
  strictEqual(batch.lossTokens, 5);
  // Σ (prompt + response) = 5 + 4 + 2, not batch · (seqLen − 1) = 12: the shorter align-only row
  // tells the two apart.
  strictEqual(batch.tokens, 11);
});
