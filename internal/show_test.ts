import { strictEqual } from "node:assert/strict";
import { show } from "./show.ts";

Deno.test("show() gives JSON, cut to maxLength", () => {
  strictEqual(show("x"), '"x"');
  strictEqual(show({ a: [1, 2] }), '{"a":[1,2]}');
  strictEqual(show(undefined), "undefined");
  strictEqual(show("a".repeat(100)).length, 80);
  strictEqual(show("a".repeat(100), { maxLength: 10 }), `"${"a".repeat(6)}...`);
});

Deno.test("show() names NaN and the infinities rather than JSON's null", () => {
  strictEqual(show(NaN), "NaN");
  strictEqual(show(Infinity), "Infinity");
  strictEqual(show(-Infinity), "-Infinity");
  strictEqual(show(null), "null");
});
