// attentionScratchSize must cover every decode step a generation workspace sized once can record:
// any batch up to its rows (finished rows are dropped) and any kvLen up to its capacity. Checked
// exhaustively against attentionSplit's own chunk count on the capacities where the chunk count
// at a shorter cache exceeds the one at the longest (the bug this test was written for).
import assert from "node:assert/strict";
import { attentionScratchSize, attentionSplit, pickAttentionKernel } from "./attention.ts";

Deno.test("attentionScratchSize() covers every batch and kvLen up to the sizes it is given", () => {
  const heads = [
    { hq: 16, hkv: 8, d: 128 }, // Qwen3-0.6B/1.7B: grouped partial sums
    { hq: 32, hkv: 8, d: 128 }, // Qwen3-4B/8B
    { hq: 40, hkv: 8, d: 128 }, // Qwen3-14B
    { hq: 6, hkv: 2, d: 6 }, // per-query partial sums (head size not a multiple of 4)
  ];
  let splitSteps = 0;
  for (const h of heads) {
    for (const [rows, capacity] of [[1, 4160], [4, 1088], [8, 832], [2, 8192]]) {
      const size = attentionScratchSize({ ...h, b: rows, tq: 1, kvLen: capacity });
      for (let b = 1; b <= rows; b++) {
        for (let kvLen = 1; kvLen <= capacity; kvLen++) {
          const shape = { ...h, b, tq: 1, kvLen };
          if (pickAttentionKernel(shape) !== "split") continue;
          splitSteps++;
          const need = b * h.hq * attentionSplit(shape).chunks * (h.d + 2);
          assert.ok(
            need <= size,
            `hq=${h.hq} d=${h.d} rows=${rows} capacity=${capacity}: b=${b} kvLen=${kvLen} ` +
              `needs ${need} floats, the scratch has ${size}`,
          );
        }
      }
    }
  }
  assert.ok(splitSteps > 1000, `expected the sweep to reach the split kernel: ${splitSteps} steps`);
});
