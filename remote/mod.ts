/**
 * Rollouts on existing inference engines (vLLM, SGLang, llama.cpp server): a client per server on
 * `fetch` with validated choices and a preflight, a least-outstanding-requests pool that survives
 * a failed server, a `sampleGroups` for the RL loop that draws from the pool, the
 * sampler–trainer mismatch metrics, adapter sync by file + HTTP (a new served name per policy
 * version), and a fake vLLM server backed by a halo model for tests. A run turns them on with
 * the `rl.rollout.*` config keys (`remoteRollouts`, which `deno task train` passes to `runRl`).
 *
 * Launch lines (what the client expects; none of these engines can run in halo's CI, so the vLLM
 * and SGLang mappings are tested against bodies written from their protocol definitions):
 *
 * ```sh
 * # vLLM: token-id prompts on /v1/completions, runtime LoRA loading, raw log-probs (halo's old
 * # log-probs are those of softmax(logits / rl.temperature) without top-p/top-k: raw ones at
 * # temperature 1; at rl.temperature ≠ 1 use --logprobs-mode processed_logprobs with top-p 1
 * # and top-k 0, remoteSampleGroups refuses otherwise), no generation_config defaults;
 * # --max-lora-rank ∈ {1, 8, 16, 32, 64, …} ≥ the largest LoRA rank (adapters.r or any
 * # rank_pattern value: peftWriter pads every module to it), --max-loras ≥ AdapterSync's keep + 1
 * # (a publish loads the new version before it unloads the oldest).
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve Qwen/Qwen3-1.7B --port 8000 \
 *   --enable-lora --max-lora-rank 32 --max-loras 3 \
 *   --logprobs-mode raw_logprobs --generation-config vllm
 * # SGLang: /generate with input_ids; its log-probs are after temperature, so sample with
 * # top-p 1 and top-k 0 (any temperature; remoteSampleGroups refuses otherwise);
 * # SGLang ignores halo's per-sample seeds (sampling_seed) unless started with
 * # --enable-deterministic-inference (slower kernels): add it for reproducible rollouts.
 * python -m sglang.launch_server --model-path Qwen/Qwen3-1.7B --port 30000 --enable-lora \
 *   --max-lora-rank 32 --max-loaded-loras 3 \
 *   --lora-target-modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
 * # llama.cpp (no per-request adapters): n per request is at most --parallel.
 * llama-server -m model.gguf --port 8080 --parallel 16
 * ```
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
export * from "./remote_rollouts.ts";
export * from "./fake_vllm_server.ts";
