import { deepStrictEqual, ok } from "node:assert/strict";
import { gumbelNoise, philox4x32, sampleUniform } from "./philox_ref.ts";

Deno.test("philox4x32() reproduces Random123's known-answer vectors", () => {
  // kat_vectors from Random123 1.09 (philox4x32, 10 rounds).
  const cases: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  for (const [counter, key, want] of cases) {
    deepStrictEqual(philox4x32(counter, key), Uint32Array.from(want));
  }
});

Deno.test("sampleUniform() is uniform in (0, 1) and keyed by seed, sequence, step and token", () => {
  const n = 20000;
  const bins = new Array(10).fill(0);
  for (let j = 0; j < n; j++) {
    const u = sampleUniform(7, 1, 2, j);
    ok(u > 0 && u < 1);
    bins[Math.floor(u * 10)]++;
  }
  // Chi-square with 9 dof; 33.72 is the 1e-4 upper quantile (a fixed seed: deterministic).
  const chi2 = bins.reduce((s, c) => s + (c - n / 10) ** 2 / (n / 10), 0);
  ok(chi2 < 33.72, `chi2 ${chi2}`);
  const u = sampleUniform(7, 1, 2, 3);
  for (
    const other of [sampleUniform(8, 1, 2, 3), sampleUniform(7, 2, 2, 3), sampleUniform(7, 1, 3, 3)]
  ) {
    ok(other !== u);
  }
  ok(sampleUniform(2 ** 40, 0, 0, 0) !== sampleUniform(0, 0, 0, 0), "the high seed word is used");
});

Deno.test("gumbelNoise() is -log(-log u) within 2e-8 for every draw near u = 1 and across (0, 1)", () => {
  // The independent reference: log1p of d = 1 - u (exact in doubles), so accurate next to 1.
  const check = (k: number) => {
    const u = (k + 0.5) / 2 ** 23;
    const want = -Math.log(-Math.log1p(-(2 ** 23 - k - 0.5) / 2 ** 23));
    const got = gumbelNoise(u);
    ok(Math.abs(got - want) <= 2e-8, `k = ${k}: ${got}, want ${want}`);
  };
  for (let k = 2 ** 23 - 2 ** 18; k < 2 ** 23; k++) check(k); // d < 2^-5, across the 1/64 switch
  for (let k = 0; k < 2 ** 23; k += 997) check(k);
});
