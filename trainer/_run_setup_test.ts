import { deepStrictEqual, match, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../cli/load_config.ts";
import { main as ggufMain } from "../cli/gguf.ts";
import { exists } from "../internal/exists.ts";
import { fingerprintFile } from "../internal/fingerprint.ts";
import {
  buildRunModel,
  exportRun,
  readRunModel,
  resolveRunStart,
  runAdamw,
  runAdamwOptions,
  saveRun,
} from "./_run_setup.ts";
import type { TrainBackend } from "./backend.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { loraParams, modelParams } from "./params.ts";
import { loadModelOrCheckpoint } from "./checkpoint_model.ts";
import { runAdapters } from "./run_adapters.ts";
import { noGpu } from "../gpu/test_utils.ts";
import { copyModelDir, withTempDir } from "../internal/test_utils.ts";
import { initQwen3Weights } from "../model/init.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { defaultSubmitEveryLayers } from "../model/submit_splitter.ts";
import type { TrainConfig } from "./config.ts";

async function config(schedule: "cosine" | "constant"): Promise<TrainConfig> {
  return await loadConfig(undefined, {
    overrides: [
      "--trainer.steps=4",
      "--trainer.warmupSteps=1",
      "--trainer.lr=0.5",
      "--trainer.minLrRatio=0.1",
      `--trainer.schedule=${schedule}`,
    ],
  });
}

/** The learning rate of each of `updates` optimizer updates. */
function lrs(c: TrainConfig, updatesPerStep: number, updates: number): number[] {
  const shapes = { w: [2, 2] };
  const optimizer = runAdamw(c, shapes, { updatesPerStep });
  const grads = { w: new Float32Array([1, -1, 0.5, 2]) };
  let state = optimizer.init(grads);
  const out: number[] = [];
  for (let i = 0; i < updates; i++) {
    const r = optimizer.update(grads, state, grads);
    out.push(r.metrics!["optim/lr"]);
    state = r.state;
  }
  return out;
}

Deno.test("runAdamw() counts its schedule in updates: k updates a step stretch it k-fold", async () => {
  for (const schedule of ["cosine", "constant"] as const) {
    const c = await config(schedule);
    const one = lrs(c, 1, 4);
    const three = lrs(c, 3, 12);
    // Update 3s of a run with 3 updates a step sees the learning rate of step s.
    for (let s = 0; s < 4; s++) {
      ok(
        Math.abs(three[3 * s] - one[s]) <= 1e-15,
        `${schedule} step ${s}: ${three[3 * s]} vs ${one[s]}`,
      );
    }
    // Warmup (1 step) is 3 updates long: rising within it, at the peak after it.
    ok(three[0] < three[1] && three[1] < three[2], `${schedule}: ${three.slice(0, 3)}`);
    strictEqual(three[3], 0.5);
  }
  // And the cosine schedule decays over all 12 updates, not 4.
  const cosine = lrs(await config("cosine"), 3, 12);
  ok(cosine[11] > 0.05 && cosine[11] < cosine[6], `${cosine}`);
});

Deno.test("runAdamwOptions() takes AdamW's settings from the config and decays matrices only", async () => {
  const c = await loadConfig(undefined, {
    overrides: [
      "--trainer.steps=4",
      "--trainer.warmupSteps=2",
      "--trainer.lr=0.5",
      "--trainer.schedule=constant",
      "--trainer.b1=0.8",
      "--trainer.b2=0.97",
      "--trainer.eps=1e-6",
      "--trainer.weightDecay=0.3",
      "--trainer.maxGradNorm=2.5",
    ],
  });
  const shapes = { "q.lora_A": [2, 3], "experts": [2, 3, 4], "norm.weight": [3] };
  const o = runAdamwOptions(c, shapes);
  deepStrictEqual(
    [o.b1, o.b2, o.eps, o.weightDecay, o.maxGradNorm],
    [0.8, 0.97, 1e-6, 0.3, 2.5],
  );
  deepStrictEqual(Object.keys(shapes).map((k) => o.decayMask!(k)), [true, true, false]);
  // maxGradNorm 0 turns clipping off.
  const off = runAdamwOptions({ ...c, trainer: { ...c.trainer, maxGradNorm: 0 } }, shapes);
  strictEqual(off.maxGradNorm, undefined);
  // The RL trainer's shift moves the schedule: warm-up 0, 0.25 then the peak 0.5 (by hand).
  const lr = o.lr as (count: number) => number;
  deepStrictEqual([lr(0), lr(1), lr(2)], [0, 0.25, 0.5]);
  const shifted = runAdamwOptions(c, shapes, { scheduleShift: () => 1 }).lr as typeof lr;
  deepStrictEqual([shifted(0), shifted(1)], [0.25, 0.5]);
});

Deno.test("runAdamw() refuses a cosine warmup as long as the run, naming the key", async () => {
  // (Also refused at config load; the optimizer checks a config built in code too.)
  const short = await loadConfig(undefined, {
    overrides: ["--trainer.steps=2", "--trainer.warmupSteps=1", "--trainer.schedule=cosine"],
  });
  const c = { ...short, trainer: { ...short.trainer, warmupSteps: 2 } };
  throws(() => runAdamw(c, { w: [2] }, { updatesPerStep: 4 }), {
    name: "RangeError",
    message: /key "trainer\.warmupSteps" must be < "trainer\.steps" \(2\).*current value is 2/,
  });
});

Deno.test("readRunModel() refuses model.* shape keys that a model directory would ignore", async () => {
  const path = "models/arithmetic-tiny"; // 2 layers, hidden 64, 128 positions
  const c = await loadConfig(undefined, {
    overrides: [
      `--model.path=${path}`,
      "--model.layers=7",
      "--model.hidden=128",
      "--model.maxPositions=16",
    ],
  });
  await rejects(readRunModel(c), {
    name: "RangeError",
    message: 'Cannot use model "models/arithmetic-tiny": keys "model.hidden" (128; the model ' +
      'has 64), "model.layers" (7; the model has 2), "model.maxPositions" (16; the model has ' +
      '128) shape only "builtin:tiny"; a model directory keeps the shape of its config.json: ' +
      "drop the keys or set the model's values",
  });
  // The model's own values, and keys left at their defaults, are fine.
  const same = await loadConfig(undefined, {
    overrides: [`--model.path=${path}`, "--model.layers=2", "--model.maxPositions=128"],
  });
  const head = await readRunModel(same);
  strictEqual(head.modelConfig.numHiddenLayers, 2);
  strictEqual(head.modelConfig.maxPositionEmbeddings, 128);
  strictEqual(
    (await readRunModel(
      await loadConfig(undefined, {
        overrides: [`--model.path=${path}`],
      }),
    )).modelConfig.hiddenSize,
    64,
  );
});

Deno.test("readRunModel() names a missing model directory, not a file in it", async () => {
  const c = await loadConfig(undefined, { overrides: ["--model.path=/tmp/halo_no_such_model"] });
  await rejects(readRunModel(c), {
    name: "RangeError",
    message: 'Cannot load the model: key "model.path" must be a model directory or ' +
      '"builtin:tiny": directory "/tmp/halo_no_such_model" not found',
  });
});

/** A copy of models/arithmetic-tiny's config and tokenizer with the given generation config. */
async function modelDirWith(generationConfig: string | null): Promise<string> {
  const dir = await copyModelDir(await Deno.makeTempDir({ prefix: "halo_gencfg_" }), {
    files: ["config.json", "tokenizer.json", "tokenizer_config.json"],
  });
  if (generationConfig !== null) {
    await Deno.writeTextFile(`${dir}/generation_config.json`, generationConfig);
  }
  return dir;
}

Deno.test("readRunModel() stops at generation_config.json's eos_token_id too, as HF generate", async () => {
  const dir = await modelDirWith('{"eos_token_id": [54, 53], "top_k": 20}');
  try {
    const c = await loadConfig(undefined, { overrides: [`--model.path=${dir}`] });
    const head = await readRunModel(c);
    deepStrictEqual(head.modelConfig.eosTokenIds, [54]);
    deepStrictEqual(head.eosTokenIds, [54, 53]);
    deepStrictEqual(head.generationConfig?.json, { eos_token_id: [54, 53], top_k: 20 });
    // A full model exported from the run keeps the source's generation_config.json.
    const out = `${dir}_export`; // beside the model: an export inside model.path is refused
    const weights = initQwen3Weights(head.modelConfig, { seed: 0 });
    await exportRun(c, head, { weights, lora: null }, [out]);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${out}/generation_config.json`)), {
      eos_token_id: [54, 53],
      top_k: 20,
    });
    // A single id, and no file at all.
    await Deno.writeTextFile(`${dir}/generation_config.json`, '{"eos_token_id": 53}');
    deepStrictEqual((await readRunModel(c)).eosTokenIds, [54, 53]);
    await Deno.remove(`${dir}/generation_config.json`);
    const bare = await readRunModel(c);
    deepStrictEqual(bare.eosTokenIds, [54]);
    strictEqual(bare.generationConfig, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(`${dir}_export`, { recursive: true }).catch(() => {});
  }
});

Deno.test("readRunModel() stops a Base-like model at the template's <|im_end|> and at rl.stopTokenIds", async () => {
  // arithmetic-tiny made like Qwen3-*-Base: config, tokenizer and generation config all say
  // <|endoftext|> (52), while the ChatML template closes each turn with <|im_end|> (54).
  const dir = await modelDirWith('{"eos_token_id": 52}');
  try {
    const configPath = `${dir}/config.json`;
    const modelJson = JSON.parse(await Deno.readTextFile(configPath));
    await Deno.writeTextFile(configPath, JSON.stringify({ ...modelJson, eos_token_id: 52 }));
    const tokPath = `${dir}/tokenizer_config.json`;
    const tokJson = JSON.parse(await Deno.readTextFile(tokPath));
    await Deno.writeTextFile(tokPath, JSON.stringify({ ...tokJson, eos_token: "<|endoftext|>" }));
    const head = async (...overrides: string[]) =>
      await readRunModel(
        await loadConfig(undefined, { overrides: [`--model.path=${dir}`, ...overrides] }),
      );
    const base = await head();
    deepStrictEqual(base.eosTokenIds, [52]);
    deepStrictEqual(base.stopTokenIds, [54]);
    // rl.stopTokenIds extends the derived set; ids already in it or among the EOS ids are kept once.
    deepStrictEqual((await head("--rl.stopTokenIds=[7, 54, 52, 7]")).stopTokenIds, [54, 7]);
    await rejects(head("--rl.stopTokenIds=[3, 64]"), {
      name: "RangeError",
      message:
        /key "rl\.stopTokenIds" must hold token ids below the model's vocabulary size \(64\): current value is \[3,64\]/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // The hybrid-like original: <|im_end|> is the EOS already, so no stop id is added.
  const plain = await readRunModel(
    await loadConfig(undefined, { overrides: ["--model.path=models/arithmetic-tiny"] }),
  );
  deepStrictEqual([plain.eosTokenIds, plain.stopTokenIds], [[54], []]);
});

Deno.test("readRunModel() rejects a tokenizer or generation config with ids past the model's vocab_size", async () => {
  const dir = await modelDirWith(null);
  try {
    const c = await loadConfig(undefined, { overrides: [`--model.path=${dir}`] });
    await Deno.writeTextFile(`${dir}/generation_config.json`, '{"eos_token_id": [54, 64]}');
    await rejects(readRunModel(c), {
      name: "RangeError",
      message: /generation_config\.json": key "eos_token_id\[1\]" must be below .*vocab_size 64/,
    });
    await Deno.remove(`${dir}/generation_config.json`);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`));
    json.model.vocab["z"] = 64;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
    await rejects(readRunModel(c), {
      name: "RangeError",
      message: new RegExp(
        `tokenizer "${dir}/tokenizer\\.json" with the model of "${dir}/config\\.json": .*id is 64`,
      ),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readRunModel() names generation_config.json and its key when the file is malformed", async () => {
  for (
    const [text, error] of [
      ['{"eos_token_id": "54"}', {
        name: "TypeError",
        message:
          /generation_config\.json": key "eos_token_id" must be a non-negative integer, a list of them, or null: current value is "54"/,
      }],
      ['{"eos_token_id": [54, -1]}', { name: "TypeError", message: /"eos_token_id".*\[54,-1\]/ }],
      ["{eos", { name: "SyntaxError", message: /generation_config\.json": invalid JSON/ }],
    ] as const
  ) {
    const dir = await modelDirWith(text);
    try {
      const c = await loadConfig(undefined, { overrides: [`--model.path=${dir}`] });
      await rejects(readRunModel(c), error);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test({
  name:
    "buildRunModel() keeps the host weights only where they are read: full fine-tuning or a CPU model",
  ignore: noGpu,
  sanitizeResources: false,
  async fn() {
    const path = "models/arithmetic-tiny";
    const build = async (...overrides: string[]) => {
      const c = await loadConfig(undefined, {
        overrides: [`--model.path=${path}`, ...overrides],
      });
      const head = await readRunModel(c);
      return { c, head, built: await buildRunModel(c, head) };
    };
    for (
      const [overrides, kept] of [
        [["--backend=webgpu", "--adapters.kind=lora"], false],
        [["--backend=webgpu", "--adapters.kind=lora", "--model.weightDtype=f16"], false],
        [["--backend=webgpu", "--adapters.kind=hilo"], false],
        [["--backend=webgpu", "--adapters.kind=none"], true],
        [["--backend=cpu", "--adapters.kind=lora"], true],
      ] as const
    ) {
      const { c, head, built } = await build(...overrides);
      try {
        strictEqual(built.weights !== null, kept, overrides.join(" "));
        if (!kept) {
          // The adapter export needs no base weights.
          await withTempDir(async (dir) => {
            deepStrictEqual(await exportRun(c, head, built, [dir]), [dir]);
            ok((await Deno.stat(`${dir}/adapter_config.json`)).isFile);
          });
          await rejects(
            exportRun(c, head, { ...built, lora: null }, ["/tmp/halo_unused"]),
            /the run kept no host weights/,
          );
        }
      } finally {
        built.backend.dispose();
        built.model.dispose();
      }
    }
  },
});

Deno.test({
  name:
    "buildRunModel() passes model.submitEveryLayers to the WebGPU model; null leaves the adapter's default",
  ignore: noGpu,
  sanitizeResources: false,
  async fn() {
    for (
      const [overrides, expected] of [[["--model.submitEveryLayers=3"], 3], [[], null]] as const
    ) {
      const c = await loadConfig(undefined, { overrides: ["--backend=webgpu", ...overrides] });
      strictEqual(c.model.submitEveryLayers, expected);
      const built = await buildRunModel(c, await readRunModel(c));
      try {
        const model = built.model as WebGpuQwen3;
        strictEqual(model.submitEveryLayers, expected ?? defaultSubmitEveryLayers(model.ctx));
      } finally {
        built.backend.dispose();
        built.model.dispose();
      }
    }
  },
});

Deno.test("an adapter checkpoint records its base model's fingerprint and its tokenizer files': a resume or a GGUF export on a changed base is refused, naming the file", () =>
  withTempDir(async (dir) => {
    const base = await copyModelDir(join(dir, "base"));
    const c = await loadConfig(undefined, {
      overrides: [
        `--model.path=${base}`,
        "--adapters.kind=lora",
        "--adapters.r=2",
        `--run.outDir=${dir}`,
        "--run.name=r",
      ],
    });
    const head = await readRunModel(c);
    const lora = runAdapters(c, head.modelConfig)!;
    const backend = { params: loraParams(lora) } as unknown as TrainBackend;
    const runDir = join(dir, "r");
    const step = await saveRun(runDir, 1, {
      config: c,
      backend,
      lora,
      optState: {},
      dataPosition: 0,
      rng: {},
      metrics: {},
      sha: null,
    });
    const meta0 = (await loadCheckpoint(step)).meta;
    const recorded = meta0.baseModel;
    ok(recorded !== null && recorded["model.safetensors"] !== undefined, JSON.stringify(recorded));
    deepStrictEqual(Object.keys(meta0.baseFiles ?? {}), [
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const options = { resume: true, fixedKeys: [] };
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);

    // Another tokenizer beside the same weights: refused (the adapters would see other prompts).
    const tokenizer = join(base, "tokenizer_config.json");
    const text = await Deno.readTextFile(tokenizer);
    await Deno.writeTextFile(
      tokenizer,
      JSON.stringify({ ...JSON.parse(text), model_max_length: 7 }),
    );
    const tokenizerWas = meta0.baseFiles!["tokenizer_config.json"].sha256.slice(0, 16);
    await rejects(
      resolveRunStart(c, options),
      new RegExp(`base model "${base}".*file "${tokenizer}" changed: recorded .*${tokenizerWas}`),
    );
    await Deno.writeTextFile(tokenizer, text);
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);

    // The same base directory, its weights replaced (another fine-tune): refused.
    const weights = await flipWeightBit(base);
    const now = (await fingerprintFile(weights, { sampled: true })).sha256.slice(0, 16);
    const was = recorded["model.safetensors"].sha256.slice(0, 16);
    const message = new RegExp(
      `base model "${base}".*file "${weights}" changed: recorded .*${was}.*now .*${now}`,
    );
    await rejects(resolveRunStart(c, options), message);
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    strictEqual(await ggufMain(["--model", step, "--out", join(dir, "x.gguf")], io), 2);
    match(err.join("\n"), message);
    strictEqual(await exists(join(dir, "x.gguf")), false);

    // A checkpoint from before adapter checkpoints recorded baseFiles: its weights are checked,
    // with no warning.
    const metaPath = join(step, "meta.json");
    const meta = JSON.parse(await Deno.readTextFile(metaPath));
    delete meta.baseFiles;
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    await rejects(resolveRunStart(c, options), message);
    await flipWeightBit(base);
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);

    // A checkpoint from before the record: a warning, not an error.
    delete meta.baseModel;
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    const { warnings } = await resolveRunStart(c, options);
    ok(
      warnings.some((w) => w.includes("records no fingerprint of its base model")),
      warnings.join("\n"),
    );
  }));

Deno.test("a full-weights checkpoint records its base's tokenizer files and config.json: a resume, an evaluation or a GGUF export on changed ones is refused, naming the file", () =>
  withTempDir(async (dir) => {
    const base = await copyModelDir(join(dir, "base"));
    const c = await loadConfig(undefined, {
      overrides: [`--model.path=${base}`, `--run.outDir=${dir}`, "--run.name=r"],
    });
    const head = await readRunModel(c);
    const params = modelParams(initQwen3Weights(head.modelConfig, { seed: 0 }), head.modelConfig);
    const backend = { params } as unknown as TrainBackend;
    const runDir = join(dir, "r");
    const step = await saveRun(runDir, 1, {
      config: c,
      backend,
      lora: null,
      optState: {},
      dataPosition: 0,
      rng: {},
      metrics: {},
      sha: null,
    });
    const meta0 = (await loadCheckpoint(step)).meta;
    strictEqual(meta0.baseModel, null);
    deepStrictEqual(Object.keys(meta0.baseFiles ?? {}), [
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const options = { resume: true, fixedKeys: [] };
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);
    // The base's weights are not read (the checkpoint holds them all): a change there is fine.
    await flipWeightBit(base);
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);

    // Another tokenizer at the same path: refused by a resume, an evaluation and a GGUF export.
    const tokenizer = join(base, "tokenizer_config.json");
    const was = meta0.baseFiles!["tokenizer_config.json"].sha256.slice(0, 16);
    const text = await Deno.readTextFile(tokenizer);
    await Deno.writeTextFile(
      tokenizer,
      JSON.stringify({ ...JSON.parse(text), model_max_length: 7 }),
    );
    const now = (await fingerprintFile(tokenizer)).sha256.slice(0, 16);
    const message = new RegExp(
      `base model "${base}".*file "${tokenizer}" changed: recorded .*${was}.*now .*${now}`,
    );
    await rejects(resolveRunStart(c, options), message);
    await rejects(loadModelOrCheckpoint(step, { backend: "cpu" }), message);
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    strictEqual(await ggufMain(["--model", step, "--out", join(dir, "x.gguf")], io), 2);
    match(err.join("\n"), message);
    strictEqual(await exists(join(dir, "x.gguf")), false);
    // A chat template added to the base is a change too.
    await Deno.writeTextFile(tokenizer, text);
    await Deno.writeTextFile(join(base, "chat_template.jinja"), "{{ messages }}");
    await rejects(
      resolveRunStart(c, options),
      /file ".*chat_template\.jinja" changed: recorded absent/,
    );
    await Deno.remove(join(base, "chat_template.jinja"));
    deepStrictEqual((await resolveRunStart(c, options)).warnings, []);

    // A checkpoint from before the record: a warning, not an error.
    const metaPath = join(step, "meta.json");
    const meta = JSON.parse(await Deno.readTextFile(metaPath));
    delete meta.baseFiles;
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    const { warnings } = await resolveRunStart(c, options);
    ok(
      warnings.some((w) =>
        w.includes("records no fingerprint of the tokenizer files and config.json it reads")
      ),
      warnings.join("\n"),
    );
  }));

Deno.test("exportRun() replaces a previous export whole (no stale file survives), refuses model.path, a file or a foreign directory before writing", () =>
  withTempDir(async (dir) => {
    const base = await copyModelDir(join(dir, "base"));
    const c = await loadConfig(undefined, { overrides: [`--model.path=${base}`] });
    const head = await readRunModel(c);
    const weights = initQwen3Weights(head.modelConfig, { seed: 0 });
    const run = { weights, lora: null };

    // A previous export of a LoRA run (adapter files) and a stale template: all replaced.
    const out = join(dir, "export");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "adapter_config.json"), "{}");
    await Deno.writeTextFile(join(out, "chat_template.jinja"), "STALE");
    deepStrictEqual(await exportRun(c, { ...head, chatTemplate: undefined }, run, [out]), [out]);
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    ok(!names.includes("adapter_config.json"), names.join(", "));
    ok(!names.includes("chat_template.jinja"), names.join(", "));
    ok(names.includes("model.safetensors"), names.join(", "));
    // Nothing left beside it (no temporary or old directory).
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["base", "export"]);

    // model.path itself, a folder inside it, a file, a foreign directory: refused, nothing written.
    const before = await Deno.readFile(join(base, "model.safetensors"));
    const file = join(dir, "file");
    await Deno.writeTextFile(file, "x");
    const foreign = join(dir, "foreign");
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(join(foreign, "notes.txt"), "mine");
    const cases: [string, RegExp][] = [
      [base, /is the model directory .*key "model\.path"/],
      [join(base, "sub"), /is the model directory .*inside it/],
      [file, /it is a file/],
      [foreign, /holds files that are not a halo export \(notes\.txt\)/],
    ];
    for (const [target, message] of cases) {
      await rejects(exportRun(c, head, run, [target]), message, target);
    }
    deepStrictEqual(await Deno.readFile(join(base, "model.safetensors")), before);
    strictEqual(await Deno.readTextFile(file), "x");
    deepStrictEqual([...Deno.readDirSync(foreign)].map((e) => e.name), ["notes.txt"]);
  }));

/** Flips one bit near the end of `dir`'s model.safetensors (its weights change, not its size). */
async function flipWeightBit(dir: string): Promise<string> {
  const weights = join(dir, "model.safetensors");
  const bytes = await Deno.readFile(weights);
  bytes[bytes.length - 3] ^= 0x40;
  await Deno.writeFile(weights, bytes);
  return weights;
}

Deno.test("a resume warns about a changed learning-rate schedule key only when it changes the learning rate of a step already taken", () =>
  withTempDir(async (dir) => {
    const at = (overrides: string[]) =>
      loadConfig(undefined, {
        overrides: [`--run.outDir=${dir}`, "--run.name=r", "--trainer.lr=0.5", ...overrides],
      });
    const changes = async (saved: string[], now: string[]): Promise<string[]> => {
      await Deno.remove(join(dir, "r"), { recursive: true }).catch(() => {});
      await saveCheckpoint(join(dir, "r"), {
        step: 2,
        tensors: { w: new Float32Array([1]) },
        optimizer: {},
        meta: { config: await at(saved), dataPosition: 0, rng: {}, metrics: {} },
      });
      const { warnings } = await resolveRunStart(await at(now), { resume: true, fixedKeys: [] });
      return warnings.map((w) => w.replace(/^resuming with a changed key \(.*\): /, ""));
    };
    const constant = ["--trainer.schedule=constant", "--trainer.warmupSteps=1"];
    // Constant after a 1-step warm-up: steps 1 and 2 ran at 0 and 0.5 whatever trainer.steps is.
    deepStrictEqual(await changes([...constant, "--trainer.steps=2"], constant), []);
    deepStrictEqual(
      await changes(constant, [...constant, "--trainer.steps=9", "--trainer.minLrRatio=0.5"]),
      [],
    );
    // A longer warm-up or another peak changes step 2's learning rate.
    deepStrictEqual(await changes(constant, [...constant, "--trainer.lr=0.25"]), [
      "trainer.lr: 0.5 -> 0.25",
    ]);
    deepStrictEqual(
      await changes(constant, ["--trainer.schedule=constant", "--trainer.warmupSteps=3"]),
      ["trainer.warmupSteps: 1 -> 3"],
    );
    // Cosine: the decay follows trainer.steps, unless every step so far was in the warm-up.
    const cosine = ["--trainer.schedule=cosine", "--trainer.warmupSteps=0"];
    deepStrictEqual(
      await changes([...cosine, "--trainer.steps=4"], [...cosine, "--trainer.steps=8"]),
      ["trainer.steps: 4 -> 8"],
    );
    const warm = ["--trainer.schedule=cosine", "--trainer.warmupSteps=2"];
    deepStrictEqual(
      await changes([...warm, "--trainer.steps=4"], [...warm, "--trainer.steps=8"]),
      [],
    );
    // Any other key is still reported beside an unchanged schedule.
    deepStrictEqual(
      await changes(constant, [...constant, "--trainer.steps=9", "--trainer.maxGradNorm=2"]),
      ["trainer.maxGradNorm: 1 -> 2"],
    );
  }));

Deno.test("a resume's changed-key warning never shows rl.rollout.apiKeyEnv's value (it may be a pasted key)", () =>
  withTempDir(async (dir) => {
    const at = (overrides: string[]) =>
      loadConfig(undefined, { overrides: [`--run.outDir=${dir}`, "--run.name=r", ...overrides] });
    await saveCheckpoint(join(dir, "r"), {
      step: 1,
      tensors: { w: new Float32Array([1]) },
      optimizer: {},
      meta: { config: await at([]), dataPosition: 0, rng: {}, metrics: {} },
    });
    const resumed = await at(["--rl.rollout.apiKeyEnv=hf_abc123"]);
    const { warnings } = await resolveRunStart(resumed, { resume: true, fixedKeys: [] });
    deepStrictEqual(
      warnings.map((w) => w.replace(/^resuming with a changed key \(.*\): /, "")),
      ['rl.rollout.apiKeyEnv: "" -> (9 characters, not shown)'],
    );
    // A fixed key's refusal does not show it either.
    await rejects(
      resolveRunStart(resumed, { resume: true, fixedKeys: ["rl."] }),
      (e: Error) => e.message.includes("(9 characters, not shown)") && !e.message.includes("hf_"),
    );
  }));
