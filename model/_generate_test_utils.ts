/**
 * Test helper for generation on WebGPU: a generate call with the compute-pass dispatches it
 * recorded counted (the merged, fused and separate layouts' tests compare these counts), and the
 * largest model log-prob difference of two generations.
 *
 * @module
 */
import { strictEqual } from "node:assert/strict";
import { type GenerateOptions, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateWebGpu } from "./generate_webgpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

/** The generation and the compute-pass dispatches it recorded. */
export async function counted(
  model: WebGpuQwen3,
  options: GenerateOptions,
): Promise<{ result: GenerateResult; dispatches: number }> {
  const proto = GPUComputePassEncoder.prototype;
  const original = proto.dispatchWorkgroups;
  let dispatches = 0;
  proto.dispatchWorkgroups = function (this: GPUComputePassEncoder, x, y, z) {
    dispatches++;
    return original.call(this, x, y, z);
  };
  try {
    const result = await generateWebGpu(model, resolveGenerateOptions(model.config, options));
    return { result, dispatches };
  } finally {
    proto.dispatchWorkgroups = original;
  }
}

/** The largest difference of the model log-probs of two generations of the same rows. */
export function maxAbsDiff(a: GenerateResult, b: GenerateResult): number {
  let worst = 0;
  a.sequences.forEach((s, i) => {
    const t = b.sequences[i].modelLogprobs;
    strictEqual(s.modelLogprobs.length, t.length);
    s.modelLogprobs.forEach((v, j) => worst = Math.max(worst, Math.abs(v - t[j])));
  });
  return worst;
}
