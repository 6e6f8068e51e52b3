// Golden tests of LoRA on the CPU backend against HF transformers + PEFT run in float64
// (tests/fixtures/qwen3-tiny/reference.safetensors and adapter/; see ../shared/fixtures/README.md):
// the adapted forward (lora.logits, lora.hidden_last) and the exact backward (every grad.* LoRA
// gradient of lora.loss = Σ lora.logits·cot_logits + Σ lora.hidden_last·cot_hidden_last).
import assert from "node:assert/strict";
import { fixtureDir } from "../internal/test_utils.ts";
import { assertClose } from "../gpu/test_utils.ts";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { loraTensorName } from "../adapters/lora.ts";
import { loadModel } from "../model/load_model.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward } from "../model/qwen3_cpu_backward.ts";
import { openSafetensors, readTensorF32, readTensorI32 } from "../internal/safetensors.ts";

// The bound. The references are float32 roundings of float64 values (relative error
// ~6e-8) and the fixture's adapter is stored in float64 but halo holds it in float32 (~6e-8 per
// weight), so the float64 CPU path should land near 1e-7.
const TOL = 1e-4;

const dir = fixtureDir();
const ref = await openSafetensors(`${dir}/reference.safetensors`);
const [batch, seqLen] = ref.tensors.get("input_ids")!.shape;
const ids = readTensorI32(ref, "input_ids");
const inputIds = Array.from(
  { length: batch },
  (_, b) => Array.from(ids.subarray(b * seqLen, (b + 1) * seqLen)),
);

async function adaptedModel(): Promise<CpuQwen3> {
  const model = await loadModel(dir, { backend: "cpu", warn: false });
  assert.ok(model instanceof CpuQwen3);
  model.setAdapters(await loadPeftAdapter(`${dir}/adapter`, model.config));
  return model;
}

Deno.test("CpuQwen3.setAdapters() with the PEFT adapter reproduces lora.logits and lora.hidden_last", async () => {
  const model = await adaptedModel();
  const out = await model.forward({ inputIds, outputHiddenStates: true });
  const layers = model.config.numHiddenLayers;
  const e1 = assertClose(out.logits, readTensorF32(ref, "lora.logits"), TOL, "lora.logits");
  const e2 = assertClose(
    out.hiddenStates![layers],
    readTensorF32(ref, "lora.hidden_last"),
    TOL,
    "lora.hidden_last",
  );
  console.log(
    `lora.logits rel err ${e1.toExponential(2)}, lora.hidden_last ${e2.toExponential(2)}`,
  );
  // The adapter must matter: the base logits differ from the adapted ones by far more than TOL.
  const base = readTensorF32(ref, "logits");
  assert.ok(
    !(assertCloseOrFalse(out.logits, base, 100 * TOL)),
    "adapted logits equal base logits",
  );
  // Removing the adapters gives the base model back.
  model.setAdapters(null);
  const plain = await model.forward({ inputIds });
  assertClose(plain.logits, base, TOL, "logits after setAdapters(null)");
});

function assertCloseOrFalse(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): boolean {
  try {
    assertClose(a, b, tol, "");
    return true;
  } catch {
    return false;
  }
}

Deno.test("cpuBackward() gives every PEFT LoRA gradient of lora.loss", async () => {
  const model = await adaptedModel();
  const t0 = performance.now();
  const { loss, grads } = cpuBackward(model, { inputIds }, {
    mode: "adapters",
    dLogits: readTensorF32(ref, "lora.cot_logits"),
    dLastHidden: readTensorF32(ref, "lora.cot_hidden_last"),
  });
  const ms = performance.now() - t0;
  const refLoss = readTensorF32(ref, "lora.loss")[0];
  // The loss is a sum of ~26k products of O(1) terms: compare relatively at the same bound.
  assert.ok(
    Math.abs(loss - refLoss) <= TOL * Math.abs(refLoss),
    `loss ${loss} vs reference ${refLoss}`,
  );
  let worst = 0;
  let count = 0;
  for (const m of model.adapters!.modules) {
    for (const matrix of ["A", "B"] as const) {
      const name = loraTensorName(m, { matrix });
      const got = grads.get(name);
      assert.ok(got, `missing gradient ${name}`);
      const err = assertClose(got, readTensorF32(ref, `grad.${name}`), TOL, `grad.${name}`);
      worst = Math.max(worst, err);
      count++;
    }
  }
  // Every grad.* tensor of the fixture was checked, and no base weight got a gradient.
  const refCount = [...ref.tensors.keys()].filter((k) => k.startsWith("grad.")).length;
  assert.equal(count, refCount);
  assert.equal(grads.size, refCount);
  console.log(
    `${count} LoRA gradients, worst rel err ${worst.toExponential(2)}; loss ${loss} vs ` +
      `${refLoss}; backward ${ms.toFixed(0)} ms`,
  );
});
