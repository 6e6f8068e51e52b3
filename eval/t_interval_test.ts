// Copyright 2025 the halo authors. MIT license.
import { ok, strictEqual, throws } from "node:assert/strict";
import { studentTCdf, studentTQuantile, tInterval } from "./t_interval.ts";

// Reference: the 97.5% points of Student's t from R's qt(0.975, df) (independent of this code).
const QT_975: Record<number, number> = {
  1: 12.706204736174698,
  2: 4.302652729911275,
  3: 3.182446305284263,
  4: 2.776445105197799,
  10: 2.228138851986274,
  30: 2.042272456301238,
};

Deno.test("studentTQuantile() matches R's qt(0.975, df) to 1e-9", () => {
  for (const [df, expected] of Object.entries(QT_975)) {
    const got = studentTQuantile(0.975, Number(df));
    ok(Math.abs(got - expected) < 1e-9, `df ${df}: ${got} vs ${expected}`);
  }
  // qt(0.95, 5) = 2.015048372669157; symmetry.
  ok(Math.abs(studentTQuantile(0.95, 5) - 2.015048372669157) < 1e-9);
  ok(Math.abs(studentTQuantile(0.025, 2) + QT_975[2]) < 1e-9);
});

Deno.test("studentTCdf() equals the closed forms for df 1 and 2 to 1e-12", () => {
  for (const t of [-3, -0.5, 0, 0.7, 2, 10]) {
    // df 1: Cauchy; df 2: 1/2 + t / (2 sqrt(2 + t^2)).
    ok(Math.abs(studentTCdf(t, 1) - (0.5 + Math.atan(t) / Math.PI)) < 1e-12);
    ok(Math.abs(studentTCdf(t, 2) - (0.5 + t / (2 * Math.sqrt(2 + t * t)))) < 1e-12);
  }
});

Deno.test("tInterval() gives mean ± t·s/√n, NaN ends for one value, and names bad input", () => {
  const ci = tInterval([0.12, 0.15, 0.2]);
  const mean = (0.12 + 0.15 + 0.2) / 3;
  const sd = Math.sqrt(((0.12 - mean) ** 2 + (0.15 - mean) ** 2 + (0.2 - mean) ** 2) / 2);
  ok(Math.abs(ci.mean - mean) < 1e-15);
  ok(Math.abs(ci.halfWidth - (QT_975[2] * sd) / Math.sqrt(3)) < 1e-10); // qt to 1e-9
  ok(Math.abs(ci.upper - ci.lower - 2 * ci.halfWidth) < 1e-15);
  const one = tInterval([0.3]);
  strictEqual(one.mean, 0.3);
  ok(Number.isNaN(one.lower) && Number.isNaN(one.halfWidth));
  strictEqual(tInterval([0.4, 0.4]).halfWidth, 0);
  throws(() => tInterval([]), RangeError);
  throws(() => tInterval([1, NaN]), /values\[1\] must be finite/);
});
