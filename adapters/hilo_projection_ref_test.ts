// The one-projection HILO reference against values computed by hand (top-k, top-p, ties, E = 1)
// and its backward against central finite differences in float64.
import assert from "node:assert/strict";
import { mulberry32 } from "../internal/random.ts";
import { moeRouteRef } from "../kernels/moe_route/moe_route_ref.ts";
import {
  hiloProjectionBackwardRef,
  type HiloProjectionParams,
  hiloProjectionRef,
} from "./hilo_projection_ref.ts";

// Hand values are sums of a few exact-ish doubles: 1e-12 relative.
const HAND_TOL = 1e-12;

function close(actual: number, expected: number, what: string, tol = HAND_TOL): void {
  const err = Math.abs(actual - expected) / Math.max(1, Math.abs(expected));
  assert.ok(err <= tol, `${what}: ${actual} vs ${expected} (rel ${err.toExponential(2)})`);
}

/** Three rank-1 experts reading x[0] with outputs 10, 20, 30 (scale ½), router logits z·x[0]. */
function threeExperts(
  z: number[],
  activation: "top-k" | "top-p",
  topK: number,
  topP: number,
): HiloProjectionParams {
  return {
    inFeatures: 2,
    outFeatures: 1,
    w0: [0, 0],
    experts: [10, 20, 30].map((c) => ({ a: [1, 0], b: [c], r: 1, scale: 0.5 })),
    router: { weight: [z[0], 0, z[1], 0, z[2], 0], activation, topK, topP },
  };
}

Deno.test("hiloProjectionRef() matches hand-computed gates for top-k, top-p, ties and E = 1", () => {
  // Logits 0, ln 2, ln 3: p = 1/6, 2/6, 3/6.
  const z = [0, Math.LN2, Math.log(3)];
  const x = [1, 0];
  // Top-2: experts 2 and 1, gates 3/5 and 2/5: y = ½·(2/5·20 + 3/5·30) = 13.
  let r = hiloProjectionRef(x, threeExperts(z, "top-k", 2, 1));
  close(r.y[0], 13, "top-2");
  close(r.gates[1], 0.4, "top-2 gate 1");
  close(r.probs[0], 1 / 6, "p0");
  // Top-1: expert 2 alone, gate 1: y = 15.
  close(hiloProjectionRef(x, threeExperts(z, "top-k", 1, 1)).y[0], 15, "top-1");
  // Top-p 0.5: p2 = 0.5 already reaches it: y = 15. Top-p 0.6: {2, 1}: y = 13.
  close(hiloProjectionRef(x, threeExperts(z, "top-p", 2, 0.5)).y[0], 15, "top-p 0.5");
  close(hiloProjectionRef(x, threeExperts(z, "top-p", 2, 0.6)).y[0], 13, "top-p 0.6");
  // Top-p 1: every expert, gates = p: y = ½·(10 + 40 + 90)/6.
  close(hiloProjectionRef(x, threeExperts(z, "top-p", 2, 1)).y[0], 70 / 6, "top-p 1");
  // Ties (equal logits): the lower indices win: top-2 = {0, 1}, y = ½·(5 + 10); top-1 = {0}.
  r = hiloProjectionRef(x, threeExperts([0, 0, 0], "top-k", 2, 1));
  close(r.y[0], 7.5, "tie top-2");
  assert.deepEqual(Array.from(r.gates), [0.5, 0.5, 0]);
  close(hiloProjectionRef(x, threeExperts([0, 0, 0], "top-k", 1, 1)).y[0], 5, "tie top-1");
  // Top-p ties: 1/3 < 0.4, so the first two (lower indices) are taken.
  assert.deepEqual(
    Array.from(hiloProjectionRef(x, threeExperts([0, 0, 0], "top-p", 1, 0.4)).gates),
    [0.5, 0.5, 0],
  );
  // E = 1 without a router is plain LoRA: y = W0·x + s·B·A·x = 1·1 + ½·10·1.
  const lora: HiloProjectionParams = {
    inFeatures: 2,
    outFeatures: 1,
    w0: [1, 0],
    experts: [{ a: [1, 0], b: [10], r: 1, scale: 0.5 }],
  };
  close(hiloProjectionRef(x, lora).y[0], 6, "E = 1");
});

Deno.test("moeRouteRef() selects and renormalises as the sorting reference", () => {
  const rand = mulberry32(7);
  for (const activation of ["top-k", "top-p"] as const) {
    for (const E of [1, 2, 3, 5, 8]) {
      const n = 20;
      // Logits on a coarse grid, so ties happen.
      const logits = Array.from({ length: n * E }, () => Math.round(rand() * 4) / 2);
      const topK = Math.min(2, E);
      const route = moeRouteRef(logits, { experts: E, activation, topK, topP: 0.6 });
      // The sorting reference routes one identity-input token per row.
      for (let t = 0; t < n; t++) {
        const params: HiloProjectionParams = {
          inFeatures: 1,
          outFeatures: 1,
          w0: [0],
          experts: Array.from({ length: E }, () => ({ a: [0], b: [0], r: 1, scale: 1 })),
          router: { weight: logits.slice(t * E, (t + 1) * E), activation, topK, topP: 0.6 },
        };
        const ref = hiloProjectionRef([1], params);
        for (let e = 0; e < E; e++) {
          close(route.gates[t * E + e], ref.gates[e], `${activation} E=${E} t=${t} e=${e}`);
          assert.equal(route.selected[t * E + e], ref.gates[e] > 0 ? 1 : 0);
        }
      }
    }
  }
});

Deno.test("moeRouteRef() rejects out-of-range options, naming them", () => {
  assert.throws(() => moeRouteRef([0, 0], { experts: 2, topK: 3 }), /"topK" must be .*3/);
  assert.throws(() => moeRouteRef([0, 0], { experts: 2, topP: 0, activation: "top-p" }), /topP/);
  assert.throws(() => moeRouteRef([0, 0, 0], { experts: 2 }), /tokens × 2 values/);
});

// Central differences in float64 with step 1e-6: truncation ~1e-12·|f'''|, rounding ~1e-16/1e-6
// of the O(1) loss; measured worst relative error 2.7e-8 over all cases and tensors, so 1e-6
// leaves margin while a wrong or missing term (an O(1) relative error) fails.
const STEP = 1e-6;
const FD_TOL = 1e-6;

function randomParams(
  seed: number,
  E: number,
  router: HiloProjectionParams["router"] | null,
): HiloProjectionParams {
  const rand = mulberry32(seed);
  const arr = (k: number) => Array.from({ length: k }, () => 2 * rand() - 1);
  const [inF, outF] = [5, 3];
  return {
    inFeatures: inF,
    outFeatures: outF,
    w0: arr(outF * inF),
    experts: Array.from({ length: E }, (_, e) => {
      const r = 1 + (e % 3);
      return { a: arr(r * inF), b: arr(outF * r), r, scale: 2 / r };
    }),
    router: router === null ? undefined : { ...router!, weight: arr(E * inF).map((v) => 3 * v) },
  };
}

Deno.test("hiloProjectionBackwardRef() equals central finite differences (top-k, top-p, E = 1)", () => {
  const cases = [
    { E: 4, router: { activation: "top-k", topK: 2, topP: 1 } },
    { E: 4, router: { activation: "top-k", topK: 1, topP: 1 } },
    { E: 5, router: { activation: "top-p", topK: 2, topP: 0.7 } },
    { E: 3, router: { activation: "top-k", topK: 3, topP: 1 } },
    { E: 1, router: null },
  ] as const;
  let worst = 0;
  cases.forEach(({ E, router }, ci) => {
    const params = randomParams(100 + ci, E, router as HiloProjectionParams["router"] | null);
    const rand = mulberry32(200 + ci);
    const n = 4;
    const x = Array.from({ length: n * 5 }, () => 2 * rand() - 1);
    const dy = Array.from({ length: n * 3 }, () => 2 * rand() - 1);
    const dropoutMask = Array.from({ length: n * 5 }, () => (rand() < 0.3 ? 0 : 1 / 0.7));
    const dProbs = router ? Array.from({ length: n * E }, () => 2 * rand() - 1) : undefined;
    const loss = () => {
      const f = hiloProjectionRef(x, params, { dropoutMask });
      let s = 0;
      for (let i = 0; i < f.y.length; i++) s += dy[i] * f.y[i];
      if (dProbs) { for (let i = 0; i < f.probs.length; i++) s += dProbs[i] * f.probs[i]; }
      return s;
    };
    // The selection must not flip under the step: every kept and dropped probability apart.
    const f0 = hiloProjectionRef(x, params, { dropoutMask });
    if (router) {
      for (let t = 0; t < n; t++) {
        const p = Array.from(f0.probs.subarray(t * E, (t + 1) * E)).sort((a, b) => b - a);
        for (let e = 1; e < E; e++) assert.ok(p[e - 1] - p[e] > 1e-4, `case ${ci}: near tie`);
      }
    }
    const g = hiloProjectionBackwardRef(dy, x, params, { dropoutMask, dProbs });
    const probes: [string, number[] | ArrayLike<number>, ArrayLike<number>][] = [
      ["x", x, g.dx],
      ["w0", params.w0, g.dw0],
      ...params.experts.flatMap((e, i): [string, ArrayLike<number>, ArrayLike<number>][] => [
        [`A${i}`, e.a, g.dA[i]],
        [`B${i}`, e.b, g.dB[i]],
      ]),
    ];
    if (params.router) probes.push(["router", params.router.weight, g.dRouter]);
    for (const [name, w, grad] of probes) {
      const arr = w as number[];
      let num = 0;
      let den = 0;
      for (let i = 0; i < arr.length; i++) {
        const w0 = arr[i];
        arr[i] = w0 + STEP;
        const up = loss();
        arr[i] = w0 - STEP;
        const down = loss();
        arr[i] = w0;
        const fd = (up - down) / (2 * STEP);
        num += (grad[i] - fd) ** 2;
        den += fd ** 2;
      }
      const rel = Math.sqrt(num / Math.max(den, 1e-30));
      worst = Math.max(worst, rel);
      assert.ok(rel < FD_TOL, `case ${ci} ${name}: relative error ${rel.toExponential(2)}`);
      // A router gradient that is identically zero would pass trivially: not with top-k < E.
      if (name === "router" && E > 1) assert.ok(den > 1e-6, `case ${ci}: zero router gradient`);
    }
  });
  console.log(`worst relative error vs finite differences: ${worst.toExponential(2)}`);
});
