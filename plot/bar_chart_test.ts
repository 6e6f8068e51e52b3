// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { type Bar, barChart, type BarChartOptions } from "./bar_chart.ts";
import { countRole, xmlProblem } from "./test_utils.ts";

const OPTIONS: BarChartOptions = {
  title: "Held-out accuracy",
  xTitle: "Method",
  yTitle: "Accuracy",
};

Deno.test("barChart() draws one bar per value and one error bar per interval", async () => {
  const svg = await barChart([
    { label: "LoRA", value: 0.41, lo: 0.37, hi: 0.45 },
    { label: "MoLA", value: 0.44, lo: 0.4, hi: 0.48 },
    { label: "HILO", value: 0.47 },
  ], { ...OPTIONS, yDomain: [0, 1] });
  assert.equal(xmlProblem(svg), null);
  assert.equal(countRole(svg, "bar"), 3);
  assert.equal(countRole(svg, "rule mark"), 2);
  assert.equal(countRole(svg, "legend"), 0);
  for (const text of ["LoRA", "MoLA", "HILO", "Held-out accuracy", "Method", "Accuracy"]) {
    assert.ok(svg.includes(text), text);
  }
  // Categories keep the given order, not alphabetical.
  assert.ok(svg.indexOf(">LoRA<") < svg.indexOf(">MoLA<"));
  assert.ok(svg.indexOf(">MoLA<") < svg.indexOf(">HILO<"));
});

Deno.test("barChart() draws grouped bars side by side with a legend", async () => {
  const bars: Bar[] = [];
  for (const label of ["DAPO", "DAPO + align"]) {
    for (const group of ["pass@1", "pass@8"]) {
      bars.push({ label, group, value: 0.5, lo: 0.4, hi: 0.6 });
    }
  }
  const svg = await barChart(bars, { ...OPTIONS, legendTitle: "Metric" });
  assert.equal(xmlProblem(svg), null);
  assert.equal(countRole(svg, "bar"), 4);
  assert.equal(countRole(svg, "rule mark"), 4);
  assert.equal(countRole(svg, "legend"), 1);
  for (const text of ["pass@1", "pass@8", "Metric", "DAPO + align"]) assert.ok(svg.includes(text));
});

Deno.test("barChart() gives the same SVG for the same input", async () => {
  const bars: Bar[] = [{ label: "a", value: 1, lo: 0.5, hi: 1.5 }, { label: "b", value: 2 }];
  assert.equal(await barChart(bars, OPTIONS), await barChart(bars, OPTIONS));
});

Deno.test("barChart() rejects bad input with the chart and value named", async () => {
  const bad: [Bar[], RegExp][] = [
    [[], /bar chart "Held-out accuracy": it needs at least one bar/],
    [[{ label: "a", value: 1 }, { label: "a", value: 2 }], /bar "a" appears twice/],
    [
      [{ label: "a", value: 1, group: "x" }, { label: "b", value: 2 }],
      /give a group to every bar or to none/,
    ],
    [[{ label: "a", value: 1, lo: 0 }], /bar "a" needs both lo and hi or neither/],
    [
      [{ label: "a", value: Infinity }],
      /bar "a" value must be a finite number: current value is Infinity/,
    ],
  ];
  for (const [input, message] of bad) {
    await assert.rejects(() => barChart(input, OPTIONS), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});
