// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { join } from "node:path";
import { promptSeed, runEval, type RunEvalOptions } from "./run_eval.ts";
import { loadEvalProblems } from "./eval_data.ts";
import { loadModel } from "../model/load_model.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { generate } from "../model/generate.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { writeArithmeticTokenizer } from "../data/arithmetic_tokenizer.ts";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { copyModelDir } from "../internal/test_utils.ts";
import { saveHiloAdapter } from "../adapters/hilo_io.ts";
import { randomArray } from "../internal/random.ts";

// Tiny settings on the bundled model: 4 held-out arithmetic problems, 2 samples, 16 new tokens
// (the 3-operand answers are cut: fine for checking the bookkeeping), CPU backend.
const base: Omit<RunEvalOptions, "outDir"> = {
  model: "models/arithmetic-tiny",
  data: "arithmetic",
  limit: 4,
  k: 2,
  temperature: 0.6,
  topP: 0.95,
  maxNewTokens: 16,
  backend: "cpu",
  seed: 3,
  progress: false,
  log: () => {},
};

async function read(dir: string, file: string): Promise<string> {
  return await Deno.readTextFile(join(dir, file));
}

Deno.test("runEval() killed after 2 of 4 prompts (torn last line) resumes to the same files as an uninterrupted run", async () => {
  const root = await Deno.makeTempDir();
  try {
    const whole = join(root, "whole");
    const full = await runEval({ ...base, outDir: whole });
    assert.equal(full.complete, true);
    assert.equal(full.promptsDone, 4);

    const split = join(root, "split");
    const first = await runEval({ ...base, outDir: split, stopAfter: 2 });
    assert.equal(first.complete, false);
    assert.equal(first.promptsDone, 2);
    assert.equal(first.summary, null);
    await assert.rejects(() => Deno.stat(join(split, "summary.json")), Deno.errors.NotFound);
    // A kill while appending the third prompt: half of its first line is on disk.
    const torn = (await read(whole, "samples.jsonl")).split("\n")[4].slice(0, 40);
    await Deno.writeTextFile(join(split, "samples.jsonl"), torn, { append: true });

    const notes: string[] = [];
    const second = await runEval({ ...base, outDir: split, log: (l) => notes.push(l) });
    assert.equal(second.complete, true);
    assert.equal(second.promptsResumed, 2);
    assert.ok(notes.some((n) => n.includes("1 partial line")), notes.join("\n"));
    for (const file of ["summary.json", "summary.md", "samples.jsonl", "pass_at_k.svg"]) {
      assert.equal(await read(split, file), await read(whole, file), file);
    }

    const sessions = (await read(split, "timing.jsonl")).trimEnd().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(sessions.map((s) => s.prompts), [2, 2]);
    assert.equal(sessions[0].backend, "cpu");

    // Re-running a finished folder re-summarizes the fixed samples file: the same bytes again.
    const summaryBefore = await read(whole, "summary.json");
    const again = await runEval({ ...base, outDir: whole });
    assert.equal(again.generatedTokens, 0);
    assert.equal(await read(whole, "summary.json"), summaryBefore);

    // Another setting in the same folder is refused, naming it.
    await assert.rejects(
      () => runEval({ ...base, outDir: whole, seed: 4 }),
      /seed = 3, this run has 4/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() names the flag of a bad setting", async () => {
  const outDir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => runEval({ ...base, outDir, k: 0 }), {
      name: "RangeError",
      message: /--k/,
    });
    await assert.rejects(() => runEval({ ...base, outDir, topP: 0 }), /--top-p/);
    await assert.rejects(
      () => runEval({ ...base, outDir, model: "no/such/model" }),
      { name: "NotFound", message: /--model directory "no\/such\/model" not found/ },
    );
    await assert.rejects(
      () => runEval({ ...base, outDir, maxNewTokens: 500 }),
      /--max-new-tokens 500 plus the \d+ tokens/,
    );
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("promptSeed() depends only on the seed and the prompt id", () => {
  assert.equal(promptSeed(7, "x/1"), promptSeed(7, "x/1"));
  const seeds = new Set(Array.from({ length: 1000 }, (_, i) => promptSeed(0, `p/${i}`)));
  assert.equal(seeds.size, 1000);
  assert.ok([...seeds].every((s) => Number.isInteger(s) && s >= 0 && s < 2 ** 32));
});

Deno.test("runEval() applies a PEFT LoRA or a HILO --adapter: the texts equal generate() on the model with the adapter set", async () => {
  const root = await Deno.makeTempDir();
  try {
    // The random-weight fixture model with the arithmetic tokenizer (its vocabulary fits).
    const modelDir = join(root, "model");
    await Deno.mkdir(modelDir);
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(join("tests/fixtures/qwen3-tiny", f), join(modelDir, f));
    }
    await writeArithmeticTokenizer(modelDir);
    const adapter = "tests/fixtures/qwen3-tiny/adapter";
    const options = { ...base, model: modelDir, limit: 1, k: 2, maxNewTokens: 6 };
    const withAdapter = await runEval({ ...options, adapter, outDir: join(root, "lora") });
    const without = await runEval({ ...options, outDir: join(root, "base") });

    const model = await loadModel(modelDir, { backend: "cpu", warn: false });
    const tokenizer = await loadTokenizer(modelDir);
    const [problem] = await loadEvalProblems("arithmetic", { limit: 1 });
    const ids = tokenizer.encodeChat([{ role: "user", content: problem.question }], {
      enableThinking: false,
    });
    const expected = async () => {
      const { sequences } = await generate(model, {
        prompts: [ids, ids],
        maxNewTokens: 6,
        temperature: 0.6,
        topP: 0.95,
        seed: promptSeed(3, problem.id),
        eosTokenIds: [...new Set([...model.config.eosTokenIds, tokenizer.eosTokenId!])],
      });
      return sequences.map((s) => tokenizer.decode(s.tokens, { skipSpecialTokens: true }));
    };
    const textsOf = async (dir: string) =>
      (await read(dir, "samples.jsonl")).trimEnd().split("\n").map((l) => JSON.parse(l).text);
    assert.deepEqual(await textsOf(without.outDir), await expected());
    (model as CpuQwen3).setAdapters(await loadPeftAdapter(adapter, model.config));
    assert.deepEqual(await textsOf(withAdapter.outDir), await expected());
    assert.notDeepEqual(await textsOf(withAdapter.outDir), await textsOf(without.outDir));

    // A HILO directory (routed experts, random non-zero B so it changes the samples).
    const hilo = createHilo(
      hiloConfig(model.config, { experts: "1-3", rank: "2-3" }),
      model.config,
      { seed: 5 },
    );
    let s = 50;
    for (const m of hilo.modules) {
      for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.5, 0.5));
      if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -1, 1));
    }
    const hiloDir = join(root, "hilo_adapter");
    await saveHiloAdapter(hiloDir, hilo);
    const withHilo = await runEval({ ...options, adapter: hiloDir, outDir: join(root, "hilo") });
    (model as CpuQwen3).setAdapters(hilo);
    assert.deepEqual(await textsOf(withHilo.outDir), await expected());
    assert.notDeepEqual(await textsOf(withHilo.outDir), await textsOf(without.outDir));
    model.dispose();

    await assert.rejects(
      () => runEval({ ...options, adapter: "models/arithmetic-tiny", outDir: join(root, "bad") }),
      /--adapter "models\/arithmetic-tiny"/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() stops at generation_config.json's eos_token_id too, as HF generate", async () => {
  const root = await Deno.makeTempDir();
  try {
    const modelDir = await copyModelDir(join(root, "model"));
    // Every id of the 64-token vocabulary stops: each sample is one token, ended by "eos".
    await Deno.writeTextFile(
      join(modelDir, "generation_config.json"),
      JSON.stringify({ eos_token_id: Array.from({ length: 64 }, (_, i) => i) }),
    );
    const r = await runEval({ ...base, model: modelDir, limit: 1, outDir: join(root, "out") });
    const lines = (await read(r.outDir, "samples.jsonl")).trimEnd().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(lines.length, 2);
    for (const l of lines) assert.deepEqual([l.tokens, l.stop], [1, "eos"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() stops a Base-like model at the template's <|im_end|>, and at --stop ids", async () => {
  const root = await Deno.makeTempDir();
  try {
    // arithmetic-tiny made like Qwen3-*-Base: config, tokenizer and generation config all say
    // <|endoftext|> (52), while its ChatML template closes each turn with <|im_end|> (54).
    const modelDir = await copyModelDir(join(root, "model"));
    const editJson = async (name: string, key: string, value: unknown) => {
      const path = join(modelDir, name);
      const json = JSON.parse(await Deno.readTextFile(path));
      await Deno.writeTextFile(path, JSON.stringify({ ...json, [key]: value }));
    };
    await editJson("config.json", "eos_token_id", 52);
    await editJson("generation_config.json", "eos_token_id", 52);
    await editJson("tokenizer_config.json", "eos_token", "<|endoftext|>");
    const lines = async (model: string, out: string, stop?: number[]) => {
      const r = await runEval({ ...base, model, outDir: join(root, out), stop });
      return (await read(r.outDir, "samples.jsonl")).trimEnd().split("\n").map((l) =>
        JSON.parse(l)
      );
    };
    // The same draws as the original (EOS <|im_end|>): a sample its EOS ended ends at the same
    // token, now as a stop id.
    const original = await lines("models/arithmetic-tiny", "original");
    const baseLike = await lines(modelDir, "base");
    assert.ok(original.some((l) => l.stop === "eos"), "no sample ended at <|im_end|>");
    assert.deepEqual(
      baseLike.map((l) => [l.text, l.tokens, l.stop]),
      original.map((l) => [l.text, l.tokens, l.stop === "eos" ? "stop" : l.stop]),
    );
    // --stop extends the set: every id but the EOS ends a sample after one token.
    const every = Array.from({ length: 64 }, (_, i) => i).filter((id) => id !== 52);
    for (const l of await lines(modelDir, "every", every)) {
      assert.deepEqual([l.tokens, l.stop], [1, "stop"]);
    }
    await assert.rejects(
      runEval({ ...base, model: modelDir, outDir: join(root, "bad"), stop: [64] }),
      /--stop must hold token ids below the model's vocabulary size \(64\): current value is \[64\]/,
    );
    await assert.rejects(
      runEval({ ...base, model: modelDir, outDir: join(root, "bad2"), stop: [-1] }),
      /--stop must be a list of non-negative integer token ids: current value is \[-1\]/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() renders the prompt with the chat template's enable_thinking as `thinking` says", async () => {
  const root = await Deno.makeTempDir();
  try {
    // arithmetic-tiny with a chat template that, like Qwen3's, closes an empty think block
    // when enable_thinking is false.
    const modelDir = await copyModelDir(join(root, "model"));
    const configPath = join(modelDir, "tokenizer_config.json");
    const tokenizerConfig = JSON.parse(await Deno.readTextFile(configPath));
    tokenizerConfig.chat_template += "{%- if add_generation_prompt and enable_thinking is " +
      "defined and enable_thinking is false %}{{- 'no think\\n' }}{%- endif %}";
    await Deno.writeTextFile(configPath, JSON.stringify(tokenizerConfig));
    const tokenizer = await loadTokenizer(modelDir);
    const [problem] = await loadEvalProblems("arithmetic", { limit: 1 });
    // The prompt's length shows in the context error (128 positions): --max-new-tokens 127.
    for (const thinking of [false, true]) {
      const ids = tokenizer.encodeChat([{ role: "user", content: problem.question }], {
        addGenerationPrompt: true,
        enableThinking: thinking,
      });
      assert.equal(tokenizer.decode(ids).endsWith("no think\n"), !thinking);
      await assert.rejects(
        runEval({
          ...base,
          model: modelDir,
          limit: 1,
          maxNewTokens: 127,
          thinking,
          outDir: join(root, `out_${thinking}`),
        }),
        new RegExp(`--max-new-tokens 127 plus the ${ids.length} tokens of prompt`),
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() of an RL run's checkpoint defaults to its rl.template; --template wins", async () => {
  const root = await Deno.makeTempDir();
  try {
    // A checkpoint folder of an RL run trained with a custom template (the bundled model's files
    // beside its meta.json, so that it loads as a model).
    const checkpoint = await copyModelDir(join(root, "run", "step_000001"));
    const template = "Q: {question}";
    await Deno.writeTextFile(
      join(checkpoint, "meta.json"),
      JSON.stringify({ config: { trainer: { mode: "rl" }, rl: { template } } }),
    );
    const lines: string[] = [];
    const options = { ...base, model: checkpoint, limit: 1, k: 1, maxNewTokens: 4 };
    await runEval({ ...options, outDir: join(root, "default"), log: (l) => lines.push(l) });
    const saved = JSON.parse(await read(join(root, "default"), "eval_config.json"));
    assert.equal(saved.template, template);
    assert.ok(
      lines.some((l) => l.startsWith(`Template "${template}": the evaluated run's rl.template`)),
      lines.join("\n"),
    );
    // An explicit --template wins; a plain model keeps the per-data default.
    await runEval({ ...options, template: "boxed", outDir: join(root, "explicit") });
    assert.equal(
      JSON.parse(await read(join(root, "explicit"), "eval_config.json")).template,
      "boxed",
    );
    await runEval({ ...base, limit: 1, k: 1, maxNewTokens: 4, outDir: join(root, "plain") });
    assert.equal(JSON.parse(await read(join(root, "plain"), "eval_config.json")).template, "task");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runEval() refuses to resume on a changed model or data file, naming it", async () => {
  const root = await Deno.makeTempDir();
  try {
    const modelDir = await copyModelDir(join(root, "model"));
    const dataPath = join(root, "d.jsonl");
    await Deno.writeTextFile(
      dataPath,
      '{"question": "1+2=", "answer": "3"}\n{"question": "2+2=", "answer": "4"}\n',
    );
    const options = { ...base, model: modelDir, data: dataPath, k: 1, maxNewTokens: 4 };
    const outDir = join(root, "out");
    const first = await runEval({ ...options, outDir, stopAfter: 1 });
    assert.equal(first.promptsDone, 1);
    const recorded = JSON.parse(await read(outDir, "eval_config.json")).fingerprints;
    assert.ok(recorded?.model?.["model.safetensors"], JSON.stringify(recorded));
    assert.equal(recorded.data.bytes, (await Deno.stat(dataPath)).size);

    // Another model's weights at the same path: refused, naming the file.
    const weights = join(modelDir, "model.safetensors");
    const original = await Deno.readFile(weights);
    const changed = original.slice();
    changed[changed.length - 5] ^= 0x40;
    await Deno.writeFile(weights, changed);
    await assert.rejects(
      () => runEval({ ...options, outDir }),
      new RegExp(`--model "${modelDir}" changed since.*file "${weights}" changed: recorded`),
    );
    await Deno.writeFile(weights, original);

    // The data file edited: refused, naming it.
    await Deno.writeTextFile(dataPath, '{"question": "9+9=", "answer": "18"}\n', { append: true });
    await assert.rejects(
      () => runEval({ ...options, outDir }),
      new RegExp(`--data "${dataPath}" changed since.*recorded \\d+ bytes`),
    );
    const lines = (await Deno.readTextFile(dataPath)).split("\n");
    await Deno.writeTextFile(dataPath, lines.slice(0, 2).join("\n") + "\n");

    // Unchanged again: the resume completes.
    const done = await runEval({ ...options, outDir });
    assert.equal(done.complete, true);
    assert.equal(done.promptsResumed, 1);

    // A folder from before the fingerprints: resumes with a note.
    const configPath = join(outDir, "eval_config.json");
    const saved = JSON.parse(await Deno.readTextFile(configPath));
    delete saved.fingerprints;
    await Deno.writeTextFile(configPath, JSON.stringify(saved));
    const notes: string[] = [];
    await runEval({ ...options, outDir, log: (l) => notes.push(l) });
    assert.ok(notes.some((n) => n.includes("records no fingerprints")), notes.join("\n"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
