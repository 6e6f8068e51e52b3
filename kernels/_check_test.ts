import { strictEqual, throws } from "node:assert/strict";
import { checkSize, strided } from "./_check.ts";

// A binding only needs a size for the checks.
const binding = (floats: number) => ({ buffer: {} as GPUBuffer, offset: 0, size: 4 * floats });

Deno.test("strided() counts the elements of a strided block", () => {
  strictEqual(strided(3, 10, 2, 4), 2 * 10 + 2 + 4);
  strictEqual(strided(0, 10, 2, 4), 0);
  strictEqual(strided(3, 10, 2, 0), 0);
});

Deno.test("checkSize() names the kernel, the argument, the shape and the size that came", () => {
  checkSize("matmul", "x", binding(12), 12, "[m, k] = [3, 4]");
  throws(() => checkSize("matmul", "x", binding(11), 12, "[m, k] = [3, 4]"), {
    name: "RangeError",
    message: 'Cannot record matmul: "x" must hold at least 12 elements ([m, k] = [3, 4]): ' +
      "current size is 11 elements",
  });
});
