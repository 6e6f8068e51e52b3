import { deepStrictEqual, throws } from "node:assert/strict";
import { readback } from "../../gpu/readback.ts";
import { noGpu, poisoned, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { encodeKvWrite } from "./kv_write.ts";
import { kvWriteRef } from "./kv_write_ref.ts";
import { assertF16Rounded, unpackF16 } from "../_kv_f16_test_utils.ts";

type Shape = { rows: number; tokens: number; slots: number; width: number; row0?: number };

/**
 * Writes `k`/`v` (`[rows, tokens, width]`) with the kernel into NaN-poisoned caches of
 * `cacheRows` rows of `words` 32-bit words each side (floats, or f16 pairs with `kvF16`) and a
 * mask of 7s; reads the caches and the mask back.
 */
async function launch(
  options: Shape,
  cacheRows: number,
  cursor: number | undefined,
  data: { k: Float32Array; v: Float32Array; words: number; kvF16: boolean },
): Promise<{ gk: ArrayBuffer; gv: ArrayBuffer; gm: ArrayBuffer; mask0: Uint32Array }> {
  const ctx = (await testContext())!;
  const { words } = data;
  const kc = poisoned(ctx, words, "k_cache");
  const vc = poisoned(ctx, words, "v_cache");
  const mask0 = new Uint32Array(cacheRows * options.slots).fill(7);
  const mask = ctx.upload(mask0, "mask");
  const enc = recordPass(ctx, (pass) =>
    encodeKvWrite(ctx, pass, {
      ...options,
      kNew: ctx.upload(data.k, "k"),
      vNew: ctx.upload(data.v, "v"),
      kCache: kc,
      vCache: vc,
      mask,
      ctrl: ctx.upload(Uint32Array.of(cursor ?? 12345, 0), "ctrl"),
      decode: cursor !== undefined,
      ...(data.kvF16 ? { kvF16: true } : {}),
    }));
  const [gk, gv, gm] = await readback(ctx, [
    { buffer: kc, offset: 0, size: words * 4 },
    { buffer: vc, offset: 0, size: words * 4 },
    { buffer: mask, offset: 0, size: mask0.byteLength },
  ], enc);
  return { gk, gv, gm, mask0 };
}

// A copy: the cache must equal the reference bit for bit (tolerance 0), NaN-poisoned slots that
// must stay untouched included (compared as bits).
async function check(
  options: Shape,
  cacheRows: number,
  cursor: number | undefined,
): Promise<void> {
  const { rows, tokens, slots, width } = options;
  const k = randomArray(rows * tokens * width, 1);
  const v = randomArray(rows * tokens * width, 2);
  const n = cacheRows * slots * width;
  const { gk, gv, gm, mask0 } = await launch(options, cacheRows, cursor, {
    k,
    v,
    words: n,
    kvF16: false,
  });
  const empty = new Float32Array(n).fill(NaN);
  const rk = kvWriteRef({ cache: empty, mask: mask0 }, k, { ...options, cursor });
  const rv = kvWriteRef({ cache: empty, mask: mask0 }, v, { ...options, cursor });
  const bits = (a: ArrayBuffer | Float32Array) =>
    new Uint32Array(a instanceof Float32Array ? a.buffer : a);
  deepStrictEqual(bits(gk), bits(rk.cache), "k cache");
  deepStrictEqual(bits(gv), bits(rv.cache), "v cache");
  deepStrictEqual(new Uint32Array(gm), rk.mask, "mask");
}

Deno.test({
  name: "encodeKvWrite() stores a prefill from slot 0 into the given cache rows",
  ignore: noGpu,
  async fn() {
    await check({ rows: 2, tokens: 5, slots: 9, width: 12, row0: 1 }, 4, undefined);
    await check({ rows: 3, tokens: 7, slots: 7, width: 33 }, 3, undefined);
  },
});

Deno.test({
  name: "encodeKvWrite() appends at the GPU cursor, marks the mask and drops slots past the end",
  ignore: noGpu,
  async fn() {
    await check({ rows: 3, tokens: 1, slots: 10, width: 20 }, 3, 6);
    await check({ rows: 2, tokens: 3, slots: 10, width: 8 }, 2, 8); // the third token falls off
  },
});

// The packed-f16 cache: each written value one of the two f16 neighbours of its input (WGSL lets
// pack2x16float round either way; the fraction equal to the nearest f16 is logged), each word
// written whole; the words not written keep their NaN poison (compared as bits); mask exact.
async function checkF16(
  options: Shape,
  cacheRows: number,
  cursor: number | undefined,
): Promise<void> {
  const { rows, tokens, slots, width } = options;
  const k = randomArray(rows * tokens * width, 3, -70000, 70000); // some past f16's 65504
  const v = randomArray(rows * tokens * width, 4);
  v[1] = 1e-6; // a subnormal f16
  v[2] = -0.00009;
  const words = cacheRows * slots * width / 2;
  const { gk, gv, gm, mask0 } = await launch(options, cacheRows, cursor, {
    k,
    v,
    words,
    kvF16: true,
  });
  const empty = new Float32Array(2 * words).fill(NaN);
  const saturated = k.map((x) => Math.min(65504, Math.max(-65504, x)));
  const rk = kvWriteRef({ cache: empty, mask: mask0 }, saturated, { ...options, cursor });
  const rv = kvWriteRef({ cache: empty, mask: mask0 }, v, { ...options, cursor });
  const what = `${rows}x${tokens}x${width} into ${cacheRows}x${slots}` +
    (cursor === undefined ? " (prefill)" : ` at ${cursor}`);
  for (const [name, got, ref] of [["k", gk, rk.cache], ["v", gv, rv.cache]] as const) {
    const gw = new Uint32Array(got);
    const written = [...ref.keys()].filter((i) => !Number.isNaN(ref[i]));
    const halves = unpackF16(gw);
    const near = assertF16Rounded(
      written.map((i) => halves[i]),
      written.map((i) => ref[i]),
      0,
      `${name} cache ${what}`,
    );
    const untouched = new Uint32Array(new Float32Array(1).fill(NaN).buffer)[0];
    for (let w = 0; w < words; w++) {
      if (Number.isNaN(ref[2 * w]) && gw[w] !== untouched) {
        throw new Error(`${name} cache ${what}: word ${w} not written by the reference changed`);
      }
    }
    console.log(`kv_write f16 ${name} ${what}: ${(near * 100).toFixed(1)}% nearest`);
  }
  deepStrictEqual(new Uint32Array(gm), rk.mask, "mask");
}

Deno.test({
  name: "encodeKvWrite() with kvF16 packs f16 pairs into the cache words (prefill and decode)",
  ignore: noGpu,
  async fn() {
    await checkF16({ rows: 2, tokens: 5, slots: 9, width: 12, row0: 1 }, 4, undefined);
    await checkF16({ rows: 3, tokens: 7, slots: 7, width: 34 }, 3, undefined);
    await checkF16({ rows: 3, tokens: 1, slots: 10, width: 2 }, 3, 6);
    await checkF16({ rows: 2, tokens: 3, slots: 10, width: 8 }, 2, 8); // the third token falls off
  },
});

Deno.test({
  name: "encodeKvWrite() with kvF16 refuses an odd width and a cache of too few words",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const buf = (n: number) => ctx.createBuffer(4 * n, "b");
    const base = { mask: buf(8), ctrl: buf(2), rows: 1, tokens: 1, slots: 4, decode: true };
    const record = (width: number, cacheWords: number) =>
      recordPass(ctx, (pass) =>
        encodeKvWrite(ctx, pass, {
          ...base,
          kNew: buf(width),
          vNew: buf(width),
          kCache: buf(cacheWords),
          vCache: buf(cacheWords),
          width,
          kvF16: true,
        }));
    record(6, 12); // fits: 4 slots of 3 words
    throws(() => record(5, 12), /width must be even .* current value is 5/);
    throws(() => record(6, 11), /"kCache" must hold at least 12 elements/);
  },
});
