// Copyright 2025 the halo authors. MIT license.
/**
 * Whether an evaluation scores the prompts the evaluated run trained on.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";

/**
 * An evaluated run that drew its RL prompts from the evaluation's data file.
 *
 * @example Usage
 * ```ts
 * import type { TrainDataOverlap } from "./train_data_overlap.ts";
 *
 * function show(o: TrainDataOverlap): string {
 *   return `${o.metaPath}: ${o.trainPath}`;
 * }
 * ```
 */
export interface TrainDataOverlap {
  /** The run's checkpoint `meta.json` that names the file. */
  metaPath: string;
  /** `rl.data.path` as that config gives it. */
  trainPath: string;
  /** The evaluation's data file. */
  dataPath: string;
  /** A one-line warning naming both. */
  message: string;
}

/** Options of {@linkcode findTrainDataOverlap}. */
export interface FindTrainDataOverlapOptions {
  /** `--model`: a model directory, a run's `final/` or a checkpoint `step_NNNNNN/`. */
  model: string;
  /** `--adapter`: an adapter directory (a run's `final/` or another), if any. */
  adapter?: string | null;
}

async function canonical(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}

/**
 * The checkpoint `meta.json` a directory belongs to: its own (a checkpoint `step_NNNNNN/`), else
 * the latest `step_NNNNNN/meta.json` beside it (a run's `final/`); `null` when there is none.
 *
 * @param dir A model or adapter directory.
 * @returns The `meta.json` path, or `null`.
 *
 * @example A plain model directory has none
 * ```ts
 * import { runMetaPath } from "./train_data_overlap.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runMetaPath("models/arithmetic-tiny"), null);
 * ```
 */
export async function runMetaPath(dir: string): Promise<string | null> {
  const own = join(dir, "meta.json");
  try {
    if ((await Deno.stat(own)).isFile) return own;
  } catch {
    // not a checkpoint: look beside it
  }
  const run = dirname(resolve(dir));
  let best: string | null = null;
  try {
    for await (const entry of Deno.readDir(run)) {
      if (!entry.isDirectory || !/^step_\d+$/.test(entry.name)) continue;
      const meta = join(run, entry.name, "meta.json");
      try {
        await Deno.stat(meta);
      } catch {
        continue;
      }
      // step_NNNNNN: the same width, so the names sort as the steps.
      if (best === null || entry.name > dirname(best).split(/[\\/]/).at(-1)!) best = meta;
    }
  } catch {
    return null;
  }
  return best;
}

/**
 * Finds whether the run behind `--model` or `--adapter` drew its RL prompts from `dataPath`: the
 * run's checkpoint `meta.json` (the directory's own, or for a run's `final/` the latest
 * `step_NNNNNN/meta.json` beside it) records `trainer.mode: rl` and an `rl.data.path` that is the
 * same file. Such a run trained on every row of the file but the held-out last `rl.data.evalSize`
 * unique prompts (or all of them with an `rl.data.evalPath`), so a score on it is not a held-out
 * benchmark. The recorded path is resolved against the current directory, as `deno task train` read it. A
 * directory with no checkpoint (a plain model, an adapter exported elsewhere) gives `null`: the
 * check cannot tell.
 *
 * @param dataPath The evaluation's data file.
 * @param options The evaluated model and adapter directories.
 * @returns The overlap, or `null`.
 *
 * @example A run that trained on the file it is evaluated on
 * ```ts
 * import { findTrainDataOverlap } from "./train_data_overlap.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run/step_000004`, { recursive: true });
 * await Deno.mkdir(`${root}/run/final`);
 * await Deno.writeTextFile(`${root}/data.jsonl`, "");
 * const config = { trainer: { mode: "rl" }, rl: { data: { path: `${root}/data.jsonl` } } };
 * await Deno.writeTextFile(`${root}/run/step_000004/meta.json`, JSON.stringify({ config }));
 * const hit = await findTrainDataOverlap(`${root}/data.jsonl`, {
 *   model: "models/arithmetic-tiny",
 *   adapter: `${root}/run/final`,
 * });
 * assert.equal(hit?.metaPath, `${root}/run/step_000004/meta.json`);
 * assert.equal(await findTrainDataOverlap(`${root}/data.jsonl`, { model: "models/arithmetic-tiny" }), null);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function findTrainDataOverlap(
  dataPath: string,
  options: FindTrainDataOverlapOptions,
): Promise<TrainDataOverlap | null> {
  const target = await canonical(dataPath);
  for (const dir of [options.adapter, options.model]) {
    if (!dir) continue;
    const metaPath = await runMetaPath(dir);
    if (metaPath === null) continue;
    let config: {
      trainer?: { mode?: unknown };
      rl?: { data?: { path?: unknown; evalSize?: unknown; evalPath?: unknown } };
    };
    try {
      config = JSON.parse(await Deno.readTextFile(metaPath))?.config ?? {};
    } catch {
      continue; // a damaged meta.json is the checkpoint loader's to report
    }
    const trainPath = config?.rl?.data?.path;
    if (config?.trainer?.mode !== "rl" || typeof trainPath !== "string" || trainPath === "") {
      continue;
    }
    if ((await canonical(trainPath)) !== target) continue;
    const evalPath = config.rl?.data?.evalPath;
    const heldOut = typeof evalPath === "string" && evalPath !== ""
      ? "all its rows"
      : `all its rows but the last rl.data.evalSize (${
        config.rl?.data?.evalSize ?? "?"
      }) unique prompts`;
    return {
      metaPath,
      trainPath,
      dataPath,
      message: `Warning: the evaluation data "${dataPath}" is the file the evaluated run drew ` +
        `its RL prompts from (rl.data.path "${trainPath}" in ${metaPath}): ${heldOut} were ` +
        `training prompts, so this score is not a held-out result`,
    };
  }
  return null;
}
