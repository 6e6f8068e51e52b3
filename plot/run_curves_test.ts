// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { plotRunCurves } from "./run_curves.ts";
import { countRole, xmlProblem } from "./test_utils.ts";
import { metricsLine } from "../trainer/train_loop.ts";

/** A synthetic RL run in the trainer's format: 30 steps, eval every 10, one NaN loss. */
function rlMetrics(): string {
  const lines = [metricsLine(0, { "eval/accuracy": 0.27, "eval/pass@4": 0.5 })];
  for (let step = 1; step <= 30; step++) {
    const metrics: Record<string, number> = {
      "loss/pg": 0.5 / step,
      "loss/hidden_align": step === 7 ? NaN : 0.2 / step,
      "loss/pg_clipfrac": 0.01 * (step % 3),
      "loss/tokens": 100 + step,
      "reward/mean": -1 + step / 20,
      "rollout/accuracy": 0.25 + step / 100,
      "sampling/kept_groups": 0.5,
      "response/length_mean": 40 + step,
      "optim/grad_norm": 1 / step,
      "optim/lr": 1e-6,
      "align/cos_correct": 0.8,
      "align/cos_incorrect": 0.7,
      "data/epoch": 0,
    };
    if (step % 10 === 0) {
      Object.assign(metrics, { "eval/accuracy": 0.27 + step / 100, "eval/pass@4": 0.6 });
    }
    lines.push(metricsLine(step, metrics));
  }
  return lines.map((line) => `${line}\n`).join("");
}

async function withRun(text: string | null, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    if (text !== null) await Deno.writeTextFile(`${dir}/metrics.jsonl`, text);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("plotRunCurves() writes one chart per group with one line per key", async () => {
  await withRun(rlMetrics(), async (dir) => {
    const { metricsPath, charts } = await plotRunCurves(`${dir}/`);
    assert.equal(metricsPath, `${dir}/metrics.jsonl`);
    assert.deepEqual(charts.map((c) => [c.name, c.keys]), [
      ["clip", ["loss/pg_clipfrac"]],
      ["loss", ["loss/hidden_align", "loss/pg"]],
      ["accuracy", ["eval/accuracy", "eval/pass@4", "rollout/accuracy"]],
      ["reward", ["reward/mean"]],
      ["kept_groups", ["sampling/kept_groups"]],
      ["response_length", ["response/length_mean"]],
      ["grad_norm", ["optim/grad_norm"]],
      ["lr", ["optim/lr"]],
      ["anchor_cosine", ["align/cos_correct", "align/cos_incorrect"]],
    ]);
    const files = [];
    for await (const entry of Deno.readDir(`${dir}/plots`)) files.push(entry.name);
    assert.deepEqual(files.sort(), charts.map((c) => `${c.name}.svg`).sort()); // no temp files left
    for (const chart of charts) {
      assert.equal(chart.path, `${dir}/plots/${chart.name}.svg`);
      const svg = await Deno.readTextFile(chart.path);
      assert.equal(xmlProblem(svg), null, chart.name);
      assert.equal(countRole(svg, "line mark"), chart.keys.length, chart.name);
      assert.ok(svg.includes("Step"));
      for (const key of chart.keys) assert.ok(svg.includes(key), key);
    }
    // Points on every value (every series has <= 40): 30 + 29 (NaN left out) in the loss chart,
    // 4 + 4 + 30 in the accuracy chart (eval at steps 0, 10, 20, 30).
    const loss = await Deno.readTextFile(`${dir}/plots/loss.svg`);
    assert.equal(countRole(loss, "point"), 59);
    const accuracy = await Deno.readTextFile(`${dir}/plots/accuracy.svg`);
    assert.equal(countRole(accuracy, "point"), 38);
    assert.match(accuracy, /Accuracy/);
  });
});

Deno.test("plotRunCurves() writes the same files for the same metrics", async () => {
  await withRun(rlMetrics(), async (dir) => {
    const first = await plotRunCurves(dir, { outDir: `${dir}/a`, pointsUpTo: 10 });
    const second = await plotRunCurves(dir, { outDir: `${dir}/b`, pointsUpTo: 10 });
    assert.equal(first.charts.length, second.charts.length);
    for (const chart of first.charts) {
      const a = await Deno.readTextFile(`${dir}/a/${chart.name}.svg`);
      assert.equal(a, await Deno.readTextFile(`${dir}/b/${chart.name}.svg`), chart.name);
      // Points only on the series with at most 10 values: the two eval curves (steps 0, 10, 20, 30).
      assert.equal(countRole(a, "point"), chart.name === "accuracy" ? 8 : 0, chart.name);
    }
  });
});

Deno.test("plotRunCurves() with all also charts the other keys by namespace", async () => {
  await withRun(rlMetrics(), async (dir) => {
    const { charts } = await plotRunCurves(dir, { all: true });
    assert.deepEqual(charts.slice(-2).map((c) => [c.name, c.keys]), [
      ["other_data", ["data/epoch"]],
      ["other_loss", ["loss/tokens"]],
    ]);
    assert.ok((await Deno.readTextFile(`${dir}/plots/loss.svg`)).includes("loss/pg"));
  });
});

Deno.test("plotRunCurves() names the file and line of bad input", async () => {
  await withRun(null, async (dir) => {
    await assert.rejects(
      () => plotRunCurves(dir),
      Deno.errors.NotFound,
      `Cannot read metrics "${dir}/metrics.jsonl": the file does not exist`,
    );
  });
  await withRun('{"step":1,"loss/nll":1}\n{"step":2,"loss/nll":1\n', async (dir) => {
    await assert.rejects(
      () => plotRunCurves(dir),
      SyntaxError,
      `Cannot read metrics "${dir}/metrics.jsonl": line 2 is not valid JSON`,
    );
  });
  await withRun("\n", async (dir) => {
    await assert.rejects(() => plotRunCurves(dir), RangeError, "has no metrics line");
  });
});
