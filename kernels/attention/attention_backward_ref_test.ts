import { assertClose } from "../../gpu/test_utils.ts";
import { centralDiff, dot, rand, TOL } from "../_finite_diff.ts";
import { attentionBackwardRef } from "./attention_backward_ref.ts";
import { attentionRef, type AttentionShape } from "./attention_ref.ts";

function check(shape: AttentionShape, mask: number[] | undefined, what: string): void {
  const { b, tq, s, hq, hkv, d } = shape;
  const q = rand(b * tq * hq * d, 1, -2, 2);
  const k = rand(b * s * hkv * d, 2, -2, 2);
  const v = rand(b * s * hkv * d, 3);
  const ct = rand(q.length, 4);
  const options = { ...shape, mask };
  const loss = () => dot(ct, attentionRef(q, k, v, options));
  const { dq, dk, dv } = attentionBackwardRef(ct, q, k, v, options);
  assertClose(dq, centralDiff(q, loss), TOL, `${what} dq`);
  assertClose(dk, centralDiff(k, loss), TOL, `${what} dk`);
  assertClose(dv, centralDiff(v, loss), TOL, `${what} dv`);
}

Deno.test("attentionBackwardRef() matches central differences of attentionRef (GQA, padding)", () => {
  // Row 1's last 2 slots are padding; 2 query heads share each key/value head.
  const mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
  check({ b: 2, tq: 5, s: 5, hq: 4, hkv: 2, d: 3 }, mask, "self");
  check({ b: 1, tq: 1, s: 1, hq: 1, hkv: 1, d: 1 }, undefined, "1x1");
});

Deno.test("attentionBackwardRef() matches central differences with a partly filled cache", () => {
  // 2 queries at positions 4, 5 of a 7-slot cache with 6 filled slots; slot 0 is padding.
  const mask = [0, 1, 1, 1, 1, 1, 1];
  check({ b: 1, tq: 2, s: 7, kvLen: 6, qStart: 4, hq: 2, hkv: 1, d: 4, scale: 0.7 }, mask, "cache");
});
