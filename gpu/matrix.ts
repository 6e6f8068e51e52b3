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
   * ({@linkcode uploadFusedMatrix}'s members: a model's q|k|v and gate|up base weights; the merged
   * ones of `model/merge_adapters_webgpu.ts`), always a multiple of the device's storage offset
   * alignment: whoever binds, copies, reads or writes a block starts there.
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
    const buffer = ctx.createBuffer(n * cols * bytes, label);
    try {
      writeRows(ctx, buffer, 0, { name, data, cols }, rowStart, n, f16);
    } catch (error) {
      ctx.release(buffer);
      for (const c of chunks) ctx.release(c.buffer);
      throw error;
    }
    chunks.push({ buffer, rowStart, rows: n });
  }
  return { name, rows, cols, chunks, dtype: f16 ? "f16" : "f32" };
}

/**
 * Writes rows `rowStart .. rowStart + n` of a `[rows, cols]` matrix (float32 values, or f16 bits)
 * into `buffer` from byte `byteOffset`: as they are, or rounded to f16 (a value f16 cannot hold
 * is an error naming the tensor, row and column).
 */
function writeRows(
  ctx: GpuContext,
  buffer: GPUBuffer,
  byteOffset: number,
  matrix: { name: string; data: Float32Array | Uint16Array; cols: number },
  rowStart: number,
  n: number,
  f16: boolean,
): void {
  const { name, data, cols } = matrix;
  const offset = rowStart * cols;
  const count = n * cols;
  if (!f16) {
    ctx.writeBuffer(buffer, byteOffset, (data as Float32Array).subarray(offset, offset + count));
    return;
  }
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
  ctx.writeBuffer(buffer, byteOffset, half);
}

/** One member of {@linkcode uploadFusedMatrix}: a `[rows, cols]` matrix. */
export interface FusedMatrixPart {
  /** Its name (the checkpoint tensor name). */
  name: string;
  /** Rows. */
  rows: number;
  /** Its values, as {@linkcode uploadMatrix}'s data; read when it is written. */
  data: () => Float32Array | Uint16Array;
}

/**
 * Why matrices of these row counts (sharing `cols` columns) cannot be stored as one buffer of
 * their rows stacked with each one a view into it, or null when they can: the whole must fit one
 * block (`maxChunkBytes`, and the device's binding limit: a member split into row blocks is not a
 * view), and each member's first byte must be a multiple of the device's
 * `minStorageBufferOffsetAlignment` (a view is bound from there).
 *
 * @param ctx The GPU context.
 * @param rows Each member's rows, in order.
 * @param cols Columns of every member.
 * @param options Largest block size and storage type, as {@linkcode uploadMatrix}'s.
 * @returns The reason, or null.
 *
 * @example q|k|v of a Qwen3 layer
 * ```ts ignore
 * import { createGpu, GpuContext } from "./mod.ts";
 * import { fusedMatrixReason } from "./matrix.ts";
 * const ctx = new GpuContext(await createGpu());
 * console.log(fusedMatrixReason(ctx, [2048, 1024, 1024], 1024)); // null
 * ```
 */
export function fusedMatrixReason(
  ctx: GpuContext,
  rows: readonly number[],
  cols: number,
  options: UploadMatrixOptions = {},
): string | null {
  const bytes = options.dtype === "f16" ? 2 : 4;
  const maxBytes = Math.min(options.maxChunkBytes ?? Infinity, ctx.gpu.maxBindingSize);
  const total = rows.reduce((a, b) => a + b, 0) * cols * bytes;
  if (total > maxBytes) {
    return `${total} bytes together, more than one block (${maxBytes} bytes)`;
  }
  const alignment = ctx.device.limits.minStorageBufferOffsetAlignment;
  let at = 0;
  for (const [i, r] of rows.entries()) {
    if (at % alignment !== 0) {
      return `member ${i} would start at byte ${at}, not a multiple of the storage offset ` +
        `alignment ${alignment}`;
    }
    at += r * cols * bytes;
  }
  return null;
}

/**
 * Uploads matrices with the same columns as one buffer, their rows stacked in order: returns the
 * whole (`[Σ rows, cols]`, e.g. a Qwen3 layer's q|k|v projection) and each member as a view into
 * it (one block with its byte `offset`): no more bytes than separate uploads. Check
 * {@linkcode fusedMatrixReason} first. Each member's data is read, converted (f16) and written in
 * turn, so only one member's values are held at a time.
 *
 * @param ctx The GPU context.
 * @param name The whole's name (its buffer's label).
 * @param parts The members, in row order.
 * @param cols Columns of every member.
 * @param options Storage type, as {@linkcode uploadMatrix}'s (`maxChunkBytes` is
 * {@linkcode fusedMatrixReason}'s concern).
 * @returns The whole and the members' views.
 * @throws {RangeError} If {@linkcode fusedMatrixReason} gives a reason, a member's data does not
 * have `rows × cols` values, or an f16 upload holds a value outside the f16 range (nothing stays
 * allocated).
 *
 * @example Two matrices in one buffer
 * ```ts ignore
 * import { createGpu, GpuContext } from "./mod.ts";
 * import { uploadFusedMatrix } from "./matrix.ts";
 * const ctx = new GpuContext(await createGpu());
 * const { whole, parts } = uploadFusedMatrix(ctx, "gate|up", [
 *   { name: "gate", rows: 64, data: () => new Float32Array(64 * 64) },
 *   { name: "up", rows: 64, data: () => new Float32Array(64 * 64) },
 * ], 64);
 * console.log(whole.rows, parts[1].chunks[0].offset); // 128 16384
 * ```
 */
export function uploadFusedMatrix(
  ctx: GpuContext,
  name: string,
  parts: readonly FusedMatrixPart[],
  cols: number,
  options: UploadMatrixOptions = {},
): { whole: GpuMatrix; parts: GpuMatrix[] } {
  const why = fusedMatrixReason(ctx, parts.map((p) => p.rows), cols, options);
  if (why !== null) {
    throw new RangeError(`Cannot upload "${name}" as one buffer: ${why}`);
  }
  const f16 = options.dtype === "f16";
  const dtype = f16 ? "f16" : "f32";
  const bytes = f16 ? 2 : 4;
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const buffer = ctx.createBuffer(rows * cols * bytes, name);
  const views: GpuMatrix[] = [];
  let offset = 0;
  try {
    for (const p of parts) {
      const data = p.data();
      if (data.length !== p.rows * cols) {
        throw new RangeError(
          `Cannot upload "${p.name}": expected ${p.rows}×${cols} = ${p.rows * cols} values: ` +
            `current length is ${data.length}`,
        );
      }
      if (data instanceof Uint16Array && !f16) {
        throw new TypeError(
          `Cannot upload "${p.name}" as f32: its data are f16 bits (a Uint16Array); load the ` +
            `weights as float32 or upload with dtype "f16"`,
        );
      }
      writeRows(ctx, buffer, offset, { name: p.name, data, cols }, 0, p.rows, f16);
      const chunk = { buffer, rowStart: 0, rows: p.rows, ...(offset ? { offset } : {}) };
      views.push({ name: p.name, rows: p.rows, cols, chunks: [chunk], dtype });
      offset += p.rows * cols * bytes;
    }
  } catch (error) {
    ctx.release(buffer);
    throw error;
  }
  return {
    whole: { name, rows, cols, chunks: [{ buffer, rowStart: 0, rows }], dtype },
    parts: views,
  };
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
