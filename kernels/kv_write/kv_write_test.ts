import { deepStrictEqual } from "node:assert/strict";
import { readback } from "../../gpu/readback.ts";
import { noGpu, poisoned, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { encodeKvWrite } from "./kv_write.ts";
import { kvWriteRef } from "./kv_write_ref.ts";

// A copy: the cache must equal the reference bit for bit (tolerance 0), NaN-poisoned slots that
// must stay untouched included (compared as bits).
async function check(
  options: { rows: number; tokens: number; slots: number; width: number; row0?: number },
  cacheRows: number,
  cursor: number | undefined,
): Promise<void> {
  const ctx = (await testContext())!;
  const { rows, tokens, slots, width } = options;
  const k = randomArray(rows * tokens * width, 1);
  const v = randomArray(rows * tokens * width, 2);
  const n = cacheRows * slots * width;
  const kc = poisoned(ctx, n, "k_cache");
  const vc = poisoned(ctx, n, "v_cache");
  const mask0 = new Uint32Array(cacheRows * slots).fill(7);
  const mask = ctx.upload(mask0, "mask");
  const enc = recordPass(ctx, (pass) =>
    encodeKvWrite(ctx, pass, {
      ...options,
      kNew: ctx.upload(k, "k"),
      vNew: ctx.upload(v, "v"),
      kCache: kc,
      vCache: vc,
      mask,
      ctrl: ctx.upload(Uint32Array.of(cursor ?? 12345, 0), "ctrl"),
      decode: cursor !== undefined,
    }));
  const [gk, gv, gm] = await readback(ctx, [
    { buffer: kc, offset: 0, size: n * 4 },
    { buffer: vc, offset: 0, size: n * 4 },
    { buffer: mask, offset: 0, size: mask0.byteLength },
  ], enc);
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
