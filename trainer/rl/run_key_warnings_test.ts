import { deepStrictEqual, ok } from "node:assert/strict";
import { loadConfig } from "../../cli/load_config.ts";
import { rlRunKeyWarnings } from "./run_key_warnings.ts";

const RL = ["--trainer.mode=rl", "--model.path=models/arithmetic-tiny"];

/** The keys the warnings name, in order. */
function keys(warnings: readonly string[]): string[] {
  return warnings.map((w) => w.match(/^key "([^"]+)"/)?.[1] ?? w);
}

Deno.test("rlRunKeyWarnings() names the SFT-only keys an RL run sets but never reads", async () => {
  // The demo configs set nothing unread.
  for (const path of ["configs/rl_arith_dapo.yaml", "configs/rl_arith_hidden_align.yaml"]) {
    deepStrictEqual(rlRunKeyWarnings(await loadConfig(path)), [], path);
  }
  const config = await loadConfig(undefined, {
    overrides: [
      ...RL,
      "--trainer.batchSize=8",
      "--trainer.microBatches=2",
      "--eval.every=5",
      "--eval.samples=10",
      "--data.evalSize=50",
      "--data.suite.level=2",
      "--data.digits=1", // read: the arithmetic task
    ],
  });
  const warnings = rlRunKeyWarnings(config);
  deepStrictEqual(keys(warnings), [
    "trainer.batchSize",
    "trainer.microBatches",
    "eval.every",
    "eval.samples",
    "data.evalSize",
    "data.suite.level",
  ]);
  ok(
    warnings.every((w) => w.includes(`is set but not read with "trainer.mode" "rl"`)),
    warnings[0],
  );
  ok(warnings[4].includes(`"rl.data.evalSize"`), warnings[4]);
  // The same keys in an SFT run are read.
  deepStrictEqual(
    rlRunKeyWarnings({ ...config, trainer: { ...config.trainer, mode: "sft" } }),
    [],
  );
});

Deno.test("rlRunKeyWarnings() names the arithmetic keys unread with a prompt file or rl.data.trainSize", async () => {
  const file = await loadConfig(undefined, {
    overrides: [
      ...RL,
      "--rl.data.source=jsonl",
      "--rl.data.path=x.jsonl",
      "--data.digits=1",
      "--data.trainSize=50",
    ],
  });
  deepStrictEqual(keys(rlRunKeyWarnings(file)), ["data.digits", "data.trainSize"]);
  ok(rlRunKeyWarnings(file)[0].includes(`"rl.data.source" is "jsonl"`));
  const own = await loadConfig(undefined, {
    overrides: [...RL, "--data.trainSize=50", "--rl.data.trainSize=40"],
  });
  deepStrictEqual(keys(rlRunKeyWarnings(own)), ["data.trainSize"]);
  // Left to data.trainSize (rl.data.trainSize 0), it is read.
  deepStrictEqual(
    rlRunKeyWarnings(await loadConfig(undefined, { overrides: [...RL, "--data.trainSize=50"] })),
    [],
  );
  // The rl section's own warnings come first.
  deepStrictEqual(
    keys(rlRunKeyWarnings(
      await loadConfig(undefined, {
        overrides: [...RL, "--rl.alignKeepAllCorrect=true", "--eval.every=5"],
      }),
    )),
    ["rl.alignKeepAllCorrect", "eval.every"],
  );
});
