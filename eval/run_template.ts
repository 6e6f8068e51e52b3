// Copyright 2025 the halo authors. MIT license.
/**
 * The prompt template an evaluated RL run was trained with, so that `deno task eval` asks its
 * checkpoint in the format it learnt.
 *
 * @module
 */
import { runMetaPath } from "./train_data_overlap.ts";

/**
 * The template of the run behind an evaluation's model or adapter.
 *
 * @example Usage
 * ```ts
 * import type { RunTemplate } from "./run_template.ts";
 *
 * const found: RunTemplate = { template: "dapo", metaPath: "out/run/step_000100/meta.json" };
 * ```
 */
export interface RunTemplate {
  /** `rl.template` of the run's config. */
  template: string;
  /** The checkpoint `meta.json` that holds it. */
  metaPath: string;
}

/**
 * Finds `rl.template` of the RL run behind `--adapter` (first) or `--model`: the directory's own
 * checkpoint `meta.json`, or for a run's `final/` the latest `step_NNNNNN/meta.json` beside it,
 * whose config has `trainer.mode: rl`. `null` when neither belongs to an RL run (a plain model)
 * or its `meta.json` cannot be read.
 *
 * @param options The evaluated model and adapter directories.
 * @returns The template and where it was read, or `null`.
 *
 * @example A run trained with the dapo template
 * ```ts
 * import { findRunTemplate } from "./run_template.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run/step_000002`, { recursive: true });
 * await Deno.mkdir(`${root}/run/final`);
 * const config = { trainer: { mode: "rl" }, rl: { template: "dapo" } };
 * await Deno.writeTextFile(`${root}/run/step_000002/meta.json`, JSON.stringify({ config }));
 * const found = await findRunTemplate({ model: "models/arithmetic-tiny", adapter: `${root}/run/final` });
 * assert.equal(found?.template, "dapo");
 * assert.equal(await findRunTemplate({ model: "models/arithmetic-tiny" }), null);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function findRunTemplate(
  options: { model: string; adapter?: string | null },
): Promise<RunTemplate | null> {
  for (const dir of [options.adapter, options.model]) {
    if (!dir) continue;
    const metaPath = await runMetaPath(dir);
    if (metaPath === null) continue;
    let config: { trainer?: { mode?: unknown }; rl?: { template?: unknown } };
    try {
      config = JSON.parse(await Deno.readTextFile(metaPath))?.config ?? {};
    } catch {
      continue; // a damaged meta.json is the checkpoint loader's to report
    }
    const template = config?.rl?.template;
    if (config?.trainer?.mode !== "rl" || typeof template !== "string") continue;
    return { template, metaPath };
  }
  return null;
}
