/**
 * LoRA adapters: their hyperparameters with PEFT's semantics, the adapter data (several experts
 * of different ranks per projection), PEFT's on-disk format, and HILO (routed LoRA experts whose
 * count and rank vary by layer: schedules, creation, parameter counts, a one-projection reference).
 *
 * @module
 */
export * from "./lora_config.ts";
export * from "./lora.ts";
export * from "./peft_io.ts";
export * from "./hilo.ts";
export * from "./hilo_alpha_allocation.ts";
export * from "./hilo_io.ts";
export * from "./hilo_projection_ref.ts";
export * from "./hilo_schedule.ts";
export * from "./load_adapter.ts";
