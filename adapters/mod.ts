/**
 * LoRA adapters: their hyperparameters with PEFT's semantics, the adapter data (several experts
 * of different ranks per projection, for HILO), and PEFT's on-disk format.
 *
 * @module
 */
export * from "./lora_config.ts";
export * from "./lora.ts";
export * from "./peft_io.ts";
