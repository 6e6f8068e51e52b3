/**
 * Encoding a GGUF v3 file (ggml's `docs/gguf.md`): the magic `GGUF`, version 3, the tensor and
 * metadata counts, the metadata key-value pairs, the tensor infos, padding to the alignment, then
 * each tensor's data at an aligned offset. Tensors are float32 (`GGML_TYPE_F32`) or float16
 * (`GGML_TYPE_F16`, rounded to nearest, ties to even). {@linkcode writeGguf} streams the file to
 * disk tensor by tensor; {@linkcode encodeGguf} builds it in memory (small files, tests).
 *
 * Shapes are given PyTorch-style (outermost dimension first, row-major data, as in safetensors);
 * GGUF lists dimensions innermost first (`ne[0]` is the contiguous one), so a `[out, in]` matrix
 * is written as `ne = [in, out]` with the same bytes.
 *
 * @module
 */
import { writeAll, writeFileAtomicStreamed } from "../internal/atomic_write.ts";

/** The scalar types of GGUF metadata values (`gguf_type`), by name. */
export type GgufScalarType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "bool"
  | "string"
  | "u64"
  | "i64"
  | "f64";

/** A scalar metadata value's JavaScript form: numbers, bigints for 64-bit integers, or strings. */
export type GgufScalar = number | bigint | boolean | string;

/**
 * One metadata value: a typed scalar, or an array of one scalar type.
 *
 * @example Usage
 * ```ts
 * import type { GgufValue } from "./gguf_writer.ts";
 *
 * const layers: GgufValue = { type: "u32", value: 2 };
 * const tokens: GgufValue = { type: "array", itemType: "string", value: ["a", "b"] };
 * ```
 */
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: "array"; itemType: GgufScalarType; value: readonly GgufScalar[] };

/**
 * How a tensor is stored: `"f32"` (`GGML_TYPE_F32`, 0) or `"f16"` (`GGML_TYPE_F16`, 1).
 *
 * @example Usage
 * ```ts
 * import type { GgufTensorType } from "./gguf_writer.ts";
 *
 * const type: GgufTensorType = "f16";
 * ```
 */
export type GgufTensorType = "f32" | "f16";

/**
 * The `ggml_type` code of each tensor storage type.
 *
 * @example Usage
 * ```ts
 * import { GGML_TYPE_CODES } from "./gguf_writer.ts";
 * console.log(GGML_TYPE_CODES.f16); // 1
 * ```
 */
export const GGML_TYPE_CODES: Readonly<Record<GgufTensorType, number>> = Object.freeze({
  f32: 0,
  f16: 1,
});

const GGML_TYPE_SIZE: Readonly<Record<GgufTensorType, number>> = { f32: 4, f16: 2 };

/**
 * One tensor to write, given as float32 values.
 *
 * @example Usage
 * ```ts
 * import type { GgufTensor } from "./gguf_writer.ts";
 *
 * const norm: GgufTensor = { name: "output_norm.weight", shape: [64], data: new Float32Array(64) };
 * ```
 */
export interface GgufTensor {
  /** The tensor's name (at most 64 bytes), e.g. `"blk.0.attn_q.weight"`. */
  name: string;
  /** The shape, outermost dimension first (PyTorch order); written reversed as GGUF's `ne`. */
  shape: readonly number[];
  /** Row-major float32 values, `shape`'s product of them. */
  data: Float32Array;
  /** How it is stored: `"f32"` (default) or `"f16"` (rounded to nearest, ties to even). */
  type?: GgufTensorType;
}

/**
 * Options of {@linkcode encodeGguf}.
 *
 * @example Usage
 * ```ts
 * import type { EncodeGgufOptions } from "./gguf_writer.ts";
 *
 * const options: EncodeGgufOptions = { alignment: 32 };
 * ```
 */
export interface EncodeGgufOptions {
  /**
   * Alignment of the data section and of each tensor, in bytes (a power of two); default 32,
   * GGUF's default. Another value is recorded as `general.alignment`.
   */
  alignment?: number;
}

/**
 * The `gguf_type` code of each metadata type.
 *
 * @example Usage
 * ```ts
 * import { GGUF_TYPE_CODES } from "./gguf_writer.ts";
 * console.log(GGUF_TYPE_CODES.string); // 8
 * ```
 */
export const GGUF_TYPE_CODES: Readonly<Record<GgufScalarType | "array", number>> = Object.freeze({
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
});

const INT_RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

class ByteSink {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.#reserve(1);
    this.#view.setUint8(this.length, v);
    this.length += 1;
  }
  u32(v: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: bigint | number): void {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  scalar(type: GgufScalarType, v: GgufScalar): void {
    const at = this.length;
    const size = type === "string" ? 0 : SCALAR_SIZE[type];
    if (type !== "string") this.#reserve(size);
    const d = this.#view;
    switch (type) {
      case "u8":
        d.setUint8(at, v as number);
        break;
      case "i8":
        d.setInt8(at, v as number);
        break;
      case "u16":
        d.setUint16(at, v as number, true);
        break;
      case "i16":
        d.setInt16(at, v as number, true);
        break;
      case "u32":
        d.setUint32(at, v as number, true);
        break;
      case "i32":
        d.setInt32(at, v as number, true);
        break;
      case "f32":
        d.setFloat32(at, v as number, true);
        break;
      case "f64":
        d.setFloat64(at, v as number, true);
        break;
      case "bool":
        d.setUint8(at, v ? 1 : 0);
        break;
      case "u64":
        d.setBigUint64(at, BigInt(v as number | bigint), true);
        break;
      case "i64":
        d.setBigInt64(at, BigInt(v as number | bigint), true);
        break;
      case "string": {
        const bytes = new TextEncoder().encode(v as string);
        this.u64(bytes.length);
        this.bytes(bytes);
        return;
      }
    }
    this.length += size;
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.#reserve(n);
    this.#buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  take(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

const SCALAR_SIZE: Record<Exclude<GgufScalarType, "string">, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};

function checkScalar(key: string, type: GgufScalarType, v: GgufScalar, where: string): void {
  const fail = (what: string) => {
    throw new TypeError(`Cannot encode GGUF metadata key "${key}"${where}: ${what}`);
  };
  if (!(type in GGUF_TYPE_CODES) || type === ("array" as string)) {
    fail(`type must be a GGUF scalar type: current value is "${type}"`);
  }
  if (type === "string") {
    if (typeof v !== "string") fail(`expected a string: current value is ${String(v)}`);
    return;
  }
  if (type === "bool") {
    if (typeof v !== "boolean") fail(`expected a boolean: current value is ${String(v)}`);
    return;
  }
  if (type === "f32" || type === "f64") {
    if (typeof v !== "number") fail(`expected a number: current value is ${String(v)}`);
    return;
  }
  if (type === "u64" || type === "i64") {
    const ok = typeof v === "bigint" || (typeof v === "number" && Number.isSafeInteger(v));
    if (!ok) fail(`expected an integer (${type}): current value is ${String(v)}`);
    const b = BigInt(v as number | bigint);
    const [lo, hi] = type === "u64" ? [0n, (1n << 64n) - 1n] : [-(1n << 63n), (1n << 63n) - 1n];
    if (b < lo || b > hi) fail(`${type} value out of range: current value is ${b}`);
    return;
  }
  const [lo, hi] = INT_RANGES[type]!;
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    fail(`expected an integer in [${lo}, ${hi}] (${type}): current value is ${String(v)}`);
  }
}

/** A tensor's validated layout: its info fields and the bytes its data takes. */
interface TensorLayout {
  name: string;
  shape: readonly number[];
  type: GgufTensorType;
  count: number;
  /** Offset of the data from the start of the data section. */
  offset: number;
}

/** The encoded header (through the padding before the data) and each tensor's layout. */
interface GgufHeader {
  head: Uint8Array;
  layouts: TensorLayout[];
  /** Bytes of the data section, tensors padded to the alignment. */
  dataBytes: number;
}

function padding(n: number, alignment: number): number {
  return (alignment - (n % alignment)) % alignment;
}

function checkAlignment(alignment: number): void {
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(
      `Cannot encode GGUF: alignment must be a power of two: current value is ${alignment}`,
    );
  }
}

/**
 * Encodes everything before the data section: magic, version, counts, metadata, the tensor infos
 * (each offset computed from the sizes of the tensors before it, padded to the alignment), and
 * the padding to the alignment. Needs the tensors' names, shapes and types, not their data.
 */
function encodeHeader(
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly { name: string; shape: readonly number[]; type?: GgufTensorType }[],
  alignment: number,
): GgufHeader {
  checkAlignment(alignment);
  const kv: [string, GgufValue][] = Object.entries(metadata);
  if (alignment !== 32 && metadata["general.alignment"] === undefined) {
    kv.push(["general.alignment", { type: "u32", value: alignment }]);
  }
  const header = new ByteSink();
  header.bytes(new TextEncoder().encode("GGUF"));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(kv.length);
  for (const [key, value] of kv) {
    header.scalar("string", key);
    if (value.type === "array") {
      if (!Array.isArray(value.value)) {
        throw new TypeError(`Cannot encode GGUF metadata key "${key}": expected an array value`);
      }
      header.u32(GGUF_TYPE_CODES.array);
      header.u32(GGUF_TYPE_CODES[value.itemType] ?? -1);
      header.u64(value.value.length);
      value.value.forEach((v, i) => {
        checkScalar(key, value.itemType, v, ` (item ${i})`);
        header.scalar(value.itemType, v);
      });
    } else {
      checkScalar(key, value.type, value.value, "");
      header.u32(GGUF_TYPE_CODES[value.type]);
      header.scalar(value.type, value.value);
    }
  }
  const names = new Set<string>();
  let offset = 0;
  const layouts: TensorLayout[] = [];
  for (const t of tensors) {
    const nameBytes = new TextEncoder().encode(t.name).length;
    if (nameBytes === 0 || nameBytes > 64) {
      throw new RangeError(
        `Cannot encode GGUF tensor "${t.name}": names must have 1 to 64 bytes: it has ${nameBytes}`,
      );
    }
    if (names.has(t.name)) {
      throw new RangeError(`Cannot encode GGUF tensor "${t.name}": the name appears twice`);
    }
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4) {
      throw new RangeError(
        `Cannot encode GGUF tensor "${t.name}": expected 1 to 4 dimensions: got [${t.shape}]`,
      );
    }
    let count = 1;
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 1) {
        throw new RangeError(
          `Cannot encode GGUF tensor "${t.name}": dimensions must be positive integers: got ` +
            `[${t.shape}]`,
        );
      }
      count *= d;
    }
    const type = t.type ?? "f32";
    if (!(type in GGML_TYPE_CODES)) {
      throw new RangeError(
        `Cannot encode GGUF tensor "${t.name}": type must be "f32" or "f16": current value is ` +
          `${JSON.stringify(type)}`,
      );
    }
    header.scalar("string", t.name);
    header.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) header.u64(t.shape[i]);
    header.u32(GGML_TYPE_CODES[type]);
    header.u64(offset);
    layouts.push({ name: t.name, shape: t.shape, type, count, offset });
    offset += count * GGML_TYPE_SIZE[type];
    offset += padding(offset, alignment);
  }
  header.pad(alignment);
  return { head: header.take(), layouts, dataBytes: offset };
}

function checkData(layout: TensorLayout, data: unknown): asserts data is Float32Array {
  if (!(data instanceof Float32Array) || data.length !== layout.count) {
    const got = data instanceof Float32Array
      ? data.length
      : (data as { length?: number } | undefined)?.length ?? "none";
    throw new TypeError(
      `Cannot encode GGUF tensor "${layout.name}": expected ${layout.count} float32 values for ` +
        `shape [${layout.shape}]: got ${got}`,
    );
  }
}

function overflow(layout: TensorLayout, data: Float32Array, index: number): RangeError {
  return new RangeError(
    `Cannot encode GGUF tensor "${layout.name}" as F16: value ${data[index]} at index ${index} ` +
      `is not finite or exceeds the float16 range (|x| < 65520 rounds to at most 65504)`,
  );
}

/**
 * Encodes a GGUF v3 file in memory: metadata in insertion order, then the tensors in order, each
 * at an offset that is a multiple of the alignment. The whole file is one array: for large
 * models use {@linkcode writeGguf}, which streams it to disk and writes the same bytes.
 *
 * @param metadata The key-value pairs (`general.architecture` first, by convention).
 * @param tensors The tensors, each F32 unless its `type` is `"f16"`.
 * @param options The alignment.
 * @returns The file's bytes.
 * @throws {TypeError} When a metadata value does not fit its declared type (naming the key), or
 *   a tensor's data length differs from its shape's product (naming the tensor).
 * @throws {RangeError} When a tensor name repeats, is empty or longer than 64 bytes, the
 *   alignment is not a power of two, or an F16 tensor holds a value that is not finite or
 *   overflows float16 (naming the tensor and the index).
 *
 * @example A file with one tensor
 * ```ts
 * import { encodeGguf } from "./gguf_writer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const bytes = encodeGguf({ "general.architecture": { type: "string", value: "qwen3" } }, [
 *   { name: "output_norm.weight", shape: [4], data: new Float32Array([1, 1, 1, 1]) },
 * ]);
 * strictEqual(new TextDecoder().decode(bytes.subarray(0, 4)), "GGUF");
 * strictEqual(bytes.length % 32, 0);
 * ```
 */
export function encodeGguf(
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly GgufTensor[],
  options: EncodeGgufOptions = {},
): Uint8Array {
  const { head, layouts, dataBytes } = encodeHeader(metadata, tensors, options.alignment ?? 32);
  layouts.forEach((layout, i) => checkData(layout, tensors[i].data));
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  layouts.forEach((layout, i) => {
    const data = tensors[i].data;
    const at = head.length + layout.offset;
    const view = new DataView(out.buffer, at, data.length * GGML_TYPE_SIZE[layout.type]);
    if (layout.type === "f32") {
      for (let j = 0; j < data.length; j++) view.setFloat32(j * 4, data[j], true);
    } else {
      for (let j = 0; j < data.length; j++) {
        view.setFloat16(j * 2, data[j], true);
        if (!Number.isFinite(view.getFloat16(j * 2, true))) throw overflow(layout, data, j);
      }
    }
  });
  return out;
}

/**
 * One tensor for {@linkcode writeGguf}: its data given as an array or as a function that
 * produces it when the writer reaches the tensor (so only one tensor need be in memory).
 *
 * @example A tensor computed when it is written
 * ```ts
 * import type { GgufLazyTensor } from "./gguf_writer.ts";
 *
 * const tensor: GgufLazyTensor = {
 *   name: "blk.0.attn_q.weight", shape: [64, 64], type: "f16",
 *   data: () => new Float32Array(64 * 64),
 * };
 * ```
 */
export interface GgufLazyTensor {
  /** The tensor's name (at most 64 bytes). */
  name: string;
  /** The shape, outermost dimension first (PyTorch order); written reversed as GGUF's `ne`. */
  shape: readonly number[];
  /** How it is stored: `"f32"` (default) or `"f16"` (rounded to nearest, ties to even). */
  type?: GgufTensorType;
  /**
   * Row-major float32 values, or a function returning them, called once, in tensor order, after
   * every earlier tensor has been written; the writer keeps no reference after writing them.
   */
  data: Float32Array | (() => Float32Array | Promise<Float32Array>);
}

/**
 * Options of {@linkcode writeGguf}.
 *
 * @example Usage
 * ```ts
 * import type { WriteGgufOptions } from "./gguf_writer.ts";
 *
 * const options: WriteGgufOptions = { alignment: 32, chunkElements: 1 << 20 };
 * ```
 */
export interface WriteGgufOptions extends EncodeGgufOptions {
  /**
   * Values converted and written at a time (default 4 Mi: a 8 MiB float16 buffer); smaller
   * holds less, larger makes fewer writes.
   */
  chunkElements?: number;
}

/**
 * What {@linkcode writeGguf} wrote.
 *
 * @example Usage
 * ```ts
 * import type { WriteGgufResult } from "./gguf_writer.ts";
 *
 * const result: WriteGgufResult = { path: "arith.gguf", bytes: 414_720 };
 * ```
 */
export interface WriteGgufResult {
  /** The file. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
}

const CHUNK_ELEMENTS = 1 << 22;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Writes a GGUF v3 file to disk as a stream, with the same bytes as {@linkcode encodeGguf}: the
 * header, metadata and tensor infos first (offsets computed from the shapes, types and the
 * alignment), then each tensor's data in turn, fetched only when its turn comes, written in
 * chunks (F16 converted chunk by chunk), and dropped once written. Memory beyond the metadata is
 * one tensor's float32 values (what its `data` returns) plus one chunk.
 *
 * The file is written to a temporary file beside `path`, flushed, then renamed over `path`: on
 * any failure (a tensor's data of the wrong length, an F16 overflow, a full disk) the temporary
 * file is removed and `path` is left as it was.
 *
 * @param path The file to write (replaced if it exists).
 * @param metadata The key-value pairs.
 * @param tensors The tensors, each F32 unless its `type` is `"f16"`.
 * @param options The alignment and the chunk size.
 * @returns The path and the file's size.
 * @throws {TypeError} As {@linkcode encodeGguf}, and when a tensor's data function fails (with
 *   what it threw).
 * @throws {RangeError} As {@linkcode encodeGguf}; also when the host is big-endian.
 * @throws {Deno.errors.NotFound} When the directory of `path` does not exist.
 *
 * @example Stream two tensors, one of them F16
 * ```ts
 * import { writeGguf } from "./gguf_writer.ts";
 * import { readGguf } from "./gguf_reader.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const { path } = await writeGguf(`${dir}/m.gguf`, {}, [
 *   { name: "w", shape: [2, 2], type: "f16", data: () => new Float32Array([1, 0.1, -2, 3]) },
 *   { name: "n", shape: [2], data: new Float32Array([0.1, 1]) },
 * ]);
 * const file = readGguf(await Deno.readFile(path));
 * deepStrictEqual([...file.tensors[0].data!], [1, Math.f16round(0.1), -2, 3]);
 * deepStrictEqual([...file.tensors[1].data!], [Math.fround(0.1), 1]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeGguf(
  path: string,
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly GgufLazyTensor[],
  options: WriteGgufOptions = {},
): Promise<WriteGgufResult> {
  if (!LITTLE_ENDIAN) {
    throw new RangeError(`Cannot write GGUF "${path}": the host is big-endian`);
  }
  const chunk = options.chunkElements ?? CHUNK_ELEMENTS;
  if (!Number.isSafeInteger(chunk) || chunk < 1) {
    throw new RangeError(
      `Cannot write GGUF "${path}": option "chunkElements" must be a positive integer: current ` +
        `value is ${chunk}`,
    );
  }
  const alignment = options.alignment ?? 32;
  const { head, layouts, dataBytes } = encodeHeader(metadata, tensors, alignment);
  const createError = (error: unknown, temp: string) =>
    new (error instanceof Error ? error.constructor as ErrorConstructor : Error)(
      `Cannot write GGUF "${path}": cannot create "${temp}": ${String(error)}`,
      { cause: error },
    );
  await writeFileAtomicStreamed(path, async (file) => {
    await writeAll(file, head);
    const zeros = new Uint8Array(alignment);
    let f16: Float16Array | null = null;
    for (const [i, layout] of layouts.entries()) {
      const source = tensors[i].data;
      let data: Float32Array | null = typeof source === "function" ? await source() : source;
      checkData(layout, data);
      for (let begin = 0; begin < data.length; begin += chunk) {
        const end = Math.min(data.length, begin + chunk);
        if (layout.type === "f32") {
          const part = data.subarray(begin, end);
          await writeAll(file, new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
          continue;
        }
        if (f16 === null || f16.length < end - begin) f16 = new Float16Array(end - begin);
        const part = f16.subarray(0, end - begin);
        part.set(data.subarray(begin, end));
        const bits = new Uint16Array(part.buffer, 0, part.length);
        for (let j = 0; j < bits.length; j++) {
          if ((bits[j] & 0x7c00) === 0x7c00) throw overflow(layout, data, begin + j);
        }
        await writeAll(file, new Uint8Array(part.buffer, 0, part.byteLength));
      }
      data = null;
      const size = layout.count * GGML_TYPE_SIZE[layout.type];
      await writeAll(file, zeros.subarray(0, padding(size, alignment)));
    }
  }, { createError });
  return { path, bytes: head.length + dataBytes };
}
