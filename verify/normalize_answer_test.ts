// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { normalizeAnswer } from "./normalize_answer.ts";

const n = (s: string) => normalizeAnswer(s);

Deno.test("normalizeAnswer() strips math delimiters, boxes and \\left/\\right", () => {
  assert.equal(n("$\\frac{1}{2}$"), "\\frac{1}{2}");
  assert.equal(n("\\(x\\)"), "x");
  assert.equal(n("\\boxed{\\left( 3, 4 \\right)}"), "(3,4)");
  assert.equal(n("\\left. 5 \\right."), "5");
});

Deno.test("normalizeAnswer() maps \\dfrac/\\tfrac to \\frac and expands short forms", () => {
  assert.equal(n("\\dfrac{3}{4}"), "\\frac{3}{4}");
  assert.equal(n("\\tfrac12"), "\\frac{1}{2}");
  assert.equal(n("\\frac 59"), "\\frac{5}{9}");
  assert.equal(n("\\frac9{19}"), "\\frac{9}{19}");
  assert.equal(n("11\\sqrt2"), "11\\sqrt{2}");
});

Deno.test("normalizeAnswer() drops units after numbers but keeps text answers", () => {
  assert.equal(n("10\\text{ units}"), "10");
  assert.equal(n("864 \\mbox{ inches}^2"), "864");
  assert.equal(n("18 dollars"), "18");
  assert.equal(n("\\text{Evelyn}"), "\\text{Evelyn}");
  assert.equal(n("\\text{ east }"), "\\text{east}");
  assert.equal(n("2 m"), "2m", "single letters are variables, not units");
});

Deno.test("normalizeAnswer() drops degrees, percent and currency", () => {
  assert.equal(n("90^\\circ"), "90");
  assert.equal(n("90^{\\circ}"), "90");
  assert.equal(n("45°"), "45");
  assert.equal(n("10\\%"), "10");
  assert.equal(n("\\$18.90"), "18.90");
});

Deno.test("normalizeAnswer() removes thousands separators", () => {
  assert.equal(n("1,000"), "1000");
  assert.equal(n("10,\\!080"), "10080");
  assert.equal(n("1{,}000"), "1000");
  assert.equal(n("5\\,000"), "5000");
  assert.equal(n("1,450,000."), "1450000");
  assert.equal(n("10, 4, 2"), "10,4,2", "a list is not a grouped number");
});

Deno.test("normalizeAnswer() strips trailing punctuation but not factorials or dots", () => {
  assert.equal(n("13."), "13");
  assert.equal(n("x = 5;"), "5");
  assert.equal(n("5!"), "5!");
  assert.equal(n("1, 2, \\ldots"), "1,2,\\ldots");
});

Deno.test("normalizeAnswer() reduces constant assignments and choice letters", () => {
  assert.equal(n("x = 5"), "5");
  assert.equal(n("k=\\frac{1}{2}"), "\\frac{1}{2}");
  assert.equal(n("y = 2x + 3"), "y=2x+3", "equations with variables stay");
  assert.equal(n("\\text{(C)}"), "C");
  assert.equal(n("(B) 12"), "B");
  assert.equal(n("\\textbf{D}"), "D");
});

Deno.test("normalizeAnswer() removes spacing commands and keeps matrix row breaks", () => {
  assert.equal(n("\\tfrac{1}{2} +\\! \\frac1{72}"), "\\frac{1}{2}+\\frac{1}{72}");
  assert.equal(
    n("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
  );
  assert.equal(n("\\pi r^2"), "\\pi r^2");
});

Deno.test("normalizeAnswer() maps unicode symbols to LaTeX", () => {
  assert.equal(n("−5"), "-5");
  assert.equal(n("2π"), "2\\pi");
  assert.equal(n("√2"), "\\sqrt{2}");
  assert.equal(n("x ≤ 3"), "x\\le3");
  assert.equal(n("½"), "\\frac{1}{2}");
});

Deno.test("normalizeAnswer() undoes doubled backslashes before known commands", () => {
  assert.equal(n("\\\\dfrac{1}{2}"), "\\frac{1}{2}");
});

Deno.test("normalizeAnswer() never throws", () => {
  for (const s of ["", "\\", "{{{", "\\text{", "$$$", null as unknown as string, "\u0000\uE001"]) {
    assert.equal(typeof normalizeAnswer(s), "string");
  }
});

Deno.test("normalizeAnswer() reads a decimal comma only next to a currency", () => {
  assert.equal(n("3,50 €"), "3.50");
  assert.equal(n("€3,5"), "3.5");
  assert.equal(n("3,50 \\text{ €}"), "3.50");
  assert.equal(n("€1,250"), "1250");
  assert.equal(n("2,000"), "2000");
  assert.equal(n("1,5"), "1,5");
  assert.equal(n("2,000.5 \\text{ kg}"), "2000.5");
});

Deno.test("normalizeAnswer() takes the last side of a chain and the exact side of ≈", () => {
  assert.equal(n("y = 3\\cdot 4 - 3 = 9"), "9");
  assert.equal(n("c = \\sqrt{3^2+4^2} = 5"), "5");
  assert.equal(n("\\frac{2}{7} \\approx 0.29"), "\\frac{2}{7}");
  assert.equal(n("x \\approx 0.29"), "x\\approx0.29");
  assert.equal(n("y = 2x + 3"), "y=2x+3");
  assert.equal(n("x = 1, y = 2 = z"), "x=1,y=2=z");
  assert.equal(n("a \\le b = c"), "a\\le b=c");
});

Deno.test("normalizeAnswer() writes every matrix environment as pmatrix", () => {
  const p = "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}";
  assert.equal(n("\\left[\\begin{array}{cc}1&2\\\\3&4\\end{array}\\right]"), p);
  assert.equal(n("\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"), p);
  assert.equal(n("\\begin{vmatrix}1&2\\\\3&4\\end{vmatrix}"), p);
  assert.equal(n("\\begin{matrix}1&2\\\\3&4\\end{matrix}"), p);
});

Deno.test("normalizeAnswer() reads \\quad and words between items as list separators", () => {
  assert.equal(n("3 \\quad 5"), "3,5");
  assert.equal(n("x = 1 \\qquad y = 2"), "x=1,y=2");
  assert.equal(n("5 \\quad \\text{cm}"), "5");
  assert.equal(n("(1,4) and (4,1)"), "(1,4)\\text{ and }(4,1)");
  assert.equal(n("the smallest k is 17."), "17");
  assert.equal(n("\\text{the set is empty}"), "\\text{the set is empty}");
});
