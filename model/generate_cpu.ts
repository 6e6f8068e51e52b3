/**
 * Generation by full recomputation: every step runs `model.forward` over each unfinished
 * sequence's whole prefix and samples with the float64 reference sampler. The CPU backend's
 * generation, and on any backend the reference the KV-cache path must reproduce.
 *
 * @module
 */
import { sampleRef } from "../kernels/sample/sample_ref.ts";
import type {
  GeneratedSequence,
  GenerateResult,
  ResolvedGenerateOptions,
  StopReason,
} from "./generate.ts";
import type { Qwen3Model } from "./model.ts";

/**
 * Generates by recomputing each prefix every step (no KV cache), sampling each row with
 * `sampleRef` (the same Philox draws as the GPU sampler: sequence `b` at step `t`), the EOS ids
 * banned while `step < minNewTokens`.
 *
 * @param model Any backend's model (only `forward` is used).
 * @param options Resolved options from `resolveGenerateOptions`.
 * @returns Tokens, log-probs, stop reasons and counters (`readbacks` counts the forward calls of a
 * WebGPU model, 0 on the CPU).
 *
 * @example Greedy on the tiny model
 * ```ts
 * import { loadModel } from "./load_model.ts";
 * import { resolveGenerateOptions } from "./generate.ts";
 * import { generateCpu } from "./generate_cpu.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const options = resolveGenerateOptions(model.config, {
 *   prompts: [[5, 6]], maxNewTokens: 3, temperature: 0,
 * });
 * const { sequences } = await generateCpu(model, options);
 * console.log(sequences[0].promptLength); // 2
 * ```
 */
export async function generateCpu(
  model: Qwen3Model,
  options: ResolvedGenerateOptions,
): Promise<GenerateResult> {
  const start = performance.now();
  const v = model.config.vocabSize;
  const { prompts, maxNewTokens, minNewTokens, eosTokenIds } = options;
  const seqs = prompts.map((p) => ({
    ids: [...p],
    tokens: [] as number[],
    logprobs: [] as number[],
    modelLogprobs: [] as number[],
    reason: null as StopReason | null,
  }));
  let steps = 0;
  let rowSteps = 0;
  let forwards = 0;
  for (let step = 0; step < maxNewTokens; step++) {
    const active = seqs.map((s, b) => ({ s, b })).filter(({ s }) => s.reason === null);
    if (active.length === 0) break;
    const len = Math.max(...active.map(({ s }) => s.ids.length));
    const inputIds = active.map(({ s }) => [...s.ids, ...new Array(len - s.ids.length).fill(0)]);
    const attentionMask = active.map(({ s }) =>
      Array.from({ length: len }, (_, t) => (t < s.ids.length ? 1 : 0))
    );
    const { logits } = await model.forward({ inputIds, attentionMask });
    // Every active sequence has generated `step` tokens (all start together).
    const bannedTokenIds = step < minNewTokens ? eosTokenIds : undefined;
    forwards++;
    steps++;
    rowSteps += active.length;
    active.forEach(({ s, b }, r) => {
      const at = (r * len + s.ids.length - 1) * v;
      const pick = sampleRef(logits.subarray(at, at + v), {
        ...options,
        sequence: b,
        step,
        bannedTokenIds,
      });
      s.ids.push(pick.token);
      s.tokens.push(pick.token);
      s.logprobs.push(pick.logprob);
      s.modelLogprobs.push(pick.modelLogprob);
      if (options.eosTokenIds.includes(pick.token)) s.reason = "eos";
      else if (options.stopTokenIds.includes(pick.token)) s.reason = "stop";
      else if (s.tokens.length === maxNewTokens) s.reason = "length";
    });
  }
  const sequences: GeneratedSequence[] = seqs.map((s, b) => ({
    tokens: s.tokens,
    logprobs: Float32Array.from(s.logprobs),
    modelLogprobs: Float32Array.from(s.modelLogprobs),
    stopReason: s.reason ?? "length",
    length: s.tokens.length,
    promptLength: prompts[b].length,
  }));
  return {
    sequences,
    stats: {
      readbacks: model.backend === "webgpu" ? forwards : 0,
      submits: model.backend === "webgpu" ? forwards : 0,
      steps,
      promptTokens: prompts.reduce((n, p) => n + p.length, 0),
      generatedTokens: sequences.reduce((n, s) => n + s.length, 0),
      rowSteps,
      seconds: (performance.now() - start) / 1000,
    },
  };
}
