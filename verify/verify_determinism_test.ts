// Copyright 2025 the halo authors. MIT license.
// Deterministic rewards (issue #13): in reward mode the verifier's work is bounded by
// counted steps, not by the clock, so the same (response, gold) always gets the same
// reward — on a loaded machine too, which a bit-exact resume of an RL run relies on.
// In eval mode the 100 ms deadline is consulted only past CLOCK_AFTER_STEPS counted steps,
// so ordinary answers are decided the same under load there too (a timed-out "12" once
// dropped a whole problem from an evaluation); heavier work still meets the deadline.
// The load is simulated by a clock that jumps one second at every read.

import assert from "node:assert/strict";
import { binaryReward, dapoReward, mathEqual, prepareGold, verify } from "./mod.ts";
import { CLOCK_AFTER_STEPS, DEFAULT_BUDGET_STEPS } from "./_budget.ts";

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

/**
 * A set of 60 linear expressions against the same set reversed: about 64,000 counted steps
 * (past CLOCK_AFTER_STEPS), equal by random points when nothing stops it.
 */
const HEAVY = (() => {
  const xs = Array.from({ length: 60 }, (_, i) => `x+${i + 1}`);
  return { response: `\\boxed{\\{${xs.toReversed().join(",")}\\}}`, gold: `\\{${xs.join(",")}\\}` };
})();

Deno.test("verify() in eval mode decides ordinary answers the same with a clock slowed 1000x", () => {
  // The deadline (100 ms by default) is consulted only past CLOCK_AFTER_STEPS counted
  // steps, which no answer here reaches, so a loaded machine changes no decision.
  const normal = decisions("eval", Infinity);
  const slowed = withSlowClock(() => decisions("eval"));
  assert.deepEqual(slowed, normal);
  assert.ok(!normal.some((d) => d.endsWith(":timeout")));
  assert.ok(normal.some((d) => d.startsWith("true:match-numeric")));
  assert.ok(normal.some((d) => d.startsWith("true:match-random-points")));
});

Deno.test("prepareGold() and verify() in eval mode ignore a slowed clock on plain answers", () => {
  withSlowClock(() => {
    const gold = prepareGold("12", { mode: "eval" });
    assert.equal(gold.error, null);
    assert.notEqual(gold.node, null);
    // A gold is prepared without a clock even when a budgetMs is given.
    assert.equal(prepareGold("\\frac{\\sqrt{2}}{2}", { mode: "eval", budgetMs: 0 }).error, null);
    const cases: [string, string, string][] = [
      ["\\boxed{12}", "12", "true:match-string"],
      ["The answer is 12.", "12", "true:match-string"],
      ["\\boxed{13}", "12", "false:mismatch"],
      ["\\boxed{\\dfrac{6}{4}}", "1.5", "true:match-exact"],
      ["\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", "true:match-numeric"],
      ["\\boxed{(x-1)(x+1)}", "x^2-1", "true:match-random-points"],
      ["\\boxed{(x+1)^2}", "x^2+2x+2", "false:mismatch"],
    ];
    for (const [response, g, want] of cases) {
      for (const goldArg of [g, prepareGold(g, { mode: "eval" })]) {
        const r = verify(response, goldArg, { mode: "eval" });
        assert.equal(`${r.correct}:${r.reason}`, want, `${response} vs ${g}`);
      }
    }
    assert.equal(verify("\\boxed{12}", gold, { mode: "eval" }).correct, true);
    assert.deepEqual(mathEqual("\\frac{x^2-1}{x-1}", "x+1"), {
      equal: true,
      reason: "match-random-points",
    });
  });
});

Deno.test("verify() in eval mode keeps its deadline past CLOCK_AFTER_STEPS steps", () => {
  // The control for the tests above: the slowed clock is read and does spend the default
  // 100 ms once a call has done CLOCK_AFTER_STEPS steps, on the response and in mathEqual.
  const { response, gold } = HEAVY;
  assert.equal(verify(response, gold, { mode: "eval", budgetMs: Infinity }).correct, true);
  const prepared = prepareGold(gold, { mode: "eval" });
  withSlowClock(() => {
    for (const g of [gold, prepared]) {
      const r = verify(response, g, { mode: "eval" });
      assert.equal(`${r.correct}:${r.reason}`, "false:timeout");
    }
    assert.deepEqual(mathEqual(response.slice(7, -1), gold), { equal: false, reason: "timeout" });
    // Reward mode has no clock: the same pair is decided by counted steps alone.
    assert.equal(verify(response, gold).correct, true);
  });
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

Deno.test("no fixture pair needs a tenth of CLOCK_AFTER_STEPS (eval mode's margin)", () => {
  // The eval-mode deadline is consulted only past CLOCK_AFTER_STEPS; every pair here
  // (MATH-500 correct, perturbed and mismatched, the labelled forms, symbolic pairs) is
  // decided the same within a tenth of it, so the margin stays at least 10x.
  const budgetSteps = CLOCK_AFTER_STEPS / 10;
  for (const [response, gold] of PAIRS) {
    const full = verify(response, gold, { mode: "eval", budgetMs: Infinity });
    const tight = verify(response, gold, { mode: "eval", budgetMs: Infinity, budgetSteps });
    assert.deepEqual(tight, full, `${response} vs ${gold}`);
  }
});
