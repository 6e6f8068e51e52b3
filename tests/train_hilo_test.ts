// HILO adapters through `deno task train` (SFT, CPU): the run trains the experts and the routers
// (their gradients come from the same float64 backward), reports the trainable count of the
// formula, logs the load-balancing loss, and exports a HILO directory that
// `loadModel(…, { adapter })` reads back.
import { notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { routerTensorName } from "../model/adapter_types.ts";
import { loadModel } from "../model/load_model.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { runSft } from "../trainer/sft.ts";
import { exportTinyBase, QUIET, tinyConfig, withTempDir } from "./train_utils.ts";

Deno.test("runSft() with HILO adapters trains experts and routers and exports a HILO directory", async () => {
  await withTempDir(async (dir) => {
    const { base, modelConfig, shape: m } = await exportTinyBase(dir);
    const config = await tinyConfig(dir, [
      `--model.path=${base}`,
      "--adapters.kind=hilo",
      "--adapters.hilo.experts=3",
      "--adapters.hilo.rank=2",
      "--adapters.targets=q_proj,v_proj,down_proj",
      "--trainer.steps=6",
      "--trainer.lr=3e-2",
      "--eval.every=0",
      // The balance term, over 2 micro-batches: logged as "loss/balance" every step.
      "--adapters.hilo.balanceCoef=0.01",
      "--trainer.microBatches=2",
    ]);
    const lines: string[] = [];
    const result = await runSft(config, { ...QUIET, log: (line) => lines.push(line) });
    // Per module: 3 experts of rank 2 (r·(in + out) each) and a router [3, in].
    const [h, kv, inter] = [m.hidden, m.kvHeads * m.headDim, m.intermediate];
    const q = m.heads * m.headDim;
    const perLayer = 3 * 2 * (h + q) + 3 * h + 3 * 2 * (h + kv) + 3 * h + 3 * 2 * (inter + h) +
      3 * inter;
    strictEqual(result.trainableParams, m.layers * perLayer);
    ok(lines.some((l) => l.includes("HILO experts 3, ranks 2")), "no HILO line in the log");
    const steps = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
      .split("\n").map((l) => JSON.parse(l)).filter((r) => r["loss/nll"] !== undefined);
    strictEqual(steps.length, 6);
    // Per routed projection 0 < E·Σ_e f_e·P_e ≤ E (f_e ≤ 1, Σ P = 1); 3 projections a layer.
    const most = 3 * 3 * m.layers;
    for (const r of steps) {
      ok(r["loss/balance"] > 0 && r["loss/balance"] <= most, JSON.stringify(r));
    }
    const saved = JSON.parse(
      await Deno.readTextFile(join(result.runDir, "final", "adapter_config.json")),
    );
    strictEqual(saved.peft_type, "HILO");
    strictEqual(saved.layers.length, m.layers);
    // The exported adapter loads onto the base model; its routers moved from their init.
    const model = await loadModel(base, {
      backend: "cpu",
      adapter: join(result.runDir, "final"),
      warn: false,
    }) as CpuQwen3;
    const init = createHilo(
      hiloConfig(modelConfig, {
        experts: 3,
        rank: 2,
        targetModules: ["q_proj", "v_proj", "down_proj"],
      }),
      modelConfig,
      { seed: config.run.seed },
    );
    const trained = model.adapters!;
    strictEqual(trained.modules.length, init.modules.length);
    trained.modules.forEach((mod, i) => {
      ok(mod.router, `${routerTensorName(mod)} missing`);
      notDeepStrictEqual(mod.router.weight, init.modules[i].router!.weight);
    });
  });
});
