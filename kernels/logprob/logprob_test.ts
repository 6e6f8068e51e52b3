import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeLogprob } from "./logprob.ts";
import { logprobRef } from "./logprob_ref.ts";

// A max, a sum of v exponentials in f32 and a log: 1e-6 relative for v ≤ 10^5.
const TOL = 1e-6;
// The entropy adds a second f32 sum and a division: 1e-5 relative (assertClose's scale).
const ENTROPY_TOL = 1e-5;

Deno.test({
  name:
    "encodeLogprob() matches the f64 reference (log-probs, lse, entropy), rows without a target",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [rows, v] of [[1, 1], [3, 255], [17, 384], [4, 5000]]) {
      const logits = randomArray(rows * v, rows + v, -30, 30);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : (r * 31) % v));
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
      const want = logprobRef(logits, targets, v);
      const gotLse = await readFloats(ctx, lse, rows, enc);
      const gotOut = await readFloats(ctx, out, rows);
      const gotEntropy = await readFloats(ctx, entropy, rows);
      const err = assertClose(gotOut, want.logprobs, TOL, `logprob ${rows}x${v}`);
      assertClose(gotLse, want.lse, TOL, `lse ${rows}x${v}`);
      assertClose(gotEntropy, want.entropy, ENTROPY_TOL, `entropy ${rows}x${v}`);
      console.log(`logprob ${rows}x${v}: rel err ${err.toExponential(2)}`);
    }
  },
});
