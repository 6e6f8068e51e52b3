import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { buildRows, type ScoredGroup } from "./build_rows.ts";
import { scoreRollout } from "./score_rollout.ts";
import type { Rollout } from "./rollout.ts";

const TOL = 1e-12; // advantages are a few float64 operations

function rollout(group: number, text: string, length: number, truncated = false): Rollout {
  // One token per character of `text` padded to `length` tokens (offsets stop at the text's end).
  const tokenOffsets = Array.from({ length }, (_, t) => Math.min(t, text.length));
  return {
    group,
    promptIds: [1, 2, 3, 4],
    tokens: Array.from({ length }, (_, t) => 5 + (t % 7)),
    oldLogprobs: new Float64Array(length).fill(-1),
    text,
    tokenOffsets,
    stopReason: truncated ? "length" : "eos",
  };
}

const SCORE = {
  mode: "dapo",
  budgetMs: 0,
  maxNewTokens: 20,
  overlongBuffer: 4,
  overlongFactor: 1,
} as const;

function group(id: number, items: [string, number, boolean?][], gold: string): ScoredGroup {
  const rollouts = items.map(([text, length, truncated]) => rollout(id, text, length, truncated));
  return {
    rollouts,
    scores: rollouts.map((r, i) =>
      scoreRollout(
        { text: r.text, length: r.tokens.length, truncated: items[i][2] ?? false },
        gold,
        SCORE,
      )
    ),
  };
}

Deno.test("scoreRollout() applies the overlong penalty only past maxNewTokens − buffer", () => {
  const at = (length: number) =>
    scoreRollout({ text: "Answer: 7", length, truncated: length === 20 }, "7", SCORE);
  strictEqual(at(16).penalty, 0); // = 20 − 4: no penalty
  strictEqual(at(16).reward, 1);
  strictEqual(at(17).penalty, -0.25);
  strictEqual(at(20).penalty, -1);
  strictEqual(at(20).reward, 0);
  strictEqual(at(20).truncated, true);
  const wrong = scoreRollout({ text: "Answer: 8", length: 18, truncated: false }, "7", SCORE);
  strictEqual(wrong.reward, -1.5);
  const binary = scoreRollout({ text: "Answer: 8", length: 3, truncated: false }, "7", {
    ...SCORE,
    mode: "binary",
  });
  strictEqual(binary.reward, 0);
  strictEqual(
    scoreRollout({ text: "8", length: 1, truncated: false }, "7", SCORE).markerOffset,
    -1,
  );
});

Deno.test("scoreRollout() reads the problem's nouns only when given the problem", () => {
  const problem = "Ann has 3 bananas and buys 4. How many bananas does she have?";
  const at = (text: string, withProblem: boolean) =>
    scoreRollout(
      { text, length: 5, truncated: false },
      "7",
      withProblem ? { ...SCORE, problem } : SCORE,
    );
  strictEqual(at("#### 7 bananas", false).reward, -1);
  strictEqual(at("#### 7 bananas", true).reward, 1);
  strictEqual(at("#### 7 bananas", true).markerOffset, 0);
  strictEqual(at("#### 8 bananas", true).reward, -1);
  strictEqual(at("#### 7 dozen bananas", true).reward, -1);
});

Deno.test("buildRows() computes advantages per group over the shaped rewards", () => {
  const g0 = group(0, [["Answer: 7", 9], ["Answer: 6", 9], ["Answer: 7", 18]], "7");
  const g1 = group(1, [["Answer: 2", 9], ["Answer: 3", 9]], "3");
  const rows = buildRows([g0, g1], [], {
    advantage: "grpo",
    anchor: "before-marker",
    overlongFilter: false,
    seed: 0,
  });
  strictEqual(rows.length, 5);
  // Group 0 rewards: 1, −1, 1 − 0.5 = 0.5 (18 tokens: 2 into the 4-token buffer).
  const r0 = [1, -1, 0.5];
  const mean0 = (1 - 1 + 0.5) / 3;
  const std0 = Math.sqrt(r0.reduce((s, r) => s + (r - mean0) ** 2, 0) / 2);
  for (let i = 0; i < 3; i++) {
    const want = (r0[i] - mean0) / (std0 + 1e-6);
    strictEqual(Math.abs(rows[i].advantage - want) < TOL, true, `row ${i}`);
  }
  // Group 1 is normalised on its own: ±1/(√2 + 1e-6).
  const want1 = 1 / (Math.SQRT2 + 1e-6);
  strictEqual(Math.abs(rows[3].advantage + want1) < TOL, true);
  strictEqual(Math.abs(rows[4].advantage - want1) < TOL, true);
  deepStrictEqual(rows.map((r) => r.correct), [true, false, true, false, true]);
  deepStrictEqual(rows.map((r) => r.group), [0, 0, 0, 1, 1]);
});

Deno.test("buildRows() masks truncated responses out under overlong filtering only", () => {
  const g = group(0, [["Answer: 7", 9], ["Answer: 7 and on", 20, true], ["Answer: 6", 9]], "7");
  const options = { advantage: "grpo", anchor: "before-marker", seed: 0 } as const;
  const filtered = buildRows([g], [], { ...options, overlongFilter: true });
  deepStrictEqual(filtered.map((r) => r.policy), [true, false, true]);
  // The advantages still come from the whole group (the truncated rollout's reward included).
  const unfiltered = buildRows([g], [], { ...options, overlongFilter: false });
  deepStrictEqual(unfiltered.map((r) => r.policy), [true, true, true]);
  deepStrictEqual(filtered.map((r) => r.advantage), unfiltered.map((r) => r.advantage));
});

Deno.test("buildRows() keeps align-only groups out of the policy loss with advantage 0", () => {
  const mixed = group(0, [["Answer: 7", 9], ["Answer: 6", 9]], "7");
  const allCorrect = group(1, [["x Answer: 7", 11], ["y Answer: 7", 11]], "7");
  const rows = buildRows([mixed], [allCorrect], {
    advantage: "grpo",
    anchor: "before-marker",
    overlongFilter: false,
    seed: 0,
  });
  deepStrictEqual(rows.map((r) => r.policy), [true, true, false, false]);
  deepStrictEqual(rows.slice(2).map((r) => r.advantage), [0, 0]);
  // "x Answer: 7": the marker at character 2 is token 2; the anchor is token 1, after 4 prompt ids.
  strictEqual(rows[2].anchor, 4 + 1);
  // No marker: no anchor.
  const none = group(2, [["7", 1], ["6", 1]], "7");
  strictEqual(
    buildRows([none], [], {
      ...{ advantage: "grpo", anchor: "marker", overlongFilter: false, seed: 0 },
    })[0].anchor,
    -1,
  );
});

Deno.test("buildRows() draws each row's random anchor on its own, before the marker", () => {
  // "abcdefghij Answer: 7": one token per character, the marker at character 11 (token 11), so
  // a random anchor is a response token in [0, 11), i.e. a position in [4, 15) after 4 prompt ids.
  const text = "abcdefghij Answer: 7";
  const g0 = group(0, Array.from({ length: 6 }, () => [text, 16] as [string, number]), "7");
  const g1 = group(1, Array.from({ length: 6 }, () => [text, 16] as [string, number]), "8");
  const anchors = (seed: number) =>
    buildRows([g0, g1], [], { advantage: "grpo", anchor: "random", overlongFilter: false, seed })
      .map((r) => r.anchor);
  const a = anchors(3);
  for (const x of a) strictEqual(Number.isInteger(x) && x >= 4 && x < 15, true, `anchor ${x}`);
  // Twelve rows with one shared draw would share one anchor; independent draws spread out.
  strictEqual(new Set(a).size > 3, true, `anchors ${a}`);
  deepStrictEqual(anchors(3), a); // the same seed, the same anchors
  strictEqual(anchors(4).join() !== a.join(), true); // another seed, other anchors
});
