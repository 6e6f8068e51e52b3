// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { parseMetrics, readMetrics } from "./read_metrics.ts";
import { metricsLine } from "../trainer/train_loop.ts";

Deno.test("parseMetrics() reads the trainer's lines back, non-finite values included", () => {
  const text = [
    metricsLine(1, { "loss/nll": 2.5, "optim/lr": 1e-3 }),
    "",
    metricsLine(2, { "loss/nll": NaN, "optim/grad_norm": Infinity, "x/y": -Infinity }),
    "",
  ].join("\n");
  const rows = parseMetrics(text, "m.jsonl");
  assert.equal(rows.length, 2);
  assert.deepEqual(rows[0], { step: 1, values: { "loss/nll": 2.5, "optim/lr": 1e-3 } });
  assert.equal(rows[1].step, 2);
  assert.ok(Number.isNaN(rows[1].values["loss/nll"]));
  assert.equal(rows[1].values["optim/grad_norm"], Infinity);
  assert.equal(rows[1].values["x/y"], -Infinity);
});

Deno.test("parseMetrics() names the file and line of a malformed line", () => {
  const cases: [string, ErrorConstructor, RegExp][] = [
    [
      '{"step":1}\n{"step":2,\n',
      SyntaxError,
      /^Cannot read metrics "r\/metrics.jsonl": line 2 is not valid JSON/,
    ],
    ['{"step":1}\n\n[1,2]\n', TypeError, /line 3 must be a JSON object: current value is \[1,2\]/],
    [
      '{"loss/nll":1}\n',
      TypeError,
      /line 1 must have a numeric "step": current value is undefined/,
    ],
    ['{"step":"3"}\n', TypeError, /line 1 must have a numeric "step": current value is "3"/],
    [
      '{"step":1,"loss/nll":"high"}\n',
      TypeError,
      /line 1 key "loss\/nll" must be a number: current value is "high"/,
    ],
  ];
  for (const [text, type, message] of cases) {
    assert.throws(() => parseMetrics(text, "r/metrics.jsonl"), (e: Error) => {
      assert.ok(e instanceof type, `${e.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("readMetrics() names a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => readMetrics(`${dir}/metrics.jsonl`), (e: Error) => {
      assert.ok(e instanceof Deno.errors.NotFound);
      assert.equal(
        e.message,
        `Cannot read metrics "${dir}/metrics.jsonl": the file does not exist`,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
