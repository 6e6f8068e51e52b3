// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import type { EvalSampleRecord } from "./eval_records.ts";
import {
  defaultKs,
  majorityCorrect,
  powersOfTwoUpTo,
  summarizeEval,
  voteClasses,
} from "./eval_summary.ts";
import { majAtK } from "./maj_at_k.ts";
import { majorityVote } from "./majority_vote.ts";
import { scoreProblems } from "./score_problems.ts";
import { mulberry32 } from "../internal/random.ts";
import { prepareGold } from "../verify/prepare_gold.ts";
import { verify, verifyReadingNouns } from "../verify/verify.ts";

/** All k-subsets of {0..n-1}. */
function* subsets(n: number, k: number, start = 0, chosen: number[] = []): Generator<number[]> {
  if (chosen.length === k) {
    yield chosen;
    return;
  }
  for (let i = start; i <= n - (k - chosen.length); i++) {
    yield* subsets(n, k, i + 1, [...chosen, i]);
  }
}

/** A random problem: n samples with answers drawn from a few strings (some equivalent). */
function randomProblem(random: () => number, id: string, n: number): EvalSampleRecord[] {
  const pool = ["1/2", "0.5", "\\frac12", "3", "7", null];
  const answers = Array.from({ length: n }, () => pool[Math.floor(random() * pool.length)]);
  const goldIsHalf = random() < 0.5;
  const subject = random() < 0.5 ? "Algebra" : "Geometry";
  const level = 1 + Math.floor(random() * 3);
  const votes = voteClasses(answers);
  return answers.map((answer, i) => ({
    id,
    sample: i,
    gold: goldIsHalf ? "0.5" : "3",
    text: "",
    answer,
    correct: answer === null
      ? false
      : goldIsHalf
      ? ["1/2", "0.5", "\\frac12"].includes(answer)
      : answer === "3",
    reason: answer === null ? "no-answer" : "mismatch",
    vote: votes[i],
    tokens: i,
    stop: "eos",
    subject,
    level,
  }));
}

function randomRecords(seed: number, problems: number, n: number): EvalSampleRecord[] {
  const random = mulberry32(seed);
  return Array.from({ length: problems }, (_, p) => randomProblem(random, `p${p}`, n)).flat();
}

function byProblem(records: readonly EvalSampleRecord[]): EvalSampleRecord[][] {
  const map = new Map<string, EvalSampleRecord[]>();
  for (const r of records) map.set(r.id, [...(map.get(r.id) ?? []), r]);
  return [...map.keys()].sort().map((id) => map.get(id)!);
}

Deno.test("summarizeEval() pass@k table equals exact enumeration over k-subsets (tolerance 1e-12)", () => {
  for (const n of [1, 2, 3, 4, 5, 8]) {
    const records = randomRecords(100 + n, 6, n);
    const summary = summarizeEval(records);
    assert.deepEqual(summary.ks, defaultKs(n));
    for (const k of summary.ks) {
      // Brute force: the fraction of k-subsets holding a correct sample, averaged over problems.
      const perProblem = byProblem(records).map((samples) => {
        let hit = 0;
        let total = 0;
        for (const s of subsets(n, k)) {
          total++;
          if (s.some((i) => samples[i].correct)) hit++;
        }
        return hit / total;
      });
      const brute = perProblem.reduce((a, b) => a + b, 0) / perProblem.length;
      assert.ok(
        Math.abs(summary.overall.passAtK[k].mean - brute) < 1e-12,
        `n=${n} k=${k}: ${summary.overall.passAtK[k].mean} vs ${brute}`,
      );
    }
  }
});

Deno.test("summarizeEval() maj@k table equals a brute-force vote over the first k answers", () => {
  for (const n of [1, 3, 4, 8]) {
    const records = randomRecords(200 + n, 8, n);
    const summary = summarizeEval(records);
    for (const k of summary.ks) {
      const perProblem = byProblem(records).map((samples) => {
        // Brute force: count, for each of the first k answers, how many of the first k are
        // equivalent to it (by the verifier); the first answer with the top count wins.
        const first = samples.slice(0, k);
        let best = -1;
        let bestCount = 0;
        first.forEach((s, i) => {
          if (s.answer === null) return;
          const count = first.filter((t) =>
            t.answer !== null && majorityVote([s.answer, t.answer]).count === 2
          ).length;
          if (count > bestCount) {
            best = i;
            bestCount = count;
          }
        });
        const brute = best >= 0 && first[best].correct === true;
        assert.equal(
          brute,
          majAtK(first.map((s) => ({ answer: s.answer, correct: s.correct === true })), k),
        );
        return brute ? 1 : 0;
      });
      const mean = perProblem.reduce((a: number, b: number) => a + b, 0) / perProblem.length;
      assert.ok(Math.abs(summary.overall.majAtK[k].mean - mean) < 1e-12, `n=${n} k=${k}`);
    }
  }
});

Deno.test("summarizeEval() agrees with scoreProblems() on means and intervals (tolerance 1e-12)", () => {
  const records = randomRecords(7, 12, 8);
  const summary = summarizeEval(records);
  const problems = byProblem(records).map((s) => ({
    correct: s.map((r) => r.correct === true),
    answers: s.map((r) => r.answer),
  }));
  const report = scoreProblems(problems, { ks: summary.ks });
  for (const k of summary.ks) {
    for (
      const [a, b] of [
        [summary.overall.passAtK[k], report.passAtK[k]],
        [summary.overall.majAtK[k], report.majAtK![k]],
      ]
    ) {
      assert.ok(Math.abs(a.mean - b.mean) < 1e-12);
      assert.ok(Math.abs(a.lower - b.lower) < 1e-12);
      assert.ok(Math.abs(a.upper - b.upper) < 1e-12);
    }
  }
  assert.ok(Math.abs(summary.overall.avg.mean - report.avg.mean) < 1e-12);
});

Deno.test("summarizeEval() per-subject and per-level tables equal summaries of the subsets", () => {
  const records = randomRecords(11, 20, 4);
  const summary = summarizeEval(records);
  const subjects = Object.keys(summary.bySubject!);
  assert.deepEqual(subjects, [...subjects].sort());
  for (const s of subjects) {
    const sub = summarizeEval(records.filter((r) => r.subject === s));
    assert.deepEqual(summary.bySubject![s], sub.overall);
  }
  for (const l of Object.keys(summary.byLevel!)) {
    const sub = summarizeEval(records.filter((r) => r.level === Number(l)));
    assert.deepEqual(summary.byLevel![l], sub.overall);
  }
  const total = Object.values(summary.bySubject!).reduce((a, m) => a + m.problems, 0);
  assert.equal(total, summary.problems);
});

Deno.test("summarizeEval() is deterministic and independent of record order", () => {
  const records = randomRecords(3, 10, 4);
  const a = JSON.stringify(summarizeEval(records, { config: { x: 1 } }));
  const b = JSON.stringify(summarizeEval(records, { config: { x: 1 } }));
  assert.equal(a, b);
  const shuffled = [...records].reverse();
  assert.equal(JSON.stringify(summarizeEval(shuffled, { config: { x: 1 } })), a);
});

Deno.test("summarizeEval() skips prompts with an unusable gold and checks sample counts", () => {
  const records = randomRecords(5, 3, 2);
  const unusable = records.filter((r) => r.id === "p1").map((r) => ({
    ...r,
    correct: null,
    reason: "gold-unparseable" as const,
  }));
  const summary = summarizeEval([...records.filter((r) => r.id !== "p1"), ...unusable]);
  assert.deepEqual(summary.skipped, ["p1"]);
  assert.equal(summary.problems, 2);
  assert.throws(() => summarizeEval([]), RangeError);
  assert.throws(() => summarizeEval(unusable), /all 1 prompts were skipped/);
  assert.throws(() => summarizeEval(records.slice(0, 5)), /prompt "p2" must have samples 0\.\.1/);
});

Deno.test("voteClasses() are prefix-consistent with majorityVote() and majorityCorrect() with majAtK()", () => {
  const random = mulberry32(9);
  for (let trial = 0; trial < 50; trial++) {
    const records = randomProblem(random, "x", 8);
    const answers = records.map((r) => r.answer);
    const votes = voteClasses(answers);
    for (let k = 1; k <= 8; k++) {
      const { classes } = majorityVote(answers.slice(0, k));
      for (const members of classes) for (const i of members) assert.equal(votes[i], members[0]);
      const correct = records.map((r) => r.correct === true);
      assert.equal(
        majorityCorrect(votes, correct, k),
        majAtK(answers.map((a, i) => ({ answer: a, correct: correct[i] })), k),
      );
    }
  }
  assert.throws(() => majorityCorrect([0], [true], 2), RangeError);
  assert.throws(() => powersOfTwoUpTo(0), RangeError);
});

Deno.test("defaultKs() ends at n: pass@n counts every sample when n is not a power of two", () => {
  assert.deepEqual(defaultKs(1), [1]);
  assert.deepEqual(defaultKs(3), [1, 2, 3]);
  assert.deepEqual(defaultKs(8), [1, 2, 4, 8]);
  assert.deepEqual(defaultKs(10), [1, 2, 4, 8, 10]);
  assert.throws(() => defaultKs(0), RangeError);
});

Deno.test("voteClasses() with the problem: a number and the same number with the problem's noun vote together", () => {
  const problem = "Ann had 3 dozen tulips and lost 4 tulips. How many tulips are left?";
  const answers = ["32 tulips", "32", "4 dozen", "32 pears", null, "\\boxed{32}", "32 tulips"];
  // "4 dozen" keeps its noun (a multiplier); "pears" is not in the problem.
  assert.deepEqual(voteClasses(answers, { problem, gold: "32" }), [0, 0, 2, 3, null, 0, 0]);
  assert.deepEqual(
    voteClasses(answers, { problem, gold: prepareGold("32", { mode: "eval" }) }),
    [0, 0, 2, 3, null, 0, 0],
  );
  // Without the problem or the gold, nouns are part of the answer (as before).
  assert.deepEqual(voteClasses(answers), [0, 1, 2, 3, null, 1, 0]);
  assert.deepEqual(voteClasses(answers, { problem }), [0, 1, 2, 3, null, 1, 0]);
  assert.deepEqual(voteClasses(answers, { gold: "32" }), [0, 1, 2, 3, null, 1, 0]);
});

Deno.test("voteClasses() drops the problem's nouns exactly where verify() scores them dropped", () => {
  // Found by review: for a gold that is not a plain number, verify() keeps "1,250 tulips"
  // (false) but the votes dropped the noun, so the majority "1,250" class was headed by a
  // false sample: maj@4 false with 2 of 4 samples correct.
  const problem = "A farm has 3 pens with tulips. How many tulips are there in all?";
  for (const [goldText, num] of [["1{,}250", "1,250"], ["\\frac{24}{2}", "12"], ["12", "12"]]) {
    const gold = prepareGold(goldText, { mode: "eval" });
    const texts = [`\\boxed{${num} tulips}`, `\\boxed{${num}}`, `\\boxed{${num}}`, "\\boxed{7}"];
    const checks = texts.map((t) => verify(t, gold, { mode: "eval", problem }));
    const correct = checks.map((c) => c.correct === true);
    const votes = voteClasses(checks.map((c) => c.extracted), { problem, gold });
    const plain = goldText === "12";
    assert.deepEqual(correct, [plain, true, true, false], goldText);
    assert.deepEqual(votes, plain ? [0, 0, 0, 3] : [0, 1, 1, 3], goldText);
    assert.equal(majorityCorrect(votes, correct, 4), true, goldText);
    assert.deepEqual(
      voteClasses(checks.map((c) => c.extracted), { problem, gold: goldText }),
      votes,
    );
    // Samples in one class are scored alike.
    for (let i = 0; i < votes.length; i++) {
      assert.equal(correct[i], correct[votes[i]!], `${goldText}: sample ${i}`);
    }
  }
});

Deno.test("voteClasses() with verifyReadingNouns()'s readings: the same classes, the rule run only where verify() did not", () => {
  const problem = "Ann had 3 dozen tulips and lost 4 tulips. How many tulips are left?";
  const texts = [
    "\\boxed{32 tulips}", // correct: verify() does not need the rule
    "\\boxed{33 tulips}", // wrong: verify() ran the rule ("33")
    "\\boxed{32}",
    "\\boxed{4 dozen}", // verify() ran it: no reading (null)
    "\\boxed{33}",
    "no boxed answer here",
    "\\boxed{32 pears}",
    "\\boxed{33 tulips}",
  ];
  for (const goldText of ["32", "33", "\\frac{64}{2}", "1{,}250"]) {
    const gold = prepareGold(goldText, { mode: "eval" });
    const read = texts.map((t) => verifyReadingNouns(t, gold, { mode: "eval", problem }));
    const answers = read.map((r) => r.result.extracted);
    const nouns = read.map((r) => r.nouns);
    assert.deepEqual(
      voteClasses(answers, { problem, gold, nouns }),
      voteClasses(answers, { problem, gold }),
      goldText,
    );
  }
  // The readings given are used, not read again: a reading that says "12" joins the class of 12.
  const answers = ["12 tulips", "13 tulips", "12"];
  const gold = prepareGold("12", { mode: "eval" });
  assert.deepEqual(voteClasses(answers, { problem, gold }), [0, 1, 0]);
  assert.deepEqual(voteClasses(answers, { problem, gold, nouns: [undefined, "12", null] }), [
    0,
    0,
    0,
  ]);
});
