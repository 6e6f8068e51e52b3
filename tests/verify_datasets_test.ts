// Copyright 2025 the halo authors. MIT license.
// MATH-500 and GSM8K: every gold verifies against itself in every marker format and under
// value-preserving perturbations, and never against the gold of another problem whose
// answer differs (false-positive test on >= 20,000 deterministic pairs).

import assert from "node:assert/strict";
import { type PreparedGold, prepareGold, verify } from "../verify/mod.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

function readJsonl(name: string): Record<string, string>[] {
  return Deno.readTextFileSync(new URL(name, FIXTURES)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
}

interface Problem {
  source: "math500" | "gsm8k";
  index: number;
  gold: string;
}

const MATH: Problem[] = readJsonl("verify_math500.jsonl").map((r, index) => ({
  source: "math500",
  index,
  gold: r.answer,
}));
const GSM: Problem[] = readJsonl("verify_gsm8k.jsonl").map((r, index) => ({
  source: "gsm8k",
  index,
  gold: r.answer.slice(r.answer.lastIndexOf("####") + 4).trim(),
}));
const PROBLEMS: Problem[] = [...MATH, ...GSM];
const PREPARED: PreparedGold[] = PROBLEMS.map((p) => prepareGold(p.gold));

// Generous budget for the positive checks so a slow CI machine cannot fail them by time.
const SLOW_OK = { budgetMs: 5000 };

const FORMATS: ReadonlyArray<(g: string) => string> = [
  (g) => `Let me work through this step by step.\nSo the result is $\\boxed{${g}}$.`,
  (g) => `Some reasoning here.\nAnswer: ${g}`,
  (g) => `Reasoning: 3 + 4 = 7.\n#### ${g}`,
];

Deno.test("prepareGold() parses every MATH-500 and GSM8K gold", () => {
  const bad = PROBLEMS.filter((_, i) => PREPARED[i].node === null).map((p) => p.gold);
  assert.deepEqual(bad, []);
  assert.equal(MATH.length, 500);
  assert.equal(GSM.length, 1319);
});

Deno.test("verify() accepts every gold in the boxed, Answer: and #### formats", () => {
  const failures: string[] = [];
  for (let i = 0; i < PROBLEMS.length; i++) {
    for (const format of FORMATS) {
      const r = verify(format(PROBLEMS[i].gold), PREPARED[i], SLOW_OK);
      if (r.correct !== true) failures.push(`${PROBLEMS[i].gold} -> ${r.reason}`);
    }
  }
  assert.deepEqual(failures, []);
});

// ---- value-preserving perturbations ---------------------------------------------------

function terminatingDecimal(p: bigint, q: bigint): string | null {
  let d = q;
  let twos = 0;
  let fives = 0;
  while (d % 2n === 0n) {
    d /= 2n;
    twos++;
  }
  while (d % 5n === 0n) {
    d /= 5n;
    fives++;
  }
  if (d !== 1n) return null;
  const digits = Math.max(twos, fives);
  const scaled = (p * 10n ** BigInt(digits)) / q;
  const s = scaled.toString().padStart(digits + 1, "0");
  return digits === 0 ? s : `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

function perturbations(g: string): string[] {
  const out: string[] = [];
  if (g.includes("\\frac")) out.push(g.replace(/\\frac/g, "\\dfrac"));
  if (!/\\text|\\mbox|\d,\d{3}/.test(g)) {
    out.push(`  ${g.replace(/,(?!\\!)/g, ", ").replace(/([+=])/g, " $1 ")}  `);
  }
  if (!/[=<>,]|\\in|\\text|\\mbox|\\begin|\\cup/.test(g)) {
    const v = ["x", "y", "t", "z"].find((c) => !g.includes(c));
    if (v) out.push(`${v} = ${g}`);
  }
  out.push(`${g}.`);
  if (/^-?\d+$/.test(g)) out.push(`${g}.0`);
  const frac = /^(-?)\\frac\{(\d+)\}\{(\d+)\}$/.exec(g);
  if (frac) {
    const dec = terminatingDecimal(BigInt(frac[2]), BigInt(frac[3]));
    if (dec) out.push(`${frac[1]}${dec}`);
  }
  const set = /^\\\{(.*)\\\}$/.exec(g);
  if (set) out.push(`\\{${set[1].split(",").reverse().join(",")}\\}`);
  return out;
}

Deno.test("verify() keeps value-preserving perturbations of every gold correct", () => {
  const failures: string[] = [];
  let checked = 0;
  for (let i = 0; i < PROBLEMS.length; i++) {
    for (const p of perturbations(PROBLEMS[i].gold)) {
      checked++;
      const r = verify(`Thus \\boxed{${p}}`, PREPARED[i], SLOW_OK);
      if (r.correct !== true) failures.push(`${PROBLEMS[i].gold} ~ ${p} -> ${r.reason}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked > 5000, `expected > 5000 perturbations, got ${checked}`);
});

Deno.test("verify() accepts \\frac12 written as 0.5, 13 as 13.0, and reordered sets", () => {
  assert.equal(verify("\\boxed{0.5}", "\\frac12").correct, true);
  assert.equal(verify("\\boxed{13.0}", "13").correct, true);
  assert.equal(
    verify("\\boxed{\\{-2, 1\\pm\\sqrt{5}\\}}", "\\{1\\pm\\sqrt{5},-2\\}").correct,
    true,
  );
});

// ---- false positives ------------------------------------------------------------------

// "Answer differs" is decided WITHOUT the verifier under test, by this rule:
//   (a) a small independent normaliser (below) gives different strings, and
//   (b) the two golds are not both plain numeric literals with the same exact value.
// The pairs this rule excludes were inspected by hand (all MATH-500 distinct-gold pairs):
// "90" / "90^\circ", "36" / "\$36", "5" / "x=5", "\frac14" / "\frac{1}{4}",
// "10,\!080" / "10080", "15" / "15\mbox{ cm}^2", "2 \sqrt{5}" / "2\sqrt{5}" and the like —
// the same answer under the stated normalisation (degrees, currency, units, x =, spacing).
// No pair was excluded by hand, and the verifier itself is never consulted.
function independentKey(g: string): string {
  let s = g;
  s = s.replace(/\\(?:left|right)/g, "").replace(/\\[!,;]/g, "").replace(/\\\$|\$/g, "");
  s = s.replace(/\^\s*\{?\\circ\}?/g, "");
  s = s.replace(/\\(?:text|mbox)\{\s*(?:cm|inches|units|degrees|cents|dollars)\s*\}(?:\^\d)?/g, "");
  s = s.replace(/\\[dt]frac/g, "\\frac");
  s = s.replace(/\\frac(\d)(\d)/g, "\\frac{$1}{$2}").replace(
    /\\frac\s*(\d)\s*(\d)/g,
    "\\frac{$1}{$2}",
  );
  s = s.replace(/\\frac\{(\d+)\}(\d)/g, "\\frac{$1}{$2}").replace(/\\frac(\d)\{/g, "\\frac{$1}{");
  s = s.replace(/\s+/g, "");
  s = s.replace(/(\d),(?=\d{3}(?!\d))/g, "$1");
  s = s.replace(/^[a-z]=(?=[^=]*$)/, "");
  s = s.replace(/^\\text\{\(([A-E])\)\}$/, "$1");
  return s;
}

function literal(g: string): [bigint, bigint] | null {
  const s = independentKey(g);
  let m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (m) {
    const frac = m[3] ?? "";
    const n = BigInt(m[2] + frac) * (m[1] ? -1n : 1n);
    return reduce(n, 10n ** BigInt(frac.length));
  }
  m = /^(-?)\\frac\{(\d+)\}\{(\d+)\}$/.exec(s);
  if (m) return reduce(BigInt(m[2]) * (m[1] ? -1n : 1n), BigInt(m[3]));
  return null;
}

function reduce(n: bigint, d: bigint): [bigint, bigint] {
  let a = n < 0n ? -n : n;
  let b = d;
  while (b) [a, b] = [b, a % b];
  return a === 0n ? [0n, 1n] : [n / a, d / a];
}

function sameAnswer(a: string, b: string): boolean {
  if (independentKey(a) === independentKey(b)) return true;
  const la = literal(a);
  const lb = literal(b);
  return la !== null && lb !== null && la[0] === lb[0] && la[1] === lb[1];
}

/** Deterministic pairs: 12,000 MATH×MATH, 6,000 mixed, 6,000 GSM×GSM candidates. */
function* candidatePairs(): Generator<[number, number]> {
  const nm = MATH.length;
  const ng = GSM.length;
  let state = 0x2545f491;
  const next = (mod: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % mod;
  };
  for (let k = 0; k < 12000; k++) yield [next(nm), next(nm)];
  for (let k = 0; k < 3000; k++) yield [next(nm), nm + next(ng)];
  for (let k = 0; k < 3000; k++) yield [nm + next(ng), next(nm)];
  for (let k = 0; k < 6000; k++) yield [nm + next(ng), nm + next(ng)];
}

Deno.test("verify() has no false positives on >= 20,000 mismatched MATH-500/GSM8K pairs", () => {
  let pairs = 0;
  let skippedSame = 0;
  const flagged: string[] = [];
  let k = 0;
  for (const [i, j] of candidatePairs()) {
    if (i === j || sameAnswer(PROBLEMS[i].gold, PROBLEMS[j].gold)) {
      skippedSame++;
      continue;
    }
    // The response carries gold i, sometimes perturbed (\dfrac, spacing, "x = ", ".0"…).
    const variants = [PROBLEMS[i].gold, ...perturbations(PROBLEMS[i].gold)];
    const response = FORMATS[k % FORMATS.length](variants[k % variants.length]);
    k++;
    const r = verify(response, PREPARED[j]);
    pairs++;
    if (r.correct !== false) {
      flagged.push(
        `${JSON.stringify(PROBLEMS[i].gold)} vs ${JSON.stringify(PROBLEMS[j].gold)}: ${r.reason}`,
      );
    }
  }
  const rate = flagged.length / pairs;
  console.log(
    `false positives: ${flagged.length}/${pairs} = ${rate} (${skippedSame} same-answer pairs excluded)`,
  );
  assert.ok(pairs >= 20000, `expected >= 20000 mismatched pairs, got ${pairs}`);
  assert.deepEqual(flagged, []);
});
