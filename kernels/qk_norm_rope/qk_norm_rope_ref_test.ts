import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { qkNormRopeBackwardRef, qkNormRopeRef } from "./qk_norm_rope_ref.ts";

Deno.test("qkNormRopeBackwardRef() matches central differences of qkNormRopeRef", () => {
  for (const [tokens, hq, hkv, d] of [[1, 1, 1, 2], [2, 3, 1, 8], [3, 2, 2, 6]] as const) {
    const options = { d, hq, hkv, theta: 1e4, eps: 1e-3 };
    const x = {
      qRaw: rand(tokens * hq * d, 1 + d),
      kRaw: rand(tokens * hkv * d, 2 + d),
      qNorm: rand(d, 3 + d),
      kNorm: rand(d, 4 + d),
    };
    const positions = Array.from({ length: tokens }, (_, i) => 3 + i * 17);
    const dq = rand(x.qRaw.length, 5 + d);
    const dk = rand(x.kRaw.length, 6 + d);
    const loss = () => {
      const { q, k } = qkNormRopeRef(x, positions, options);
      return dot(dq, q) + dot(dk, k);
    };
    const got = qkNormRopeBackwardRef({ ...x, dq, dk }, positions, options);
    const what = `${tokens}x(${hq}+${hkv})x${d}`;
    assertClose(got.dqRaw, centralDiff(x.qRaw, loss), TOL, `dqRaw ${what}`);
    assertClose(got.dkRaw, centralDiff(x.kRaw, loss), TOL, `dkRaw ${what}`);
    assertClose(got.dqNorm, centralDiff(x.qNorm, loss), TOL, `dqNorm ${what}`);
    assertClose(got.dkNorm, centralDiff(x.kNorm, loss), TOL, `dkNorm ${what}`);
  }
});
