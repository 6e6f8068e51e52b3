// One SFT training step (forward + backward of 16 arithmetic sequences through the SFT loss,
// no optimizer) of the demo model (builtin:tiny, 2 layers, hidden 64, ~0.1M parameters) on
// each train backend: the float64 CPU path in this thread (baseline), the CPU path on 2 worker
// threads, and WebGPU (WebGpuQwen3.backward) when an adapter exists. Tokens/s = real tokens
// of the batch / time. Run: deno bench --allow-read --allow-env bench/sft_bench.ts
import { createTrainBackend, type TrainBackend } from "../trainer/backend.ts";
import { modelParams } from "../trainer/params.ts";
import { collateSft, tokenizeSft } from "../trainer/sft_batch.ts";
import { sftLoss } from "../trainer/sft_loss.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import type { Qwen3Config } from "../model/config.ts";
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { arithmeticDataset, formatExample } from "../data/arithmetic_task.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";

const config: Qwen3Config = {
  vocabSize: 64,
  hiddenSize: 64,
  intermediateSize: 192,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: true,
  eosTokenIds: [54],
  bosTokenId: null,
  padTokenId: 52,
};
const files = arithmeticTokenizerFiles();
const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
const examples = arithmeticDataset("train", { size: 16, seed: 0, digits: 1, maxTerms: 3 });
const batch = collateSft(examples.map((e) => tokenizeSft(tokenizer, formatExample(e))), {
  padId: 52,
});
const input = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
const term = ({ logprobs }: { logprobs: Float64Array }) =>
  sftLoss({ logprobs, lossMask: batch.lossMask });

function cpuBackend(workers: number): TrainBackend {
  const weights = initQwen3Weights(config, { seed: 0 });
  return createTrainBackend(new CpuQwen3(config, weights), { mode: "full", workers });
}

const backends: [string, TrainBackend][] = [
  ["cpu float64, 1 thread", cpuBackend(1)],
  ["cpu float64, 2 workers", cpuBackend(2)],
];
try {
  const gpu = await createGpu();
  const weights = initQwen3Weights(config, { seed: 0 });
  const model = new WebGpuQwen3(new GpuContext(gpu), config, weights);
  backends.push([
    `webgpu (${gpu.description})`,
    createTrainBackend(model, { mode: "full", params: modelParams(weights, config) }),
  ]);
} catch (error) {
  console.warn(`WebGPU skipped: ${(error as Error).message}`);
}

for (const [name, backend] of backends) {
  await backend.lossAndGrads(input, term, { linear: true }); // warm-up (workers, pipelines)
  Deno.bench({
    name: `SFT step, ${batch.tokens} tokens: ${name}`,
    group: "sft_step",
    baseline: name.startsWith("cpu float64, 1"),
    n: 5,
    warmup: 1,
    async fn() {
      await backend.lossAndGrads(input, term, { linear: true });
    },
  });
}
globalThis.addEventListener("unload", () => {
  for (const [, backend] of backends) backend.dispose();
});
