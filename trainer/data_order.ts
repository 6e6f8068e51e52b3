/**
 * The order in which a trainer reads a dataset: epoch after epoch, each a fresh seeded
 * permutation. The example read at stream position `p` is a pure function of `(p, size, seed)`,
 * so a run resumes from its data position alone (no generator state to save).
 *
 * @module
 */

import { mixNumber, mulberry32 } from "../internal/random.ts";

/**
 * Options of {@linkcode dataOrder}.
 *
 * @example Usage
 * ```ts
 * import type { DataOrderOptions } from "./data_order.ts";
 *
 * const options: DataOrderOptions = { size: 5000, seed: 0 };
 * ```
 */
export interface DataOrderOptions {
  /** Number of examples in the dataset, a positive integer. */
  size: number;
  /** Seed of the permutations, a non-negative safe integer. */
  seed: number;
}

/**
 * A data order: which example to read at each stream position.
 *
 * @example Usage
 * ```ts
 * import { dataOrder, type DataOrder } from "./data_order.ts";
 *
 * const order: DataOrder = dataOrder({ size: 10, seed: 1 });
 * console.log(order.index(0), order.epoch(25)); // some index in [0, 10), 2
 * ```
 */
export interface DataOrder {
  /**
   * The dataset index read at a stream position.
   *
   * @param position A non-negative safe integer.
   * @returns An index in `[0, size)`.
   */
  index(position: number): number;
  /**
   * The epoch a stream position falls in (`floor(position / size)`).
   *
   * @param position A non-negative safe integer.
   * @returns The epoch, from 0.
   */
  epoch(position: number): number;
}

function checkInteger(value: number, key: string, min: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Cannot order the data: "${key}" must be a safe integer >= ${min}: current value is ${value}`,
    );
  }
}

/**
 * Creates the data order of a dataset: epoch `e` reads the examples in the order of a
 * Fisher–Yates shuffle seeded by `(seed, e)`, so every example is read once per epoch. The
 * permutation of the epoch last asked for is kept, so reading a stream in order costs one
 * shuffle per epoch.
 *
 * @param options Dataset size and seed.
 * @returns The order.
 * @throws {RangeError} When `size` is not a positive integer or `seed` not a non-negative one, or
 *   (from `index`/`epoch`) a position is not a non-negative safe integer.
 *
 * @example Each epoch is a permutation, and positions are random access
 * ```ts
 * import { dataOrder } from "./data_order.ts";
 * import { deepStrictEqual, notDeepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const order = dataOrder({ size: 8, seed: 3 });
 * const first = Array.from({ length: 8 }, (_, p) => order.index(p));
 * const second = Array.from({ length: 8 }, (_, p) => order.index(8 + p));
 * deepStrictEqual([...first].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
 * notDeepStrictEqual(first, second);
 * strictEqual(dataOrder({ size: 8, seed: 3 }).index(13), second[5]);
 * ```
 */
export function dataOrder(options: DataOrderOptions): DataOrder {
  const { size, seed } = options;
  checkInteger(size, "size", 1);
  checkInteger(seed, "seed", 0);
  let cachedEpoch = -1;
  let permutation = new Uint32Array(0);
  const epochOf = (position: number): number => {
    checkInteger(position, "position", 0);
    return Math.floor(position / size);
  };
  return {
    epoch: epochOf,
    index(position: number): number {
      const epoch = epochOf(position);
      if (epoch !== cachedEpoch) {
        const random = mulberry32(mixNumber(mixNumber(0x2545f491, seed), epoch));
        permutation = new Uint32Array(size);
        for (let i = 0; i < size; i++) permutation[i] = i;
        for (let i = size - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          const t = permutation[i];
          permutation[i] = permutation[j];
          permutation[j] = t;
        }
        cachedEpoch = epoch;
      }
      return permutation[position - epoch * size];
    },
  };
}
