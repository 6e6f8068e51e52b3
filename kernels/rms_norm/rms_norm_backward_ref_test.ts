import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { rmsNormBackwardRef } from "./rms_norm_backward_ref.ts";
import { rmsNormRef } from "./rms_norm_ref.ts";

Deno.test("rmsNormBackwardRef() matches central differences of rmsNormRef", () => {
  for (const [rows, d, eps] of [[1, 1, 0.1], [3, 8, 1e-6], [4, 5, 0.5]] as const) {
    const x = rand(rows * d, rows + d, -2, 2);
    const w = rand(d, d, 0.5, 1.5);
    const ct = rand(rows * d, 7 + rows);
    const loss = () => dot(ct, rmsNormRef(x, w, { d, eps }));
    const { dx, dw } = rmsNormBackwardRef(ct, x, w, { d, eps });
    assertClose(dx, centralDiff(x, loss), TOL, `dx ${rows}x${d}`);
    assertClose(dw, centralDiff(w, loss), TOL, `dw ${rows}x${d}`);
  }
});
