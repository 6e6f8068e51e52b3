import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { swigluBackwardRef } from "./swiglu_backward_ref.ts";
import { swigluRef } from "./swiglu_ref.ts";

Deno.test("swigluBackwardRef() matches central differences of swigluRef", () => {
  const n = 40;
  const gate = rand(n, 1, -8, 8);
  const up = rand(n, 2, -2, 2);
  const ct = rand(n, 3);
  const loss = () => dot(ct, swigluRef(gate, up));
  const { dGate, dUp } = swigluBackwardRef(ct, gate, up);
  assertClose(dGate, centralDiff(gate, loss), TOL, "dGate");
  assertClose(dUp, centralDiff(up, loss), TOL, "dUp");
});
