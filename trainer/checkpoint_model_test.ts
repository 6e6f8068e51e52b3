import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { readQwen3Config } from "../model/config.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { loadModelOrCheckpoint } from "./checkpoint_model.ts";
import { modelParams } from "./params.ts";
import { main as evalMain } from "../cli/eval.ts";
import { main as demoMain } from "../cli/demo.ts";
import { DEFAULT_CONFIG, type TrainConfig } from "./config.ts";
import { runAdapters } from "./run_adapters.ts";
import { loraParams } from "./params.ts";
import { loadModel } from "../model/load_model.ts";
import type { Lora } from "../adapters/lora.ts";
import { PEFT_PREFIX, savePeftAdapter } from "../adapters/peft_io.ts";
import { saveHiloAdapter } from "../adapters/hilo_io.ts";
import { mulberry32 } from "../internal/random.ts";

const BASE = "models/arithmetic-tiny";

/** `<dir>/run/step_000003/`: the bundled model with its final norm doubled, on base `BASE`. */
async function fineTunedCheckpoint(dir: string): Promise<string> {
  const config = await readQwen3Config(BASE);
  const tree = modelParams(await loadQwen3Weights(BASE, config), config).tree;
  tree["model.norm.weight"] = tree["model.norm.weight"].map((x) => 2 * x);
  return await saveCheckpoint(join(dir, "run"), {
    step: 3,
    tensors: tree,
    optimizer: {},
    meta: { config: { model: { path: BASE } }, dataPosition: 0, rng: {}, metrics: {} },
  });
}

Deno.test("loadModelOrCheckpoint() opens a step checkpoint on its base model, and names a missing directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_ckpt_model_" });
  try {
    const step = await fineTunedCheckpoint(dir);
    const opened = await loadModelOrCheckpoint(step, { backend: "cpu" });
    strictEqual(opened.tokenizerDir, BASE);
    strictEqual(opened.step, 3);
    const base = await loadModelOrCheckpoint(BASE, { backend: "cpu" });
    strictEqual(base.step, null);
    const a = (opened.model as CpuQwen3).weights.norm;
    const b = (base.model as CpuQwen3).weights.norm;
    deepStrictEqual(a, b.map((x) => 2 * x));
    await rejects(loadModelOrCheckpoint(join(dir, "none"), { backend: "cpu", what: "X" }), {
      name: "NotFound",
      message: `X: directory "${join(dir, "none")}" not found`,
    });
    await rejects(loadModelOrCheckpoint(dir, { backend: "cpu" }), {
      name: "RangeError",
      message: /must be a model directory \(config.json\), an adapter directory .* or a checkpoint/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task eval and deno task demo accept a step_NNNNNN checkpoint", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_ckpt_model_" });
  try {
    const step = await fineTunedCheckpoint(dir);
    const out: string[] = [];
    const err: string[] = [];
    const code = await evalMain([
      ...["--model", step, "--data", "arithmetic", "--backend", "cpu", "--limit", "1"],
      ...["--k", "1", "--max-new-tokens", "4", "--out", join(dir, "eval")],
    ], { out: (l) => out.push(l), err: (l) => err.push(l), progress: null });
    strictEqual(code, 0, err.join("\n"));
    ok(out[0].startsWith("step_000003: 1 problems × 1 samples"), out[0]);

    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(" "));
    try {
      await demoMain(["--model", step, "--backend", "cpu", "--tokens", "1"]);
    } finally {
      console.log = log;
    }
    ok(
      lines[0] === `model: ${step}` && lines.some((l) => l.startsWith("greedy: ")),
      lines.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A LoRA or HILO run on `BASE` with random (non-zero) adapter weights: its `step_000002/`
 * checkpoint, its `final/` export, and the adapters themselves.
 */
async function adapterRun(
  dir: string,
  kind: "lora" | "hilo",
): Promise<{ step: string; final: string; lora: Lora }> {
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    model: { ...DEFAULT_CONFIG.model, path: BASE },
    adapters: { ...DEFAULT_CONFIG.adapters, kind, r: 2 },
  };
  const lora = runAdapters(config, await readQwen3Config(BASE))!;
  const random = mulberry32(7);
  const tree = loraParams(lora).tree;
  for (const values of Object.values(tree)) {
    for (let i = 0; i < values.length; i++) values[i] = 0.2 * (random() - 0.5);
  }
  const run = join(dir, kind);
  const step = await saveCheckpoint(run, {
    step: 2,
    weights: "adapter",
    tensors: Object.fromEntries(Object.entries(tree).map(([k, v]) => [PEFT_PREFIX + k, v])),
    optimizer: {},
    meta: { config, dataPosition: 0, rng: {}, metrics: {} },
  });
  const final = join(run, "final");
  const save = kind === "hilo" ? saveHiloAdapter : savePeftAdapter;
  await save(final, lora, { baseModelNameOrPath: BASE });
  return { step, final, lora };
}

Deno.test("loadModelOrCheckpoint() opens a LoRA or HILO run's step checkpoint and final/ export on their base model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_ckpt_model_" });
  const inputIds = [[3, 17, 5, 9, 12, 4]];
  const logits = async (model: { forward(x: { inputIds: number[][] }): unknown }) =>
    Array.from(((await model.forward({ inputIds })) as { logits: Float32Array }).logits);
  try {
    const base = await loadModel(BASE, { backend: "cpu", warn: false });
    const bare = await logits(base);
    for (const kind of ["lora", "hilo"] as const) {
      const { step, final, lora } = await adapterRun(dir, kind);
      (base as CpuQwen3).setAdapters(lora);
      const expected = await logits(base);
      ok(expected.some((x, i) => Math.abs(x - bare[i]) > 1e-3), `${kind} changes nothing`);
      for (const path of [step, final]) {
        const opened = await loadModelOrCheckpoint(path, { backend: "cpu" });
        strictEqual(opened.tokenizerDir, BASE);
        strictEqual(opened.step, path === step ? 2 : null);
        strictEqual(opened.adapter, true);
        const got = await logits(opened.model);
        opened.model.dispose();
        ok(got.every((x, i) => Math.abs(x - expected[i]) <= 1e-5), `${kind} ${path}`);
      }
    }
    base.dispose();
    // An adapter whose base cannot be found from here: the error says how to give both apart.
    const moved = join(dir, "moved");
    await Deno.mkdir(moved);
    const config = JSON.parse(await Deno.readTextFile(join(dir, "lora/final/adapter_config.json")));
    await Deno.writeTextFile(
      join(moved, "adapter_config.json"),
      JSON.stringify({ ...config, base_model_name_or_path: "elsewhere/model" }),
    );
    await rejects(
      loadModelOrCheckpoint(moved, { backend: "cpu", what: "X", adapterFlag: "--adapter" }),
      {
        name: "RangeError",
        message: `X: "${moved}" is an adapter directory (adapter_config.json) whose base model ` +
          `(base_model_name_or_path "elsewhere/model") is not a model directory from here: give ` +
          `the base model and the adapter apart, --model <base> --adapter "${moved}"`,
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task eval takes a LoRA run's step checkpoint as --model, and refuses a second adapter on it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_ckpt_model_" });
  try {
    const { step, final } = await adapterRun(dir, "lora");
    const args = ["--data", "arithmetic", "--backend", "cpu", "--limit", "1", "--k", "1"];
    const run = async (more: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await evalMain([...args, ...more], {
        out: (l) => out.push(l),
        err: (l) => err.push(l),
        progress: null,
      });
      return { code, out, err };
    };
    const ok1 = await run(["--model", step, "--max-new-tokens", "4", "--out", join(dir, "e1")]);
    strictEqual(ok1.code, 0, ok1.err.join("\n"));
    ok(ok1.out[0].startsWith("step_000002: 1 problems × 1 samples"), ok1.out[0]);
    const two = await run(["--model", step, "--adapter", final, "--out", join(dir, "e2")]);
    strictEqual(two.code, 2);
    ok(
      two.err.join("\n").includes(
        `--model "${step}" holds adapters already: give its base model with --adapter`,
      ),
      two.err.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
