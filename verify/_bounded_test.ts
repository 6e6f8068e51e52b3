// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { boundedValue } from "./_bounded.ts";
import { parseAnswer } from "./parse_answer.ts";
import { Budget } from "./_budget.ts";

function bounded(latex: string) {
  const p = parseAnswer(latex);
  if (!p.ok) throw new TypeError(`Cannot parse "${latex}"`);
  return boundedValue(p.node, new Map(), new Budget(Infinity));
}

Deno.test("boundedValue() bounds the error of closed forms", () => {
  for (
    const s of ["\\sqrt{2}", "\\pi^2", "e^{3}", "\\ln 7", "\\sin 1", "\\frac{1}{3}", "2^{1/3}"]
  ) {
    const v = bounded(s);
    assert.equal(v.lost, false, s);
    assert.ok(v.err > 0 && v.err < 1e-14 * Math.max(1, Math.abs(v.z.re)), `${s}: ${v.err}`);
  }
  const sinPi = bounded("\\sin\\pi");
  assert.ok(Math.abs(sinPi.z.re) <= sinPi.err, "sin(pi) is within its error of 0");
  assert.equal(bounded("12").err, 0);
});

Deno.test("boundedValue() marks under- and overflow as lost", () => {
  for (const s of ["e^{-1000}", "\\frac{1}{2004!}", "2^{-2000}", "10^{400}", "2004!"]) {
    assert.equal(bounded(s).lost, true, s);
  }
  assert.equal(bounded("e^{-700}").lost, false);
});
