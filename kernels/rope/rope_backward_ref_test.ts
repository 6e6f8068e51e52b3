import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { ropeBackwardRef } from "./rope_backward_ref.ts";
import { ropeRef } from "./rope_ref.ts";

Deno.test("ropeBackwardRef() matches central differences of ropeRef", () => {
  for (const [tokens, heads, d] of [[1, 1, 2], [3, 2, 8], [2, 3, 16]] as const) {
    const options = { d, heads, theta: 1e4 };
    const x = rand(tokens * heads * d, tokens + d);
    const positions = Array.from({ length: tokens }, (_, i) => 3 + i * 17);
    const ct = rand(x.length, 11 + d);
    const loss = () => dot(ct, ropeRef(x, positions, options));
    assertClose(
      ropeBackwardRef(ct, positions, options),
      centralDiff(x, loss),
      TOL,
      `rope ${tokens}x${heads}x${d}`,
    );
  }
});
