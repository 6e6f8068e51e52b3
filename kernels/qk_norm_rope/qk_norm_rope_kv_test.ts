import { deepStrictEqual, throws } from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { kvWriteRef } from "../kv_write/kv_write_ref.ts";
import { ropeTable } from "../rope/rope_ref.ts";
import {
  encodeQkNormRopeKv,
  fusedQkvRows,
  type QkNormRopeKvArgs,
  qkNormRopeKvFits,
} from "./qk_norm_rope_kv.ts";
import { qkNormRopeRef } from "./qk_norm_rope_ref.ts";
import { assertF16Rounded, unpackF16 } from "../_kv_f16_test_utils.ts";

// q and the keys: as qk_norm_rope (f32 norm sum, one rotation): 1e-5 relative. Values and mask
// are copies: exact, and every cache slot not written must keep its NaN poison.
const TOL = 1e-5;
const [MAX_POS, THETA, EPS] = [4096, 1e6, 1e-6];

interface Case {
  rows: number;
  tokensPerRow: number;
  hq: number;
  hkv: number;
  d: number;
  slots: number;
  cursor: number;
  row0: number;
  cacheRows: number;
  /**
   * Read q, k and v from one buffer of token rows (a fused q|k|v projection's output): `gap`
   * NaN floats before each of them and `tail` after v in every row, so a read outside the
   * layout poisons the outputs. Default: three contiguous buffers.
   */
  fused?: { gap: number; tail: number };
  /** Write a packed-f16 cache (`kvF16`); default f32. */
  kvF16?: boolean;
}

/** Outputs of one launch: q, the caches and the mask as raw words. */
type Outputs = Uint32Array[];

async function check(c: Case): Promise<Outputs> {
  const ctx = (await testContext())!;
  const { rows, hq, hkv, d, slots, cursor, row0, cacheRows } = c;
  const tokens = rows * c.tokensPerRow;
  const seed = tokens * 13 + hq * 5 + d;
  const x = {
    qRaw: randomArray(tokens * hq * d, seed, -3, 3),
    kRaw: randomArray(tokens * hkv * d, seed + 1, -3, 3),
    qNorm: randomArray(d, seed + 2, 0.5, 1.5),
    kNorm: randomArray(d, seed + 3, 0.5, 1.5),
  };
  const v = randomArray(tokens * hkv * d, seed + 4);
  // The last of several tokens sits past the table: the kernel clamps it to the last row.
  const past = (i: number) => i > 0 && i === tokens - 1;
  const positions = Uint32Array.from(
    { length: tokens },
    (_, i) => past(i) ? MAX_POS + 7 : (i * 997 + 5) % MAX_POS,
  );
  const refPositions = positions.map((p) => Math.min(p, MAX_POS - 1));
  const width = hkv * d;
  const n = cacheRows * slots * width;
  const words = c.kvF16 ? n / 2 : n;
  const q = poisoned(ctx, tokens * hq * d, "q");
  const kCache = poisoned(ctx, words, "k_cache");
  const vCache = poisoned(ctx, words, "v_cache");
  const mask0 = new Uint32Array(cacheRows * slots).fill(7);
  const mask = ctx.upload(mask0, "mask");
  let inputs: Pick<QkNormRopeKvArgs, "qRaw" | "kRaw" | "v" | "layout"> = {
    qRaw: ctx.upload(x.qRaw, "qRaw"),
    kRaw: ctx.upload(x.kRaw, "kRaw"),
    v: ctx.upload(v, "v"),
  };
  if (c.fused) {
    // Token rows [gap | q | gap | k | gap | v | tail], NaN outside q, k and v.
    const { gap, tail } = c.fused;
    const [qw, kw] = [hq * d, hkv * d];
    const stride = 3 * gap + qw + 2 * kw + tail;
    const at = { q: gap, k: 2 * gap + qw, v: 3 * gap + qw + kw };
    const rowsBuf = new Float32Array(tokens * stride).fill(NaN);
    for (let t = 0; t < tokens; t++) {
      rowsBuf.set(x.qRaw.subarray(t * qw, (t + 1) * qw), t * stride + at.q);
      rowsBuf.set(x.kRaw.subarray(t * kw, (t + 1) * kw), t * stride + at.k);
      rowsBuf.set(v.subarray(t * kw, (t + 1) * kw), t * stride + at.v);
    }
    // Exactly the floats the layout needs: the last token's tail is cut.
    const qkv = ctx.upload(rowsBuf.subarray(0, rowsBuf.length - tail), "qkv");
    inputs = {
      qRaw: qkv,
      kRaw: qkv,
      v: qkv,
      layout: {
        qRaw: { stride, offset: at.q },
        kRaw: { stride, offset: at.k },
        v: { stride, offset: at.v },
      },
    };
  }
  const enc = recordPass(ctx, (pass) =>
    encodeQkNormRopeKv(ctx, pass, {
      ...inputs,
      qNorm: ctx.upload(x.qNorm, "qNorm"),
      kNorm: ctx.upload(x.kNorm, "kNorm"),
      positions: ctx.upload(positions, "positions"),
      table: ctx.upload(ropeTable(MAX_POS, { d, theta: THETA }), "table"),
      q,
      kCache,
      vCache,
      mask,
      ctrl: ctx.upload(Uint32Array.of(cursor, 0), "ctrl"),
      tokens,
      rows,
      slots,
      row0,
      hq,
      hkv,
      d,
      maxPos: MAX_POS,
      eps: EPS,
      kvF16: c.kvF16,
    }));
  const [gq, gk, gv, gm] = await readback(ctx, [
    { buffer: q, offset: 0, size: q.size },
    { buffer: kCache, offset: 0, size: words * 4 },
    { buffer: vCache, offset: 0, size: words * 4 },
    { buffer: mask, offset: 0, size: mask0.byteLength },
  ], enc);
  const want = qkNormRopeRef(x, refPositions, { d, hq, hkv, theta: THETA, eps: EPS });
  const shape = { rows, tokens: c.tokensPerRow, slots, width, row0, cursor };
  const empty = new Float32Array(n).fill(NaN);
  const rk = kvWriteRef({ cache: empty, mask: mask0 }, want.k, shape);
  const rv = kvWriteRef({ cache: empty, mask: mask0 }, v, shape);
  const what = `${rows}x${c.tokensPerRow} (${hq}+${hkv})x${d}, slots ${slots} at ${cursor}` +
    (c.fused ? `, fused rows (gap ${c.fused.gap}, tail ${c.fused.tail})` : "");
  const eq = assertClose(new Float32Array(gq), want.q, TOL, `q ${what}`);
  if (c.kvF16) {
    checkF16Cache(rk.cache, rv.cache, gk, gv, `${what}, f16 cache`);
    deepStrictEqual(new Uint32Array(gm), rk.mask, `mask ${what}`);
    return [gq, gk, gv, gm].map((b) => new Uint32Array(b));
  }
  const k = new Float32Array(gk);
  const written = [...rk.cache.keys()].filter((i) => !Number.isNaN(rk.cache[i]));
  deepStrictEqual(k.map((e, i) => Number.isNaN(rk.cache[i]) ? e : NaN), empty, `k untouched`);
  const ek = assertClose(
    written.map((i) => k[i]),
    written.map((i) => rk.cache[i]),
    TOL,
    `k cache ${what}`,
  );
  deepStrictEqual(new Uint32Array(gv), new Uint32Array(rv.cache.buffer), `v cache ${what}`);
  deepStrictEqual(new Uint32Array(gm), rk.mask, `mask ${what}`);
  console.log(`qk_norm_rope_kv ${what}: q ${eq.toExponential(2)}, k ${ek.toExponential(2)}`);
  return [gq, gk, gv, gm].map((b) => new Uint32Array(b));
}

/**
 * The packed-f16 caches: every written key an f16 rounding (either neighbour) of a value within
 * 1e-5 · max|k| of the float64 reference (the f32 kernel's own error), every value an f16
 * rounding of its f32 input; the words not written keep their NaN poison.
 */
function checkF16Cache(
  refK: Float32Array,
  refV: Float32Array,
  gk: ArrayBuffer,
  gv: ArrayBuffer,
  what: string,
): void {
  const poison = new Uint32Array(new Float32Array(1).fill(NaN).buffer)[0];
  const written = [...refK.keys()].filter((i) => !Number.isNaN(refK[i]));
  const kMax = written.reduce((m, i) => Math.max(m, Math.abs(refK[i])), 0);
  const near: number[] = [];
  for (
    const [name, got, ref, slack] of [["k", gk, refK, TOL * kMax], ["v", gv, refV, 0]] as const
  ) {
    const halves = unpackF16(got);
    near.push(assertF16Rounded(
      written.map((i) => halves[i]),
      written.map((i) => ref[i]),
      slack,
      `${name} cache ${what}`,
    ));
    const w = new Uint32Array(got);
    for (let e = 0; e < w.length; e++) {
      if (Number.isNaN(ref[2 * e]) && w[e] !== poison) {
        throw new Error(`${name} cache ${what}: word ${e} not written by the reference changed`);
      }
    }
  }
  console.log(
    `qk_norm_rope_kv ${what}: nearest f16 k ${(near[0] * 100).toFixed(1)}%, ` +
      `v ${(near[1] * 100).toFixed(1)}%`,
  );
}

Deno.test({
  name:
    "encodeQkNormRopeKv() equals qk_norm_rope then the decode kv_write, slots past the end dropped",
  ignore: noGpu || !qkNormRopeKvFits((await testContext())!),
  async fn() {
    const base = { tokensPerRow: 1, row0: 0 };
    await check({ ...base, rows: 2, hq: 3, hkv: 1, d: 8, slots: 5, cursor: 2, cacheRows: 2 });
    await check({ ...base, rows: 3, hq: 16, hkv: 8, d: 128, slots: 7, cursor: 6, cacheRows: 3 });
    await check({
      rows: 2,
      tokensPerRow: 1,
      hq: 4,
      hkv: 2,
      d: 12,
      slots: 4,
      cursor: 0,
      row0: 1,
      cacheRows: 4,
    });
    // Two tokens a row from slot 3 of 4: the second is dropped (its query is still written).
    await check({
      rows: 1,
      tokensPerRow: 2,
      hq: 4,
      hkv: 2,
      d: 64,
      slots: 4,
      cursor: 3,
      row0: 0,
      cacheRows: 1,
    });
    await check({ ...base, rows: 1, hq: 1, hkv: 1, d: 2, slots: 3, cursor: 3, cacheRows: 1 });
  },
});

Deno.test({
  name: "encodeQkNormRopeKv() reads q, k and v from the token rows of one buffer (a fused q|k|v " +
    "projection's output) with the contiguous launch's bits",
  ignore: noGpu || !qkNormRopeKvFits((await testContext())!),
  async fn() {
    const cases: Case[] = [
      { rows: 3, tokensPerRow: 1, hq: 3, hkv: 1, d: 6, slots: 5, cursor: 2, row0: 0, cacheRows: 3 },
      {
        rows: 2,
        tokensPerRow: 2,
        hq: 4,
        hkv: 2,
        d: 10,
        slots: 4,
        cursor: 3,
        row0: 1,
        cacheRows: 3,
      },
      { rows: 5, tokensPerRow: 1, hq: 2, hkv: 2, d: 2, slots: 3, cursor: 0, row0: 0, cacheRows: 5 },
    ];
    for (const c of cases) {
      const plain = await check(c);
      for (const fused of [{ gap: 0, tail: 0 }, { gap: 3, tail: 5 }]) {
        const got = await check({ ...c, fused });
        const names = ["q", "k cache", "v cache", "mask"];
        got.forEach((g, i) => deepStrictEqual(g, plain[i], `${names[i]}: fused rows changed bits`));
      }
    }
  },
});

Deno.test({
  name: "encodeQkNormRopeKv() with kvF16 writes packed f16 keys and values, q as with f32",
  ignore: noGpu || !qkNormRopeKvFits((await testContext())!),
  async fn() {
    const cases: Case[] = [
      { rows: 2, tokensPerRow: 1, hq: 3, hkv: 1, d: 8, slots: 5, cursor: 2, row0: 0, cacheRows: 2 },
      // d = 10: the pairs (4, 5) straddle the two halves of the rotation.
      {
        rows: 2,
        tokensPerRow: 2,
        hq: 4,
        hkv: 2,
        d: 10,
        slots: 4,
        cursor: 3,
        row0: 1,
        cacheRows: 3,
      },
      {
        rows: 3,
        tokensPerRow: 1,
        hq: 16,
        hkv: 8,
        d: 128,
        slots: 7,
        cursor: 6,
        cacheRows: 3,
        row0: 0,
      },
      { rows: 1, tokensPerRow: 1, hq: 1, hkv: 1, d: 2, slots: 3, cursor: 3, row0: 0, cacheRows: 1 },
    ];
    for (const c of cases) {
      const f32 = await check(c);
      const f16 = await check({ ...c, kvF16: true });
      deepStrictEqual(f16[0], f32[0], "q: the cache's dtype changed its bits");
      const fused = await check({ ...c, kvF16: true, fused: { gap: 3, tail: 5 } });
      fused.forEach((g, i) => deepStrictEqual(g, f16[i], `output ${i}: fused rows changed bits`));
    }
  },
});

Deno.test("fusedQkvRows() lays q, k, v out in that order within one token row", () => {
  deepStrictEqual(fusedQkvRows({ hq: 3, hkv: 1, d: 6 }), {
    qRaw: { stride: 30, offset: 0 },
    kRaw: { stride: 30, offset: 18 },
    v: { stride: 30, offset: 24 },
  });
});

Deno.test({
  name: "encodeQkNormRopeKv() refuses a layout whose heads overrun the token stride or the buffer",
  ignore: noGpu || !qkNormRopeKvFits((await testContext())!),
  async fn() {
    const ctx = (await testContext())!;
    const [hq, hkv, d, tokens] = [2, 1, 4, 2];
    const buf = (n: number) => ctx.createBuffer(4 * n, "b");
    const base = {
      qNorm: buf(d),
      kNorm: buf(d),
      positions: buf(tokens),
      table: buf(8 * d),
      q: buf(tokens * hq * d),
      kCache: buf(tokens * 2 * hkv * d),
      vCache: buf(tokens * 2 * hkv * d),
      mask: buf(tokens * 2),
      ctrl: buf(2),
      tokens,
      rows: tokens,
      slots: 2,
      hq,
      hkv,
      d,
      maxPos: 8,
      eps: 1e-6,
    };
    const rows = fusedQkvRows({ hq, hkv, d });
    const stride = rows.v.stride;
    const record = (qkv: GPUBuffer, layout: QkNormRopeKvArgs["layout"]) =>
      recordPass(
        ctx,
        (pass) => encodeQkNormRopeKv(ctx, pass, { ...base, qRaw: qkv, kRaw: qkv, v: qkv, layout }),
      );
    record(buf(tokens * stride), rows); // fits
    throws(() => record(buf(tokens * stride - 1), rows), /"v" must hold at least 32 elements/);
    throws(
      () => record(buf(tokens * stride), { ...rows, v: { stride, offset: stride - 3 } }),
      /"v" rows of 4 floats must lie in a token's stride/,
    );
  },
});
