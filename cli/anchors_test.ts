import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { main } from "./anchors.ts";

Deno.test("deno task anchors: consistent counts, and the same report for the same seed", async () => {
  const args = ["--prompts", "3", "--samples", "4", "--seed", "5", "--json"];
  const log = console.log;
  console.log = () => {};
  try {
    const report = (await main(args))!;
    strictEqual(report.rollouts, 12);
    ok(report.correct <= report.rollouts && report.marked <= report.rollouts);
    ok(report.mixedGroups <= 3);
    // Every same-prompt pair of marked rollouts is of exactly one kind.
    const { correctCorrect, incorrectIncorrect, correctIncorrect, all } = report.anchors;
    strictEqual(
      correctCorrect.count + incorrectIncorrect.count + correctIncorrect.count,
      all.count,
    );
    ok(all.count <= 3 * 6);
    strictEqual(report.random.all.count, 3 * 6);
    for (
      const p of [correctCorrect, incorrectIncorrect, correctIncorrect, all, report.random.all]
    ) {
      ok(p.count === 0 ? Number.isNaN(p.mean) : Math.abs(p.mean) <= 1 + 1e-6, `mean ${p.mean}`);
    }
    const again = (await main(args))!;
    deepStrictEqual({ ...again, seconds: 0 }, { ...report, seconds: 0 });
  } finally {
    console.log = log;
  }
});
