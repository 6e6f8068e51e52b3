/**
 * halo: reinforcement learning of Qwen3 language models on verifiable math rewards, with the
 * model math in WGSL compute shaders on WebGPU (any GPU WebGPU reaches, or a software adapter),
 * and a float64 CPU backend.
 *
 * @example Load the bundled tiny model and score a sequence
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const { logprobs } = await model.tokenLogprobs({ inputIds: [[1, 2, 3, 4]] });
 * console.log(logprobs); // 3 log-probabilities
 * model.dispose();
 * ```
 *
 * @module
 */
export * from "./gpu/mod.ts";
export * from "./kernels/mod.ts";
export * from "./model/mod.ts";
export * from "./adapters/mod.ts";
export * from "./data/mod.ts";
export * from "./trainer/mod.ts";
export * from "./verify/mod.ts";
export * from "./eval/mod.ts";
export * from "./plot/mod.ts";
export * from "./remote/mod.ts";
