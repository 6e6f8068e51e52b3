import { checkAttention } from "./_attention_test_utils.ts";
import { noGpu } from "../../gpu/test_utils.ts";
import type { AttentionShape } from "./attention_ref.ts";

// f32 online softmax and sums of up to a few hundred terms: 1e-5 relative.
const TOL = 1e-5;

async function check(shape: AttentionShape, mask: Uint32Array, what: string): Promise<void> {
  const err = await checkAttention(shape, mask, what, TOL, { seeds: [1, 2, 3] });
  console.log(`${what}: rel err ${err.toExponential(2)}`);
}

Deno.test({
  name: "encodeAttention() matches the reference for causal GQA with right padding",
  ignore: noGpu,
  async fn() {
    for (
      const [b, t, hq, hkv, d] of [[1, 1, 1, 1, 1], [2, 16, 4, 2, 16], [2, 70, 6, 2, 24], [
        1,
        130,
        2,
        1,
        128,
      ]]
    ) {
      const mask = new Uint32Array(b * t).fill(1);
      if (b > 1) mask.fill(0, 2 * t - Math.floor(t / 3)); // pad the end of row 1
      await check({ b, tq: t, s: t, hq, hkv, d }, mask, `attention b${b} t${t} ${hq}/${hkv}x${d}`);
    }
  },
});

Deno.test({
  name: "encodeAttention() attends a query block to a partly filled cache",
  ignore: noGpu,
  async fn() {
    // 3 new queries at positions 40..42 of a 100-slot cache whose first 3 slots are padding.
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    await check(
      { b, tq: 3, s, kvLen: 43, qStart: 40, hq: 4, hkv: 4, d: 32 },
      mask,
      "attention cache",
    );
  },
});
