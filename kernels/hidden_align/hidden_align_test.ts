import { readback } from "../../gpu/readback.ts";
import { alignCentroids } from "../../trainer/losses/align_centroids.ts";
import { ALIGN_TYPES, type AlignType } from "../../trainer/losses/hidden_align_loss.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import {
  encodeHiddenAlign,
  HIDDEN_ALIGN_METRICS,
  HIDDEN_ALIGN_OUT_FLOATS,
  type HiddenAlignArgs,
  hiddenAlignMetrics,
  hiddenAlignScratchFloats,
} from "./hidden_align.ts";
import {
  hiddenAlignRef,
  type HiddenAlignRefOptions,
} from "../../trainer/losses/hidden_align_ref.ts";

// f32 dot products and sums of length ≤ 300 and ≤ 9 rows against the f64 reference on the same
// f32 inputs: measured ≤ ~1e-6 relative; 1e-5 leaves a margin. (A row below the 1e-6 norm
// floor has gradients ~1e6 larger, compared with the same relative bound.)
const TOL = 1e-5;

// 9 sequences of 3 tokens in 4 groups: group 0 has 3 taking-part rows (sequences 0, 4, 8; 2 is
// correct but has no anchor), group 1 one (1), group 2 none (3 is wrong), group 3 two (5, 6; 7
// is wrong). So N = 5 rows and P = 3 + 1 = 4 pairs differ (cos-pairwise divides by P).
const B = 9;
const T = 3;
const G = 4;
const groups = Uint32Array.from([0, 1, 0, 2, 0, 3, 3, 3, 0]);
const correct = Uint32Array.from([1, 1, 1, 0, 1, 1, 1, 0, 1]);
const anchors = Int32Array.from([2, 0, -1, 1, 0, 2, 1, 0, 1]);

async function run(
  hiddenSize: number,
  type: AlignType,
  extra: Pick<HiddenAlignRefOptions, "normalizer" | "weight" | "centroids" | "centroidMask">,
  hidden: Float32Array,
  prior?: Float32Array,
): Promise<{ out: Float32Array; grad: Float32Array; ref: ReturnType<typeof hiddenAlignRef> }> {
  const ctx = (await testContext())!;
  const n = B * T * hiddenSize;
  // NaN at every anchor row (the kernel must write them), 7 elsewhere (it must not touch them).
  let init = prior;
  if (!init) {
    init = new Float32Array(n).fill(7);
    for (let b = 0; b < B; b++) {
      if (anchors[b] >= 0) {
        init.fill(NaN, (b * T + anchors[b]) * hiddenSize, (b * T + anchors[b] + 1) * hiddenSize);
      }
    }
  }
  const bufs: GPUBuffer[] = [];
  const up = (a: Float32Array | Int32Array | Uint32Array, l: string) => {
    const buf = ctx.upload(a, l);
    bufs.push(buf);
    return buf;
  };
  const shape = { batch: B, hiddenSize, numGroups: G };
  const dLastHidden = up(init, "dLastHidden");
  const out = poisoned(ctx, HIDDEN_ALIGN_OUT_FLOATS, "out");
  const scratch = poisoned(ctx, hiddenAlignScratchFloats(shape), "scratch");
  bufs.push(out, scratch);
  const args: HiddenAlignArgs = {
    ...shape,
    seqLen: T,
    hidden: up(hidden, "hidden"),
    anchors: up(anchors, "anchors"),
    groups: up(groups, "groups"),
    correct: up(correct, "correct"),
    dLastHidden,
    scratch,
    out,
    type,
    normalizer: extra.normalizer,
    weight: extra.weight,
    accumulate: prior !== undefined,
  };
  if (extra.centroids) {
    args.centroids = up(Float32Array.from(extra.centroids), "centroids");
    args.centroidMask = up(Uint32Array.from(extra.centroidMask!), "centroid mask");
  }
  const enc = recordPass(ctx, (pass) => encodeHiddenAlign(ctx, pass, args));
  const [o, g] = await readback(ctx, [
    { buffer: out, offset: 0, size: 4 * HIDDEN_ALIGN_OUT_FLOATS },
    { buffer: dLastHidden, offset: 0, size: 4 * n },
  ], enc);
  for (const b of bufs) b.destroy();
  const ref = hiddenAlignRef({
    hidden,
    batch: B,
    seqLen: T,
    hiddenSize,
    anchors,
    groups,
    correct,
    type,
    normalizer: extra.normalizer,
    weight: extra.weight,
    centroids: extra.centroids,
    centroidMask: extra.centroidMask,
  });
  return { out: new Float32Array(o), grad: new Float32Array(g), ref };
}

function checkOut(got: Float32Array, want: Float64Array, what: string): number {
  let worst = 0;
  HIDDEN_ALIGN_METRICS.forEach((key, i) => {
    const err = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(err <= TOL)) throw new Error(`${what} ${key}: ${got[i]} vs reference ${want[i]}`);
    worst = Math.max(worst, err);
  });
  const m = hiddenAlignMetrics(got);
  if (m["align/rows"] !== want[1] || m["align/groups"] !== want[2]) {
    throw new Error(`${what}: rows/groups ${m["align/rows"]}, ${m["align/groups"]}`);
  }
  return worst;
}

Deno.test({
  name:
    "encodeHiddenAlign() matches hiddenAlignLoss for all four types on odd shapes, poisoned outputs",
  ignore: noGpu,
  async fn() {
    let worstOut = 0;
    let worstGrad = 0;
    for (const H of [37, 300]) {
      const hidden = randomArray(B * T * H, H, -1, 1);
      for (const type of ALIGN_TYPES) {
        const configs: Parameters<typeof run>[2][] = [{}, { normalizer: 5.5, weight: 0.1 }];
        if (type !== "cos-pairwise") {
          // Targets for groups 0 (whole-batch centroid) and 1 (its single row then contributes).
          const c = alignCentroids({
            hidden,
            batch: B,
            seqLen: T,
            hiddenSize: H,
            anchors,
            groups,
            correct,
            type,
          });
          const centroids = new Float32Array(G * H);
          centroids.set(c.get(0)!, 0);
          centroids.set(randomArray(H, 3), H);
          configs.push({ centroids, centroidMask: [1, 1, 0, 0], normalizer: 8 });
        }
        for (const extra of configs) {
          const what = `H=${H} ${type} ${extra.centroids ? "centroids " : ""}${
            extra.normalizer ?? ""
          }`;
          const { out, grad, ref } = await run(H, type, extra, hidden);
          worstOut = Math.max(worstOut, checkOut(out, ref.out, what));
          // Untouched rows keep their 7.
          const want = ref.dLastHidden.map((x, i) => {
            const row = Math.floor(i / H);
            const b = Math.floor(row / T);
            return anchors[b] === row % T ? x : 7;
          });
          assertClose(grad, want, TOL, what);
          const anchorRows = new Float64Array(B * H);
          const gotRows = new Float64Array(B * H);
          for (let b = 0; b < B; b++) {
            if (anchors[b] < 0) continue;
            const o = (b * T + anchors[b]) * H;
            anchorRows.set(ref.dLastHidden.subarray(o, o + H), b * H);
            gotRows.set(grad.subarray(o, o + H), b * H);
          }
          // The same bound on the anchor rows alone (the 7s would hide errors in the norm).
          worstGrad = Math.max(worstGrad, assertClose(gotRows, anchorRows, TOL, `${what} rows`));
        }
      }
    }
    console.log(
      `hidden_align: worst scalar error ${
        worstOut.toExponential(2)
      }, dLastHidden anchor rows rel err ` +
        `${worstGrad.toExponential(2)}`,
    );
  },
});

Deno.test({
  name:
    "encodeHiddenAlign() accumulates, and handles a row below the norm floor and no contributing group",
  ignore: noGpu,
  async fn() {
    const H = 45;
    const hidden = randomArray(B * T * H, 77, -1, 1);
    const prior = randomArray(B * T * H, 78);
    const acc = await run(H, "cos-pairwise", { weight: 0.5 }, hidden, prior);
    assertClose(acc.grad, prior.map((p, i) => p + acc.ref.dLastHidden[i]), TOL, "accumulated");
    checkOut(acc.out, acc.ref.out, "accumulated");

    // Sequence 0's anchor row scaled to a norm ~1e-7 (below 1e-6).
    const tiny = Float32Array.from(hidden);
    const o = (0 * T + anchors[0]) * H;
    for (let j = 0; j < H; j++) tiny[o + j] *= 2e-8;
    for (const type of ["cos-centroid", "cos-pairwise", "mse-normalized"] as AlignType[]) {
      const r = await run(H, type, {}, tiny);
      checkOut(r.out, r.ref.out, `tiny ${type}`);
      const rows = (a: ArrayLike<number>) => Float64Array.from({ length: H }, (_, j) => a[o + j]);
      assertClose(rows(r.grad), rows(r.ref.dLastHidden), TOL, `tiny ${type} row`);
    }

    // No group with 2 taking-part rows: value, metrics and gradients 0, no NaN.
    const save = correct.slice();
    correct.set([1, 1, 0, 0, 0, 1, 0, 0, 0]);
    try {
      const none = await run(H, "cos-centroid", {}, hidden);
      if (none.out[0] !== 0 || none.out[1] !== 0 || none.out[2] !== 0 || none.out[3] !== 0) {
        throw new Error(`no group: out ${none.out}`);
      }
      const want = none.ref.dLastHidden.map((x, i) => {
        const row = Math.floor(i / H);
        return anchors[Math.floor(row / T)] === row % T ? x : 7;
      });
      assertClose(none.grad, want, 0, "no group");
    } finally {
      correct.set(save);
    }
  },
});

Deno.test({
  name: "encodeHiddenAlign() over more than 256 sequences, and more than 256 groups",
  ignore: noGpu,
  async fn() {
    // count and finish loop over groups and sequences in steps of their 256 threads: 300
    // sequences in 7 groups, then 20 sequences in groups 270–279 of 300 (the centroid pass costs
    // numGroups · batch per thread on a software adapter, so the two are apart). Some rows are
    // wrong or lack an anchor. cos-pairwise (its denominator P ≠ N); tolerance TOL against the
    // f64 reference.
    const ctx = (await testContext())!;
    const nt = 2;
    const nh = 5;
    const cases = [
      { nb: 300, ng: 7, group: (b: number) => b % 7 },
      { nb: 20, ng: 300, group: (b: number) => 270 + (b % 10) },
    ];
    for (const { nb, ng, group } of cases) {
      const hidden = randomArray(nb * nt * nh, 41, -1, 1);
      const grp = Uint32Array.from({ length: nb }, (_, b) => group(b));
      const cor = Uint32Array.from({ length: nb }, (_, b) => (b % 5 === 4 ? 0 : 1));
      const anc = Int32Array.from({ length: nb }, (_, b) => (b % 7 === 6 ? -1 : b % 2));
      const bufs: GPUBuffer[] = [];
      const up = (a: Float32Array | Int32Array | Uint32Array, l: string) => {
        const buf = ctx.upload(a, l);
        bufs.push(buf);
        return buf;
      };
      const shape = { batch: nb, hiddenSize: nh, numGroups: ng };
      const dLastHidden = up(new Float32Array(nb * nt * nh), "dLastHidden");
      const out = poisoned(ctx, HIDDEN_ALIGN_OUT_FLOATS, "out");
      const scratch = poisoned(ctx, hiddenAlignScratchFloats(shape), "scratch");
      bufs.push(out, scratch);
      const enc = recordPass(ctx, (pass) =>
        encodeHiddenAlign(ctx, pass, {
          ...shape,
          seqLen: nt,
          hidden: up(hidden, "hidden"),
          anchors: up(anc, "anchors"),
          groups: up(grp, "groups"),
          correct: up(cor, "correct"),
          dLastHidden,
          scratch,
          out,
          type: "cos-pairwise",
        }));
      const [o, g] = await readback(ctx, [
        { buffer: out, offset: 0, size: 4 * HIDDEN_ALIGN_OUT_FLOATS },
        { buffer: dLastHidden, offset: 0, size: 4 * nb * nt * nh },
      ], enc);
      for (const b of bufs) b.destroy();
      const ref = hiddenAlignRef({
        hidden,
        batch: nb,
        seqLen: nt,
        hiddenSize: nh,
        anchors: anc,
        groups: grp,
        correct: cor,
        type: "cos-pairwise",
      });
      const what = `${nb} sequences, ${ng} groups`;
      checkOut(new Float32Array(o), ref.out, what);
      assertClose(new Float32Array(g), ref.dLastHidden, TOL, what);
    }
  },
});
