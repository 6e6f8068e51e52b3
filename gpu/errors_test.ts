import assert from "node:assert/strict";
import { collectGpuError, formatGpuErrors, KEPT_GPU_ERRORS } from "./errors.ts";

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

Deno.test("collectGpuError keeps the first messages, then counts the rest for formatGpuErrors", () => {
  const errors: string[] = [];
  for (let i = 0; i < 5; i++) collectGpuError(errors, `e${i % 2}`, 3);
  assert.deepEqual(errors, ["e0", "e1", "e0", "… 2 more errors were not kept"]);
  // Every message is accounted for: 2 + 1 kept, 2 counted.
  assert.equal(formatGpuErrors(errors), "e0 (×2); e1; and 2 more not kept (only the first 3 are)");
  for (let i = 0; i < 10_000; i++) collectGpuError(errors, `f${i}`, 3);
  assert.equal(errors.length, 4);
  assert.equal(errors[3], "… 10002 more errors were not kept");
  // With the default, 100 are kept; a list emptied by its reader (readback) keeps 100 again.
  const gpuErrors: string[] = [];
  for (let i = 0; i < KEPT_GPU_ERRORS + 7; i++) collectGpuError(gpuErrors, `g${i}`);
  assert.equal(gpuErrors.length, KEPT_GPU_ERRORS + 1);
  assert.match(
    formatGpuErrors(gpuErrors.splice(0)),
    /and 95 more \(95 distinct\); and 7 more not kept/,
  );
  collectGpuError(gpuErrors, "h");
  assert.deepEqual(gpuErrors, ["h"]);
});
