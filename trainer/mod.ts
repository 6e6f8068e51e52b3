/**
 * The trainer: optax-style optimizer pieces (`optim/`), loss terms, the training loop, atomic
 * checkpoints, and supervised fine-tuning (`runSft`) on a CPU or (later) WebGPU backend.
 *
 * @example Token-level NLL of the completion tokens
 * ```ts
 * import { sftLoss } from "./mod.ts";
 * console.log(sftLoss({ logprobs: [-1, -3], lossMask: [1, 1] }).value); // 2
 * ```
 *
 * @module
 */
export * from "./backend.ts";
export * from "./checkpoint.ts";
export * from "./check_run_config.ts";
export * from "./data_order.ts";
export * from "./eval_sft.ts";
export * from "./export_model.ts";
export * from "./git_sha.ts";
export * from "./gpu_adamw.ts";
export * from "./losses/mod.ts";
export * from "./opt_state_io.ts";
export * from "./optim/mod.ts";
export * from "./params.ts";
export * from "./run_adapters.ts";
export * from "../internal/progress.ts";
export * from "./sft.ts";
export * from "./sft_batch.ts";
export * from "./sft_loss.ts";
export * from "./train_loop.ts";
export * from "./train_step.ts";
export * from "./rl/mod.ts";
export type * from "./types.ts";
// The run configuration `runSft` takes: types, defaults and validation (cli/ reads the YAML).
export * from "./config.ts";
export * from "./validate_config.ts";
