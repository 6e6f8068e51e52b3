/**
 * Reading and writing the safetensors format
 * (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON
 * header mapping tensor names to dtype, shape and byte range, then the raw little-endian data.
 *
 * Files are read lazily: {@linkcode openSafetensors} reads and validates only the header, and each
 * tensor's bytes are read from disk on demand, so multi-gigabyte checkpoints never need to fit in
 * memory at once.
 *
 * @module
 */
import { writeAll, writeFileAtomicStreamed } from "./atomic_write.ts";
import { show } from "./show.ts";
import {
  bf16ToF16Bits,
  bf16Value,
  f32ToF16Bits,
  firstNonFiniteHalf,
  nonFiniteHalfReason,
} from "./f16.ts";

/** The element types of the safetensors format that halo can read or convert. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** One entry of a safetensors header. */
export interface SafetensorsTensorInfo {
  /** The tensor's name, e.g. `"model.norm.weight"`. */
  name: string;
  /** The element type as written in the header, e.g. `"BF16"` (see {@linkcode SafetensorsDtype}). */
  dtype: string;
  /** The dimensions, outermost first (row-major). */
  shape: number[];
  /** Byte range `[begin, end)` relative to the start of the data section. */
  dataOffsets: [number, number];
}

/** An open safetensors file whose header has been read and validated. */
export interface SafetensorsFile {
  /** The path the file was opened from. */
  path: string;
  /** The free-form `__metadata__` of the header (empty when absent). */
  metadata: Record<string, string>;
  /** Every tensor of the file by name. */
  tensors: Map<string, SafetensorsTensorInfo>;
  /**
   * Reads the raw little-endian bytes of one tensor from disk.
   *
   * @param name The tensor's name.
   * @returns A fresh array of exactly the tensor's bytes.
   */
  readBytes(name: string): Uint8Array;
  /** Closes the underlying file; further reads throw. Closing twice is harmless. */
  close(): void;
}

/** One tensor to write with {@linkcode writeSafetensors}. */
export interface TensorToWrite {
  /** Element type to store. */
  dtype: "F32" | "I32" | "F16" | "BF16";
  /** Dimensions, outermost first. */
  shape: number[];
  /**
   * Elements in row-major order: a `Float32Array` for `"F32"`, an `Int32Array` for `"I32"`; for
   * `"F16"` and `"BF16"` either a `Uint16Array` of raw bit patterns or a `Float32Array` that is
   * rounded to the nearest representable value (ties to even).
   */
  data: Float32Array | Int32Array | Uint16Array;
}

/** Options of {@linkcode readTensorF32} and {@linkcode readTensorI32}. */
export interface ReadTensorOptions {
  /** If given, the tensor's shape must equal it exactly, or the read throws a `RangeError`. */
  expectedShape?: number[];
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Free-form string metadata stored as the header's `__metadata__`. */
  metadata?: Record<string, string>;
}

/** Byte size of one element of each dtype whose size the header validation knows. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
};

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

/** Largest single read or write; Linux caps one `read(2)` at a little under 2 GiB. */
const IO_CHUNK_BYTES = 1 << 30;

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new Error(
      "Cannot use safetensors files on a big-endian host: only little-endian is supported",
    );
  }
}

function showShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

async function readExactlyAt(
  file: Deno.FsFile,
  position: number,
  length: number,
  what: () => string,
): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(buffer.subarray(filled, Math.min(length, filled + IO_CHUNK_BYTES)));
    if (n === null) throw new RangeError(`${what()}: unexpected end of file`);
    filled += n;
  }
  return buffer;
}

function readExactlyAtSync(
  file: Deno.FsFile,
  position: number,
  length: number,
  what: () => string,
): Uint8Array {
  const buffer = new Uint8Array(length);
  file.seekSync(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = file.readSync(buffer.subarray(filled, Math.min(length, filled + IO_CHUNK_BYTES)));
    if (n === null) throw new RangeError(`${what()}: unexpected end of file`);
    filled += n;
  }
  return buffer;
}

class LazySafetensorsFile implements SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly tensors: Map<string, SafetensorsTensorInfo>;
  #file: Deno.FsFile | null;
  #dataStart: number;

  constructor(
    path: string,
    file: Deno.FsFile,
    dataStart: number,
    metadata: Record<string, string>,
    tensors: Map<string, SafetensorsTensorInfo>,
  ) {
    this.path = path;
    this.#file = file;
    this.#dataStart = dataStart;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  readBytes(name: string): Uint8Array {
    const info = getInfo(this, name);
    if (this.#file === null) {
      throw new Error(`Cannot read tensor "${name}" from "${this.path}": the file is closed`);
    }
    const [begin, end] = info.dataOffsets;
    return readExactlyAtSync(
      this.#file,
      this.#dataStart + begin,
      end - begin,
      () => `Cannot read tensor "${name}" from "${this.path}"`,
    );
  }

  close(): void {
    if (this.#file !== null) {
      this.#file.close();
      this.#file = null;
    }
  }
}

/**
 * Opens a safetensors file and validates its header; tensor data is read later, on demand.
 *
 * The checks: the 8-byte header length fits in the file (and is at most 100 MB), the header is
 * UTF-8 JSON holding an object, `__metadata__` maps strings to strings, and every tensor has a
 * known dtype, a shape of non-negative integers and `data_offsets` inside the data section whose
 * length is the product of the shape times the dtype size, with no two tensors overlapping, and
 * the tensors covering the data section from its start to the end of the file without gaps (as
 * the safetensors crate requires).
 *
 * @param path The file to open.
 * @returns The open file; call {@linkcode SafetensorsFile.close} when done.
 * @throws {Deno.errors.NotFound} If the file does not exist.
 * @throws {SyntaxError} If the header is not valid UTF-8 JSON; the message names the file.
 * @throws {TypeError} If a header entry has the wrong form or an unknown dtype; the message names
 * the file and the tensor.
 * @throws {RangeError} If the header length or a tensor's offsets do not fit the file; the message
 * names the file and the tensor.
 *
 * @example List the tensors of the test fixture
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSafetensors } from "./safetensors.ts";
 *
 * const file = await openSafetensors("tests/fixtures/qwen3-tiny/model.safetensors");
 * try {
 *   const info = file.tensors.get("model.norm.weight");
 *   assert.equal(info?.dtype, "F32");
 *   assert.deepEqual(info?.shape, [64]);
 *   assert.equal(file.readBytes("model.norm.weight").length, 64 * 4);
 * } finally {
 *   file.close();
 * }
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  assertLittleEndianHost();
  const where = `Cannot open safetensors file "${path}"`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`${where}: file not found`, { cause: error });
    }
    throw error;
  }
  try {
    const { size } = await file.stat();
    if (size < 8) {
      throw new RangeError(
        `${where}: the file is ${size} bytes, too short for the 8-byte header length`,
      );
    }
    const lengthBytes = await readExactlyAt(file, 0, 8, () => where);
    const headerLengthBig = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLengthBig > BigInt(size - 8)) {
      throw new RangeError(
        `${where}: header length ${headerLengthBig} exceeds the ${size - 8} bytes after the ` +
          `length field (truncated or not a safetensors file)`,
      );
    }
    const headerLength = Number(headerLengthBig);
    if (headerLength > MAX_HEADER_BYTES) {
      throw new RangeError(
        `${where}: header length ${headerLength} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
      );
    }
    if (headerLength < 2) {
      throw new SyntaxError(`${where}: header length ${headerLength} is too short for JSON`);
    }
    const headerBytes = await readExactlyAt(file, 8, headerLength, () => where);
    let header: unknown;
    try {
      const text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
      header = JSON.parse(text);
    } catch (error) {
      throw new SyntaxError(
        `${where}: the header is not valid JSON: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    const dataStart = 8 + headerLength;
    const { metadata, tensors } = validateHeader(header, size - dataStart, where);
    return new LazySafetensorsFile(path, file, dataStart, metadata, tensors);
  } catch (error) {
    file.close();
    throw error;
  }
}

function validateHeader(
  header: unknown,
  dataSize: number,
  where: string,
): { metadata: Record<string, string>; tensors: Map<string, SafetensorsTensorInfo> } {
  if (!isObject(header)) {
    throw new TypeError(
      `${where}: the header must be a JSON object: current value is ${show(header)}`,
    );
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (entry === null) continue;
      if (!isObject(entry)) {
        throw new TypeError(
          `${where}: "__metadata__" must be an object of strings: current value is ${show(entry)}`,
        );
      }
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== "string") {
          throw new TypeError(
            `${where}: "__metadata__" key "${key}" must be a string: current value is ${
              show(value)
            }`,
          );
        }
        metadata[key] = value;
      }
      continue;
    }
    const at = `${where}: tensor "${name}"`;
    if (!isObject(entry)) {
      throw new TypeError(`${at} must be an object: current value is ${show(entry)}`);
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string") {
      throw new TypeError(`${at} has no string "dtype": current value is ${show(dtype)}`);
    }
    const elementBytes = Object.hasOwn(DTYPE_BYTES, dtype) ? DTYPE_BYTES[dtype] : undefined;
    if (elementBytes === undefined) {
      throw new TypeError(`${at} has unsupported dtype ${show(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      throw new TypeError(
        `${at} must have a "shape" of non-negative integers: current value is ${show(shape)}`,
      );
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)
    ) {
      throw new TypeError(
        `${at} must have "data_offsets" of two non-negative integers: current value is ${
          show(offsets)
        }`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataSize) {
      throw new RangeError(
        `${at} has data_offsets ${show(offsets)} outside the data section of ${dataSize} bytes`,
      );
    }
    const byteLength = numelOf(shape) * elementBytes;
    if (end - begin !== byteLength) {
      throw new RangeError(
        `${at} has data_offsets ${show(offsets)} spanning ${end - begin} bytes, but dtype ` +
          `"${dtype}" and shape ${showShape(shape)} need ${byteLength} bytes`,
      );
    }
    tensors.set(name, { name, dtype, shape: [...shape], dataOffsets: [begin, end] });
  }
  const byStart = [...tensors.values()]
    .filter((t) => t.dataOffsets[1] > t.dataOffsets[0])
    .sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  for (let i = 1; i < byStart.length; i++) {
    const previous = byStart[i - 1];
    const current = byStart[i];
    if (current.dataOffsets[0] < previous.dataOffsets[1]) {
      throw new RangeError(
        `${where}: tensor "${current.name}" (data_offsets ${show(current.dataOffsets)}) overlaps ` +
          `tensor "${previous.name}" (data_offsets ${show(previous.dataOffsets)})`,
      );
    }
  }
  // As the safetensors crate (Metadata::validate, MetadataIncompleteBuffer), which transformers
  // loads with: the tensors tile the data section from byte 0 to its end, without holes, so a
  // real checkpoint never has any; a hole or a tail means a damaged or hand-edited file.
  let end = 0;
  for (const tensor of byStart) {
    const [begin] = tensor.dataOffsets;
    if (begin !== end) {
      const after = end === 0
        ? "the first tensor must start the data section, at byte 0"
        : `the tensor before it, "${
          byStart[byStart.indexOf(tensor) - 1].name
        }", ends at byte ${end}`;
      throw new RangeError(
        `${where}: tensor "${tensor.name}" (data_offsets ${show(tensor.dataOffsets)}) starts at ` +
          `byte ${begin}, but ${after}: the format has no gaps between tensors`,
      );
    }
    end = tensor.dataOffsets[1];
  }
  if (end !== dataSize) {
    throw new RangeError(
      `${where}: the data section is ${dataSize} bytes, but the tensors end at byte ${end}: ` +
        `${dataSize - end} bytes after them belong to no tensor (appended data, or a header that ` +
        `lost entries)`,
    );
  }
  return { metadata, tensors };
}

function getInfo(file: SafetensorsFile, name: string): SafetensorsTensorInfo {
  const info = file.tensors.get(name);
  if (info === undefined) {
    throw new Error(`Cannot read tensor "${name}" from "${file.path}": no such tensor in the file`);
  }
  return info;
}

/**
 * Checks a tensor's shape in the file's header, as the readers do with `expectedShape`, without
 * reading its data.
 *
 * @param file The open file.
 * @param info The tensor's header entry (`file.tensors.get(name)`).
 * @param expectedShape The shape it must have; nothing is checked when undefined.
 * @throws {RangeError} If the shape differs, naming the file, tensor and both shapes.
 *
 * @example Check a shape before reading
 * ```ts ignore
 * import { checkShape } from "./safetensors.ts";
 * declare const file: import("./safetensors.ts").SafetensorsFile;
 * checkShape(file, file.tensors.get("model.norm.weight")!, [64]);
 * ```
 */
export function checkShape(
  file: SafetensorsFile,
  info: SafetensorsTensorInfo,
  expectedShape: readonly number[] | undefined,
): void {
  if (expectedShape === undefined) return;
  if (
    expectedShape.length !== info.shape.length || expectedShape.some((d, i) => d !== info.shape[i])
  ) {
    throw new RangeError(
      `Cannot read tensor "${info.name}" from "${file.path}": expected shape ${
        showShape(expectedShape)
      }, actual shape ${showShape(info.shape)}`,
    );
  }
}

/** Reads a tensor's bytes into a buffer that starts at offset 0 (so any typed view is aligned). */
function readOwnedBytes(file: SafetensorsFile, info: SafetensorsTensorInfo): Uint8Array {
  const bytes = file.readBytes(info.name);
  const expected = info.dataOffsets[1] - info.dataOffsets[0];
  if (bytes.length !== expected) {
    throw new RangeError(
      `Cannot read tensor "${info.name}" from "${file.path}": got ${bytes.length} bytes, ` +
        `expected ${expected}`,
    );
  }
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return bytes.slice();
}

let f16Table: Uint32Array | null = null;

/** float32 bit patterns of all 65536 float16 values, computed exactly by bit manipulation. */
function float16Table(): Uint32Array {
  if (f16Table !== null) return f16Table;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    let mantissa = h & 0x3ff;
    let bits: number;
    if (exponent === 0) {
      if (mantissa === 0) {
        bits = sign;
      } else {
        // Subnormal: shift the mantissa up until the implicit bit appears.
        let e = 127 - 15 + 1;
        while ((mantissa & 0x400) === 0) {
          mantissa <<= 1;
          e--;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3ff) << 13);
      }
    } else if (exponent === 0x1f) {
      bits = sign | 0x7f800000 | (mantissa << 13); // infinity, or NaN with its payload
    } else {
      bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    table[h] = bits >>> 0;
  }
  f16Table = table;
  return table;
}

/** Converts float32 bit patterns to float16 bits, rounding to nearest, ties to even. */
function float32ToFloat16Bits(input: Float32Array): Uint16Array {
  const bits = new Uint32Array(input.buffer, input.byteOffset, input.length);
  const out = new Uint16Array(input.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    const mantissa = b & 0x7fffff;
    let half: number;
    if (exponent === 0xff) {
      half = sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
    } else {
      const e = exponent - 127 + 15;
      if (e >= 0x1f) {
        half = sign | 0x7c00;
      } else if (e <= 0) {
        if (e < -10) {
          half = sign;
        } else {
          const m = mantissa | 0x800000;
          const shift = 14 - e;
          let h = m >>> shift;
          const rest = m & ((1 << shift) - 1);
          const halfway = 1 << (shift - 1);
          if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
          half = sign | h;
        }
      } else {
        let h = (e << 10) | (mantissa >>> 13);
        const rest = mantissa & 0x1fff;
        if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // may carry into infinity
        half = sign | h;
      }
    }
    out[i] = half;
  }
  return out;
}

/** Converts float32 bit patterns to bfloat16 bits, rounding to nearest, ties to even. */
function float32ToBfloat16Bits(input: Float32Array): Uint16Array {
  const bits = new Uint32Array(input.buffer, input.byteOffset, input.length);
  const out = new Uint16Array(input.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000
      ? (b >>> 16) | 0x0040 // quiet NaN, sign kept
      : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Reads a floating-point tensor as float32: `F32` is copied, `F16`, `BF16` and `F64` are converted
 * (`F16` and `BF16` exactly, by bit manipulation, keeping subnormals, infinities and NaNs; `F64` is
 * rounded to nearest).
 *
 * @param file An open safetensors file.
 * @param name The tensor's name.
 * @param options The shape the tensor must have.
 * @returns The elements in row-major order.
 * @throws {Error} If the file has no tensor of that name; the message names the file and tensor.
 * @throws {TypeError} If the tensor's dtype is not a float type; the message names the file,
 * tensor and dtype.
 * @throws {RangeError} If the shape differs from `options.expectedShape`; the message names the
 * file, tensor, and both shapes.
 *
 * @example Read the fixture's final norm weight
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSafetensors, readTensorF32 } from "./safetensors.ts";
 *
 * const file = await openSafetensors("tests/fixtures/qwen3-tiny/model.safetensors");
 * try {
 *   const norm = readTensorF32(file, "model.norm.weight", { expectedShape: [64] });
 *   assert.equal(norm.length, 64);
 * } finally {
 *   file.close();
 * }
 * ```
 */
export function readTensorF32(
  file: SafetensorsFile,
  name: string,
  options: ReadTensorOptions = {},
): Float32Array {
  const info = getInfo(file, name);
  checkShape(file, info, options.expectedShape);
  const n = numelOf(info.shape);
  switch (info.dtype) {
    case "F32": {
      const bytes = readOwnedBytes(file, info);
      return new Float32Array(bytes.buffer, 0, n);
    }
    case "BF16": {
      const raw = new Uint16Array(readOwnedBytes(file, info).buffer, 0, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = raw[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case "F16": {
      const raw = new Uint16Array(readOwnedBytes(file, info).buffer, 0, n);
      const table = float16Table();
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = table[raw[i]];
      return new Float32Array(bits.buffer);
    }
    case "F64":
      return new Float32Array(new Float64Array(readOwnedBytes(file, info).buffer, 0, n));
    default:
      throw new TypeError(
        `Cannot read tensor "${name}" from "${file.path}" as float32: unsupported dtype ` +
          `"${info.dtype}" (expected F32, F16, BF16 or F64)`,
      );
  }
}

/**
 * Reads a floating-point tensor as IEEE half-precision bit patterns (a `Uint16Array`), for a GPU
 * that stores weights in f16: `F16` is copied, `BF16` is converted in place in chunks (so no
 * float32 copy of the tensor exists: the peak is the tensor's own 2 bytes per element), `F32` and
 * `F64` are read as by {@linkcode readTensorF32} and then rounded. Every conversion rounds to
 * nearest, ties to even, so the result is bit-identical to {@linkcode readTensorF32} followed by a
 * float32 → f16 rounding.
 *
 * @param file An open safetensors file.
 * @param name The tensor's name.
 * @param options The shape the tensor must have.
 * @returns The f16 bits in row-major order.
 * @throws {Error} If the file has no tensor of that name; the message names the file and tensor.
 * @throws {TypeError} If the tensor's dtype is not a float type.
 * @throws {RangeError} If the shape differs from `options.expectedShape`, or a value has no finite
 * f16 form (|x| ≥ 65520, ±Inf or NaN); the message names the file, tensor, element and value.
 *
 * @example Read the fixture's final norm weight as f16
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSafetensors, readTensorF16, readTensorF32 } from "./safetensors.ts";
 *
 * const file = await openSafetensors("tests/fixtures/qwen3-tiny/model.safetensors");
 * try {
 *   const bits = readTensorF16(file, "model.norm.weight", { expectedShape: [64] });
 *   const f32 = readTensorF32(file, "model.norm.weight");
 *   assert.deepEqual(new Float16Array(bits.buffer), Float16Array.from(f32));
 * } finally {
 *   file.close();
 * }
 * ```
 */
export function readTensorF16(
  file: SafetensorsFile,
  name: string,
  options: ReadTensorOptions = {},
): Uint16Array {
  const info = getInfo(file, name);
  checkShape(file, info, options.expectedShape);
  const n = numelOf(info.shape);
  let out: Uint16Array;
  let bad: number;
  let badValue = (i: number): number => new Float16Array(out.buffer, 0, n)[i];
  switch (info.dtype) {
    case "BF16": {
      out = new Uint16Array(readOwnedBytes(file, info).buffer, 0, n);
      bad = bf16ToF16Bits(out, out); // in place; the chunk holding a bad value stays bfloat16
      badValue = (i) => bf16Value(out[i]);
      break;
    }
    case "F16":
      out = new Uint16Array(readOwnedBytes(file, info).buffer, 0, n);
      bad = firstNonFiniteHalf(out);
      break;
    case "F32":
    case "F64": {
      const wide = readTensorF32(file, name);
      out = new Uint16Array(n);
      bad = f32ToF16Bits(wide, out);
      badValue = (i) => wide[i];
      break;
    }
    default:
      throw new TypeError(
        `Cannot read tensor "${name}" from "${file.path}" as f16: unsupported dtype ` +
          `"${info.dtype}" (expected F32, F16, BF16 or F64)`,
      );
  }
  if (bad >= 0) {
    const value = badValue(bad);
    const cols = info.shape.length >= 2 ? info.shape[info.shape.length - 1] : 0;
    const at = cols > 0
      ? `element ${bad} (row ${Math.floor(bad / cols)}, column ${bad % cols})`
      : `element ${bad}`;
    throw new RangeError(
      `Cannot read tensor "${name}" from "${file.path}" as f16: ${at} is ${value}, ` +
        `${nonFiniteHalfReason(value)}; keep this model in f32 (model.weightDtype: f32)`,
    );
  }
  return out;
}

/**
 * Reads an integer tensor (such as reference `input_ids`) as int32. `I32` is copied; `I64`, `I16`,
 * `I8`, `U16` and `U8` are converted, and an `I64` value outside the int32 range is an error.
 *
 * @param file An open safetensors file.
 * @param name The tensor's name.
 * @param options The shape the tensor must have.
 * @returns The elements in row-major order.
 * @throws {Error} If the file has no tensor of that name; the message names the file and tensor.
 * @throws {TypeError} If the tensor's dtype is not an integer type.
 * @throws {RangeError} If the shape differs from `options.expectedShape`, or an `I64` value does
 * not fit in int32.
 *
 * @example Read the fixture's reference input ids
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSafetensors, readTensorI32 } from "./safetensors.ts";
 *
 * const file = await openSafetensors("tests/fixtures/qwen3-tiny/reference.safetensors");
 * try {
 *   const ids = readTensorI32(file, "input_ids", { expectedShape: [2, 16] });
 *   assert.equal(ids.length, 32);
 * } finally {
 *   file.close();
 * }
 * ```
 */
export function readTensorI32(
  file: SafetensorsFile,
  name: string,
  options: ReadTensorOptions = {},
): Int32Array {
  const info = getInfo(file, name);
  checkShape(file, info, options.expectedShape);
  const n = numelOf(info.shape);
  switch (info.dtype) {
    case "I32":
      return new Int32Array(readOwnedBytes(file, info).buffer, 0, n);
    case "I64": {
      const wide = new BigInt64Array(readOwnedBytes(file, info).buffer, 0, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const value = wide[i];
        if (value < -2147483648n || value > 2147483647n) {
          throw new RangeError(
            `Cannot read tensor "${name}" from "${file.path}" as int32: element ${i} is ` +
              `${value}, outside the int32 range`,
          );
        }
        out[i] = Number(value);
      }
      return out;
    }
    case "I16":
      return new Int32Array(new Int16Array(readOwnedBytes(file, info).buffer, 0, n));
    case "U16":
      return new Int32Array(new Uint16Array(readOwnedBytes(file, info).buffer, 0, n));
    case "I8":
      return new Int32Array(new Int8Array(readOwnedBytes(file, info).buffer, 0, n));
    case "U8":
      return new Int32Array(readOwnedBytes(file, info));
    default:
      throw new TypeError(
        `Cannot read tensor "${name}" from "${file.path}" as int32: unsupported dtype ` +
          `"${info.dtype}" (expected I32, I64, I16, U16, I8 or U8)`,
      );
  }
}

const TYPED_ARRAY_FOR: Readonly<Record<TensorToWrite["dtype"], string>> = {
  F32: "Float32Array",
  I32: "Int32Array",
  F16: "Uint16Array or Float32Array",
  BF16: "Uint16Array or Float32Array",
};

function dataMatches(dtype: string, data: unknown): boolean {
  switch (dtype) {
    case "F32":
      return data instanceof Float32Array;
    case "I32":
      return data instanceof Int32Array;
    case "F16":
    case "BF16":
      return data instanceof Uint16Array || data instanceof Float32Array;
    default:
      return false;
  }
}

function describeValue(value: unknown): string {
  if (typeof value !== "object" || value === null) return show(value);
  return `a ${value.constructor?.name ?? "object"}`;
}

/** The bytes to store for one tensor (validated beforehand by {@linkcode dataMatches}). */
function encodeTensor(tensor: TensorToWrite): Uint8Array {
  const { dtype, data } = tensor;
  let encoded: ArrayBufferView = data;
  if (data instanceof Float32Array && dtype === "F16") encoded = float32ToFloat16Bits(data);
  if (data instanceof Float32Array && dtype === "BF16") encoded = float32ToBfloat16Bits(data);
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}

/**
 * Writes tensors to a safetensors file atomically: the data goes to a temporary file in the same
 * directory, which is flushed to disk and then renamed over `path`, so readers never see a
 * partial file.
 *
 * Header entries are sorted by name and the header is padded with spaces to a multiple of 8 bytes.
 * Data is laid out by element size (largest first) then by name, so every tensor is aligned to
 * its element size.
 *
 * @param path The file to create or replace.
 * @param tensors The tensors by name.
 * @param options Metadata to store in the header.
 * @returns A promise that resolves once the file is in place.
 * @throws {TypeError} If a dtype is not writable, the data is not the matching typed array, or a
 * name is empty or `"__metadata__"`; the message names the file and tensor.
 * @throws {RangeError} If the data length is not the product of the shape; the message names the
 * file and tensor.
 *
 * @example Write a tensor and read it back
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSafetensors, readTensorF32, writeSafetensors } from "./safetensors.ts";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   const path = `${dir}/small.safetensors`;
 *   await writeSafetensors(path, {
 *     w: { dtype: "BF16", shape: [2, 2], data: new Float32Array([1, -2, 0.5, 3]) },
 *   }, { metadata: { format: "pt" } });
 *   const file = await openSafetensors(path);
 *   try {
 *     assert.deepEqual(readTensorF32(file, "w"), new Float32Array([1, -2, 0.5, 3]));
 *     assert.equal(file.metadata.format, "pt");
 *   } finally {
 *     file.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  assertLittleEndianHost();
  const where = `Cannot write safetensors file "${path}"`;
  const names = Object.keys(tensors).sort();
  const elementBytes = new Map<string, number>();
  for (const name of names) {
    const tensor = tensors[name];
    if (name === "" || name === "__metadata__") {
      throw new TypeError(`${where}: tensor name ${show(name)} is reserved or empty`);
    }
    const size = DTYPE_BYTES[tensor.dtype];
    if (!Object.hasOwn(TYPED_ARRAY_FOR, tensor.dtype)) {
      throw new TypeError(
        `${where}: tensor "${name}" has unsupported dtype ${show(tensor.dtype)} (expected F32, ` +
          `I32, F16 or BF16)`,
      );
    }
    if (!Array.isArray(tensor.shape) || !tensor.shape.every(isNonNegativeInteger)) {
      throw new TypeError(
        `${where}: tensor "${name}" must have a shape of non-negative integers: current value ` +
          `is ${show(tensor.shape)}`,
      );
    }
    if (!dataMatches(tensor.dtype, tensor.data)) {
      throw new TypeError(
        `${where}: tensor "${name}" of dtype "${tensor.dtype}" needs a ` +
          `${TYPED_ARRAY_FOR[tensor.dtype]}: current value is ${describeValue(tensor.data)}`,
      );
    }
    const numel = numelOf(tensor.shape);
    if (tensor.data.length !== numel) {
      throw new RangeError(
        `${where}: tensor "${name}" has ${tensor.data.length} elements, but shape ` +
          `${showShape(tensor.shape)} needs ${numel}`,
      );
    }
    elementBytes.set(name, size);
  }
  const metadata = options.metadata;
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        throw new TypeError(
          `${where}: metadata key "${key}" must be a string: current value is ${show(value)}`,
        );
      }
    }
  }

  // Data order: largest element size first, so each tensor stays aligned to its element size.
  const dataOrder = [...names].sort((a, b) =>
    (elementBytes.get(b)! - elementBytes.get(a)!) || (a < b ? -1 : a > b ? 1 : 0)
  );
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const name of dataOrder) {
    const length = numelOf(tensors[name].shape) * elementBytes.get(name)!;
    offsets.set(name, [offset, offset + length]);
    offset += length;
  }
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    header.__metadata__ = metadata;
  }
  for (const name of names) {
    const { dtype, shape } = tensors[name];
    header[name] = { dtype, shape, data_offsets: offsets.get(name) };
  }
  let headerText = JSON.stringify(header);
  let headerBytes = new TextEncoder().encode(headerText);
  const padding = (8 - (headerBytes.length % 8)) % 8;
  if (padding > 0) {
    headerText += " ".repeat(padding);
    headerBytes = new TextEncoder().encode(headerText);
  }
  const lengthField = new Uint8Array(8);
  new DataView(lengthField.buffer).setBigUint64(0, BigInt(headerBytes.length), true);

  await writeFileAtomicStreamed(path, async (file) => {
    await writeAll(file, lengthField);
    await writeAll(file, headerBytes);
    for (const name of dataOrder) {
      await writeAll(file, encodeTensor(tensors[name]));
    }
  });
}
