import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Qwen3Config } from "./config.ts";
import { initQwen3Weights } from "./init.ts";

const CONFIG: Qwen3Config = {
  vocabSize: 64,
  hiddenSize: 64,
  intermediateSize: 192,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: false,
  eosTokenIds: [54],
  bosTokenId: null,
  padTokenId: 52,
};

Deno.test("initQwen3Weights() draws matrices from N(0, std²) and sets norms to 1", () => {
  const std = 0.05;
  const w = initQwen3Weights(CONFIG, { seed: 11, std });
  const matrices = [
    w.embedTokens,
    w.lmHead,
    ...w.layers.flatMap((l) => [
      l.qProj,
      l.kProj,
      l.vProj,
      l.oProj,
      l.gateProj,
      l.upProj,
      l.downProj,
    ]),
  ];
  let n = 0;
  let sum = 0;
  let squares = 0;
  let beyond3 = 0;
  for (const m of matrices) {
    for (const x of m) {
      n++;
      sum += x;
      squares += x * x;
      if (Math.abs(x) > 3 * std) beyond3++;
    }
  }
  const mean = sum / n;
  const sd = Math.sqrt(squares / n - mean * mean);
  // n ≈ 110k: the mean's standard error is std/sqrt(n) ≈ 1.5e-4; 5 standard errors.
  ok(Math.abs(mean) < 5 * std / Math.sqrt(n), `mean ${mean}`);
  ok(Math.abs(sd / std - 1) < 0.02, `std ${sd}`);
  // A normal puts 0.27% beyond 3σ (a uniform of the same std puts none).
  ok(beyond3 / n > 0.0015 && beyond3 / n < 0.004, `tail share ${beyond3 / n}`);
  for (const l of w.layers) {
    for (const norm of [l.inputLayernorm, l.postAttentionLayernorm, l.qNorm, l.kNorm]) {
      ok(norm.every((x) => x === 1));
    }
  }
  ok(w.norm.every((x) => x === 1));
  strictEqual(w.layers[1].kProj.length, 2 * 16 * 64);
  strictEqual(w.layers[0].downProj.length, 64 * 192);
});

Deno.test("initQwen3Weights() is fixed by the seed", () => {
  const a = initQwen3Weights(CONFIG, { seed: 3 });
  deepStrictEqual(initQwen3Weights(CONFIG, { seed: 3 }), a);
  notDeepStrictEqual(initQwen3Weights(CONFIG, { seed: 4 }).layers[1].upProj, a.layers[1].upProj);
  ok(a.lmHead !== a.embedTokens);
  const tied = initQwen3Weights({ ...CONFIG, tieWordEmbeddings: true }, { seed: 3 });
  strictEqual(tied.lmHead, tied.embedTokens);
});

Deno.test("initQwen3Weights() names a bad size or option", () => {
  throws(() => initQwen3Weights({ ...CONFIG, hiddenSize: 0 }, { seed: 0 }), {
    name: "RangeError",
    message:
      'Cannot initialise Qwen3 weights: config key "hiddenSize" must be a positive integer: current value is 0',
  });
  throws(() => initQwen3Weights(CONFIG, { seed: -1 }), {
    name: "RangeError",
    message: /option "seed" must be a non-negative safe integer: current value is -1/,
  });
  throws(() => initQwen3Weights(CONFIG, { seed: 0, std: 0 }), {
    name: "RangeError",
    message: /option "std" must be a finite number > 0: current value is 0/,
  });
});
