import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { dataOrder } from "./data_order.ts";

Deno.test("dataOrder() reads every example once per epoch, in a new order each epoch", () => {
  const size = 37;
  const order = dataOrder({ size, seed: 5 });
  const epochs = [0, 1, 2].map((e) =>
    Array.from({ length: size }, (_, i) => order.index(e * size + i))
  );
  for (const epoch of epochs) {
    deepStrictEqual([...epoch].sort((a, b) => a - b), Array.from({ length: size }, (_, i) => i));
  }
  notDeepStrictEqual(epochs[0], epochs[1]);
  notDeepStrictEqual(epochs[1], epochs[2]);
  strictEqual(order.epoch(size * 2 + 3), 2);
});

Deno.test("dataOrder() is a pure function of position, size and seed", () => {
  const a = dataOrder({ size: 100, seed: 1 });
  const b = dataOrder({ size: 100, seed: 1 });
  // Random access in any order gives the same answers as sequential reading.
  const positions = [512, 3, 250, 99, 100, 7, 512];
  deepStrictEqual(positions.map((p) => b.index(p)), positions.map((p) => a.index(p)));
  const other = dataOrder({ size: 100, seed: 2 });
  ok(positions.some((p) => other.index(p) !== a.index(p)));
});

Deno.test("dataOrder() names a bad option", () => {
  throws(() => dataOrder({ size: 0, seed: 0 }), {
    name: "RangeError",
    message: 'Cannot order the data: "size" must be a safe integer >= 1: current value is 0',
  });
  throws(() => dataOrder({ size: 3, seed: 0 }).index(-1), {
    name: "RangeError",
    message: /"position" must be a safe integer >= 0: current value is -1/,
  });
});
