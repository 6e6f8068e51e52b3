import { ok, strictEqual, throws } from "node:assert/strict";
import { DEFAULT_CONFIG } from "./config.ts";
import { validateConfig } from "./validate_config.ts";

Deno.test("validateConfig() requires every key", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  delete copy.trainer.lr;
  throws(() => validateConfig(copy, { source: "meta.json" }), {
    name: "TypeError",
    message: 'Cannot load config "meta.json": key "trainer.lr" is missing',
  });
});

Deno.test("validateConfig() lists every problem, one per line", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.trainer.lr = 0;
  copy.data.digits = 9;
  copy.run.name = "a/b";
  throws(() => validateConfig(copy), (error: Error) => {
    const lines = error.message.split("\n");
    strictEqual(lines.length, 3);
    ok(lines.every((line) => line.startsWith('Cannot load config "<object>": key ')));
    ok(lines.some((line) => line.includes('"data.digits" must be <= 6: current value is 9')));
    ok(lines.some((line) => line.includes('"run.name" must start with a letter or digit')));
    return true;
  });
});
