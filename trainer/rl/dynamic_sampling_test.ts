import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import {
  fillBatch,
  type FillBatchOptions,
  groupKind,
  ShortBatchError,
} from "./dynamic_sampling.ts";

type G = readonly boolean[];

const OPTIONS: FillBatchOptions<G> = {
  target: 3,
  maxGenBatches: 4,
  dynamicSampling: true,
  keepAllCorrectForAlign: false,
  onShort: "train",
  correctOf: (g) => g,
};

function batches(list: G[][]): { generate: (i: number) => Promise<G[]>; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    generate: (i) => {
      calls.push(i);
      return Promise.resolve(list[i] ?? []);
    },
  };
}

Deno.test("fillBatch() never keeps a group whose correctness is all equal", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.array(fc.boolean(), { minLength: 2, maxLength: 4 }), { maxLength: 5 }), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.integer({ min: 1, max: 6 }),
      async (list, target) => {
        const { generate } = batches(list);
        const filled = await fillBatch(generate, { ...OPTIONS, target, maxGenBatches: 4 });
        for (const g of filled.kept) strictEqual(groupKind(g), "mixed");
        ok(filled.kept.length <= target);
        strictEqual(filled.short, filled.kept.length < target);
      },
    ),
    { seed: 1, numRuns: 200 },
  );
});

Deno.test("fillBatch() refills until the batch is exactly full and drops the extra groups", async () => {
  const mixed = (n: number): G => [true, false, n % 2 === 0];
  const { generate, calls } = batches([
    [mixed(0), [true, true, true], [false, false, false]],
    [mixed(1), [false, false, false], mixed(2), mixed(3)],
    [mixed(4)],
  ]);
  const filled = await fillBatch(generate, OPTIONS);
  deepStrictEqual(filled.kept, [mixed(0), mixed(1), mixed(2)]);
  deepStrictEqual(calls, [0, 1]); // no third batch
  strictEqual(filled.genBatches, 2);
  strictEqual(filled.generated, 7);
  strictEqual(filled.dropped, 4); // 3 all-equal groups + mixed(3), beyond the target
  strictEqual(filled.short, false);
  deepStrictEqual(filled.kinds, { "mixed": 4, "all-correct": 1, "all-wrong": 2, "skip": 0 });
});

Deno.test("fillBatch() stops at maxGenBatches: trains on a short batch or throws", async () => {
  const list: G[][] = [[[true, true]], [[true, false]], [[false, false]], [[true, false]]];
  const short = await fillBatch(batches(list).generate, { ...OPTIONS, maxGenBatches: 3 });
  strictEqual(short.genBatches, 3);
  strictEqual(short.kept.length, 1);
  strictEqual(short.short, true);
  await rejects(
    fillBatch(batches(list).generate, { ...OPTIONS, maxGenBatches: 2, onShort: "stop" }),
    (error: unknown) =>
      error instanceof ShortBatchError && error.kept === 1 &&
      /rl\.maxGenBatches/.test(error.message),
  );
  // One batch budget, as configured: exactly one generate call.
  const one = batches(list);
  await fillBatch(one.generate, { ...OPTIONS, maxGenBatches: 1 });
  deepStrictEqual(one.calls, [0]);
});

Deno.test("fillBatch() without dynamic sampling keeps every usable group; skips unusable golds", async () => {
  const list = [[[true, true], [false, false], [true, null], [true, false]]] as unknown as G[][];
  const filled = await fillBatch(batches(list).generate, {
    ...OPTIONS,
    dynamicSampling: false,
    correctOf: (g) => g as readonly (boolean | null)[],
  });
  deepStrictEqual(filled.kept, [[true, true], [false, false], [true, false]]);
});

Deno.test("fillBatch() keeps all-correct groups aside for the align term only", async () => {
  const list: G[][] = [[[true, true], [true, false], [false, false], [true, true]]];
  const filled = await fillBatch(batches(list).generate, {
    ...OPTIONS,
    target: 1,
    maxGenBatches: 1,
    keepAllCorrectForAlign: true,
  });
  deepStrictEqual(filled.kept, [[true, false]]);
  deepStrictEqual(filled.alignOnly, [[true, true]]); // the second comes after the batch is full
  strictEqual(filled.dropped, 3); // 4 generated, 1 trained on by the policy loss
  // At most `target` align-only groups, even when more all-correct groups come first.
  const early: G[][] = [[[true, true], [true, true, true], [true, true], [false, true]]];
  const capped = await fillBatch(batches(early).generate, {
    ...OPTIONS,
    target: 2,
    maxGenBatches: 1,
    keepAllCorrectForAlign: true,
  });
  deepStrictEqual(capped.alignOnly, [[true, true], [true, true, true]]);
  deepStrictEqual(capped.kept, [[false, true]]);
  strictEqual(capped.dropped, 3);
});
