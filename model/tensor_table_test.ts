import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  LAYER_TENSORS,
  modelTensorTable,
  PROJECTION_FIELD,
  projectionModuleName,
  PROJECTIONS,
} from "./tensor_table.ts";

const config = {
  vocabSize: 20,
  hiddenSize: 8,
  intermediateSize: 12,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 3,
  tieWordEmbeddings: true,
};

Deno.test("modelTensorTable() lists the HF tensors with shapes from the config", () => {
  const table = modelTensorTable(config);
  strictEqual(table.length, 1 + 2 * 11 + 1);
  const byName = new Map(table.map((t) => [t.name, t]));
  deepStrictEqual(byName.get("model.embed_tokens.weight")?.shape, [20, 8]);
  deepStrictEqual(byName.get("model.layers.1.self_attn.q_proj.weight")?.shape, [12, 8]);
  deepStrictEqual(byName.get("model.layers.1.self_attn.k_proj.weight")?.shape, [6, 8]);
  deepStrictEqual(byName.get("model.layers.0.self_attn.o_proj.weight")?.shape, [8, 12]);
  deepStrictEqual(byName.get("model.layers.0.self_attn.k_norm.weight")?.shape, [3]);
  deepStrictEqual(byName.get("model.layers.0.mlp.down_proj.weight")?.shape, [8, 12]);
  deepStrictEqual(byName.get("model.layers.0.post_attention_layernorm.weight")?.shape, [8]);
  strictEqual(byName.get("model.layers.1.mlp.gate_proj.weight")?.field, "gateProj");
  strictEqual(byName.get("model.layers.1.mlp.gate_proj.weight")?.layer, 1);
  strictEqual(table.at(-1)?.name, "model.norm.weight");
  strictEqual(byName.has("lm_head.weight"), false);
  const untied = modelTensorTable({ ...config, tieWordEmbeddings: false });
  deepStrictEqual(untied.at(-1), {
    name: "lm_head.weight",
    shape: [20, 8],
    layer: null,
    field: "lmHead",
  });
});

Deno.test("PROJECTION_FIELD and projectionModuleName() agree with LAYER_TENSORS", () => {
  deepStrictEqual(
    LAYER_TENSORS.filter((t) => t.projection).map((t) => t.projection),
    [...PROJECTIONS],
  );
  for (const p of PROJECTIONS) {
    const spec = LAYER_TENSORS.find((t) => t.projection === p);
    strictEqual(PROJECTION_FIELD[p], spec?.field);
    strictEqual(projectionModuleName(3, p), `model.layers.3.${spec?.module}`);
  }
});
