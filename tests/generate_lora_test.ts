// Generation with LoRA adapters applied on top of the shared base weights: the WebGPU KV-cache
// path (tiled projections through `encodeProjection` in the prefill, matvec base + LoRA branch in
// the decode) must pick the same tokens as the CPU backend recomputing every prefix with the same
// adapters, report the model log-probs a separate adapted forward pass gives, and differ from the
// base model (so that dropping the adapters would fail these tests).
import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { createLora, type Lora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import { releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";

// The bound for the returned model log-probs against a separate forward pass.
const LOGPROB_TOL = 1e-4;

const dir = fixtureDir();
// Three prompts of different lengths (left padding up to 7).
const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64], [42]];

const tokensOf = (r: GenerateResult) => r.sequences.map((s) => s.tokens);

async function models(): Promise<{ gpu: WebGpuQwen3; cpu: CpuQwen3 }> {
  const gpu = await loadModel(dir, {
    backend: "webgpu",
    gpu: (await testContext())!,
    warn: false,
  }) as WebGpuQwen3;
  const cpu = await loadModel(dir, { backend: "cpu", warn: false }) as CpuQwen3;
  return { gpu, cpu };
}

/** Checks `modelLogprobs` against `model.tokenLogprobs` over prompt + continuation. */
async function checkAgainstForward(
  model: Qwen3Model,
  prompts: number[][],
  result: GenerateResult,
  what: string,
): Promise<number> {
  const seqs = result.sequences.map((s, b) => [...prompts[b], ...s.tokens]);
  const len = Math.max(...seqs.map((s) => s.length));
  const lp = await model.tokenLogprobs({
    inputIds: seqs.map((s) => [...s, ...new Array(len - s.length).fill(0)]),
    attentionMask: seqs.map((s) => Array.from({ length: len }, (_, t) => (t < s.length ? 1 : 0))),
  });
  const want: number[] = [];
  result.sequences.forEach((s, b) => {
    for (let i = 0; i < s.length; i++) {
      want.push(lp.logprobs[b * (len - 1) + prompts[b].length - 1 + i]);
    }
  });
  return assertClose(
    result.sequences.flatMap((s) => [...s.modelLogprobs]),
    want,
    LOGPROB_TOL,
    what,
  );
}

/** Generates on both backends and checks they agree token for token. */
async function bothBackends(
  gpu: WebGpuQwen3,
  cpu: CpuQwen3,
  options: GenerateOptions,
): Promise<GenerateResult> {
  const onGpu = await generate(gpu, options);
  const onCpu = await generate(cpu, options);
  deepStrictEqual(tokensOf(onGpu), tokensOf(onCpu));
  assertClose(
    onGpu.sequences.flatMap((s) => [...s.modelLogprobs]),
    onCpu.sequences.flatMap((s) => [...s.modelLogprobs]),
    LOGPROB_TOL,
    "model log-probs vs the CPU backend",
  );
  return onGpu;
}

Deno.test({
  name:
    "generate() with the fixture's PEFT adapter: WebGPU greedy equals the CPU backend, model log-probs equal tokenLogprobs, and differ from the base model",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu } = await models();
    try {
      const adapter = await loadPeftAdapter(`${dir}/adapter`, gpu.config);
      const options = {
        prompts: PROMPTS,
        maxNewTokens: 12,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 5,
      };
      const base = await bothBackends(gpu, cpu, options);

      gpu.setAdapters(adapter);
      cpu.setAdapters(adapter);
      const adapted = await bothBackends(gpu, cpu, options);
      for (const s of adapted.sequences) {
        strictEqual(s.stopReason, "length");
        strictEqual(s.length, 12);
      }
      const err = await checkAgainstForward(
        gpu,
        PROMPTS,
        adapted,
        "adapted model log-probs vs tokenLogprobs",
      );
      // The adapter changes the policy: other tokens, and other log-probs of the same prefixes.
      notDeepStrictEqual(tokensOf(adapted), tokensOf(base));
      const differ = adapted.sequences.reduce(
        (n, s, b) => n + s.tokens.filter((t, i) => t !== base.sequences[b].tokens[i]).length,
        0,
      );
      console.log(
        `adapted greedy tokens equal the CPU backend's; ${differ}/36 differ from the base ` +
          `model; model log-probs vs tokenLogprobs rel err ${err.toExponential(2)}`,
      );

      // Seeded sampling with stop ids (rows finish early and are dropped) agrees as well.
      const sampled = await bothBackends(gpu, cpu, {
        prompts: [...PROMPTS, ...PROMPTS],
        maxNewTokens: 10,
        temperature: 1,
        seed: 7,
        stopTokenIds: Array.from({ length: 40 }, (_, i) => 10 + i * 9),
        readbackEvery: 2,
      });
      ok(sampled.stats.rowSteps < 6 * sampled.stats.steps, "no finished row was dropped");
      await checkAgainstForward(
        gpu,
        [...PROMPTS, ...PROMPTS],
        sampled,
        "sampled model log-probs vs tokenLogprobs",
      );

      // Removing the adapters gives the base model back on the same workspace.
      gpu.setAdapters(null);
      deepStrictEqual(tokensOf(await generate(gpu, options)), tokensOf(base));
    } finally {
      releaseGenerateWorkspace(gpu);
      gpu.dispose();
    }
  },
});

Deno.test({
  name:
    "generate() with per-layer multi-expert adapters of larger rank on WebGPU equals the CPU backend; swapping adapters mid-generation is refused",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu } = await models();
    try {
      const peft = await loadPeftAdapter(`${dir}/adapter`, gpu.config);
      // Two experts (ranks 8 and 3) on layer 0, one of rank 5 on layer 1; every projection.
      const experts: Lora = createLora(
        loraConfig({ r: 8, loraAlpha: 16, targetModules: "all-linear", initLoraWeights: false }),
        gpu.config,
        { seed: 3, expertRanks: (m) => (m.layer === 0 ? [8, 3] : [5]) },
      );
      const options = {
        prompts: PROMPTS,
        maxNewTokens: 8,
        temperature: 0,
        eosTokenIds: [],
      };
      // A first generation sizes the workspace for rank 4; the rank-8 adapters must grow it.
      gpu.setAdapters(peft);
      cpu.setAdapters(peft);
      const first = await bothBackends(gpu, cpu, options);
      gpu.setAdapters(experts);
      cpu.setAdapters(experts);
      const result = await bothBackends(gpu, cpu, options);
      notDeepStrictEqual(tokensOf(result), tokensOf(first));
      await checkAgainstForward(gpu, PROMPTS, result, "multi-expert log-probs vs tokenLogprobs");

      // The adapters a generation started with are the ones it finishes with: setAdapters is
      // refused while it runs.
      const refused = /Cannot set the adapters: a call to generate on this model is still running/;
      const running = generate(gpu, { ...options, readbackEvery: 1 });
      throws(() => gpu.setAdapters(peft), refused);
      deepStrictEqual(tokensOf(await running), tokensOf(result));
      gpu.setAdapters(peft);
      // Also while the call waits on the check of a new workspace (sized for the rank-4 adapters)
      // before its prefill, which would otherwise record the rank-8 ones on it.
      releaseGenerateWorkspace(gpu);
      const allocating = generate(gpu, { ...options, mergeAdapters: false });
      throws(() => gpu.setAdapters(experts), refused);
      deepStrictEqual(tokensOf(await allocating), tokensOf(first));
    } finally {
      releaseGenerateWorkspace(gpu);
      gpu.dispose();
    }
  },
});
