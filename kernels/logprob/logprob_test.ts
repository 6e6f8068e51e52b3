import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import type { GpuContext } from "../../gpu/context.ts";
import { encodeLogprob } from "./logprob.ts";
import { logprobRef } from "./logprob_ref.ts";

// A max, a sum of v exponentials in f32 and a log: 1e-6 relative for v ≤ 10^5.
const TOL = 1e-6;
// The entropy adds a second f32 sum and a division: 1e-5 relative (assertClose's scale).
const ENTROPY_TOL = 1e-5;

/** encodeLogprob over `logits` into poisoned outputs, read back: log-probs, lse and entropy. */
async function runLogprob(
  ctx: GpuContext,
  logits: Float32Array,
  targets: Int32Array,
  { rows, v }: { rows: number; v: number },
): Promise<{ gotOut: Float32Array; gotLse: Float32Array; gotEntropy: Float32Array }> {
  const out = poisoned(ctx, rows, "out");
  const lse = poisoned(ctx, rows, "lse");
  const entropy = poisoned(ctx, rows, "entropy");
  const enc = recordPass(ctx, (pass) =>
    encodeLogprob(ctx, pass, {
      logits: ctx.upload(logits, "logits"),
      targets: ctx.upload(targets, "targets"),
      out,
      lse,
      entropy,
      rows,
      v,
    }));
  const gotLse = await readFloats(ctx, lse, rows, enc);
  const gotOut = await readFloats(ctx, out, rows);
  const gotEntropy = await readFloats(ctx, entropy, rows);
  return { gotOut, gotLse, gotEntropy };
}

Deno.test({
  name:
    "encodeLogprob() matches the f64 reference (log-probs, lse, entropy), rows without a target",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [rows, v] of [[1, 1], [3, 255], [17, 384], [4, 5000]]) {
      const logits = randomArray(rows * v, rows + v, -30, 30);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : (r * 31) % v));
      const want = logprobRef(logits, targets, v);
      const { gotOut, gotLse, gotEntropy } = await runLogprob(ctx, logits, targets, { rows, v });
      const err = assertClose(gotOut, want.logprobs, TOL, `logprob ${rows}x${v}`);
      assertClose(gotLse, want.lse, TOL, `lse ${rows}x${v}`);
      assertClose(gotEntropy, want.entropy, ENTROPY_TOL, `entropy ${rows}x${v}`);
      console.log(`logprob ${rows}x${v}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeLogprob() takes the max over every column and thread (logits far from 0)",
  ignore: noGpu,
  async fn() {
    // The max only shifts the exponentials, so logits in ±30 never tell a partial max from the
    // true one. Row 0 is all near −1000 (exp(x) underflows f32 without the shift); rows 1 and 2
    // hold one logit 170 above the rest (exp(170) overflows f32 unless the shift is that logit),
    // at column 456 (thread 200, second stride) and column 100 (thread 100, first stride).
    const ctx = (await testContext())!;
    const [rows, v] = [3, 500];
    const logits = randomArray(rows * v, 11, -30, 30);
    for (let j = 0; j < v; j++) logits[j] -= 970;
    logits[v + 456] = 200;
    logits[2 * v + 100] = 200;
    const targets = Int32Array.from([7, 3, 100]);
    const want = logprobRef(logits, targets, v);
    const { gotOut, gotLse, gotEntropy } = await runLogprob(ctx, logits, targets, { rows, v });
    // Row by row, so the row near −1000 does not hide an error on the others.
    for (let r = 0; r < rows; r++) {
      assertClose([gotOut[r]], [want.logprobs[r]], TOL, `far logits: logprob of row ${r}`);
      assertClose([gotLse[r]], [want.lse[r]], TOL, `far logits: lse of row ${r}`);
      // Rows 1 and 2 have entropy ~1e-71 (0 in f32): an absolute 1e-5 there.
      const scale = Math.max(Math.abs(want.entropy[r]), 1);
      const diff = Math.abs(gotEntropy[r] - want.entropy[r]);
      if (!(diff <= ENTROPY_TOL * scale)) {
        throw new Error(
          `far logits: entropy of row ${r} is ${gotEntropy[r]}, want ${want.entropy[r]}`,
        );
      }
    }
  },
});
