// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main, pairSystems } from "./eval.ts";
import { xmlProblem } from "../plot/test_utils.ts";
import { copyModelDir } from "../internal/test_utils.ts";
import { noGpu } from "../gpu/test_utils.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), progress: null },
  };
}

const tiny = ["--model", "models/arithmetic-tiny", "--data", "arithmetic", "--backend", "cpu"];

Deno.test("main() end to end writes samples.jsonl, summary.json, summary.md and pass_at_k.svg", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { out, err, io } = capture();
    const code = await main([
      ...tiny,
      "--limit",
      "2",
      "--k",
      "2",
      "--max-new-tokens",
      "12",
      "--out",
      dir,
    ], io);
    assert.equal(code, 0, err.join("\n"));
    assert.ok(out[0].startsWith("arithmetic-tiny: 2 problems × 2 samples | pass@1 "), out[0]);
    assert.match(out[0], / \| pass@2 .* \| maj@2 /);
    const samples = (await Deno.readTextFile(join(dir, "samples.jsonl"))).trimEnd().split("\n");
    assert.equal(samples.length, 4);
    const record = JSON.parse(samples[0]);
    for (const key of ["id", "sample", "text", "answer", "correct", "reason"]) {
      assert.ok(key in record, key);
    }
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
    assert.deepEqual(summary.ks, [1, 2]);
    assert.equal(summary.config.temperature, 0.6);
    assert.equal(summary.config.topP, 0.95);
    assert.equal(summary.config.thinking, false);
    assert.ok((await Deno.readTextFile(join(dir, "summary.md"))).includes("| pass@2 | "));
    assert.equal(xmlProblem(await Deno.readTextFile(join(dir, "pass_at_k.svg"))), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() with two models writes one folder each and a side-by-side table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { err, io } = capture();
    const args = [
      ...tiny,
      "--model",
      "models/arithmetic-tiny",
      "--limit",
      "1",
      "--k",
      "1",
      "--max-new-tokens",
      "4",
      "--out",
      dir,
    ];
    assert.equal(await main(args, io), 0, err.join("\n"));
    const md = await Deno.readTextFile(join(dir, "comparison.md"));
    assert.ok(md.includes("| metric | arithmetic-tiny | arithmetic-tiny-2 |"));
    for (const sub of ["arithmetic-tiny", "arithmetic-tiny-2"]) {
      await Deno.stat(join(dir, sub, "summary.json"));
    }
    assert.equal(xmlProblem(await Deno.readTextFile(join(dir, "pass_at_k.svg"))), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() rejects bad input with exit code 2, naming the flag or file", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--model", "models/arithmetic-tiny", "--data", "imagenet"],
      /--data must be one of "gsm8k", "math500", "arithmetic" or a \.jsonl file: current value is "imagenet"/,
    ],
    [
      ["--model", "no/such/dir", "--data", "arithmetic"],
      /--model directory "no\/such\/dir" not found/,
    ],
    [
      ["--model", "models/arithmetic-tiny", "--data", "arithmetic", "--k", "0"],
      /--k must be a positive integer: current value is "0"/,
    ],
    [
      ["--model", "models/arithmetic-tiny", "--data", "none.jsonl"],
      /--data file "none\.jsonl" not found/,
    ],
    [["--data", "arithmetic"], /--model is required/],
    [["--model", "models/arithmetic-tiny"], /--data is required/],
    [[
      "--model",
      "a",
      "--model",
      "b",
      "--adapter",
      "x",
      "--adapter",
      "y",
      "--adapter",
      "z",
      "--data",
      "gsm8k",
    ], /2 --model and 3 --adapter/],
    [
      ["--model", "models/arithmetic-tiny", "--data", "arithmetic", "--backend", "tpu"],
      /--backend/,
    ],
    [
      [...tiny, "--stop", "54,x"],
      /--stop must be comma-separated non-negative integer token ids: current value is "54,x"/,
    ],
    [[...tiny, "--stop=-3"], /--stop must be comma-separated .*"-3"/],
    [[...tiny, "--stop", ""], /--stop must be comma-separated .*""/],
    [
      [...tiny, "--submit-every-layers=-1"],
      /--submit-every-layers must be an integer ≥ 0: current value is "-1"/,
    ],
    [[...tiny, "--submit-every-layers", "1.5"], /--submit-every-layers must be .*"1\.5"/],
    [
      ["--model", "models/arithmetic-tiny", "--data", "arithmetic", "--bogus"],
      /Unknown option '--bogus'/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const { err, io } = capture();
    const dir = await Deno.makeTempDir();
    try {
      assert.equal(await main([...args, "--out", dir], io), 2, args.join(" "));
      assert.match(err[0], pattern);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test({
  name: "main() --submit-every-layers sets the WebGPU model's submitEveryLayers",
  ignore: noGpu,
  async fn() {
    // Record what the model is given (the setter still applies it).
    const proto = WebGpuQwen3.prototype;
    const original = Object.getOwnPropertyDescriptor(proto, "submitEveryLayers")!;
    const set: number[] = [];
    Object.defineProperty(proto, "submitEveryLayers", {
      ...original,
      set(this: WebGpuQwen3, value: number) {
        set.push(value);
        original.set!.call(this, value);
      },
    });
    const dir = await Deno.makeTempDir();
    try {
      const { err, io } = capture();
      const args = ["--model", "models/arithmetic-tiny", "--data", "arithmetic", "--limit", "1"];
      const code = await main([
        ...args,
        "--k",
        "1",
        "--max-new-tokens",
        "4",
        "--backend",
        "webgpu",
        "--submit-every-layers",
        "2",
        "--out",
        dir,
      ], io);
      assert.equal(code, 0, err.join("\n"));
      assert.deepEqual(set, [2]);
    } finally {
      Object.defineProperty(proto, "submitEveryLayers", original);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("pairSystems() pairs models and adapters", () => {
  assert.deepEqual(pairSystems(["m"], [], "o").map((s) => s.outDir), ["o"]);
  const pairs = pairSystems(["a/m1", "b/m1"], ["x", "none"], "o");
  assert.deepEqual(pairs.map((s) => [s.name, s.model, s.adapter]), [["x", "a/m1", "x"], [
    "m1",
    "b/m1",
    null,
  ]]);
});

Deno.test("main() --thinking turns Qwen3's thinking mode on and records it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { out, err, io } = capture();
    const args = [...tiny, "--limit", "1", "--k", "1", "--max-new-tokens", "2", "--out", dir];
    assert.equal(await main([...args, "--thinking"], io), 0, err.join("\n"));
    // With k = 1 the headline shows pass@1 once (pass@k is pass@1).
    assert.equal(out[0].split("pass@").length - 1, 1, out[0]);
    assert.match(out[0], / \| maj@1 /);
    const config = JSON.parse(await Deno.readTextFile(join(dir, "eval_config.json")));
    assert.equal(config.thinking, true);
    // The folder's setting is part of what a resume must match.
    assert.equal(await main(args, io), 2);
    assert.match(err.at(-1)!, /thinking = true, this run has false/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() --no-problem-nouns records the ablation; a resume must match; a folder from before it resumes with the rule on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { err, io } = capture();
    const args = [...tiny, "--limit", "2", "--k", "1", "--max-new-tokens", "2", "--out", dir];
    const config = async () => JSON.parse(await Deno.readTextFile(join(dir, "eval_config.json")));
    assert.equal(await main([...args, "--stop-after", "1"], io), 0, err.join("\n"));
    assert.equal((await config()).problemNouns, true);
    assert.equal(await main([...args, "--no-problem-nouns"], io), 2);
    assert.match(err.at(-1)!, /problemNouns = true, this run has false/);
    // A folder written before the setting existed ran with the rule: it resumes without the flag.
    const { problemNouns: _, ...before } = await config();
    await Deno.writeTextFile(join(dir, "eval_config.json"), JSON.stringify(before));
    assert.equal(await main([...args, "--no-problem-nouns"], io), 2);
    assert.match(err.at(-1)!, /problemNouns = true, this run has false/);
    assert.equal(await main(args, io), 0, err.join("\n"));
    // Off: recorded, and in the summary's settings.
    assert.equal(await main([...args, "--overwrite", "--no-problem-nouns"], io), 0);
    assert.equal((await config()).problemNouns, false);
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
    assert.equal(summary.config.problemNouns, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() --stop reads comma-separated ids and records them; a resume must match", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { err, io } = capture();
    const args = [...tiny, "--limit", "1", "--k", "2", "--max-new-tokens", "4", "--out", dir];
    // Every id of the 64-token vocabulary but the EOS (54) stops: one token per sample.
    const every = Array.from({ length: 64 }, (_, i) => i).filter((id) => id !== 54);
    assert.equal(await main([...args, "--stop", ` ${every.join(", ")}`], io), 0, err.join("\n"));
    const config = JSON.parse(await Deno.readTextFile(join(dir, "eval_config.json")));
    assert.deepEqual(config.stop, every);
    for (const line of (await Deno.readTextFile(join(dir, "samples.jsonl"))).trim().split("\n")) {
      assert.deepEqual([JSON.parse(line).tokens, JSON.parse(line).stop], [1, "stop"]);
    }
    assert.equal(await main(args, io), 2);
    assert.match(err.at(-1)!, /stop = \[0,1,2,.*\], this run has \[\]/);
    // An id outside the model's vocabulary, once the model is open.
    assert.equal(await main([...args, "--overwrite", "--stop", "7,640"], io), 2);
    assert.match(
      err.at(-1)!,
      /--stop must hold token ids below the model's vocabulary size \(64\): current value is \[7,640\]/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() warns on stderr when the evaluated run trained on the evaluation's data file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A run whose final/ is the bundled model and whose checkpoint trained on data.jsonl.
    const data = join(dir, "data.jsonl");
    await Deno.writeTextFile(
      data,
      JSON.stringify({ question: "What is 1 + 2?", answer: "3" }) + "\n",
    );
    const final = join(dir, "run", "final");
    await copyModelDir(final);
    await Deno.mkdir(join(dir, "run", "step_000003"));
    const meta = join(dir, "run", "step_000003", "meta.json");
    const config = {
      trainer: { mode: "rl" },
      rl: { data: { path: data, evalPath: "", evalSize: 1 } },
    };
    await Deno.writeTextFile(meta, JSON.stringify({ step: 3, config }));
    const { err, io } = capture();
    const args = ["--model", final, "--data", data, "--backend", "cpu", "--k", "1"];
    const code = await main([...args, "--max-new-tokens", "2", "--out", join(dir, "out")], io);
    assert.equal(code, 0, err.join("\n"));
    const warning = err.find((l) => l.startsWith("Warning:"));
    assert.ok(warning, err.join("\n"));
    assert.ok(warning.includes(`"${data}"`) && warning.includes(meta), warning);
    // Another data file: no warning.
    const other = join(dir, "other.jsonl");
    await Deno.copyFile(data, other);
    const quiet = capture();
    assert.equal(
      await main([
        "--model",
        final,
        "--data",
        other,
        "--backend",
        "cpu",
        "--k",
        "1",
        "--max-new-tokens",
        "2",
        "--out",
        join(dir, "out2"),
      ], quiet.io),
      0,
    );
    assert.equal(quiet.err.filter((l) => l.startsWith("Warning:")).length, 0, quiet.err.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() --out naming a file: exit 2, naming --out", async () => {
  const file = await Deno.makeTempFile();
  try {
    const { err, io } = capture();
    assert.equal(await main([...tiny, "--k", "1", "--limit", "1", "--out", file], io), 2);
    assert.equal(
      err[0],
      `Cannot evaluate: --out "${file}" is a file: give a directory (created if missing)`,
    );
    assert.equal(await Deno.readTextFile(file), "");
  } finally {
    await Deno.remove(file);
  }
});
