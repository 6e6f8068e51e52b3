// Copyright 2025 the halo authors. MIT license.
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { anchorLayerGeometry, type AnchorSample } from "./anchor_layers.ts";

/** A unit vector at `degrees` in the plane. */
const at = (degrees: number): number[] => [
  Math.cos((degrees * Math.PI) / 180),
  Math.sin((degrees * Math.PI) / 180),
];

Deno.test("anchorLayerGeometry() gives the known cosines of constructed states per layer", () => {
  // Prompt A: correct rollouts at 0° and 60° (cos 0.5), an incorrect one at 90°;
  // prompt B: correct at 0° and 0° (cos 1), incorrect at 180° and 90° (cos 0).
  // Layer 1 scales every vector by 3 (the same cosines); layer 2 rotates all by 45° (too).
  // Random positions: all at 10° in layer 0, so every random pair has cos 1 there.
  const make = (group: string, correct: boolean, degrees: number): AnchorSample => ({
    group,
    correct,
    anchor: [at(degrees), at(degrees).map((v) => 3 * v), at(degrees + 45)],
    random: [at(10), at(degrees), at(degrees)],
  });
  const samples = [
    make("A", true, 0),
    make("A", true, 60),
    make("A", false, 90),
    make("B", true, 0),
    make("B", true, 0),
    make("B", false, 180),
    make("B", false, 90),
  ];
  const rows = anchorLayerGeometry(samples, { labels: ["emb", "l0", "final"], seed: 3 });
  deepStrictEqual(rows.map((r) => r.label), ["emb", "l0", "final"]);
  const tol = 1e-12;
  // Correct–correct: pairs (A: 0.5), (B: 1) -> 0.75. Incorrect–incorrect: one pair in B, cos 0.
  // Correct–incorrect: A: cos(0,90)=0, cos(60,90)=cos30; B: cos(0,180)=-1 twice, cos(0,90)=0 twice.
  const mixed = (0 + Math.cos(Math.PI / 6) - 1 - 1 + 0 + 0) / 6;
  for (const row of rows) {
    ok(Math.abs(row.correctCorrect.mean - 0.75) < tol, `${row.label} ${row.correctCorrect.mean}`);
    ok(Math.abs(row.incorrectIncorrect.mean - 0) < tol);
    ok(Math.abs(row.correctIncorrect.mean - mixed) < tol);
    strictEqual(row.correctCorrect.pairs, 2);
    strictEqual(row.correctCorrect.groups, 2);
    strictEqual(row.incorrectIncorrect.pairs, 1);
    strictEqual(row.correctIncorrect.pairs, 6);
    strictEqual(row.random.pairs, 3 + 6);
  }
  ok(Math.abs(rows[0].random.mean - 1) < tol);
  // The bootstrap over prompts: correct-correct per prompt 0.5 and 1, so the resampled means lie
  // in [0.5, 1]; with two prompts both ends are reached in 1000 draws.
  const cc = rows[2].correctCorrect;
  ok(Math.abs(cc.lower - 0.5) < tol && Math.abs(cc.upper - 1) < tol, `${cc.lower} ${cc.upper}`);
  // Seeded: the same seed, the same intervals; a rollout without an anchor only adds random pairs.
  deepStrictEqual(
    anchorLayerGeometry(samples, { seed: 3 }),
    anchorLayerGeometry(samples, { seed: 3 }),
  );
  const withNull = anchorLayerGeometry([
    ...samples,
    { group: "A", correct: true, anchor: null, random: [at(0), at(0), at(0)] },
  ]);
  strictEqual(withNull[0].correctCorrect.pairs, 2);
  strictEqual(withNull[0].random.pairs, 9 + 3);
  throws(
    () => anchorLayerGeometry([samples[0], { ...samples[1], random: [at(0)] }]),
    /samples\[1\] must have 3 layers/,
  );
});
