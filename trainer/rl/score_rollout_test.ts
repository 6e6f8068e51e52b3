import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { DEFAULT_RL_CONFIG, type RlConfig } from "./config.ts";
import { rolloutScoreOptions, scoreRollout } from "./score_rollout.ts";

Deno.test("rolloutScoreOptions() gives the verifier the question unless rl.reward.problemNouns is off", () => {
  const rl: RlConfig = {
    ...DEFAULT_RL_CONFIG,
    reward: { mode: "binary", budgetMs: 0, problemNouns: true },
    maxNewTokens: 32,
    overlong: { buffer: 4, factor: 0.5, filter: false },
  };
  const question = "Tom has 5 bananas and buys 7 more. How many bananas does he have?";
  deepStrictEqual(rolloutScoreOptions(rl, question), {
    mode: "binary",
    budgetMs: 0,
    maxNewTokens: 32,
    overlongBuffer: 4,
    overlongFactor: 0.5,
    problem: question,
  });
  const off: RlConfig = { ...rl, reward: { ...rl.reward, problemNouns: false } };
  const offOptions = rolloutScoreOptions(off, question);
  strictEqual("problem" in offOptions, false);
  // The rollout "#### 12 bananas" is correct with the rule, wrong without it.
  const rollout = { text: "7 + 5 = 12\n#### 12 bananas", length: 8, truncated: false };
  strictEqual(scoreRollout(rollout, "12", rolloutScoreOptions(rl, question)).reward, 1);
  strictEqual(scoreRollout(rollout, "12", offOptions).reward, 0);
});
