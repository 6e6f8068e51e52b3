// Shape checks shared by the launchers: a buffer must hold what the dimensions say it holds.
import type { Binding } from "../gpu/context.ts";

/**
 * Throws unless `binding` holds at least `elements` 32-bit elements; the message names the
 * kernel, the argument, what its shape needs and what came.
 */
export function checkSize(
  kernel: string,
  name: string,
  binding: Binding,
  elements: number,
  shape: string,
): void {
  if (binding.size < 4 * elements) {
    throw new RangeError(
      `Cannot record ${kernel}: "${name}" must hold at least ${elements} elements (${shape}): ` +
        `current size is ${binding.size / 4} elements`,
    );
  }
}

/**
 * Elements a buffer needs for `rows` rows of `cols` values starting at column `col` of rows of
 * stride `ld`: `(rows - 1) · ld + col + cols`, or 0 when there are no rows or columns.
 */
export function strided(rows: number, ld: number, col: number, cols: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + col + cols;
}
