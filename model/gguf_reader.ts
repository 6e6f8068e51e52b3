/**
 * Reading a GGUF v3 file (ggml's `docs/gguf.md`): its metadata and tensor infos, and the data of
 * F32 and F16 tensors (F16 decoded exactly to float32). Enough to check what
 * {@linkcode encodeGguf} and {@linkcode writeGguf} wrote and what an exported model holds;
 * quantised tensors are listed with their type code but not decoded. The whole file is read into
 * memory: meant for checks and small models.
 *
 * @module
 */
import {
  GGUF_TYPE_CODES,
  type GgufScalar,
  type GgufScalarType,
  type GgufValue,
} from "./gguf_writer.ts";

/**
 * One tensor of a read GGUF file.
 *
 * @example Usage
 * ```ts
 * import type { GgufTensorInfo } from "./gguf_reader.ts";
 *
 * const info: GgufTensorInfo = {
 *   name: "output_norm.weight", shape: [64], ggmlType: 0, offset: 0, data: new Float32Array(64),
 * };
 * ```
 */
export interface GgufTensorInfo {
  /** The tensor's name. */
  name: string;
  /** The shape, outermost dimension first (GGUF's `ne` reversed). */
  shape: number[];
  /** The `ggml_type` code (0 = F32, 1 = F16, …). */
  ggmlType: number;
  /** Offset of the data from the start of the data section, in bytes. */
  offset: number;
  /** The values of F32 and F16 tensors as float32 (a copy); `null` for other types. */
  data: Float32Array | null;
}

/**
 * A read GGUF file.
 *
 * @example Usage
 * ```ts
 * import type { GgufFile } from "./gguf_reader.ts";
 *
 * const file: GgufFile = { version: 3, alignment: 32, metadata: new Map(), tensors: [] };
 * ```
 */
export interface GgufFile {
  /** The format version (3). */
  version: number;
  /** The data alignment (`general.alignment`, default 32). */
  alignment: number;
  /** The metadata, in file order. */
  metadata: Map<string, GgufValue>;
  /** The tensors, in file order. */
  tensors: GgufTensorInfo[];
}

const TYPE_BY_CODE = new Map<number, GgufScalarType | "array">(
  Object.entries(GGUF_TYPE_CODES).map(([k, v]) => [v, k as GgufScalarType | "array"]),
);

/** The value of IEEE binary16 bits (sign, 5 exponent bits with bias 15, 10 mantissa bits). */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (0x400 + mantissa) * 2 ** (exponent - 25);
}

/**
 * Parses a GGUF v3 file.
 *
 * @param bytes The file's bytes.
 * @param source What to call the file in errors (a path); default `"GGUF file"`.
 * @returns Metadata, tensor infos and the data of F32 and F16 tensors.
 * @throws {SyntaxError} When the magic or version is wrong, a value type is unknown (naming the
 *   key), the file ends early, or a tensor's data lies outside the file (naming the tensor).
 *
 * @example Read back what encodeGguf wrote
 * ```ts
 * import { encodeGguf } from "./gguf_writer.ts";
 * import { readGguf } from "./gguf_reader.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const bytes = encodeGguf({ "qwen3.block_count": { type: "u32", value: 2 } }, [
 *   { name: "w", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
 * ]);
 * const file = readGguf(bytes);
 * deepStrictEqual(file.metadata.get("qwen3.block_count"), { type: "u32", value: 2 });
 * deepStrictEqual(file.tensors[0].shape, [2, 3]);
 * deepStrictEqual([...file.tensors[0].data!], [1, 2, 3, 4, 5, 6]);
 * ```
 */
export function readGguf(bytes: Uint8Array, source = "GGUF file"): GgufFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  let where = "the header";
  const fail = (what: string): never => {
    throw new SyntaxError(`Cannot read ${source}: ${where}: ${what}`);
  };
  const need = (n: number) => {
    if (at + n > bytes.length) fail(`the file ends at byte ${bytes.length}, before byte ${at + n}`);
  };
  const u32 = () => (need(4), at += 4, view.getUint32(at - 4, true));
  const u64 = () => {
    need(8);
    at += 8;
    const v = view.getBigUint64(at - 8, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a count or size is too large: ${v}`);
    return Number(v);
  };
  const str = () => {
    const n = u64();
    need(n);
    at += n;
    try {
      return decoder.decode(bytes.subarray(at - n, at));
    } catch {
      return fail(`a string is not valid UTF-8`);
    }
  };
  const scalar = (type: GgufScalarType): GgufScalar => {
    switch (type) {
      case "u8":
        return (need(1), at += 1, view.getUint8(at - 1));
      case "i8":
        return (need(1), at += 1, view.getInt8(at - 1));
      case "u16":
        return (need(2), at += 2, view.getUint16(at - 2, true));
      case "i16":
        return (need(2), at += 2, view.getInt16(at - 2, true));
      case "u32":
        return u32();
      case "i32":
        return (need(4), at += 4, view.getInt32(at - 4, true));
      case "f32":
        return (need(4), at += 4, view.getFloat32(at - 4, true));
      case "f64":
        return (need(8), at += 8, view.getFloat64(at - 8, true));
      case "bool":
        return (need(1), at += 1, view.getUint8(at - 1) !== 0);
      case "u64":
        return (need(8), at += 8, view.getBigUint64(at - 8, true));
      case "i64":
        return (need(8), at += 8, view.getBigInt64(at - 8, true));
      case "string":
        return str();
    }
  };
  need(8);
  if (decoder.decode(bytes.subarray(0, 4)) !== "GGUF") {
    fail(
      `expected the magic "GGUF": got ${
        JSON.stringify(String.fromCharCode(...bytes.subarray(0, 4)))
      }`,
    );
  }
  at = 4;
  const version = u32();
  if (version !== 3) fail(`expected version 3: got ${version}`);
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    where = `metadata entry ${i}`;
    const key = str();
    where = `metadata key "${key}"`;
    const type = TYPE_BY_CODE.get(u32());
    if (type === undefined) fail(`unknown value type code ${view.getUint32(at - 4, true)}`);
    if (type === "array") {
      const itemType = TYPE_BY_CODE.get(u32());
      if (itemType === undefined || itemType === "array") {
        fail(`unsupported array item type code ${view.getUint32(at - 4, true)}`);
      }
      const n = u64();
      const value: GgufScalar[] = [];
      for (let j = 0; j < n; j++) value.push(scalar(itemType as GgufScalarType));
      metadata.set(key, { type: "array", itemType: itemType as GgufScalarType, value });
    } else metadata.set(key, { type: type!, value: scalar(type!) });
  }
  const alignValue = metadata.get("general.alignment");
  const alignment = alignValue === undefined ? 32 : Number(alignValue.value);
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    where = `tensor info ${i}`;
    const name = str();
    where = `tensor "${name}"`;
    const nDims = u32();
    if (nDims < 1 || nDims > 4) fail(`expected 1 to 4 dimensions: got ${nDims}`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(u64());
    const ggmlType = u32();
    const offset = u64();
    if (offset % alignment !== 0) fail(`offset ${offset} is not a multiple of ${alignment}`);
    tensors.push({ name, shape: ne.reverse(), ggmlType, offset, data: null });
  }
  where = "the data section";
  const dataStart = at + ((alignment - (at % alignment)) % alignment);
  for (const t of tensors) {
    if (t.ggmlType !== 0 && t.ggmlType !== 1) continue;
    where = `tensor "${t.name}"`;
    const count = t.shape.reduce((a, b) => a * b, 1);
    const begin = dataStart + t.offset;
    const [size, kind] = t.ggmlType === 0 ? [4, "float32"] : [2, "float16"];
    if (begin + count * size > bytes.length) {
      fail(`its ${count} ${kind} values at byte ${begin} lie past the end (${bytes.length})`);
    }
    const data = new Float32Array(count);
    if (t.ggmlType === 0) {
      for (let j = 0; j < count; j++) data[j] = view.getFloat32(begin + j * 4, true);
    } else {
      for (let j = 0; j < count; j++) data[j] = halfToNumber(view.getUint16(begin + j * 2, true));
    }
    t.data = data;
  }
  return { version, alignment, metadata, tensors };
}
