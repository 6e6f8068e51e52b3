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
      message: new RegExp(`must be a model directory \\(config.json\\) or a checkpoint`),
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
