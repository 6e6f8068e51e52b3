// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { type CurveGroup, groupCurves } from "./curve_groups.ts";

Deno.test("groupCurves() puts SFT and RL keys in their charts", () => {
  const keys = [
    "loss/nll",
    "loss/tokens",
    "eval/loss",
    "loss/pg",
    "loss/hidden_align",
    "loss/pg_clipfrac",
    "loss/pg_clipfrac_lower",
    "loss/ppo_kl",
    "actor/entropy",
    "reward/mean",
    "reward/std",
    "rollout/accuracy",
    "eval/accuracy",
    "eval/avg@8",
    "eval/pass@8",
    "sampling/kept_groups",
    "sampling/gen_batches",
    "response/length_mean",
    "response/length_max",
    "response/truncated",
    "optim/grad_norm",
    "optim/update_norm",
    "optim/lr",
    "align/cos_correct",
    "align/cos_mixed",
    "align/marker_hit_rate",
    "perf/tokens_per_s",
    "time/generate",
    "data/epoch",
    "eval/samples",
  ];
  const { grouped, rest } = groupCurves(keys);
  assert.deepEqual(Object.fromEntries(grouped.map((g) => [g.group.name, g.keys])), {
    clip: ["loss/pg_clipfrac", "loss/pg_clipfrac_lower"],
    kl: ["loss/ppo_kl"],
    entropy: ["actor/entropy"],
    loss: ["eval/loss", "loss/hidden_align", "loss/nll", "loss/pg"],
    reward: ["reward/mean", "reward/std"],
    accuracy: ["eval/accuracy", "eval/avg@8", "eval/pass@8", "rollout/accuracy"],
    kept_groups: ["sampling/kept_groups"],
    sampling: ["sampling/gen_batches"],
    response_length: ["response/length_max", "response/length_mean"],
    truncation: ["response/truncated"],
    grad_norm: ["optim/grad_norm", "optim/update_norm"],
    lr: ["optim/lr"],
    anchor_cosine: ["align/cos_correct", "align/cos_mixed"],
    anchor_marker: ["align/marker_hit_rate"],
    throughput: ["perf/tokens_per_s"],
    time: ["time/generate"],
  });
  assert.deepEqual(rest, ["data/epoch", "eval/samples", "loss/tokens"]);
});

Deno.test("groupCurves() takes custom groups in their order, global patterns included", () => {
  const groups: CurveGroup[] = [
    { name: "b", title: "B", yTitle: "y", pattern: /b/g },
    { name: "a", title: "A", yTitle: "y", pattern: /a/g },
  ];
  const { grouped, rest } = groupCurves(["ab", "a1", "a2", "a3", "c"], groups);
  assert.deepEqual(grouped.map((g) => [g.group.name, g.keys]), [["b", ["ab"]], ["a", [
    "a1",
    "a2",
    "a3",
  ]]]);
  assert.deepEqual(rest, ["c"]);
});

Deno.test("groupCurves() keeps an RL run's fractions off its reward and count axes", () => {
  // Keys a Hidden-Align RL run writes to metrics.jsonl (the trainer's own names).
  const keys = [
    "loss/pg",
    "loss/align",
    "loss/total",
    "loss/ratio_max",
    "reward/mean",
    "reward/overlong_penalty",
    "reward/accuracy",
    "reward/marker_rate",
    "batch/anchor_rate",
    "eval/accuracy",
    "sampling/kept_groups",
    "sampling/kept_fraction",
    "sampling/mixed_rate",
    "sampling/mixed_groups",
    "sampling/gen_batches",
    "sampling/generated_tokens",
    "sampling/prompt_position",
  ];
  const { grouped, rest } = groupCurves(keys);
  assert.deepEqual(Object.fromEntries(grouped.map((g) => [g.group.name, g.keys])), {
    ratio: ["loss/ratio_max"],
    loss: ["loss/align", "loss/pg", "loss/total"],
    accuracy: ["eval/accuracy", "reward/accuracy"],
    anchor_marker: ["batch/anchor_rate", "reward/marker_rate"],
    reward: ["reward/mean", "reward/overlong_penalty"],
    sampling_rates: ["sampling/kept_fraction", "sampling/mixed_rate"],
    kept_groups: ["sampling/kept_groups"],
    generated_tokens: ["sampling/generated_tokens"],
    sampling: ["sampling/gen_batches", "sampling/mixed_groups"],
  });
  assert.deepEqual(rest, ["sampling/prompt_position"]);
  for (
    const { group } of grouped.filter((g) =>
      /^(accuracy|anchor_marker|sampling_rates)$/.test(g.group.name)
    )
  ) {
    assert.deepEqual(group.yDomain, [0, 1], group.name);
  }
});
