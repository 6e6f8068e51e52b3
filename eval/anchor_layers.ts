// Copyright 2025 the halo authors. MIT license.
/**
 * Anchor geometry at every layer, with bootstrap confidence intervals: for each hidden-state layer
 * (the embeddings, each decoder layer's output, the final norm), the mean cosine between the
 * anchor states of two rollouts of the same prompt by the pair's correctness
 * (correct–correct, incorrect–incorrect, correct–incorrect), and a control: the cosine between
 * the states at one random response position per rollout, over all same-prompt pairs.
 *
 * The means pool the pairs of all prompts (each pair weighs the same, as
 * {@linkcode anchorGeometry} does). The intervals are a percentile bootstrap over prompts (pairs
 * of a prompt are not independent, so whole prompts are resampled with replacement), seeded, with
 * the same resampled prompts for every layer and pair kind.
 *
 * @module
 */
import { cosineSimilarity } from "./anchor_geometry.ts";
import { mixNumber, mulberry32 } from "../internal/random.ts";
import { quantile } from "../internal/quantile.ts";

/**
 * One rollout: its prompt, its correctness, and its hidden states per layer at the anchor (or
 * `null` when it has no anchor) and at a random response position.
 *
 * @example Usage
 * ```ts
 * import type { AnchorSample } from "./anchor_layers.ts";
 *
 * const sample: AnchorSample = {
 *   group: 0, correct: true, anchor: [[1, 0], [0, 1]], random: [[1, 1], [1, -1]],
 * };
 * ```
 */
export interface AnchorSample {
  /** The prompt (group) id, compared with `===`. */
  group: unknown;
  /** Whether the rollout is correct. */
  correct: boolean;
  /** One vector per layer at the anchor token, or `null` without an anchor. */
  anchor: readonly ArrayLike<number>[] | null;
  /** One vector per layer at the random response position. */
  random: readonly ArrayLike<number>[];
}

/**
 * The mean cosine of one pair kind at one layer with its bootstrap interval.
 *
 * @example Usage
 * ```ts
 * import type { PairStats } from "./anchor_layers.ts";
 *
 * const none: PairStats = { mean: NaN, lower: NaN, upper: NaN, pairs: 0, groups: 0 };
 * ```
 */
export interface PairStats {
  /** Mean cosine over the pairs (NaN without pairs). */
  mean: number;
  /** Lower end of the bootstrap interval (NaN without pairs). */
  lower: number;
  /** Upper end of the bootstrap interval (NaN without pairs). */
  upper: number;
  /** Number of same-prompt pairs. */
  pairs: number;
  /** Number of prompts with at least one such pair. */
  groups: number;
}

/**
 * The four pair kinds at one layer.
 *
 * @example Usage
 * ```ts
 * import type { AnchorLayerRow } from "./anchor_layers.ts";
 *
 * function cc(row: AnchorLayerRow): number {
 *   return row.correctCorrect.mean;
 * }
 * ```
 */
export interface AnchorLayerRow {
  /** The layer's index in the hidden-state list (0: the embeddings). */
  layer: number;
  /** Its name (e.g. "embeddings", "layer 0", "final norm"). */
  label: string;
  /** Anchor states, both rollouts correct. */
  correctCorrect: PairStats;
  /** Anchor states, both incorrect. */
  incorrectIncorrect: PairStats;
  /** Anchor states, one correct and one incorrect. */
  correctIncorrect: PairStats;
  /** The control: random response positions, all same-prompt pairs. */
  random: PairStats;
}

/**
 * Options of {@linkcode anchorLayerGeometry}.
 *
 * @example Usage
 * ```ts
 * import type { AnchorLayersOptions } from "./anchor_layers.ts";
 *
 * const options: AnchorLayersOptions = { resamples: 2000, seed: 1, level: 0.9 };
 * ```
 */
export interface AnchorLayersOptions {
  /** The layers' names (default "layer i"). */
  labels?: readonly string[];
  /** Bootstrap resamples (default 1000; 0: no interval, NaN ends). */
  resamples?: number;
  /** Bootstrap seed (default 0). */
  seed?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

type Kind = "correctCorrect" | "incorrectIncorrect" | "correctIncorrect" | "random";
const KINDS: readonly Kind[] = [
  "correctCorrect",
  "incorrectIncorrect",
  "correctIncorrect",
  "random",
];

/**
 * The mean cosine per layer and pair kind over same-prompt pairs, with seeded percentile
 * bootstrap intervals over prompts.
 *
 * @param samples The rollouts (every vector list of the same number of layers and width).
 * @param options Layer names, bootstrap resamples, seed and level.
 * @returns One row per layer.
 * @throws {RangeError} When samples disagree in their number of layers, or a vector of a pair is
 *   zero or of another width (from {@linkcode cosineSimilarity}).
 *
 * @example Two layers, one prompt: identical correct anchors at layer 1
 * ```ts
 * import { anchorLayerGeometry } from "./anchor_layers.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const rows = anchorLayerGeometry([
 *   { group: 0, correct: true, anchor: [[1, 0], [2, 2]], random: [[1, 0], [1, 0]] },
 *   { group: 0, correct: true, anchor: [[0, 1], [1, 1]], random: [[0, 1], [1, 0]] },
 * ], { resamples: 100 });
 * strictEqual(rows[0].correctCorrect.mean, 0);
 * strictEqual(rows[1].correctCorrect.mean, 1);
 * strictEqual(rows[1].random.mean, 1);
 * strictEqual(rows[1].incorrectIncorrect.pairs, 0);
 * ```
 */
export function anchorLayerGeometry(
  samples: readonly AnchorSample[],
  options: AnchorLayersOptions = {},
): AnchorLayerRow[] {
  const layers = samples[0]?.random.length ?? 0;
  samples.forEach((s, i) => {
    if (s.random.length !== layers || (s.anchor !== null && s.anchor.length !== layers)) {
      throw new RangeError(
        `anchorLayerGeometry: samples[${i}] must have ${layers} layers like samples[0]: current ` +
          `counts are ${s.random.length} (random) and ${s.anchor?.length ?? "none"} (anchor)`,
      );
    }
  });
  const resamples = options.resamples ?? 1000;
  const level = options.level ?? 0.95;
  // Per prompt, layer and kind: the sum of the cosines and the number of pairs.
  const groupIds = [...new Set(samples.map((s) => s.group))];
  const index = new Map(groupIds.map((g, i) => [g, i]));
  const members: number[][] = groupIds.map(() => []);
  samples.forEach((s, i) => members[index.get(s.group)!].push(i));
  const G = groupIds.length;
  const sums = KINDS.map(() => Array.from({ length: layers }, () => new Float64Array(G)));
  const counts = KINDS.map(() => new Float64Array(G));
  for (let g = 0; g < G; g++) {
    const m = members[g];
    for (let x = 0; x < m.length; x++) {
      for (let y = x + 1; y < m.length; y++) {
        const [a, b] = [samples[m[x]], samples[m[y]]];
        const pairKinds: [number, "anchor" | "random"][] = [[3, "random"]];
        if (a.anchor !== null && b.anchor !== null) {
          pairKinds.push([a.correct && b.correct ? 0 : !a.correct && !b.correct ? 1 : 2, "anchor"]);
        }
        for (const [k, where] of pairKinds) {
          counts[k][g]++;
          for (let l = 0; l < layers; l++) {
            sums[k][l][g] += cosineSimilarity(a[where]![l], b[where]![l]);
          }
        }
      }
    }
  }
  // The bootstrap: the same resampled prompts for every kind and layer.
  const random = mulberry32(mixNumber(0x616e6c79, options.seed ?? 0));
  const draws: Int32Array[] = [];
  for (let r = 0; r < resamples && G > 0; r++) {
    draws.push(Int32Array.from({ length: G }, () => Math.floor(random() * G)));
  }
  const rows: AnchorLayerRow[] = [];
  for (let l = 0; l < layers; l++) {
    const stats = KINDS.map((_, k): PairStats => {
      const total = counts[k].reduce((a, b) => a + b, 0);
      const sum = sums[k][l].reduce((a, b) => a + b, 0);
      const groups = counts[k].filter((c) => c > 0).length;
      const boot: number[] = [];
      for (const draw of draws) {
        let s = 0;
        let c = 0;
        for (const g of draw) {
          s += sums[k][l][g];
          c += counts[k][g];
        }
        if (c > 0) boot.push(s / c);
      }
      boot.sort((a, b) => a - b);
      return {
        mean: total > 0 ? sum / total : NaN,
        lower: total > 0 ? quantile(boot, (1 - level) / 2) : NaN,
        upper: total > 0 ? quantile(boot, 1 - (1 - level) / 2) : NaN,
        pairs: total,
        groups,
      };
    });
    rows.push({
      layer: l,
      label: options.labels?.[l] ?? `layer ${l}`,
      correctCorrect: stats[0],
      incorrectIncorrect: stats[1],
      correctIncorrect: stats[2],
      random: stats[3],
    });
  }
  return rows;
}
