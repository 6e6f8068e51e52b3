// Copyright 2025 the halo authors. MIT license.
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { experimentRuns, parseExperiment, readExperiment } from "./experiment_config.ts";

const BASE = "name: x\noutDir: out/x\n";

Deno.test("parseExperiment() fills defaults and experimentRuns() orders runs seed by seed", () => {
  const e = parseExperiment(
    BASE + "seeds: [3, 4]\nbaseline: a\nsettings:\n  - {name: a}\n" +
      "  - {name: b, axis: weight, seeds: [4], overrides: [--trainer.lr=1e-3]}\n",
    "x.yaml",
  );
  strictEqual(e.base, null);
  strictEqual(e.results, "docs/results/x.md");
  deepStrictEqual(e.eval, {
    data: "arithmetic",
    k: 8,
    temperature: 1,
    topP: 1,
    maxNewTokens: 64,
    limit: 200,
    seed: 0,
    backend: "cpu",
  });
  const runs = experimentRuns(e);
  deepStrictEqual(runs.map((r) => r.name), ["a_seed3", "b_seed4", "a_seed4"]);
  deepStrictEqual(runs[1].overrides, [
    "--trainer.lr=1e-3",
    "--run.outDir=out/x",
    "--run.name=b_seed4",
    "--run.seed=4",
  ]);
  deepStrictEqual(experimentRuns(e, { settings: ["b"] }).map((r) => r.name), ["b_seed4"]);
  throws(() => experimentRuns(e, { settings: ["c"] }), /"c" is not one of a, b/);
});

Deno.test("parseExperiment() names the key of a bad value", () => {
  const bad: [string, RegExp][] = [
    ["name: x\nsettings: [{name: a}]\n", /key "outDir" must be a non-empty string/],
    [BASE + "settings: []\n", /key "settings" must be a non-empty list/],
    [BASE + "settings: [{name: a}, {name: a}]\n", /names "a" twice/],
    [BASE + "settings: [{name: a, seed: 1}]\n", /unknown key "settings\[0\]\.seed"/],
    [BASE + "settings: [{name: a, overrides: [trainer.lr=1]}]\n", /"settings\[0\]\.overrides"/],
    [BASE + "seeds: [1, 1]\nsettings: [{name: a}]\n", /key "seeds" must be .* distinct/],
    [BASE + "baseline: b\nsettings: [{name: a}]\n", /key "baseline" must name a setting/],
    [BASE + "settings: [{name: a}]\neval: {k: 0}\n", /key "eval\.k" must be a positive/],
    [BASE + "settings: [{name: a}]\neval: {k: '8'}\n", /key "eval\.k" must be a number/],
    [BASE + "settings: [{name: 'a b'}]\n", /key "settings\[0\]\.name" must use only/],
    [BASE + "settings: [{name: a}]\nsteps: 3\n", /unknown key "steps"/],
    ["a: [\n", /invalid YAML/],
  ];
  for (const [text, message] of bad) throws(() => parseExperiment(text, "x.yaml"), message);
});

Deno.test("readExperiment() reads experiments/hidden_align.yaml: 3 seeds of the main pair", async () => {
  const e = await readExperiment("experiments/hidden_align.yaml");
  const runs = experimentRuns(e, { settings: ["dapo", "hidden_align"] });
  strictEqual(runs.length, 6);
  // The pair differs only in the align term.
  deepStrictEqual(e.settings[0].overrides, []);
  strictEqual(e.settings[1].overrides.length, 1);
  strictEqual(e.settings.length, 11);
});
