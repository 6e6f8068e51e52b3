/**
 * Datasets: the built-in verifiable arithmetic task and its tokenizer.
 *
 * @module
 */
export * from "./arithmetic_task.ts";
export * from "./arithmetic_tokenizer.ts";
export * from "./synthetic_tasks.ts";
export * from "./task_suite.ts";
export * from "./problem_fields.ts";
export * from "./prompt_templates.ts";
