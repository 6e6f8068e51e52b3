import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { matmulBackwardRef } from "./matmul_backward_ref.ts";
import { matmulRef } from "./matmul_ref.ts";

Deno.test("matmulBackwardRef() matches central differences of matmulRef", () => {
  for (const [m, n, k] of [[1, 1, 1], [3, 4, 5], [6, 2, 7]] as const) {
    const x = rand(m * k, 1 + m);
    const w = rand(n * k, 2 + n);
    const ct = rand(m * n, 3 + k);
    const loss = () => dot(ct, matmulRef(x, w, [m, n, k]));
    const { dx, dw } = matmulBackwardRef(ct, x, w, [m, n, k]);
    assertClose(dx, centralDiff(x, loss), TOL, `dx ${m}x${n}x${k}`);
    assertClose(dw, centralDiff(w, loss), TOL, `dw ${m}x${n}x${k}`);
  }
});
