import assert from "node:assert/strict";
import { formatGpuErrors } from "./errors.ts";

Deno.test("formatGpuErrors keeps the first distinct messages, counts repeats and summarises the rest", () => {
  assert.equal(formatGpuErrors([]), "");
  assert.equal(formatGpuErrors(["x"]), "x");
  // The first error (an out-of-memory) stays first although thousands of follow-ups come after.
  const messages = ["not enough memory left"];
  for (let i = 0; i < 3000; i++) messages.push(`BindGroup with 'k${i % 7}' label is invalid`);
  const text = formatGpuErrors(messages, 3);
  assert.equal(
    text,
    "not enough memory left; BindGroup with 'k0' label is invalid (×429); " +
      "BindGroup with 'k1' label is invalid (×429); and 2142 more (5 distinct)",
  );
  // Every message is accounted for once.
  assert.equal(1 + 429 + 429 + 2142, messages.length);
  assert.equal(formatGpuErrors(["a", "b", "a"], 5), "a (×2); b");
});
