import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { logprobBackwardRef } from "./logprob_backward_ref.ts";
import { logprobRef } from "./logprob_ref.ts";

Deno.test("logprobBackwardRef() matches central differences of logprobRef", () => {
  for (const [rows, v] of [[1, 1], [4, 6], [3, 17]] as const) {
    const logits = rand(rows * v, rows + v, -4, 4);
    const targets = Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : (r * 5) % v));
    const ct = rand(rows, 9 + v);
    const loss = () => dot(ct, logprobRef(logits, targets, v).logprobs);
    const got = logprobBackwardRef(ct, logits, targets, v);
    const want = centralDiff(logits, loss);
    assertClose(got, want, TOL, `logprob ${rows}x${v}`);
    if (rows > 1 && got.subarray(v, 2 * v).some((g) => g !== 0)) {
      throw new Error("a row without a target must get a zero gradient");
    }
  }
});
