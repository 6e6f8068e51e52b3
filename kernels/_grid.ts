/**
 * Workgroups per row of a 2-D grid; kernels compute `index = wg.x + wg.y * GRID_X`, with the
 * WGSL `override GRID_X: u32` set from this value by every launcher (see `GRID_CONSTANTS`).
 */
export const GRID_X = 32768;

/** The pipeline constants that give a shader's `override GRID_X` its value. */
export const GRID_CONSTANTS: Readonly<Record<string, number>> = Object.freeze({ GRID_X });

/**
 * A 2-D grid of `n` workgroups (WebGPU caps one dimension at 65535).
 *
 * @param n Number of workgroups.
 * @returns Workgroup counts `[x, y, 1]` covering at least `n`.
 */
export function grid(n: number): [number, number, number] {
  return [Math.min(n, GRID_X), Math.ceil(n / GRID_X), 1];
}
