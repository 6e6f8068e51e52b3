// The served adapter must mean the same on vLLM/SGLang as in halo. vLLM's PEFTHelper applies one
// scale to every module, `lora_alpha / r` (`lora_alpha / sqrt(r)` with `use_rslora`), and drops
// `rank_pattern` / `alpha_pattern`; the reference below implements that rule independently of
// halo's loader and compares each module's scale·B·A (float64) with halo's `alpha_m/r_m · B_m·A_m`.
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { createLora, type Lora, loraTensorName } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { loadPeftAdapter, PEFT_PREFIX } from "../adapters/peft_io.ts";
import { openSafetensors, readTensorF32 } from "../internal/safetensors.ts";
import { readQwen3Config } from "../model/config.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { peftWriter } from "./peft_writer.ts";

/** ΔW = scale · B · A of one module, in float64 ([out, in] row-major). */
function delta(a: ArrayLike<number>, b: ArrayLike<number>, r: number, scale: number, out: number) {
  const inF = a.length / r;
  const d = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < r; j++) {
      const bo = b[o * r + j] * scale;
      for (let i = 0; i < inF; i++) d[o * inF + i] += bo * a[j * inF + i];
    }
  }
  return d;
}

/** vLLM's PEFTHelper scale: one per adapter, from the top-level keys only. */
function vllmScale(config: Record<string, unknown>): number {
  const r = config.r as number;
  const alpha = config.lora_alpha as number;
  return config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
}

async function writeAndCompare(lora: Lora, scratch: Lora, dir: string) {
  // The "train backend": its parameter tree holds the trained values (random, B non-zero).
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const tree: Record<string, Float32Array> = {};
  for (const m of lora.modules) {
    const e = m.experts[0];
    for (let i = 0; i < e.a.length; i++) e.a[i] = rand();
    for (let i = 0; i < e.b.length; i++) e.b[i] = rand();
    tree[loraTensorName(m, { matrix: "A" })] = e.a;
    tree[loraTensorName(m, { matrix: "B" })] = e.b;
  }
  const backend = { params: { tree } } as unknown as TrainBackend;
  await peftWriter(scratch)(backend, dir);
  const config = JSON.parse(await Deno.readTextFile(join(dir, "adapter_config.json")));
  const scale = vllmScale(config);
  const file = await openSafetensors(join(dir, "adapter_model.safetensors"));
  let worst = 0;
  try {
    for (const m of lora.modules) {
      const e = m.experts[0];
      const aName = PEFT_PREFIX + loraTensorName(m, { matrix: "A" });
      const bName = PEFT_PREFIX + loraTensorName(m, { matrix: "B" });
      const rFile = file.tensors.get(aName)!.shape[0];
      // vLLM refuses an adapter whose `r` exceeds --max-lora-rank and pads each module to it:
      // every module's rank must be at most the written `r`.
      ok(rFile <= config.r, `${m.name}: rank ${rFile} > written r ${config.r}`);
      const got = delta(
        readTensorF32(file, aName),
        readTensorF32(file, bName),
        rFile,
        scale,
        m.outFeatures,
      );
      const want = delta(e.a, e.b, e.r, e.scale, m.outFeatures);
      // float32 B·scale_m: error relative to the module's largest entry.
      const big = want.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]) / big);
      }
    }
  } finally {
    file.close();
  }
  ok(worst <= 1e-5, `vLLM's reading of the adapter differs from halo's: worst rel err ${worst}`);
  // vLLM ignores the patterns: the file must not need them.
  strictEqual(Object.keys(config.rank_pattern ?? {}).length, 0, "rank_pattern must be empty");
  strictEqual(Object.keys(config.alpha_pattern ?? {}).length, 0, "alpha_pattern must be empty");
}

const MODEL = "tests/fixtures/qwen3-tiny";

Deno.test("peftWriter: rank_pattern/alpha_pattern adapters mean the same under vLLM's one-scale rule", async () => {
  const shape = await readQwen3Config(MODEL);
  for (const rslora of [false, true]) {
    const cfg = loraConfig({
      r: 4,
      loraAlpha: 8,
      targetModules: ["q_proj", "v_proj", "down_proj"],
      rankPattern: { "v_proj": 2, "layers.0.self_attn.q_proj": 6 },
      alphaPattern: { "down_proj": 3 },
      useRslora: rslora,
    });
    const lora = createLora(cfg, shape, { seed: 1 });
    // The pattern must give modules different scales, else the test cannot fail.
    ok(new Set(lora.modules.map((m) => m.experts[0].scale)).size > 1);
    const dir = await Deno.makeTempDir({ prefix: "peft_writer_test" });
    try {
      await writeAndCompare(lora, createLora(cfg, shape, { seed: 2 }), dir);
      // halo's own loader (the fake vLLM server's) reads the same ΔW.
      const back = await loadPeftAdapter(dir, shape);
      for (const [k, m] of back.modules.entries()) {
        const o = lora.modules[k];
        const e = m.experts[0], f = o.experts[0];
        const got = delta(e.a, e.b, e.r, e.scale, m.outFeatures);
        const want = delta(f.a, f.b, f.r, f.scale, o.outFeatures);
        const big = want.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
        for (let i = 0; i < want.length; i++) {
          ok(Math.abs(got[i] - want[i]) <= 1e-5 * big, `${m.name}[${i}]: ${got[i]} vs ${want[i]}`);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("peftWriter: a uniform adapter keeps halo's scale under vLLM's rule", async () => {
  const shape = await readQwen3Config(MODEL);
  const cfg = loraConfig({ r: 4, loraAlpha: 16, targetModules: ["q_proj", "o_proj"] });
  const dir = await Deno.makeTempDir({ prefix: "peft_writer_test" });
  try {
    await writeAndCompare(
      createLora(cfg, shape, { seed: 1 }),
      createLora(cfg, shape, { seed: 2 }),
      dir,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
