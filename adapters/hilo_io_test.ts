import assert from "node:assert/strict";
import { randomArray } from "../internal/random.ts";
import { openSafetensors, readTensorF32, writeSafetensors } from "../internal/safetensors.ts";
import { assertArrayEqual, fixtureDir, withTempDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { loadModel } from "../model/load_model.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { Lora } from "../model/adapter_types.ts";
import { createHilo, hiloConfig } from "./hilo.ts";
import { loadHiloAdapter, saveHiloAdapter } from "./hilo_io.ts";
import { loadAdapter } from "./load_adapter.ts";

const dir = fixtureDir();
const model = await readQwen3Config(dir);

function randomHilo(seed: number): Lora {
  const lora = createHilo(
    hiloConfig(model, { experts: "1-3", rank: "2-4", topK: [1, 2], balanceCoef: 0.01 }),
    model,
    { seed },
  );
  let s = seed * 100;
  for (const m of lora.modules) for (const e of m.experts) e.b.set(randomArray(e.b.length, s++));
  return lora;
}

function assertSameLora(a: Lora, b: Lora): void {
  assert.equal(a.modules.length, b.modules.length);
  assert.deepEqual(a.hilo, b.hilo);
  assert.equal(a.config.loraDropout, b.config.loraDropout);
  a.modules.forEach((m, i) => {
    const n = b.modules[i];
    assert.equal(n.name, m.name);
    assert.equal(n.experts.length, m.experts.length);
    m.experts.forEach((e, j) => {
      assertArrayEqual(n.experts[j].a, e.a, `${m.name} A${j}`);
      assertArrayEqual(n.experts[j].b, e.b, `${m.name} B${j}`);
      assert.equal(n.experts[j].scale, e.scale);
    });
    assert.equal(n.router === undefined, m.router === undefined);
    if (m.router) {
      assertArrayEqual(n.router!.weight, m.router.weight, `${m.name} router`);
      assert.deepEqual({ ...n.router!, weight: 0 }, { ...m.router, weight: 0 });
    }
  });
}

Deno.test("saveHiloAdapter() then loadHiloAdapter() round-trips bit for bit, in the documented format", async () => {
  await withTempDir(async (tmp) => {
    const lora = randomHilo(1);
    await saveHiloAdapter(`${tmp}/hilo`, lora, { baseModelNameOrPath: "qwen3-tiny" });
    const json = JSON.parse(await Deno.readTextFile(`${tmp}/hilo/adapter_config.json`));
    assert.equal(json.peft_type, "HILO");
    assert.equal(json.base_model_name_or_path, "qwen3-tiny");
    assert.deepEqual(json.layers, [
      { experts: 1, rank: 2, alpha: 16, top_k: 1 },
      { experts: 3, rank: 4, alpha: 16, top_k: 2 },
    ]);
    const file = await openSafetensors(`${tmp}/hilo/adapter_model.safetensors`);
    try {
      const names = [...file.tensors.keys()];
      // Layer 0: 7 projections × (A, B); layer 1: 7 × (3 × (A, B) + router).
      assert.equal(names.length, 7 * 2 + 7 * 7);
      assert.deepEqual(
        file.tensors.get("base_model.model.model.layers.1.mlp.up_proj.router.weight")?.shape,
        [3, 64],
      );
      assert.deepEqual(
        file.tensors.get("base_model.model.model.layers.0.self_attn.k_proj.experts.0.lora_B.weight")
          ?.shape,
        [32, 2],
      );
      assert.ok(!names.some((n) => n.includes("layers.0") && n.includes("router")));
    } finally {
      file.close();
    }
    assertSameLora(await loadHiloAdapter(`${tmp}/hilo`, model), lora);
    // loadAdapter dispatches on peft_type.
    assertSameLora(await loadAdapter(`${tmp}/hilo`, model), lora);
    // No temporary file is left behind.
    const left = [...Deno.readDirSync(`${tmp}/hilo`)].map((e) => e.name).sort();
    assert.deepEqual(left, ["adapter_config.json", "adapter_model.safetensors"]);
  });
});

Deno.test("loadModel() with a HILO adapter directory runs it as setAdapters does (CPU, bit-exact)", async () => {
  await withTempDir(async (tmp) => {
    const lora = randomHilo(2);
    await saveHiloAdapter(`${tmp}/hilo`, lora);
    const loaded = await loadModel(dir, { backend: "cpu", warn: false, adapter: `${tmp}/hilo` });
    const ref = new CpuQwen3(model, (loaded as CpuQwen3).weights);
    ref.setAdapters(lora);
    const input = { inputIds: [[1, 2, 3, 4, 5]] };
    const a = await loaded.forward(input);
    const b = await ref.forward(input);
    assertArrayEqual(a.logits, b.logits, "logits");
    // And a PEFT directory through the same option.
    const peft = await loadModel(dir, { backend: "cpu", warn: false, adapter: `${dir}/adapter` });
    assert.equal((peft as CpuQwen3).adapters?.modules.length, 14);
  });
});

Deno.test("loadHiloAdapter() names the missing, misshaped or unknown tensor and the unknown key", async () => {
  await withTempDir(async (tmp) => {
    const lora = randomHilo(3);
    const good = `${tmp}/good`;
    await saveHiloAdapter(good, lora);
    const file = await openSafetensors(`${good}/adapter_model.safetensors`);
    const tensors = Object.fromEntries(
      [...file.tensors.entries()].map(([name, info]) => [
        name,
        { dtype: "F32" as const, shape: info.shape, data: readTensorF32(file, name) },
      ]),
    );
    file.close();
    const config = await Deno.readTextFile(`${good}/adapter_config.json`);
    const variant = async (
      name: string,
      edit: (t: typeof tensors) => void,
      json = config,
    ): Promise<string> => {
      const d = `${tmp}/${name}`;
      await Deno.mkdir(d);
      const copy = { ...tensors };
      edit(copy);
      await writeSafetensors(`${d}/adapter_model.safetensors`, copy);
      await Deno.writeTextFile(`${d}/adapter_config.json`, json);
      return d;
    };
    const router = "base_model.model.model.layers.1.self_attn.o_proj.router.weight";
    const b2 = "base_model.model.model.layers.1.mlp.gate_proj.experts.2.lora_B.weight";
    let d = await variant("missing", (t) => delete t[router]);
    await assert.rejects(
      () => loadHiloAdapter(d, model),
      new RegExp(`tensor "${router}" is missing`),
    );
    d = await variant("shape", (t) => {
      t[b2] = { dtype: "F32", shape: [4, 128], data: new Float32Array(512) };
    });
    await assert.rejects(
      () => loadHiloAdapter(d, model),
      new RegExp(`tensor "${b2}" must have shape \\[128, 4\\].*current shape is \\[4, 128\\]`),
    );
    d = await variant("extra", (t) => {
      t["base_model.model.model.layers.0.self_attn.q_proj.router.weight"] = {
        dtype: "F32",
        shape: [1, 64],
        data: new Float32Array(64),
      };
    });
    await assert.rejects(
      () => loadHiloAdapter(d, model),
      /tensor "base_model.model.model.layers.0.self_attn.q_proj.router.weight" is unknown/,
    );
    const withKey = JSON.stringify({ ...JSON.parse(config), use_dora: true });
    d = await variant("key", () => {}, withKey);
    await assert.rejects(() => loadHiloAdapter(d, model), /key "use_dora" is unknown/);
    const badLayer = JSON.parse(config);
    badLayer.layers[1].top_k = 5;
    d = await variant("topk", () => {}, JSON.stringify(badLayer));
    await assert.rejects(() => loadHiloAdapter(d, model), /layers\[1\]"\.top_k must be at most.*5/);
    badLayer.layers.pop();
    d = await variant("layers", () => {}, JSON.stringify(badLayer));
    await assert.rejects(() => loadHiloAdapter(d, model), /one entry per decoder layer \(2\)/);
    await assert.rejects(
      () => loadAdapter(`${tmp}/none`, model),
      (e) => e instanceof Deno.errors.NotFound,
    );
  });
});

Deno.test("saveHiloAdapter() refuses adapters that disagree with their layer's entry", async () => {
  await withTempDir(async (tmp) => {
    const lora = randomHilo(4);
    lora.modules[9].router!.topK = 3;
    await assert.rejects(
      () => saveHiloAdapter(`${tmp}/x`, lora),
      /module "model.layers.1.self_attn.v_proj" router must use top-k with k = 2: current value is top-k with k = 3/,
    );
    const plain = { config: lora.config, modules: lora.modules };
    await assert.rejects(() => saveHiloAdapter(`${tmp}/y`, plain), /no HILO settings/);
  });
});
