import { ok, strictEqual, throws } from "node:assert/strict";
import { groupAdvantages } from "./group_advantages.ts";

const near = (a: number, b: number) => ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

Deno.test("groupAdvantages() standardises with the sample standard deviation (grpo)", () => {
  // Group 5 (interleaved with group 2): rewards 1, 2, 6; mean 3, sample variance
  // ((−2)² + (−1)² + 3²) / 2 = 7. Group 2: 0, 1; mean 0.5, sample variance 0.5.
  const rewards = [1, 0, 2, 1, 6];
  const groups = [5, 2, 5, 2, 5];
  const adv = groupAdvantages({ rewards, groups, eps: 0 });
  near(adv[0], -2 / Math.sqrt(7));
  near(adv[2], -1 / Math.sqrt(7));
  near(adv[4], 3 / Math.sqrt(7));
  near(adv[1], -0.5 / Math.sqrt(0.5));
  near(adv[3], 0.5 / Math.sqrt(0.5));
  // The default eps 1e-6 is added to the standard deviation.
  near(groupAdvantages({ rewards, groups })[4], 3 / (Math.sqrt(7) + 1e-6));
});

Deno.test("groupAdvantages() only centres in drgrpo mode", () => {
  const adv = groupAdvantages({
    rewards: [1, 2, 6, 0, 1],
    groups: [0, 0, 0, 1, 1],
    mode: "drgrpo",
  });
  [-2, -1, 3, -0.5, 0.5].forEach((want, i) => near(adv[i], want));
});

Deno.test("groupAdvantages() gives 0 to a group of one and to a group of equal rewards", () => {
  for (const mode of ["grpo", "drgrpo"] as const) {
    const adv = groupAdvantages({ rewards: [3, 1, 1, 1], groups: [9, 4, 4, 4], mode });
    for (let i = 0; i < 4; i++) strictEqual(adv[i], 0, `${mode} [${i}]`);
  }
  strictEqual(groupAdvantages({ rewards: [], groups: [] }).length, 0);
});

Deno.test("groupAdvantages() names the wrong input", () => {
  throws(() => groupAdvantages({ rewards: [1, 2], groups: [0] }), {
    name: "RangeError",
    message:
      /"groups" must have 2 values \(one per sequence, like "rewards"\): current length is 1/,
  });
  throws(() => groupAdvantages({ rewards: [1, NaN], groups: [0, 0] }), {
    message: /"rewards\[1\]" must be a finite number: current value is NaN/,
  });
  throws(() => groupAdvantages({ rewards: [1, 2], groups: [0, 0.5] }), {
    message: /"groups\[1\]" must be an integer: current value is 0.5/,
  });
  throws(
    // deno-lint-ignore no-explicit-any
    () => groupAdvantages({ rewards: [1], groups: [0], mode: "rloo" as any }),
    {
      name: "TypeError",
      message: /option "mode" must be one of "grpo", "drgrpo": current value is "rloo"/,
    },
  );
  throws(() => groupAdvantages({ rewards: [1], groups: [0], eps: -1 }), {
    message: /option "eps" must be a finite number ≥ 0: current value is -1/,
  });
});
