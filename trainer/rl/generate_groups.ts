/**
 * Generation of `rowsPerPrompt` samples of each prompt through the train backend, split into
 * calls of whole prompts whose generation buffers fit: on WebGPU a layer's KV cache of a call
 * (`rows × capacity × kvHeads·headDim` floats, `capacity` the call's longest prompt plus
 * `maxNewTokens` rounded up to 64) must fit one storage binding (`generateRowBytes`). Each call
 * passes its first row's index in the whole batch as `firstSequence`, so the samples do not
 * depend on the split: they are those of one call over every row.
 *
 * @module
 */
import type { GeneratedSequence, GenerateOptions } from "../../model/generate.ts";
import { generateRowBytes } from "../../model/generate_webgpu.ts";
import type { WebGpuQwen3 } from "../../model/qwen3_webgpu.ts";
import type { TrainBackend } from "../backend.ts";

/**
 * Options of {@linkcode generateGroups}: `backend.generate`'s, less the prompts and the first
 * sequence, plus how to split and which keys an error names.
 *
 * @example Usage
 * ```ts
 * import type { GenerateGroupsOptions } from "./generate_groups.ts";
 *
 * const options: GenerateGroupsOptions = {
 *   maxNewTokens: 64, temperature: 1, seed: 7, rowsKey: "rl.groupSize",
 * };
 * ```
 */
export interface GenerateGroupsOptions extends Omit<GenerateOptions, "prompts" | "firstSequence"> {
  /**
   * Most prompts per `generate` call (e.g. `rl.eval.batchPrompts`); default no cap. Calls are
   * made smaller still when their buffers would not fit.
   */
  maxPromptsPerCall?: number;
  /** The config key that sets `rowsPerPrompt`, named when one prompt's rows cannot fit. */
  rowsKey: string;
}

/**
 * The bytes one storage binding can hold on `backend`'s device, or `Infinity` (the CPU has no
 * binding limit).
 */
function bindingLimit(backend: TrainBackend): number {
  if (backend.kind !== "webgpu") return Infinity;
  return (backend.model as WebGpuQwen3).ctx.gpu.maxBindingSize;
}

/**
 * Splits prompts, in order, into calls of whole prompts: each call as many prompts as fit (and
 * at most `maxPrompts`).
 *
 * @returns `[start, end)` prompt ranges.
 * @throws {RangeError} When one prompt's rows alone do not fit, naming `rowsKey` and
 *   `rl.maxNewTokens`.
 */
function planCalls(
  backend: TrainBackend,
  prompts: readonly (readonly number[])[],
  rowsPerPrompt: number,
  options: GenerateGroupsOptions,
): [number, number][] {
  const limit = bindingLimit(backend);
  const cap = options.maxPromptsPerCall ?? Infinity;
  if (limit === Infinity) {
    const calls: [number, number][] = [];
    for (let start = 0; start < prompts.length; start += cap) {
      calls.push([start, Math.min(prompts.length, start + cap)]);
    }
    return calls;
  }
  // WebGPU only (the limit is finite): the model's KV cache dtype sizes its rows.
  const kvDtype = (backend.model as WebGpuQwen3).kvDtype;
  const bytes = (longest: number) =>
    generateRowBytes(backend.model.config, longest, options.maxNewTokens, { kvDtype });
  const calls: [number, number][] = [];
  let start = 0;
  while (start < prompts.length) {
    let longest = prompts[start].length;
    const one = rowsPerPrompt * bytes(longest);
    if (one > limit) {
      throw new RangeError(
        `Cannot generate: the ${rowsPerPrompt} samples of one prompt (key "${options.rowsKey}") ` +
          `of ${longest} tokens plus key "rl.maxNewTokens" (${options.maxNewTokens}) need ` +
          `${one} bytes of KV cache per layer, more than one storage binding (${limit}): lower ` +
          `"${options.rowsKey}" or "rl.maxNewTokens"`,
      );
    }
    let end = start + 1;
    while (end < prompts.length && end - start < cap) {
      const next = Math.max(longest, prompts[end].length);
      if ((end + 1 - start) * rowsPerPrompt * bytes(next) > limit) break;
      longest = next;
      end++;
    }
    calls.push([start, end]);
    start = end;
  }
  return calls;
}

/**
 * Generates `rowsPerPrompt` samples of every prompt (prompt `i`'s are rows
 * `i·rowsPerPrompt …` of the result), in as few `backend.generate` calls as fit; the samples are
 * those of a single call over all rows with the same seed (each call's `firstSequence` is its
 * first row's index).
 *
 * @param backend The train backend (its current parameters sample).
 * @param prompts Token ids of each prompt.
 * @param rowsPerPrompt Samples per prompt.
 * @param options Generation options, the cap on prompts per call, and the key for errors.
 * @returns One sequence per row, prompt by prompt.
 * @throws {RangeError} When one prompt's samples do not fit one call (the error names
 *   `options.rowsKey` and `rl.maxNewTokens`).
 *
 * @example Two samples of each of two prompts on the fixture model
 * ```ts
 * import { generateGroups } from "./generate_groups.ts";
 * import { createTrainBackend } from "../backend.ts";
 * import { loadModel } from "../../model/load_model.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const rows = await generateGroups(backend, [[1, 2], [3]], 2, {
 *   maxNewTokens: 2, temperature: 1, seed: 3, rowsKey: "rl.groupSize",
 * });
 * strictEqual(rows.length, 4);
 * ```
 */
export async function generateGroups(
  backend: TrainBackend,
  prompts: readonly (readonly number[])[],
  rowsPerPrompt: number,
  options: GenerateGroupsOptions,
): Promise<GeneratedSequence[]> {
  const { maxPromptsPerCall: _cap, rowsKey: _key, ...generate } = options;
  const out: GeneratedSequence[] = [];
  for (const [start, end] of planCalls(backend, prompts, rowsPerPrompt, options)) {
    const rows: (readonly number[])[] = [];
    for (let i = start; i < end; i++) for (let j = 0; j < rowsPerPrompt; j++) rows.push(prompts[i]);
    const { sequences } = await backend.generate({
      ...generate,
      prompts: rows,
      firstSequence: start * rowsPerPrompt,
    });
    out.push(...sequences);
  }
  return out;
}
