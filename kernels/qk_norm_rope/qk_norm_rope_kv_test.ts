import { deepStrictEqual } from "node:assert/strict";
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
import { encodeQkNormRopeKv, qkNormRopeKvFits } from "./qk_norm_rope_kv.ts";
import { qkNormRopeRef } from "./qk_norm_rope_ref.ts";

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
}

async function check(c: Case): Promise<void> {
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
  const positions = Uint32Array.from({ length: tokens }, (_, i) => (i * 997 + 5) % MAX_POS);
  const width = hkv * d;
  const n = cacheRows * slots * width;
  const q = poisoned(ctx, tokens * hq * d, "q");
  const kCache = poisoned(ctx, n, "k_cache");
  const vCache = poisoned(ctx, n, "v_cache");
  const mask0 = new Uint32Array(cacheRows * slots).fill(7);
  const mask = ctx.upload(mask0, "mask");
  const enc = recordPass(ctx, (pass) =>
    encodeQkNormRopeKv(ctx, pass, {
      qRaw: ctx.upload(x.qRaw, "qRaw"),
      kRaw: ctx.upload(x.kRaw, "kRaw"),
      qNorm: ctx.upload(x.qNorm, "qNorm"),
      kNorm: ctx.upload(x.kNorm, "kNorm"),
      positions: ctx.upload(positions, "positions"),
      table: ctx.upload(ropeTable(MAX_POS, { d, theta: THETA }), "table"),
      q,
      v: ctx.upload(v, "v"),
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
    }));
  const [gq, gk, gv, gm] = await readback(ctx, [
    { buffer: q, offset: 0, size: q.size },
    { buffer: kCache, offset: 0, size: n * 4 },
    { buffer: vCache, offset: 0, size: n * 4 },
    { buffer: mask, offset: 0, size: mask0.byteLength },
  ], enc);
  const want = qkNormRopeRef(x, positions, { d, hq, hkv, theta: THETA, eps: EPS });
  const shape = { rows, tokens: c.tokensPerRow, slots, width, row0, cursor };
  const empty = new Float32Array(n).fill(NaN);
  const rk = kvWriteRef({ cache: empty, mask: mask0 }, want.k, shape);
  const rv = kvWriteRef({ cache: empty, mask: mask0 }, v, shape);
  const what = `${rows}x${c.tokensPerRow} (${hq}+${hkv})x${d}, slots ${slots} at ${cursor}`;
  const eq = assertClose(new Float32Array(gq), want.q, TOL, `q ${what}`);
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
