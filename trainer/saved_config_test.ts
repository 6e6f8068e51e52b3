import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "./config.ts";
import { DEFAULT_RL_CONFIG } from "./rl/config.ts";
import { withSavedConfigDefaults } from "./saved_config.ts";
import { validateConfig } from "./validate_config.ts";

/** The default RL config as JSON, less the keys named (as a checkpoint from before them). */
function savedWithout(model: string[], rl: string[]): Record<string, unknown> {
  const copy = structuredClone({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  for (const key of model) delete copy.model[key];
  for (const key of rl) delete copy.rl[key];
  return copy;
}

Deno.test("withSavedConfigDefaults() lets a checkpoint from before model.kvDtype and rl.rollout validate", () => {
  const old = savedWithout(["kvDtype"], ["rollout"]);
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /kvDtype|rollout/);
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.model.kvDtype, "f32");
  assert.deepEqual(filled, validateConfig({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }));
  // The input is not modified.
  assert.equal("kvDtype" in (old.model as object), false);
});

Deno.test("withSavedConfigDefaults() fills model.submitEveryLayers with null (the adapter's default) and keeps a saved one", () => {
  const old = savedWithout(["submitEveryLayers"], []);
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /submitEveryLayers/);
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.model.submitEveryLayers, null);
  assert.deepEqual(filled, validateConfig({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }));
  const saved = savedWithout([], []);
  (saved.model as { submitEveryLayers: number }).submitEveryLayers = 3;
  const kept = withSavedConfigDefaults(saved) as { model: { submitEveryLayers: number } };
  assert.equal(kept.model.submitEveryLayers, 3);
});

Deno.test("withSavedConfigDefaults() lets a checkpoint from before rl.enableThinking and rl.stopTokenIds validate", () => {
  const old = savedWithout([], ["enableThinking", "stopTokenIds"]);
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /enableThinking|stopTokenIds/);
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.rl.enableThinking, false);
  assert.deepEqual(filled.rl.stopTokenIds, []);
  assert.deepEqual(filled, validateConfig({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }));
  assert.equal("stopTokenIds" in (old.rl as object), false);
  // A saved list is kept.
  const saved = savedWithout([], []);
  (saved.rl as { stopTokenIds: number[] }).stopTokenIds = [7];
  const kept = withSavedConfigDefaults(saved) as { rl: { stopTokenIds: number[] } };
  assert.deepEqual(kept.rl.stopTokenIds, [7]);
});

Deno.test("withSavedConfigDefaults() keeps what the saved config sets", () => {
  const saved = savedWithout([], []);
  (saved.model as { kvDtype: string }).kvDtype = "f16";
  const filled = withSavedConfigDefaults(saved) as { model: { kvDtype: string } };
  assert.equal(filled.model.kvDtype, "f16");
  for (const value of [null, 3, "x", [1]]) assert.equal(withSavedConfigDefaults(value), value);
  assert.deepEqual(withSavedConfigDefaults({ run: {} }), { run: {} });
});

Deno.test("withSavedConfigDefaults() fills rl.reward.problemNouns: true for a checkpoint from before it", () => {
  const old = savedWithout([], []);
  delete (old.rl as { reward: Record<string, unknown> }).reward.problemNouns;
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /problemNouns/);
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.rl.reward.problemNouns, true);
  assert.deepEqual(filled, validateConfig({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }));
  assert.equal("problemNouns" in (old.rl as { reward: object }).reward, false);
  // A saved value is kept.
  const off = savedWithout([], []);
  (off.rl as { reward: { problemNouns: boolean } }).reward.problemNouns = false;
  const kept = withSavedConfigDefaults(off) as { rl: { reward: { problemNouns: boolean } } };
  assert.equal(kept.rl.reward.problemNouns, false);
});

Deno.test("withSavedConfigDefaults() fills eval.final and rl.eval.final: true for a checkpoint from before them", () => {
  const old = savedWithout([], []);
  delete (old.rl as { eval: Record<string, unknown> }).eval.final;
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /rl\.eval\.final/);
  delete (old.eval as Record<string, unknown>).final;
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.rl.eval.final, true);
  assert.equal(filled.eval.final, true);
  assert.deepEqual(filled, validateConfig({ ...DEFAULT_CONFIG, rl: DEFAULT_RL_CONFIG }));
  assert.equal("final" in (old.rl as { eval: object }).eval, false);
  assert.equal("final" in (old.eval as object), false);
  // Saved values are kept.
  const off = savedWithout([], []);
  (off.rl as { eval: { final: boolean } }).eval.final = false;
  (off.eval as { final: boolean }).final = false;
  const kept = withSavedConfigDefaults(off) as {
    eval: { final: boolean };
    rl: { eval: { final: boolean } };
  };
  assert.equal(kept.rl.eval.final, false);
  assert.equal(kept.eval.final, false);
});

Deno.test("withSavedConfigDefaults() reads an RL checkpoint's data.task suite as arithmetic (what those runs used)", () => {
  const old = savedWithout([], []) as Record<string, Record<string, unknown>>;
  old.trainer.mode = "rl";
  old.data.task = "suite";
  assert.throws(() => validateConfig(old, { source: "meta.json" }), /"data\.task"/);
  const filled = validateConfig(withSavedConfigDefaults(old), { source: "meta.json" });
  assert.equal(filled.data.task, "arithmetic");
  assert.equal(old.data.task, "suite");
  // An SFT run's suite is what it trained on: kept.
  const sft = savedWithout([], []) as Record<string, Record<string, unknown>>;
  sft.trainer.mode = "sft";
  sft.data.task = "suite";
  assert.equal(
    (withSavedConfigDefaults(sft) as { data: { task: string } }).data.task,
    "suite",
  );
});

// Configs of real checkpoints written by earlier commits (meta.json's config, copied unchanged;
// the commit is in the file name): each must still validate once filled, so that a run from
// before a new key was added resumes, reproduces and exports. A new key that breaks this needs
// its old value in withSavedConfigDefaults.
for (const name of ["rl_hidden_align_31ddbe7", "rl_prompt_file_cc0db4f", "sft_50072f2"]) {
  Deno.test(`withSavedConfigDefaults() lets the saved config of ${name} validate`, async () => {
    const path = new URL(`../tests/fixtures/saved_configs/${name}.json`, import.meta.url);
    const saved = JSON.parse(await Deno.readTextFile(path));
    const config = validateConfig(withSavedConfigDefaults(saved), { source: `${name}.json` });
    assert.equal(config.rl.reward.problemNouns, true);
    assert.equal(config.rl.eval.final, true);
    assert.equal(config.eval.final, true);
    assert.equal(config.model.kvDtype, saved.model.kvDtype ?? "f32");
  });
}
