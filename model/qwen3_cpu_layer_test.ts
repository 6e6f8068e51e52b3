import assert from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readQwen3Config } from "./config.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { CpuKvCache, type LayerHookPoint } from "./qwen3_cpu_layer.ts";
import { loadQwen3Weights } from "./weights.ts";
import { fixtureDir } from "../internal/test_utils.ts";

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);

function loraModel(): CpuQwen3 {
  const model = new CpuQwen3(config, weights);
  model.setAdapters(
    createLora(loraConfig({ r: 2, targetModules: "all-linear", initLoraWeights: false }), config, {
      seed: 3,
    }),
  );
  return model;
}

Deno.test("CpuQwen3.trace() capture hooks see each layer's states after attention, of the MLP and at the output", () => {
  const model = loraModel();
  const seen: Record<LayerHookPoint, Float64Array[]> = { attention: [], mlp: [], output: [] };
  const t = model.trace({ inputIds: [[5, 17, 300, 42]] }, {
    capture: {
      attention: (l, h) => (seen.attention[l] = h),
      mlp: (l, h) => (seen.mlp[l] = h),
      output: (l, h) => (seen.output[l] = h),
    },
  });
  for (let l = 0; l < config.numHiddenLayers; l++) {
    assert.equal(seen.attention[l], t.layers[l].hMid);
    assert.equal(seen.output[l], t.layers[l].hOut);
    // The MLP's output is the residual update of the layer's second half (up to rounding).
    const mlp = seen.mlp[l];
    for (let i = 0; i < mlp.length; i++) {
      assert.ok(Math.abs(mlp[i] - (t.layers[l].hOut[i] - t.layers[l].hMid[i])) < 1e-12);
    }
  }
  // The layers' outputs are HF's hidden_states[l + 1] (the last one before the final norm).
  for (let l = 0; l + 1 < config.numHiddenLayers; l++) {
    assert.deepEqual(t.hidden[l + 1], t.layers[l].hOut);
  }
  assert.equal(t.hFinal, t.layers[config.numHiddenLayers - 1].hOut);
});

Deno.test("CpuQwen3.decode() with a KV cache gives the full forward's logits bit for bit", () => {
  const model = loraModel();
  const seqs = [[5, 17, 300, 42, 9, 77], [250, 3, 3]];
  const full = seqs.map((ids) => model.trace({ inputIds: [ids] }).logits);
  const V = config.vocabSize;
  const cache = new CpuKvCache(config, { rows: 2, capacity: 8 });
  // Prefill three tokens of each (row 1 then decodes from position 3), then one token at a time.
  const first = model.decode([seqs[0].slice(0, 3), seqs[1].slice(0, 3)], {
    cache,
    rows: [0, 1],
    start: [0, 0],
    logitsAt: [2, 2],
  });
  assert.deepEqual(first.subarray(0, V), full[0].subarray(2 * V, 3 * V));
  assert.deepEqual(first.subarray(V, 2 * V), full[1].subarray(2 * V, 3 * V));
  for (let p = 3; p < seqs[0].length; p++) {
    const logits = model.decode([[seqs[0][p]]], { cache, rows: [0], start: [p], logitsAt: [0] });
    assert.deepEqual(logits, full[0].subarray(p * V, (p + 1) * V), `position ${p}`);
  }
  assert.throws(
    () => model.decode([[1, 2, 3]], { cache, rows: [1], start: [6], logitsAt: [0] }),
    { name: "RangeError", message: /within the cache's 8 slots/ },
  );
});
