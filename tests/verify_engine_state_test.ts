// Copyright 2025 the halo authors. MIT license.
// Why the verifier uses the Compute Engine's standalone LaTeX parser and not a shared
// ComputeEngine: parsing with an engine declares new symbols in it, i.e. one call changes
// the state that the next call sees. The standalone parser keeps no such state (see also
// "parseAnswer() is unaffected by earlier calls" in verify/parse_answer_test.ts).

import assert from "node:assert/strict";
import { ComputeEngine } from "@cortex-js/compute-engine";
import { LatexSyntax } from "@cortex-js/compute-engine/latex-syntax";

Deno.test("ComputeEngine.parse() mutates the engine (so the verifier does not share one)", () => {
  const ce = new ComputeEngine();
  assert.equal(ce.lookupDefinition("g"), undefined);
  ce.parse("g(x) + 1");
  assert.notEqual(ce.lookupDefinition("g"), undefined, "parsing declared a new function");
});

Deno.test("LatexSyntax.parse() gives the same MathJSON whatever was parsed before", () => {
  const inputs = ["gfun(x)+1", "\\frac{1}{2}", "x=1", "\\{1,2\\}", "f(x)", "(1,2]", "52_8"];
  const fresh = inputs.map((s) => JSON.stringify(new LatexSyntax().parse(s)));
  const shared = new LatexSyntax();
  for (let round = 0; round < 3; round++) {
    assert.deepEqual(inputs.map((s) => JSON.stringify(shared.parse(s))), fresh);
  }
});
