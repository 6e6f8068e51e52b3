/**
 * Qwen3 models: checkpoint loading, the forward pass on WebGPU or the CPU, and the tokenizer.
 *
 * @module
 */
export * from "./config.ts";
export * from "./generation_config.ts";
export * from "../internal/safetensors.ts";
export * from "./weights.ts";
export * from "./tensor_table.ts";
export * from "./adapter_types.ts";
export * from "./backward_args.ts";
export * from "./forward_input.ts";
export * from "./model.ts";
export * from "./load_model.ts";
export * from "./qwen3_cpu.ts";
export * from "./qwen3_cpu_layer.ts";
export * from "./qwen3_cpu_backward.ts";
export * from "./qwen3_webgpu.ts";
export * from "./decoder_layer_webgpu.ts";
export * from "./lora_webgpu.ts";
export * from "./tensor_table.ts";
export * from "./kv_cache.ts";
export * from "./generate.ts";
export * from "./generate_cpu.ts";
export * from "./generate_webgpu.ts";
export * from "./tokenizer.ts";
export * from "./check_tokenizer_vocab.ts";
export * from "./chat_template.ts";
export * from "./end_of_turn.ts";
export * from "./qwen3_webgpu_backward.ts";
export * from "./init.ts";
export * from "./gguf_writer.ts";
export * from "./gguf_reader.ts";
export * from "./gguf_export.ts";
export * from "../internal/atomic_write.ts";
