/**
 * Rollouts on existing inference engines (vLLM, SGLang, llama.cpp server): a client per server on
 * `fetch` with validated choices and a preflight, a least-outstanding-requests pool that survives
 * a failed server, a `sampleGroups` for the RL loop that draws from the pool, the
 * sampler–trainer mismatch metrics, and a fake vLLM server backed by a halo model for tests.
 *
 * @example Connect a pool and use it in an RL run (needs running servers)
 * ```ts ignore
 * import { RolloutPool, remoteSampleGroups } from "./mod.ts";
 * import { runRl } from "../trainer/rl/run_rl.ts";
 * declare const config: import("../trainer/config.ts").TrainConfig;
 *
 * const pool = await RolloutPool.connect(["http://10.0.0.5:8000", "http://10.0.0.6:8000"], {
 *   engine: "vllm", vocabSize: 151936, probePromptIds: [9707], eosTokenIds: [151645],
 * });
 * await runRl(config, { sampleGroups: remoteSampleGroups(pool) });
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./engine_backend.ts";
export * from "./vllm_backend.ts";
export * from "./sglang_backend.ts";
export * from "./llamacpp_backend.ts";
export * from "./validate_choice.ts";
export * from "./rollout_client.ts";
export * from "./rollout_pool.ts";
export * from "./logprob_mismatch.ts";
export * from "./remote_sample_groups.ts";
export * from "./adapter_sync.ts";
export * from "./peft_writer.ts";
export * from "./fake_vllm_server.ts";
