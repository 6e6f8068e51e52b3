import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { encodeLogprob } from "./logprob.ts";
import { encodeLogprobBackward } from "./logprob_backward.ts";
import { logprobBackwardRef } from "./logprob_backward_ref.ts";

// The forward's f32 lse (rel 1e-6 of values up to 30, i.e. ~3e-6 absolute inside exp) and one
// f32 exp per element: 1e-5 relative on the gradient.
const TOL = 1e-5;

Deno.test({
  name: "encodeLogprobBackward() matches the f64 reference from the forward's lse, in place too",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [rows, v] of [[1, 1], [3, 255], [17, 384], [4, 5000]]) {
      const logits = randomArray(rows * v, rows + v, -30, 30);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : (r * 31) % v));
      const dLogprob = randomArray(rows, rows + 2 * v);
      const logitsBuf = ctx.upload(logits, "logits");
      const targetsBuf = ctx.upload(targets, "targets");
      const dLogprobBuf = ctx.upload(dLogprob, "dLogprob");
      const lse = poisoned(ctx, rows, "lse");
      const dLogits = poisoned(ctx, rows * v, "dLogits");
      const enc = recordPass(ctx, (pass) => {
        encodeLogprob(ctx, pass, {
          logits: logitsBuf,
          targets: targetsBuf,
          out: poisoned(ctx, rows, "logprobs"),
          lse,
          entropy: poisoned(ctx, rows, "entropy"),
          rows,
          v,
        });
        const args = {
          logits: logitsBuf,
          targets: targetsBuf,
          lse,
          dLogprob: dLogprobBuf,
          rows,
          v,
        };
        encodeLogprobBackward(ctx, pass, { ...args, dLogits });
        encodeLogprobBackward(ctx, pass, args);
      });
      const [got, gotInPlace] = await readback(ctx, [
        { buffer: dLogits, offset: 0, size: rows * v * 4 },
        { buffer: logitsBuf, offset: 0, size: rows * v * 4 },
      ], enc);
      const want = logprobBackwardRef(dLogprob, logits, targets, v);
      const err = assertClose(new Float32Array(got), want, TOL, `logprob backward ${rows}x${v}`);
      assertClose(new Float32Array(gotInPlace), want, TOL, `in place ${rows}x${v}`);
      console.log(`logprob backward ${rows}x${v}: rel err ${err.toExponential(2)}`);
    }
  },
});
