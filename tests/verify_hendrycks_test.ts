// Copyright 2025 the halo authors. MIT license.
// The 16 labelled cases of the Hendrycks MATH checker (fixtures/verify_hendrycks_equivalence.json).

import assert from "node:assert/strict";
import { mathEqual, verify } from "../verify/mod.ts";

const CASES: { a: string; b: string; equal: boolean }[] = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/verify_hendrycks_equivalence.json", import.meta.url)),
);

Deno.test("mathEqual() agrees with every Hendrycks equivalence case, both ways", () => {
  assert.equal(CASES.length, 16);
  for (const c of CASES) {
    assert.equal(mathEqual(c.a, c.b, { budgetMs: 5000 }).equal, c.equal, `${c.a} ~ ${c.b}`);
    assert.equal(mathEqual(c.b, c.a, { budgetMs: 5000 }).equal, c.equal, `${c.b} ~ ${c.a}`);
  }
});

Deno.test("verify() agrees with every Hendrycks case when the answer is boxed", () => {
  for (const c of CASES) {
    const r = verify(`Therefore $\\boxed{${c.a}}$.`, c.b, { budgetMs: 5000 });
    assert.equal(r.correct, c.equal, `${c.a} ~ ${c.b}: ${r.reason}`);
  }
});
