import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_CONFIG } from "../trainer/config.ts";
import { loadConfig } from "./load_config.ts";

async function withYaml(text: string, body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "run.yaml");
    await Deno.writeTextFile(path, text);
    await body(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadConfig() with no file and no overrides gives DEFAULT_CONFIG, frozen", async () => {
  const config = await loadConfig(undefined);
  deepStrictEqual(config, DEFAULT_CONFIG);
  ok(Object.isFrozen(config) && Object.isFrozen(config.data.ops));
});

Deno.test("loadConfig() reads configs/tiny_sft.yaml", async () => {
  const config = await loadConfig("configs/tiny_sft.yaml");
  strictEqual(config.run.name, "tiny_sft");
  strictEqual(config.model.path, "builtin:tiny");
  strictEqual(config.trainer.mode, "sft");
  strictEqual(config.trainer.lr, 3e-3);
  deepStrictEqual(config.data.ops, ["+", "-", "*"]);
  strictEqual(config.trainer.b2, DEFAULT_CONFIG.trainer.b2); // not in the file: the default
});

Deno.test("loadConfig() deep-merges the file over the defaults", async () => {
  await withYaml("trainer:\n  lr: 0.01\neval:\nmodel: {layers: 3}\n", async (path) => {
    const config = await loadConfig(path);
    strictEqual(config.trainer.lr, 0.01);
    strictEqual(config.trainer.steps, DEFAULT_CONFIG.trainer.steps);
    strictEqual(config.model.layers, 3);
    strictEqual(config.model.hidden, DEFAULT_CONFIG.model.hidden);
    deepStrictEqual(config.eval, DEFAULT_CONFIG.eval); // an empty section keeps the defaults
  });
  // A file with no keys at all is refused (see below).
});

Deno.test("loadConfig() applies overrides typed by the default, in order", async () => {
  const config = await loadConfig(undefined, {
    overrides: [
      "--trainer.lr=2e-6",
      "--trainer.steps=70", // beyond the default cosine warm-up (50 steps)
      "--model.tieEmbeddings=false",
      "--run.name=123", // a string stays a string
      "--data.ops=+,*",
      "--adapters.targets=[q_proj, v_proj]",
      "--adapters.kind=lora",
      "--adapters.rankPattern.q_proj=16",
      "--adapters.alphaPattern={v_proj: 8}",
      "trainer.steps=90", // the leading -- is optional, and later overrides win
    ],
  });
  strictEqual(config.trainer.lr, 2e-6);
  strictEqual(config.trainer.steps, 90);
  strictEqual(config.model.tieEmbeddings, false);
  strictEqual(config.run.name, "123");
  deepStrictEqual(config.data.ops, ["+", "*"]);
  deepStrictEqual(config.adapters.targets, ["q_proj", "v_proj"]);
  strictEqual(config.adapters.kind, "lora");
  deepStrictEqual(config.adapters.rankPattern, { q_proj: 16 });
  deepStrictEqual(config.adapters.alphaPattern, { v_proj: 8 });
});

Deno.test("loadConfig() takes a YAML list for a per-layer HILO schedule from an override", async () => {
  // The defaults are text forms ("uniform:4"); a list names each layer's value, as in YAML.
  const config = await loadConfig(undefined, {
    overrides: [
      "--adapters.kind=hilo",
      "--model.layers=2",
      "--adapters.hilo.experts=[1,3]",
      "--adapters.hilo.rank=[2, 4]",
    ],
  });
  deepStrictEqual(config.adapters.hilo.experts, [1, 3]);
  deepStrictEqual(config.adapters.hilo.rank, [2, 4]);
  // Text in brackets for a text key stays text.
  const text = await loadConfig(undefined, { overrides: ["--run.outDir=[runs]"] });
  strictEqual(text.run.outDir, "[runs]");
});

Deno.test("loadConfig() overrides win over the file", async () => {
  await withYaml("trainer:\n  lr: 0.01\n", async (path) => {
    const config = await loadConfig(path, { overrides: ["--trainer.lr=0.5"] });
    strictEqual(config.trainer.lr, 0.5);
  });
});

Deno.test("loadConfig() names the file, key, expectation and value of a bad value", async () => {
  await withYaml("trainer:\n  lr: -1\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "RangeError",
      message: `Cannot load config "${path}": key "trainer.lr" must be > 0: current value is -1`,
    });
  });
  await withYaml("trainer:\n  steps: ten\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "TypeError",
      message:
        `Cannot load config "${path}": key "trainer.steps" must be a number: current value is "ten"`,
    });
  });
  await withYaml("backend: gpu\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "RangeError",
      message: `Cannot load config "${path}": key "backend" must be one of "webgpu", "cpu", ` +
        `"auto": current value is "gpu"`,
    });
  });
  await withYaml("data:\n  ops: [+, /]\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "RangeError",
      message: /key "data\.ops\[1\]" must be one of "\+", "-", "\*": current value is "\/"/,
    });
  });
  await withYaml("trainer: 3\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "TypeError",
      message: `Cannot load config "${path}": key "trainer" must be a mapping: current value is 3`,
    });
  });
});

Deno.test("loadConfig() rejects unknown keys and suggests the closest one", async () => {
  await withYaml("trainer:\n  learningRate: 1\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "TypeError",
      message: new RegExp(
        `^Cannot load config "${path}": key "trainer.learningRate" is unknown: expected one of ` +
          `"mode", "steps", .*"eps", "keepActivations"$`,
      ),
    });
  });
  await withYaml("modle:\n  layers: 1\n", async (path) => {
    await rejects(loadConfig(path), {
      message: /key "modle" is unknown: .*\(did you mean "model"\?\)/,
    });
  });
  await rejects(loadConfig(undefined, { overrides: ["--trainer.lrr=1"] }), {
    name: "TypeError",
    message:
      /^Cannot load config "<defaults>": override "--trainer.lrr=1" sets unknown key "trainer.lrr": expected one of .* \(did you mean "lr"\?\)$/,
  });
  await rejects(loadConfig(undefined, { overrides: ["--backend.x=1"] }), {
    name: "TypeError",
    message:
      /override "--backend.x=1" sets unknown key "backend.x": "backend" is a value, not a section/,
  });
});

Deno.test("loadConfig() lists an rl.losses term's own keys for a typo in it, at any index", async () => {
  const alignKeys = '"name", "weight", "type", "anchor", "layer"';
  const yaml = "trainer:\n  mode: rl\nrl:\n  losses:\n    - { name: clipped_pg }\n" +
    "    - { name: hidden_align, layr: 0 }\n";
  await withYaml(yaml, async (path) => {
    await rejects(loadConfig(path), {
      name: "TypeError",
      message: `Cannot load config "${path}": key "rl.losses[1].layr" is unknown: expected one ` +
        `of ${alignKeys} (did you mean "layer"?)`,
    });
  });
  const override = "--rl.losses=[{name: hidden_align, anchr: marker}, {name: clipped_pg}]";
  await rejects(loadConfig(undefined, { overrides: ["--trainer.mode=rl", override] }), {
    name: "TypeError",
    message: `Cannot load config "<defaults>": key "rl.losses[0].anchr" (set by "${override}") ` +
      `is unknown: expected one of ${alignKeys} (did you mean "anchor"?)`,
  });
});

Deno.test("loadConfig() sets one key of an rl.losses term by the term's name or index", async () => {
  const file = "configs/rl_arith_hidden_align.yaml";
  const plain = await loadConfig(file);
  const config = await loadConfig(file, {
    overrides: [
      "--rl.losses.hidden_align.weight=0.5",
      "--rl.losses.hidden_align.anchor=marker",
      "--rl.losses.hidden_align.layer=0",
      "--rl.losses.1.type=mse-raw",
      "--rl.losses.0.clipHigh=0.3",
      "--rl.losses.clipped_pg.dualClip=3", // not in the file: typed by the term's default
    ],
  });
  deepStrictEqual(config.rl.losses, [
    { ...plain.rl.losses[0], clipHigh: 0.3, dualClip: 3 },
    { ...plain.rl.losses[1], weight: 0.5, anchor: "marker", layer: 0, type: "mse-raw" },
  ]);
  const final = await loadConfig(file, {
    overrides: ["--rl.losses.1.layer=2", "--rl.losses.hidden_align.layer=final"],
  });
  deepStrictEqual(final.rl.losses, plain.rl.losses);
  // The whole list still works, and a term it adds can be set by name after it.
  const added = await loadConfig("configs/rl_arith_dapo.yaml", {
    overrides: [
      "--rl.losses=[{name: clipped_pg}, {name: hidden_align}]",
      "--rl.losses.hidden_align.weight=0.25",
    ],
  });
  deepStrictEqual(added.rl.losses.map((t) => [t.name, t.weight]), [
    ["clipped_pg", 1],
    ["hidden_align", 0.25],
  ]);
});

Deno.test("loadConfig() refuses an rl.losses term override it cannot place, saying what was expected", async () => {
  const file = "configs/rl_arith_hidden_align.yaml";
  const cannot = (override: string) => `Cannot load config "${file}": override "${override}"`;
  const holds = 'it holds [0] "clipped_pg", [1] "hidden_align"';
  const cases: [string[], string, string][] = [
    [
      ["--rl.losses.hiden_align.weight=1"],
      "TypeError",
      `${cannot("--rl.losses.hiden_align.weight=1")} names unknown term "hiden_align" of ` +
      `"rl.losses" (${holds}): expected one of "clipped_pg", "hidden_align" (did you mean ` +
      `"hidden_align"?), or a term's index`,
    ],
    [
      ["--rl.losses.hidden_align.anchr=marker"],
      "TypeError",
      `${cannot("--rl.losses.hidden_align.anchr=marker")} sets unknown key ` +
      `"rl.losses[1].anchr" of the "hidden_align" term: expected one of "weight", ` +
      `"type", "anchor", "layer" (did you mean "anchor"?)`,
    ],
    [
      ["--rl.losses.5.weight=1"],
      "RangeError",
      `${cannot("--rl.losses.5.weight=1")}: "rl.losses" has no term [5] (${holds}): name a ` +
      `term by its index or its name, e.g. --rl.losses.clipped_pg.weight=...`,
    ],
    [
      ["--rl.losses=[]", "--rl.losses.0.weight=1"],
      "RangeError",
      `${cannot("--rl.losses.0.weight=1")}: "rl.losses" has no term [0] (it is empty): set the ` +
      `whole list, e.g. "--rl.losses=[{name: clipped_pg, weight: 1}]" (a term's keys left out ` +
      `take their defaults)`,
    ],
    [
      ["--rl.losses.0.name=hidden_align"],
      "TypeError",
      `${cannot("--rl.losses.0.name=hidden_align")} sets "rl.losses[0].name" ("clipped_pg"): a ` +
      `term's name is not set by an override, as its other keys are those of its kind: set the ` +
      `whole list, e.g. "--rl.losses=[{name: hidden_align}, {name: hidden_align}]" (a term's ` +
      `keys left out take their defaults)`,
    ],
    [
      ["--rl.losses.hidden_align=1"],
      "TypeError",
      `${cannot("--rl.losses.hidden_align=1")}: term "rl.losses[1]" ("hidden_align") is a ` +
      `section: set one of its keys, e.g. --rl.losses.hidden_align.weight=...`,
    ],
    [
      [
        "--rl.losses=[{name: clipped_pg}, {name: hidden_align}, {name: hidden_align}]",
        "--rl.losses.hidden_align.weight=1",
      ],
      "RangeError",
      `${cannot("--rl.losses.hidden_align.weight=1")}: "rl.losses" holds 2 "hidden_align" ` +
      `terms ([1], [2]), so the name is ambiguous: name the term by its index, e.g. ` +
      `--rl.losses.1.weight=1`,
    ],
  ];
  for (const [overrides, name, message] of cases) {
    await rejects(loadConfig(file, { overrides }), { name, message }, overrides.join(" "));
  }
  // A term the file lacks: add it there, or set the whole list.
  await rejects(
    loadConfig("configs/rl_arith_dapo.yaml", {
      overrides: ["--rl.losses.hidden_align.weight=0.5"],
    }),
    {
      name: "TypeError",
      message: `Cannot load config "configs/rl_arith_dapo.yaml": override ` +
        `"--rl.losses.hidden_align.weight=0.5": "rl.losses" has no "hidden_align" term (it ` +
        `holds [0] "clipped_pg"): add it to rl.losses in the YAML, or set the whole list, e.g. ` +
        `"--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.5}]" (a term's keys ` +
        `left out take their defaults)`,
    },
  );
});

Deno.test("loadConfig() names the rl.losses term override a bad value came from, the latest that set it", async () => {
  const file = "configs/rl_arith_hidden_align.yaml";
  const bad = async (overrides: string[], message: string) =>
    await rejects(loadConfig(file, { overrides }), {
      message: `Cannot load config "${file}": ${message}`,
    });
  await bad(
    ["--rl.losses.hidden_align.weight=-1"],
    'key "rl.losses[1].weight" (set by "--rl.losses.hidden_align.weight=-1") must be >= 0: ' +
      "current value is -1",
  );
  await bad(
    ["--rl.losses.1.layer=x"],
    'key "rl.losses[1].layer" (set by "--rl.losses.1.layer=x") must be "final" or an integer ' +
      '>= 0: current value is "x"',
  );
  // A whole list set after a term's key replaces that key's origin too.
  const list = "--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: -3}]";
  await bad(
    ["--rl.losses.1.weight=2", list],
    `key "rl.losses[1].weight" (set by "${list}") must be >= 0: current value is -3`,
  );
});

Deno.test("loadConfig() names the override a bad value came from", async () => {
  await rejects(loadConfig("configs/tiny_sft.yaml", { overrides: ["--trainer.lr=-1"] }), {
    name: "RangeError",
    message: 'Cannot load config "configs/tiny_sft.yaml": key "trainer.lr" (set by ' +
      '"--trainer.lr=-1") must be > 0: current value is -1',
  });
  await rejects(loadConfig(undefined, { overrides: ["--model.tieEmbeddings=yes"] }), {
    name: "TypeError",
    message:
      /key "model.tieEmbeddings" \(set by "--model.tieEmbeddings=yes"\) must be true or false: current value is "yes"/,
  });
  await rejects(loadConfig(undefined, { overrides: ["--adapters.rankPattern.q_proj=0"] }), {
    name: "RangeError",
    message:
      /key "adapters.rankPattern.q_proj" \(set by "--adapters.rankPattern.q_proj=0"\) must be >= 1: current value is 0/,
  });
});

Deno.test("loadConfig() rejects malformed overrides and sections as values", async () => {
  await rejects(loadConfig(undefined, { overrides: ["--trainer.lr"] }), {
    name: "SyntaxError",
    message: /override "--trainer.lr" must look like "--key.path=value"/,
  });
  await rejects(loadConfig(undefined, { overrides: ["--trainer=1"] }), {
    name: "TypeError",
    message: /key "trainer" is a section: set one of its keys/,
  });
});

Deno.test("loadConfig() checks values that depend on each other", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--trainer.microBatches=3"],
      /key "trainer.microBatches" .* must divide "trainer.batchSize" \(32\): current value is 3/,
    ],
    [
      ["--model.kvHeads=3"],
      /key "model.kvHeads" .* must divide "model.heads" \(4\): current value is 3/,
    ],
    [["--model.headDim=15"], /key "model.headDim" .* must be even/],
    [
      ["--model.vocab=40"],
      /key "model.vocab" .* must be >= 55 \(the arithmetic tokenizer's vocabulary\)/,
    ],
    [
      ["--model.path=builtin:huge"],
      /key "model.path" .* must be "builtin:tiny" or a model directory/,
    ],
    [
      ["--eval.samples=500"],
      /key "eval.samples" .* must be <= "data.evalSize" \(200\): current value is 500/,
    ],
    [["--data.ops=+,+"], /key "data.ops" .* must not repeat an item: "\+" repeats/],
  ];
  for (const [overrides, message] of cases) {
    await rejects(loadConfig(undefined, { overrides }), { name: "RangeError", message });
  }
  // A model directory may have any vocabulary: the check is for builtin:tiny only.
  const config = await loadConfig(undefined, {
    overrides: ["--model.path=checkpoints/qwen3", "--model.vocab=40"],
  });
  strictEqual(config.model.vocab, 40);
});

Deno.test("loadConfig() skips SFT's cross-checks in an RL run, and refuses the task suite and a whole-run warm-up at load", async () => {
  const rl = "configs/rl_arith_hidden_align.yaml";
  // SFT-only keys RL never reads (rlRunKeyWarnings warns of them): no SFT cross-check.
  const sftOnly = ["--data.evalSize=5", "--trainer.microBatches=3"];
  const config = await loadConfig(rl, { overrides: sftOnly });
  strictEqual(config.data.evalSize, 5);
  strictEqual(config.trainer.microBatches, 3);
  // ... which SFT still checks, both.
  await rejects(loadConfig("configs/tiny_sft.yaml", { overrides: sftOnly }), {
    name: "RangeError",
    message: 'Cannot load config "configs/tiny_sft.yaml": key "trainer.microBatches" (set by ' +
      '"--trainer.microBatches=3") must divide "trainer.batchSize" (16): current value is 3\n' +
      'Cannot load config "configs/tiny_sft.yaml": key "eval.samples" must be <= ' +
      '"data.evalSize" (5): current value is 100',
  });
  // The task suite: RL would train on arithmetic; SFT takes it.
  await rejects(loadConfig(rl, { overrides: ["--data.task=suite"] }), {
    name: "RangeError",
    message: new RegExp(
      `^Cannot load config "${rl}": key "data\\.task" \\(set by "--data\\.task=suite"\\) must ` +
        `be "arithmetic" with "trainer\\.mode" "rl" .*: current value is "suite"$`,
    ),
  });
  strictEqual(
    (await loadConfig("configs/tiny_sft.yaml", { overrides: ["--data.task=suite"] })).data.task,
    "suite",
  );
  // A cosine warm-up as long as the run, in RL steps (trainer.steps) as in SFT ones; a constant
  // schedule takes any warm-up.
  const cosine = ["--trainer.schedule=cosine", "--trainer.steps=8", "--trainer.warmupSteps=8"];
  for (const path of [rl, "configs/tiny_sft.yaml"]) {
    await rejects(loadConfig(path, { overrides: cosine }), {
      name: "RangeError",
      message: `Cannot load config "${path}": key "trainer.warmupSteps" (set by ` +
        `"--trainer.warmupSteps=8") must be < "trainer.steps" (8) for the cosine schedule: ` +
        `current value is 8`,
    });
    const short = await loadConfig(path, { overrides: [...cosine, "--trainer.warmupSteps=7"] });
    strictEqual(short.trainer.warmupSteps, 7);
    const constant = await loadConfig(path, {
      overrides: [...cosine, "--trainer.schedule=constant"],
    });
    strictEqual(constant.trainer.warmupSteps, 8);
  }
  await rejects(loadConfig("configs/tiny_sft.yaml", { overrides: ["--trainer.steps=20"] }), {
    message:
      /key "trainer\.warmupSteps" must be < "trainer\.steps" \(20\) .*: current value is 20$/,
  });
});

Deno.test("loadConfig() reports bad YAML with its position", async () => {
  await withYaml("trainer:\n  lr: [1\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "SyntaxError",
      message: new RegExp(`^Cannot load config "${path}": invalid YAML: .*line \\d+, column \\d+`),
    });
  });
  await withYaml("trainer:\n  lr: 1\n  lr: 2\n", async (path) => {
    await rejects(loadConfig(path), { name: "SyntaxError", message: /Map keys must be unique/ });
  });
  await withYaml("- 1\n- 2\n", async (path) => {
    await rejects(loadConfig(path), {
      name: "TypeError",
      message: /the file must hold a mapping of sections .*: current value is \[1,2\]/,
    });
  });
  await rejects(loadConfig("configs/does_not_exist.yaml"), {
    name: "NotFound",
    message: 'Cannot load config "configs/does_not_exist.yaml": file not found',
  });
});

Deno.test("loadConfig() refuses an empty or comment-only --config file, or one that sets no keys", async () => {
  for (
    const text of [
      "",
      "\n\n",
      "# only a comment\n  # another\n",
      "---\n",
      "{}\n",
      "# a comment\n{} # and another\n",
      "trainer:\n",
      "trainer: {}\nrl:\n",
    ]
  ) {
    await withYaml(text, async (path) => {
      await rejects(loadConfig(path), {
        name: "TypeError",
        message: new RegExp(
          `^Cannot load config "${path}": the file sets no keys \\(expected a mapping of sections`,
        ),
      });
    });
  }
  // A misspelt section is named as such, not called empty.
  await withYaml("trainr:\n", async (path) => {
    await rejects(loadConfig(path), { name: "TypeError", message: /key "trainr" is unknown/ });
  });
});

Deno.test("loadConfig() reads a number override in decimal only", async () => {
  for (const raw of ["0x10", "0b101", "0o17", "1_000"]) {
    await rejects(loadConfig(undefined, { overrides: [`--trainer.steps=${raw}`] }), {
      name: "TypeError",
      message: new RegExp(
        `key "trainer\\.steps" \\(set by "--trainer\\.steps=${raw}"\\) .*"${raw}"`,
      ),
    });
  }
  const config = await loadConfig(undefined, {
    overrides: ["--trainer.steps=160", "--trainer.lr=2.5e-3", "--trainer.minLrRatio=.5"],
  });
  strictEqual(config.trainer.steps, 160);
  strictEqual(config.trainer.lr, 2.5e-3);
  strictEqual(config.trainer.minLrRatio, 0.5);
});

Deno.test("loadConfig() shows a NaN or infinite value as such", async () => {
  await withYaml("trainer:\n  lr: .nan\n", async (path) => {
    await rejects(loadConfig(path), { message: /key "trainer\.lr" .*current value is NaN$/ });
  });
  await withYaml("trainer:\n  maxGradNorm: -.inf\n", async (path) => {
    await rejects(loadConfig(path), {
      message: /key "trainer\.maxGradNorm" .*current value is -Infinity$/,
    });
  });
});
