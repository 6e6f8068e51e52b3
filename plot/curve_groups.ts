// Copyright 2025 the halo authors. MIT license.
/**
 * Which metric keys of a run share a chart: a table of groups, each a key pattern, tried in order.
 *
 * @module
 */

import type { AxisScale } from "./line_chart.ts";

/** One chart of a run's curves: the keys it takes and how its y axis looks. */
export interface CurveGroup {
  /** The chart's file name without `.svg`, e.g. "loss". */
  name: string;
  /** The chart title. */
  title: string;
  /** The y axis title. */
  yTitle: string;
  /** The metric keys the chart takes (a key goes to the first group whose pattern matches). */
  pattern: RegExp;
  /** Fixed y range (e.g. `[0, 1]` for accuracies). */
  yDomain?: readonly [number, number];
  /** The y scale (default "linear"). */
  yScale?: AxisScale;
  /** A d3-format string for the y labels. */
  yFormat?: string;
}

/** The keys of one {@linkcode CurveGroup} found in a run. */
export interface GroupedCurves {
  /** The group. */
  group: CurveGroup;
  /** Its keys present in the run, sorted. */
  keys: string[];
}

/** What {@linkcode groupCurves} returns. */
export interface GroupCurvesResult {
  /** The groups that got keys, in the order of the table. */
  grouped: GroupedCurves[];
  /** The keys no group takes, sorted. */
  rest: string[];
}

/**
 * The main curves of a training run (SFT or RL; keys namespaced as the trainer writes them),
 * in chart order. Specific patterns come first: "loss/pg_clipfrac" goes to the clip fractions,
 * not to the loss terms.
 */
export const DEFAULT_CURVE_GROUPS: readonly CurveGroup[] = [
  { name: "clip", title: "Clip fractions", yTitle: "Fraction", pattern: /clip_?frac|clip_?ratio/ },
  { name: "kl", title: "KL divergence", yTitle: "KL", pattern: /(^|[/_])kl($|[/_])/ },
  { name: "entropy", title: "Entropy", yTitle: "Entropy (nats)", pattern: /entropy/ },
  // A probability ratio near 1, not a loss term.
  {
    name: "ratio",
    title: "Largest importance ratio",
    yTitle: "Ratio",
    pattern: /(^|[/_])ratio_max$/,
  },
  {
    name: "loss",
    title: "Loss terms",
    yTitle: "Loss",
    pattern: /^loss\/(?!(tokens|rows|groups|count)$)|(^|[/_])loss$/,
  },
  // Before "reward": the rollouts' accuracy ("reward/accuracy") and marker rate
  // ("reward/marker_rate") are fractions, not rewards in [-1, 1].
  {
    name: "accuracy",
    title: "Accuracy",
    yTitle: "Accuracy",
    pattern: /accuracy|(^|[/_])acc$|avg@|pass@|maj@/,
    yDomain: [0, 1],
  },
  {
    name: "anchor_marker",
    title: "Anchor marker hit rate",
    yTitle: "Fraction",
    pattern: /marker|anchor_rate/,
    yDomain: [0, 1],
  },
  { name: "reward", title: "Reward", yTitle: "Reward", pattern: /reward/ },
  // Dynamic sampling's rates apart from its counts, and its token count apart from its group
  // counts: on one axis the small ones read as flat zero.
  {
    name: "sampling_rates",
    title: "Dynamic sampling: rates",
    yTitle: "Fraction",
    pattern: /^sampling\/.*(rate|fraction)$/,
    yDomain: [0, 1],
  },
  { name: "kept_groups", title: "Dynamic sampling: kept groups", yTitle: "Kept", pattern: /kept/ },
  {
    name: "generated_tokens",
    title: "Tokens generated per step",
    yTitle: "Tokens",
    pattern: /^sampling\/generated_tokens$/,
  },
  {
    name: "sampling",
    title: "Dynamic sampling",
    yTitle: "Count",
    // The prompt position grows all run long (with --all: other_sampling.svg).
    pattern: /^sampling\/(?!prompt_position$)/,
  },
  {
    name: "response_length",
    title: "Response length",
    yTitle: "Tokens",
    pattern: /length|(^|[/_])len($|[/_])/,
  },
  {
    name: "truncation",
    title: "Truncated responses",
    yTitle: "Fraction",
    pattern: /trunc|overlong/,
  },
  { name: "grad_norm", title: "Gradient norm", yTitle: "Norm", pattern: /grad_norm|update_norm/ },
  {
    name: "lr",
    title: "Learning rate",
    yTitle: "Learning rate",
    pattern: /(^|\/)lr$/,
    yFormat: "~e",
  },
  { name: "anchor_cosine", title: "Anchor cosine", yTitle: "Cosine similarity", pattern: /cos/ },
  {
    name: "throughput",
    title: "Throughput",
    yTitle: "Tokens/s",
    pattern: /tokens_per_s|tok_per_s|tokens\/s|throughput/,
  },
  {
    name: "time",
    title: "Time per step",
    yTitle: "Seconds",
    pattern: /^time\/|(_s|_sec|seconds)$/,
  },
];

/**
 * Sorts metric keys into chart groups: each key goes to the first group whose pattern matches;
 * groups without keys are left out; keys no group takes are returned apart.
 *
 * @param keys The metric keys of a run (without "step").
 * @param groups The groups, in chart order (default {@linkcode DEFAULT_CURVE_GROUPS}).
 * @returns The non-empty groups in the given order with their sorted keys, and the other keys
 * sorted.
 *
 * @example Group an RL run's keys
 * ```ts
 * import { groupCurves } from "./curve_groups.ts";
 * import assert from "node:assert/strict";
 *
 * const { grouped, rest } = groupCurves(["loss/pg", "loss/pg_clipfrac", "optim/lr", "data/epoch"]);
 * assert.deepEqual(grouped.map((g) => [g.group.name, g.keys]), [
 *   ["clip", ["loss/pg_clipfrac"]],
 *   ["loss", ["loss/pg"]],
 *   ["lr", ["optim/lr"]],
 * ]);
 * assert.deepEqual(rest, ["data/epoch"]);
 * ```
 */
export function groupCurves(
  keys: readonly string[],
  groups: readonly CurveGroup[] = DEFAULT_CURVE_GROUPS,
): GroupCurvesResult {
  const byGroup = new Map<CurveGroup, string[]>();
  const rest: string[] = [];
  for (const key of [...new Set(keys)].sort()) {
    const group = groups.find((g) => key.search(g.pattern) !== -1);
    if (group === undefined) rest.push(key);
    else byGroup.set(group, [...(byGroup.get(group) ?? []), key]);
  }
  const grouped = groups.filter((g) => byGroup.has(g)).map((group) => ({
    group,
    keys: byGroup.get(group)!,
  }));
  return { grouped, rest };
}
