/**
 * Generation on the CPU. A `CpuQwen3` decodes incrementally with a KV cache through the same
 * decoder-layer function as its forward (`CpuQwen3.decode`): one prefill of the prompts, then one
 * token per sequence per step. Any other model generates by full recomputation (every step runs
 * `model.forward` over each unfinished sequence's whole prefix), the reference the KV-cache paths
 * must reproduce. Both sample with the float64 reference sampler.
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
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { CpuKvCache } from "./qwen3_cpu_layer.ts";

/** One sequence being generated. */
interface Sequence {
  ids: number[];
  tokens: number[];
  logprobs: number[];
  modelLogprobs: number[];
  reason: StopReason | null;
}

/** The unfinished sequences of a step (`b` = index in the prompts). */
type Active = { s: Sequence; b: number }[];

/**
 * Next-token logits of each active sequence: `active[r]`'s start at `offset(r)` in `logits`.
 */
type NextLogits = (
  active: Active,
  step: number,
) => Promise<{ logits: Float32Array; offset: (r: number) => number }>;

/** The sampling loop shared by both paths; `next` computes the logits. */
async function sampleLoop(
  model: Qwen3Model,
  options: ResolvedGenerateOptions,
  next: NextLogits,
  firstSequence = 0,
): Promise<GenerateResult> {
  const start = performance.now();
  const v = model.config.vocabSize;
  const { prompts, maxNewTokens, minNewTokens, eosTokenIds } = options;
  const seqs: Sequence[] = prompts.map((p) => ({
    ids: [...p],
    tokens: [],
    logprobs: [],
    modelLogprobs: [],
    reason: null,
  }));
  let steps = 0;
  let rowSteps = 0;
  for (let step = 0; step < maxNewTokens; step++) {
    const active = seqs.map((s, b) => ({ s, b })).filter(({ s }) => s.reason === null);
    if (active.length === 0) break;
    const { logits, offset } = await next(active, step);
    // Every active sequence has generated `step` tokens (all start together).
    const bannedTokenIds = step < minNewTokens ? eosTokenIds : undefined;
    steps++;
    rowSteps += active.length;
    active.forEach(({ s, b }, r) => {
      const at = offset(r);
      const pick = sampleRef(logits.subarray(at, at + v), {
        ...options,
        sequence: (options.firstSequence ?? 0) + firstSequence + b,
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
  const forwards = steps;
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

/**
 * Generates on the CPU: a `CpuQwen3` with its KV cache ({@linkcode generateCpuCached}), any other
 * model by recomputing each prefix every step ({@linkcode generateRecompute}). Each row is sampled
 * with `sampleRef` (the same Philox draws as the GPU sampler: sequence `b` at step `t`), the EOS
 * ids banned while `step < minNewTokens`. Both paths give the same tokens.
 *
 * @param model Any backend's model.
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
export function generateCpu(
  model: Qwen3Model,
  options: ResolvedGenerateOptions,
  split: GenerateSplit = {},
): Promise<GenerateResult> {
  return model instanceof CpuQwen3
    ? generateCpuCached(model, options, split)
    : generateRecompute(model, options, split);
}

/**
 * Where a part of a batch sits in the whole (for generating a batch's prompts in several
 * threads with the whole batch's random draws).
 *
 * @example The second half of 8 prompts
 * ```ts
 * import type { GenerateSplit } from "./generate_cpu.ts";
 * const split: GenerateSplit = { firstSequence: 4 };
 * ```
 */
export interface GenerateSplit {
  /**
   * The index in the whole batch of `prompts[0]`: prompt `b` draws the sampler's numbers of
   * sequence `firstSequence + b`, so the parts of a split batch sample exactly the tokens of the
   * unsplit batch. Default 0.
   */
  firstSequence?: number;
}

/**
 * Generates with a KV cache on a `CpuQwen3`: step 0 prefills every prompt (right-padded to the
 * longest) and samples from each prompt's last position; each later step feeds each unfinished
 * sequence's last token at its position. The logits equal {@linkcode generateRecompute}'s bit for
 * bit (the same float64 ops per row), so the tokens are the same.
 *
 * @param model The CPU model (its adapters applied).
 * @param options Resolved options from `resolveGenerateOptions`.
 * @returns Tokens, log-probs, stop reasons and counters.
 *
 * @example Same tokens as recomputation
 * ```ts
 * import { loadModel } from "./load_model.ts";
 * import { resolveGenerateOptions } from "./generate.ts";
 * import { generateCpuCached, generateRecompute } from "./generate_cpu.ts";
 * import { CpuQwen3 } from "./qwen3_cpu.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * if (!(model instanceof CpuQwen3)) throw new Error("CPU model expected");
 * const options = resolveGenerateOptions(model.config, {
 *   prompts: [[5, 6], [7]], maxNewTokens: 4, temperature: 0,
 * });
 * const a = await generateCpuCached(model, options);
 * const b = await generateRecompute(model, options);
 * deepStrictEqual(a.sequences.map((s) => s.tokens), b.sequences.map((s) => s.tokens));
 * ```
 */
export function generateCpuCached(
  model: CpuQwen3,
  options: ResolvedGenerateOptions,
  split: GenerateSplit = {},
): Promise<GenerateResult> {
  const { prompts, maxNewTokens } = options;
  const v = model.config.vocabSize;
  const longest = Math.max(...prompts.map((p) => p.length));
  const cache = new CpuKvCache(model.config, {
    rows: prompts.length,
    capacity: longest + maxNewTokens,
  });
  const offset = (r: number) => r * v;
  return sampleLoop(model, options, (active, step) => {
    let logits: Float64Array;
    if (step === 0) {
      logits = model.decode(
        active.map(({ s }) => [...s.ids, ...new Array(longest - s.ids.length).fill(0)]),
        {
          cache,
          rows: active.map(({ b }) => b),
          start: active.map(() => 0),
          logitsAt: active.map(({ s }) => s.ids.length - 1),
        },
      );
    } else {
      logits = model.decode(active.map(({ s }) => [s.ids[s.ids.length - 1]]), {
        cache,
        rows: active.map(({ b }) => b),
        start: active.map(({ s }) => s.ids.length - 1),
        logitsAt: active.map(() => 0),
      });
    }
    // Rounded to float32 as `forward` returns them, so sampling sees the values it always saw.
    return Promise.resolve({ logits: Float32Array.from(logits), offset });
  }, split.firstSequence);
}

/**
 * Generates by recomputing each prefix every step (no KV cache): one `model.forward` per step
 * over the unfinished sequences, right-padded. The reference the KV-cache paths must reproduce.
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
 * import { generateRecompute } from "./generate_cpu.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const options = resolveGenerateOptions(model.config, {
 *   prompts: [[5, 6]], maxNewTokens: 3, temperature: 0,
 * });
 * const { sequences } = await generateRecompute(model, options);
 * console.log(sequences[0].promptLength); // 2
 * ```
 */
export function generateRecompute(
  model: Qwen3Model,
  options: ResolvedGenerateOptions,
  split: GenerateSplit = {},
): Promise<GenerateResult> {
  const v = model.config.vocabSize;
  return sampleLoop(model, options, async (active) => {
    const len = Math.max(...active.map(({ s }) => s.ids.length));
    const inputIds = active.map(({ s }) => [...s.ids, ...new Array(len - s.ids.length).fill(0)]);
    const attentionMask = active.map(({ s }) =>
      Array.from({ length: len }, (_, t) => (t < s.ids.length ? 1 : 0))
    );
    const { logits } = await model.forward({ inputIds, attentionMask });
    return { logits, offset: (r: number) => (r * len + active[r].s.ids.length - 1) * v };
  }, split.firstSequence);
}
