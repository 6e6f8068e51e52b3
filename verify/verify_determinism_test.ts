// Copyright 2025 the halo authors. MIT license.
// Deterministic rewards (issue #13): in reward mode the verifier's work is bounded by
// counted steps, not by the clock, so the same (response, gold) always gets the same
// reward — on a loaded machine too, which a bit-exact resume of an RL run relies on.
// The load is simulated by a clock that jumps one second at every read.

import assert from "node:assert/strict";
import { binaryReward, dapoReward, prepareGold, verify } from "./mod.ts";
import { DEFAULT_BUDGET_STEPS } from "./_budget.ts";

const FIXTURES = new URL("../tests/fixtures/", import.meta.url);
const read = (name: string): Record<string, string>[] =>
  Deno.readTextFileSync(new URL(name, FIXTURES)).trim().split("\n").map((l) => JSON.parse(l));

const MATH = read("verify_math500.jsonl").map((r) => r.answer);
const GSM = read("verify_gsm8k.jsonl").map((r) =>
  r.answer.slice(r.answer.lastIndexOf("####") + 4).trim()
);
const FORMS = read("verify_forms.jsonl");

/** Correct, perturbed and mismatched pairs, plus the labelled answer forms. */
const PAIRS: [string, string][] = [
  ...MATH.flatMap((a, i): [string, string][] => [
    [`So the answer is $\\boxed{${a}}$.`, a],
    [`Answer: ${a.replace(/\\frac/g, "\\dfrac")}`, a],
    [`\\boxed{${a}}`, MATH[(i * 31 + 7) % MATH.length]],
  ]),
  ...FORMS.map((c): [string, string] => [c.response, c.gold]),
  ["\\boxed{(x-1)(x+1)}", "x^2-1"],
  ["\\boxed{\\sin^2 x + \\cos^2 x}", "1"],
  ["\\boxed{\\frac{x^2-1}{x-1}}", "x+1"],
  ["\\boxed{(x+1)^2}", "x^2+2x+2"],
];

function decisions(mode: "reward" | "eval", budgetMs?: number): string[] {
  return PAIRS.map(([response, gold]) => {
    const r = verify(response, gold, budgetMs === undefined ? { mode } : { mode, budgetMs });
    return `${r.correct}:${r.reason}`;
  });
}

/** Runs `fn` with a clock that advances one second at every read. */
function withSlowClock<T>(fn: () => T): T {
  const real = performance.now;
  let t = real.call(performance);
  performance.now = () => (t += 1000);
  try {
    return fn();
  } finally {
    performance.now = real;
  }
}

Deno.test("verify() in reward mode decides the same with a clock slowed 1000x", () => {
  const normal = decisions("reward");
  const slowed = withSlowClock(() => decisions("reward"));
  assert.deepEqual(slowed, normal);
  assert.ok(normal.some((d) => d.startsWith("true:match-numeric")));
  assert.ok(normal.some((d) => d.startsWith("true:match-random-points")));
});

Deno.test("verify() in eval mode keeps its wall-clock budget (the slowed clock changes it)", () => {
  // The control for the test above: the slowed clock is read and does spend a
  // clock budget, so the reward-mode test would catch a clock in the reward path.
  const slowed = withSlowClock(() => decisions("eval"));
  // The real clock with a budget no loaded CI machine reaches (the default 100 ms did under
  // load): the decisions the slowed clock must change.
  const normal = decisions("eval", 60_000);
  assert.ok(!normal.some((d) => d.endsWith(":timeout")));
  // Timed out while preparing the gold (skip) or while comparing.
  assert.ok(slowed.some((d) => d === "false:timeout" || d === "null:gold-unparseable"));
  assert.notDeepEqual(slowed, normal);
});

Deno.test("dapoReward() and binaryReward() are the same under a slowed clock", () => {
  const gold = prepareGold("\\frac{\\sqrt{2}}{2}");
  const responses = ["\\boxed{\\frac{1}{\\sqrt{2}}}", "Answer: 0.7071", "\\boxed{2^{-1/2}}", "x"];
  const normal = responses.map((r) => [dapoReward(r, gold), binaryReward(r, gold)]);
  const slowed = withSlowClock(() =>
    responses.map((r) => [dapoReward(r, gold), binaryReward(r, gold)])
  );
  assert.deepEqual(slowed, normal);
  assert.deepEqual(normal, [[1, 1], [-1, 0], [1, 1], [-1, 0]]);
});

Deno.test("verify() with a spent step budget answers timeout, the same every time", () => {
  const response = "\\boxed{(x+1)^2 - (x-1)^2}";
  const tight = { budgetSteps: 5 };
  const first = verify(response, "4x", tight);
  assert.equal(first.correct, false);
  assert.equal(first.reason, "timeout");
  for (let i = 0; i < 5; i++) assert.deepEqual(verify(response, "4x", tight), first);
  assert.deepEqual(withSlowClock(() => verify(response, "4x", tight)), first);
  assert.equal(verify(response, "4x").correct, true);
});

Deno.test("no MATH-500 or GSM8K answer needs 1% of the default step budget", () => {
  const budgetSteps = DEFAULT_BUDGET_STEPS / 100;
  const failures: string[] = [];
  for (const [i, g] of [...MATH, ...GSM].entries()) {
    for (const response of [`\\boxed{${g}}`, `Answer: ${g}.`, `#### ${g}`]) {
      const r = verify(response, g, { budgetSteps });
      if (r.correct !== true) failures.push(`${i}: ${g} -> ${r.reason}`);
    }
  }
  assert.deepEqual(failures, []);
});
