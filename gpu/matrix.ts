/**
 * Row-major matrices on the GPU, split into row blocks when larger than one storage binding
 * (a Qwen3 vocabulary embedding is 594 MiB in f32; bindings default to 128 MiB).
 *
 * @module
 */
import type { GpuContext } from "./context.ts";
import { f32ToF16Bits, firstNonFiniteHalf, nonFiniteHalfReason } from "../internal/f16.ts";

/** One block of consecutive rows of a {@linkcode GpuMatrix}. */
export interface GpuMatrixChunk {
  /** Buffer holding rows `rowStart .. rowStart + rows`. */
  buffer: GPUBuffer;
  /** First row. */
  rowStart: number;
  /** Number of rows. */
  rows: number;
  /**
   * Byte offset of row `rowStart` in `buffer`; default 0. Set only by views into a larger buffer
   * of the matrix's dtype (the merged q|k|v and gate|up weights of
   * `model/merge_adapters_webgpu.ts`, a multiple of the device's storage offset alignment), which
   * only `encodeLinear` reads.
   */
  offset?: number;
}

/** A `[rows, cols]` float32 matrix held in one or more buffers of whole rows. */
export interface GpuMatrix {
  /** Debug name (the checkpoint tensor name). */
  readonly name: string;
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** The row blocks, in order. */
  readonly chunks: readonly GpuMatrixChunk[];
  /**
   * How the values are stored: `"f32"` (default) or `"f16"` (half the memory; kernels read them
   * with `wF16` and compute in f32; needs the device feature "shader-f16").
   */
  readonly dtype?: "f32" | "f16";
}

/** Options of {@linkcode uploadMatrix}. */
export interface UploadMatrixOptions {
  /** Largest block in bytes; default the device's storage binding limit. */
  maxChunkBytes?: number;
  /**
   * Store as `"f16"` (rounded to nearest, half the bytes; a value beyond ±65504 that f16 would
   * hold as ±Inf, or a NaN, is an error naming the tensor) or `"f32"` (default).
   */
  dtype?: "f32" | "f16";
}

/**
 * Uploads a row-major matrix, split into blocks of whole rows that each fit one binding. The data
 * is float32 values, or, for `dtype: "f16"` only, f16 bit patterns already rounded (a
 * `Uint16Array`, as `readTensorF16` of `internal/safetensors.ts` gives, so no float32 copy of a
 * BF16 checkpoint is needed). Writes go through {@linkcode GpuContext.writeBuffer}, which submits
 * the queue every few hundred MiB.
 *
 * @param ctx The GPU context.
 * @param matrix The data with its name and shape.
 * @param options Largest block size and storage type.
 * @returns The matrix on the GPU.
 * @throws {RangeError} When the data does not have `rows × cols` values, one row exceeds a
 *   binding, or an f16 upload holds a value outside the f16 range (naming the tensor, row and
 *   column).
 * @throws {TypeError} When f16 bits (a `Uint16Array`) are given for an f32 upload.
 *
 * @example Upload a 3×2 matrix
 * ```ts ignore
 * import { createGpu, GpuContext, uploadMatrix } from "./mod.ts";
 * const ctx = new GpuContext(await createGpu());
 * const m = uploadMatrix(ctx, { name: "w", data: new Float32Array(6), rows: 3, cols: 2 });
 * console.log(m.chunks.length); // 1
 * ```
 */
export function uploadMatrix(
  ctx: GpuContext,
  matrix: { name: string; data: Float32Array | Uint16Array; rows: number; cols: number },
  options: UploadMatrixOptions = {},
): GpuMatrix {
  const { name, data, rows, cols } = matrix;
  if (data.length !== rows * cols) {
    throw new RangeError(
      `Cannot upload "${name}": expected ${rows}×${cols} = ${rows * cols} values: current length ` +
        `is ${data.length}`,
    );
  }
  const f16 = options.dtype === "f16";
  if (data instanceof Uint16Array && !f16) {
    throw new TypeError(
      `Cannot upload "${name}" as f32: its data are f16 bits (a Uint16Array); load the weights ` +
        `as float32 or upload with dtype "f16"`,
    );
  }
  const bytes = f16 ? 2 : 4;
  const maxBytes = Math.min(options.maxChunkBytes ?? Infinity, ctx.gpu.maxBindingSize);
  const rowsPerChunk = Math.max(1, Math.floor(maxBytes / (cols * bytes)));
  if (cols * bytes > maxBytes) {
    throw new RangeError(
      `Cannot upload "${name}": one row of ${cols} floats exceeds the binding limit ${maxBytes}`,
    );
  }
  const chunks: GpuMatrixChunk[] = [];
  for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - rowStart);
    const label = chunks.length === 0 && rowStart + n === rows ? name : `${name}[${rowStart}:]`;
    let buffer: GPUBuffer;
    if (f16) {
      const offset = rowStart * cols;
      const count = n * cols;
      let half: Uint16Array;
      let bad: number;
      let value = (i: number): number => new Float16Array(half.buffer, half.byteOffset)[i];
      if (data instanceof Uint16Array) {
        // An even count, so that the write is a whole number of 4-byte words.
        half = data.subarray(offset, offset + count);
        if (count % 2 === 1) {
          (half = new Uint16Array(count + 1)).set(data.subarray(offset, offset + count));
        }
        bad = firstNonFiniteHalf(half.subarray(0, count));
      } else {
        const values = data.subarray(offset, offset + count);
        half = new Uint16Array(count + (count % 2));
        bad = f32ToF16Bits(values, half);
        value = (i) => values[i];
      }
      if (bad >= 0) throwNonFinite(name, value(bad), offset + bad, cols);
      buffer = ctx.createBuffer(half.byteLength, label);
      ctx.writeBuffer(buffer, 0, half);
    } else {
      buffer = ctx.upload(
        (data as Float32Array).subarray(rowStart * cols, (rowStart + n) * cols),
        label,
      );
    }
    chunks.push({ buffer, rowStart, rows: n });
  }
  return { name, rows, cols, chunks, dtype: f16 ? "f16" : "f32" };
}

/**
 * Throws for a value that became ±Inf or NaN in f16 (the rule of `internal/f16.ts`): it would turn
 * into NaN losses later.
 */
function throwNonFinite(name: string, value: number, at: number, cols: number): never {
  throw new RangeError(
    `Cannot upload "${name}" as f16: value ${value} at row ${Math.floor(at / cols)}, ` +
      `column ${at % cols} is ${nonFiniteHalfReason(value)}; keep this model in f32 ` +
      `(model.weightDtype: f32)`,
  );
}

/**
 * Frees the buffers of a matrix.
 *
 * @param matrix The matrix to free.
 *
 * @example Free a matrix
 * ```ts ignore
 * import { destroyMatrix, type GpuMatrix } from "./matrix.ts";
 * declare const m: GpuMatrix;
 * destroyMatrix(m);
 * ```
 */
export function destroyMatrix(matrix: GpuMatrix): void {
  for (const c of matrix.chunks) c.buffer.destroy();
}
