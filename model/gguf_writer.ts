/**
 * Encoding a GGUF v3 file (ggml's `docs/gguf.md`): the magic `GGUF`, version 3, the tensor and
 * metadata counts, the metadata key-value pairs, the tensor infos, padding to the alignment, then
 * each tensor's data at an aligned offset. Tensors are float32 (`GGML_TYPE_F32`).
 *
 * Shapes are given PyTorch-style (outermost dimension first, row-major data, as in safetensors);
 * GGUF lists dimensions innermost first (`ne[0]` is the contiguous one), so a `[out, in]` matrix
 * is written as `ne = [in, out]` with the same bytes.
 *
 * @module
 */

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
 * One float32 tensor to write.
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

/**
 * Encodes a GGUF v3 file: metadata in insertion order, then the tensors in order, each at an
 * offset that is a multiple of the alignment.
 *
 * @param metadata The key-value pairs (`general.architecture` first, by convention).
 * @param tensors The float32 tensors.
 * @param options The alignment.
 * @returns The file's bytes.
 * @throws {TypeError} When a metadata value does not fit its declared type (naming the key), or
 *   a tensor's data length differs from its shape's product (naming the tensor).
 * @throws {RangeError} When a tensor name repeats, is empty or longer than 64 bytes, or the
 *   alignment is not a power of two.
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
  const alignment = options.alignment ?? 32;
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(
      `Cannot encode GGUF: alignment must be a power of two: current value is ${alignment}`,
    );
  }
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
  const offsets: number[] = [];
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
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new TypeError(
        `Cannot encode GGUF tensor "${t.name}": expected ${count} float32 values for shape ` +
          `[${t.shape}]: got ${t.data?.length ?? "none"}`,
      );
    }
    header.scalar("string", t.name);
    header.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) header.u64(t.shape[i]);
    header.u32(0); // GGML_TYPE_F32
    header.u64(offset);
    offsets.push(offset);
    offset += count * 4;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  header.pad(alignment);
  const head = header.take();
  const out = new Uint8Array(head.length + offset);
  out.set(head, 0);
  tensors.forEach((t, i) => {
    const at = head.length + offsets[i];
    const view = new DataView(out.buffer, at, t.data.length * 4);
    for (let j = 0; j < t.data.length; j++) view.setFloat32(j * 4, t.data[j], true);
  });
  return out;
}
