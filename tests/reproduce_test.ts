// A 2-run miniature experiment through `reproduce()`: it trains, evaluates and writes the results
// page with its charts; a killed run resumes from its checkpoint and a finished one is skipped.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { exists } from "../internal/exists.ts";
import { join } from "node:path";
import { reproduce } from "../cli/reproduce.ts";
import { loadConfig } from "../cli/load_config.ts";
import { experimentRuns, readExperiment } from "../eval/experiment_config.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { QUIET, RL_OVERRIDES } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

Deno.test({
  name: "reproduce() runs a 2-run experiment, writes the page and charts, resumes a killed run " +
    "and skips finished ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const experimentPath = join(dir, "mini.yaml");
      const results = join(dir, "results", "mini.md");
      // JSON is YAML: the experiment file.
      await Deno.writeTextFile(
        experimentPath,
        JSON.stringify({
          name: "mini",
          outDir: join(dir, "runs"),
          results,
          overrides: [...RL_OVERRIDES, "--trainer.steps=2"],
          seeds: [0],
          baseline: "dapo",
          settings: [
            { name: "dapo", overrides: ["--rl.losses=[{name: clipped_pg}]"] },
            {
              name: "align",
              overrides: [
                "--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1}]",
              ],
            },
          ],
          eval: { data: "arithmetic", limit: 2, k: 2, maxNewTokens: 20 },
        }),
      );
      const lines: string[] = [];
      const log = (line: string) => lines.push(line);

      // The first setting alone.
      const first = await reproduce(experimentPath, { settings: ["dapo"], log });
      deepStrictEqual(first.runs.map((r) => [r.name, r.action]), [
        ["dapo_seed0", "trained"],
        ["align_seed0", "not selected"],
      ]);
      deepStrictEqual(first.pending, ["align_seed0"]);

      // The second run is killed after step 1 (a checkpoint every step).
      const experiment = await readExperiment(experimentPath);
      const alignRun = experimentRuns(experiment, { settings: ["align"] })[0];
      const halted = await runRl(await loadConfig(undefined, { overrides: alignRun.overrides }), {
        ...QUIET,
        haltAfterStep: 1,
      });
      strictEqual(halted.halted, true);

      // The whole grid: the finished run is skipped, the killed one resumed.
      const second = await reproduce(experimentPath, { log });
      deepStrictEqual(second.runs.map((r) => [r.name, r.action]), [
        ["dapo_seed0", "skipped"],
        ["align_seed0", "resumed"],
      ]);
      strictEqual(second.runs[1].resumedFrom, join(alignRun.runDir, "step_000001"));
      deepStrictEqual(second.pending, []);
      const page = await Deno.readTextFile(results);
      ok(page.startsWith("# Results: mini"), page.slice(0, 80));
      ok(/\| main \| dapo \| 1 \| \d+\.\d \|/.test(page), "no dapo row");
      ok(/\| main \| align \| 1 \| \d+\.\d \|/.test(page), "no align row");
      ok(page.includes("| start | `models/arithmetic-tiny` (before RL)"), "no start row");
      ok(page.includes("| align | 0 | "), "no paired difference row");
      ok(page.includes("hidden_align"), "the config differences do not name the align term");
      for (const file of ["final_pass1.svg", "main_heldout.svg", "main_cos_correct.svg"]) {
        const svg = await Deno.readTextFile(join(dir, "results", "mini", file));
        ok(svg.startsWith("<svg"), `${file} is not an SVG`);
        ok(page.includes(`](mini/${file})`), `the page does not link ${file}`);
      }
      for (const run of ["dapo_seed0", "align_seed0"]) {
        const summary = join(dir, "runs", run, "eval_step000002", "summary.json");
        strictEqual(JSON.parse(await Deno.readTextFile(summary)).problems, 2);
      }

      // Again: nothing to train or evaluate; the page is written from what is there.
      const timing = join(dir, "runs", "dapo_seed0", "eval_step000002", "timing.jsonl");
      const before = await Deno.readTextFile(timing);
      const third = await reproduce(experimentPath, { log });
      deepStrictEqual(third.runs.map((r) => r.action), ["skipped", "skipped"]);
      strictEqual(await Deno.readTextFile(timing), before);

      // A finished evaluation is not reused once the model it evaluated changed: refused, naming it.
      const finalWeights = join(dir, "runs", "dapo_seed0", "final", "model.safetensors");
      const original = await Deno.readFile(finalWeights);
      const flipped = original.slice();
      flipped[flipped.length - 7] ^= 0x40;
      await Deno.writeFile(finalWeights, flipped);
      let refused = "";
      await reproduce(experimentPath, { log }).catch((e) => (refused = e.message));
      ok(refused.includes(`file "${finalWeights}" changed: recorded`), refused);
      // The advice is reproduce's (delete the folder), not deno task eval's flags.
      ok(refused.includes(`delete "${join(dir, "runs", "dapo_seed0", "eval_step")}`), refused);
      ok(!refused.includes("--overwrite"), refused);
      await Deno.writeFile(finalWeights, original);

      // A run folder the experiment no longer describes is an error naming the key.
      const changed = (await Deno.readTextFile(experimentPath)).replace(
        '"--trainer.steps=2"',
        '"--trainer.steps=2", "--trainer.lr=2e-3"',
      );
      await Deno.writeTextFile(experimentPath, changed);
      let message = "";
      await reproduce(experimentPath, { log }).catch((e) => (message = e.message));
      ok(/key trainer\.lr of its checkpoint .* differs/.test(message), message);
    }),
});

Deno.test({
  name: "reproduce(): raising trainer.steps continues a finished run exactly as a longer run goes",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const experimentPath = join(dir, "grow.yaml");
      const write = (steps: number) =>
        Deno.writeTextFile(
          experimentPath,
          JSON.stringify({
            name: "grow",
            outDir: join(dir, "runs"),
            results: join(dir, "grow.md"),
            overrides: [...RL_OVERRIDES, `--trainer.steps=${steps}`],
            settings: [{
              name: "align",
              overrides: ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1}]"],
            }],
            eval: { data: "arithmetic", limit: 1, k: 1, maxNewTokens: 8 },
          }),
        );
      await write(2);
      await reproduce(experimentPath, { log: () => {}, evaluate: false });
      await write(3);
      const grown = await reproduce(experimentPath, { log: () => {}, evaluate: false });
      deepStrictEqual(grown.runs.map((r) => r.action), ["resumed"]);
      // The same run straight to 3 steps (runRl evaluates at the start by default, as reproduce;
      // this config evaluates only after the last step).
      const [run] = experimentRuns(await readExperiment(experimentPath));
      const straight = await runRl(
        await loadConfig(undefined, {
          overrides: [...run.overrides, `--run.outDir=${join(dir, "straight")}`],
        }),
        QUIET,
      );
      // The same steps; the shorter run's evaluation after its last step is the one extra.
      const lines = async (runDir: string) =>
        (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n");
      const withoutEval = (line: string) =>
        Object.fromEntries(
          Object.entries(JSON.parse(line)).filter(([k]) => !k.startsWith("eval/")),
        );
      const [a, b] = [await lines(run.runDir), await lines(straight.runDir)];
      deepStrictEqual(a.map(withoutEval), b.map(withoutEval));
      strictEqual(a.at(-1), b.at(-1));
      ok(JSON.parse(a[2])["eval/prompts"] > 0 && JSON.parse(b[2])["eval/prompts"] === undefined);
    }),
});

/**
 * Writes a 1-step experiment `name` of a plain "dapo" setting followed by `second`, and checks
 * that `reproduce` refuses it with `message` (given the experiment's path) before anything
 * trains, not even the run before `second`.
 */
async function refusedBeforeTraining(
  dir: string,
  name: string,
  second: { name: string; overrides: string[] },
  message: (experimentPath: string) => string | RegExp,
): Promise<void> {
  const experimentPath = join(dir, `${name}.yaml`);
  await Deno.writeTextFile(
    experimentPath,
    JSON.stringify({
      name,
      outDir: join(dir, "runs"),
      results: join(dir, "results", `${name}.md`),
      overrides: [...RL_OVERRIDES, "--trainer.steps=1"],
      seeds: [0],
      settings: [{ name: "dapo", overrides: [] }, second],
      eval: { data: "arithmetic", limit: 2, k: 2, maxNewTokens: 20 },
    }),
  );
  await rejects(reproduce(experimentPath, { log: () => {} }), {
    name: "RangeError",
    message: message(experimentPath),
  });
  strictEqual(await exists(join(dir, "runs")), false);
}

Deno.test("reproduce() refuses a run with rl.eval.final false before training (the page reads the final held-out evaluation)", () =>
  withTempDir((dir) =>
    refusedBeforeTraining(
      dir,
      "off",
      { name: "quiet", overrides: ["--rl.eval.final=false"] },
      (path) =>
        `Cannot run experiment "${path}": run "quiet_seed0" has key "rl.eval.final" false: ` +
        `expected true (the results page reads the held-out evaluation after the last step)`,
    )
  ));

Deno.test("reproduce() checks every run against the model's config.json before the first one trains", () =>
  withTempDir((dir) =>
    refusedBeforeTraining(
      dir,
      "layer",
      // The bundled model has 2 layers: layer 3 passes the schema, not the model.
      {
        name: "deep",
        overrides: ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 3}]"],
      },
      (path) =>
        new RegExp(
          `^Cannot run experiment "${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}": ` +
            `run "deep_seed0": Cannot run RL: key "rl\\.losses\\[1\\]\\.layer" must be ` +
            `"final" or a decoder layer in \\[0, 0\\] \\(the model has 2 layers`,
        ),
    )
  ));
