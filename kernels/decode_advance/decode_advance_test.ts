import { deepStrictEqual } from "node:assert/strict";
import { readback } from "../../gpu/readback.ts";
import { noGpu, recordPass, testContext } from "../../gpu/test_utils.ts";
import { encodeDecodeAdvance } from "./decode_advance.ts";
import { decodeAdvanceRef } from "./decode_advance_ref.ts";

// Integer adds: the result must equal the reference exactly.
Deno.test({
  name: "encodeDecodeAdvance() moves the cursor and every row's position on by one per dispatch",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const rows of [1, 64, 70]) {
      const ctrl0 = Uint32Array.of(17, 3);
      const pos0 = Uint32Array.from({ length: rows + 1 }, (_, i) => i * 3);
      const ctrl = ctx.upload(ctrl0, "ctrl");
      const positions = ctx.upload(pos0, "positions");
      const enc = recordPass(ctx, (pass) => {
        encodeDecodeAdvance(ctx, pass, { ctrl, positions, rows });
        encodeDecodeAdvance(ctx, pass, { ctrl, positions, rows });
      });
      const [c, p] = await readback(ctx, [
        { buffer: ctrl, offset: 0, size: 8 },
        { buffer: positions, offset: 0, size: pos0.byteLength },
      ], enc);
      const once = decodeAdvanceRef(ctrl0, pos0.subarray(0, rows));
      const twice = decodeAdvanceRef(once.ctrl, once.positions);
      deepStrictEqual(new Uint32Array(c), twice.ctrl);
      // The extra element past `rows` is left alone.
      deepStrictEqual(new Uint32Array(p), Uint32Array.of(...twice.positions, rows * 3));
    }
  },
});
