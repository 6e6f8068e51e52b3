// Golden tests of the Qwen3 forward pass against HuggingFace transformers run in float64
// (tests/fixtures/qwen3-tiny/reference.safetensors; see ../shared/fixtures/README.md). The fixture
// directory comes from $HALO_FIXTURE, so the same tests run on any fixture that make_fixtures.py
// produces. Both backends are checked; each comparison reports ‖ours − ref‖ / ‖ref‖.
import { fixtureDir } from "../internal/test_utils.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { openSafetensors, readTensorF32, readTensorI32 } from "../internal/safetensors.ts";

// The bound; f32 kernels reach ~1e-6 on the tiny model and f64 CPU ops ~2e-7 (the
// reference values are stored as float32).
const TOL = 1e-4;

const dir = fixtureDir();
const ref = await openSafetensors(`${dir}/reference.safetensors`);
const ids = readTensorI32(ref, "input_ids");
const [batch, seqLen] = ref.tensors.get("input_ids")!.shape;
const rows = (flat: Int32Array) =>
  Array.from({ length: batch }, (_, b) => Array.from(flat.subarray(b * seqLen, (b + 1) * seqLen)));
const inputIds = rows(ids);
const attentionMask = rows(readTensorI32(ref, "masked.attention_mask"));

async function checkModel(model: Qwen3Model): Promise<void> {
  const tag = `${model.backend} (${model.device})`;
  const out = await model.forward({ inputIds, outputHiddenStates: true });
  const report = (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
    const err = assertClose(got, want, TOL, `${tag} ${what}`);
    console.log(`${tag} ${what}: rel err ${err.toExponential(2)}`);
  };
  report("logits", out.logits, readTensorF32(ref, "logits"));
  const layers = model.config.numHiddenLayers;
  if (out.hiddenStates?.length !== layers + 1) {
    throw new Error(`expected ${layers + 1} hidden states, got ${out.hiddenStates?.length}`);
  }
  for (let l = 0; l <= layers; l++) {
    report(`hidden_states.${l}`, out.hiddenStates[l], readTensorF32(ref, `hidden_states.${l}`));
  }
  const lp = await model.tokenLogprobs({ inputIds, outputHiddenStates: true });
  report("token_logprobs", lp.logprobs, readTensorF32(ref, "token_logprobs"));
  report("tokenLogprobs lastHidden", lp.lastHidden!, readTensorF32(ref, `hidden_states.${layers}`));

  // Right padding: compare the positions whose token is real.
  const masked = await model.forward({ inputIds, attentionMask });
  const want = readTensorF32(ref, "masked.logits");
  const v = model.config.vocabSize;
  const keep = (a: ArrayLike<number>) => {
    const out: number[] = [];
    attentionMask.flat().forEach((m, t) => {
      if (m) { for (let j = 0; j < v; j++) out.push(a[t * v + j]); }
    });
    return out;
  };
  report("masked.logits (unmasked positions)", keep(masked.logits), keep(want));
}

Deno.test("CPU backend matches the HF float64 reference", async () => {
  const model = await loadModel(dir, { backend: "cpu", warn: false });
  await checkModel(model);
});

Deno.test({
  name: "WebGPU backend matches the HF float64 reference",
  ignore: noGpu,
  async fn() {
    const model = await loadModel(dir, {
      backend: "webgpu",
      gpu: (await testContext())!,
      warn: false,
    });
    try {
      await checkModel(model);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "WebGPU backend matches the reference with every weight split into small row blocks",
  ignore: noGpu,
  async fn() {
    // 4 KiB blocks: the 384×64 embedding/LM head lands in 24 blocks, every projection in several,
    // so the embedding gather and every matmul cross block boundaries.
    const model = await loadModel(dir, {
      backend: "webgpu",
      gpu: (await testContext())!,
      warn: false,
      maxChunkBytes: 4096,
    });
    try {
      const blocks = (model as WebGpuQwen3).embedTokens.chunks.length;
      const want = Math.ceil(
        model.config.vocabSize / Math.floor(4096 / (model.config.hiddenSize * 4)),
      );
      if (blocks !== want) throw new Error(`expected ${want} embedding blocks, got ${blocks}`);
      const { logits } = await model.forward({ inputIds });
      const err = assertClose(logits, readTensorF32(ref, "logits"), TOL, "split logits");
      console.log(`split weights logits: rel err ${err.toExponential(2)}`);
    } finally {
      model.dispose();
    }
  },
});
