/**
 * WebGPU plumbing with no model math: the device, caches of pipelines and bind groups, and the
 * one place that reads buffers back.
 *
 * @module
 */
export * from "./device.ts";
export * from "./context.ts";
export * from "./readback.ts";
export * from "./errors.ts";
export * from "./matrix.ts";
export * from "./uniforms.ts";
