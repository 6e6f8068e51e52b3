// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { lineChart, type LineChartOptions, type LineSeries } from "./line_chart.ts";
import { countRole, xmlProblem } from "./test_utils.ts";

const OPTIONS: LineChartOptions = { title: "Loss terms", xTitle: "Step", yTitle: "Loss value" };

function series(name: string, n: number, band = false): LineSeries {
  const x = Array.from({ length: n }, (_, i) => i + 1);
  const y = x.map((s) => 1 / s + name.length / 10);
  return band
    ? { name, x, y, lo: y.map((v) => v - 0.1), hi: y.map((v) => v + 0.1) }
    : { name, x, y };
}

Deno.test("lineChart() draws one line per series and one point per value", async () => {
  const svg = await lineChart([
    series("loss/pg", 5),
    series("loss/align", 3),
    series("eval/loss", 2),
  ], {
    ...OPTIONS,
    points: true,
  });
  assert.equal(xmlProblem(svg), null);
  assert.equal(countRole(svg, "line mark"), 3);
  assert.equal(countRole(svg, "point"), 10);
  assert.equal(countRole(svg, "area mark"), 0);
  for (const text of ["loss/pg", "loss/align", "eval/loss", "Loss terms", "Step", "Loss value"]) {
    assert.ok(svg.includes(text), text);
  }
});

Deno.test("lineChart() draws no points unless asked and a band for each series with lo/hi", async () => {
  const svg = await lineChart(
    [series("a", 4, true), series("b", 4), series("c", 4, true)],
    OPTIONS,
  );
  assert.equal(xmlProblem(svg), null);
  assert.equal(countRole(svg, "line mark"), 3);
  assert.equal(countRole(svg, "point"), 0);
  assert.equal(countRole(svg, "area mark"), 2);
  // Past ten series the colours repeat; each band stays its own.
  const many = await lineChart(
    Array.from({ length: 12 }, (_, i) => series(`s${i}`, 3, true)),
    OPTIONS,
  );
  assert.equal(countRole(many, "area mark"), 12);
  assert.equal(countRole(many, "line mark"), 12);
});

Deno.test("lineChart() draws points on the series that ask for them", async () => {
  const svg = await lineChart(
    [{ ...series("eval", 3), points: true }, series("train", 9)],
    OPTIONS,
  );
  assert.equal(countRole(svg, "line mark"), 2);
  assert.equal(countRole(svg, "point"), 3);
  const all = await lineChart([series("eval", 3), { ...series("train", 9), points: false }], {
    ...OPTIONS,
    points: true,
  });
  assert.equal(countRole(all, "point"), 3);
});

Deno.test("lineChart() gives the same SVG for the same input", async () => {
  const input = [series("loss/pg", 6, true), series("loss/align", 6)];
  const options = { ...OPTIONS, yDomain: [0, 2] as const }; // a fixed domain clips the marks
  const first = await lineChart(input, options);
  assert.match(first, /clip-path="url\(#clip1\)"/);
  await lineChart([series("other", 3)], options); // Vega's clip ids are global counters
  assert.equal(await lineChart(input, options), first);
});

Deno.test("lineChart() escapes names and titles", async () => {
  const svg = await lineChart([series(`a<b & "c"`, 2)], { ...OPTIONS, title: "x < y & z" });
  assert.equal(xmlProblem(svg), null);
  assert.ok(svg.includes("a&lt;b &amp; &quot;c&quot;") || svg.includes('a&lt;b &amp; "c"'));
  assert.ok(svg.includes("x &lt; y &amp; z"));
});

Deno.test("lineChart() draws a log2 x axis for pass@k", async () => {
  const k = [1, 2, 4, 8, 16];
  const svg = await lineChart([{ name: "pass@k", x: k, y: [0.2, 0.3, 0.4, 0.5, 0.55] }], {
    title: "pass@k",
    xTitle: "k",
    yTitle: "pass@k",
    xScale: "log2",
    integerX: true,
    yDomain: [0, 1],
  });
  assert.match(svg, /X-axis titled 'k' for a log scale with values from 1 to 16/);
  assert.match(svg, /Y-axis titled 'pass@k' for a linear scale with values from 0\.0 to 1\.0/);
});

Deno.test("lineChart() rejects bad input with the chart and value named", async () => {
  const bad: [LineSeries[], RegExp, LineChartOptions?][] = [
    [[], /line chart "Loss terms": it needs at least one series/],
    [[series("a", 2), series("a", 3)], /series name "a" appears twice/],
    [[{ name: "a", x: [1, 2], y: [1] }], /series "a" has 2 x values but 1 y values/],
    [
      [{ name: "a", x: [1, 2], y: [1, NaN] }],
      /series "a" y\[1\] must be a finite number: current value is NaN/,
    ],
    [[{ name: "a", x: [1], y: [1], lo: [0] }], /series "a" needs both lo and hi or neither/],
    [[{ name: "a", x: [0, 1], y: [1, 2] }], /x must be > 0 on a log axis: current value is 0/, {
      ...OPTIONS,
      xScale: "log10",
    }],
  ];
  for (const [input, message, options] of bad) {
    await assert.rejects(() => lineChart(input, options ?? OPTIONS), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});
