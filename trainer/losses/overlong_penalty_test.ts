import { strictEqual, throws } from "node:assert/strict";
import { overlongPenalty } from "./overlong_penalty.ts";

Deno.test("overlongPenalty() is 0 up to maxLength − buffer, then linear to −factor", () => {
  const o = { maxLength: 20, buffer: 8 }; // L = 12
  strictEqual(overlongPenalty({ ...o, length: 0 }), 0);
  strictEqual(overlongPenalty({ ...o, length: 12 }), 0);
  strictEqual(overlongPenalty({ ...o, length: 14 }), -0.25);
  strictEqual(overlongPenalty({ ...o, length: 20 }), -1);
  strictEqual(overlongPenalty({ ...o, length: 16, factor: 0.5 }), -0.25);
  // Beyond maxLength the line continues (DAPO's reference code does not clamp).
  strictEqual(overlongPenalty({ ...o, length: 24 }), -1.5);
  // A buffer of the whole budget starts the penalty at length 0.
  strictEqual(overlongPenalty({ length: 5, maxLength: 10, buffer: 10 }), -0.5);
});

Deno.test("overlongPenalty() names the wrong input", () => {
  throws(() => overlongPenalty({ length: 5, maxLength: 10, buffer: 0 }), {
    name: "RangeError",
    message: /option "buffer" must be a number in \(0, maxLength = 10\]: current value is 0/,
  });
  throws(() => overlongPenalty({ length: 5, maxLength: 10, buffer: 11 }), {
    message: /option "buffer" must be a number in \(0, maxLength = 10\]: current value is 11/,
  });
  throws(() => overlongPenalty({ length: -1, maxLength: 10, buffer: 2 }), {
    message: /option "length" must be a finite number ≥ 0: current value is -1/,
  });
  throws(() => overlongPenalty({ length: NaN, maxLength: 10, buffer: 2 }), {
    message: /option "length" must be a finite number ≥ 0: current value is NaN/,
  });
  throws(() => overlongPenalty({ length: 1, maxLength: 10, buffer: 2, factor: -1 }), {
    message: /option "factor" must be a finite number ≥ 0: current value is -1/,
  });
  throws(
    // deno-lint-ignore no-explicit-any
    () => overlongPenalty({ length: 1, buffer: 2 } as any),
    { name: "TypeError", message: /option "maxLength" is required/ },
  );
});
