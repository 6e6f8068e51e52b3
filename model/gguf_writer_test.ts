// encodeGguf() against two readers: halo's readGguf (round trip of every value type) and, as the
// independent reference, npm @huggingface/gguf@0.4.6 (metadata, tensor infos, data offset);
// writeGguf() (streamed) against encodeGguf() (in memory, element by element), F16 against a
// float64 round-to-nearest-even reference, and what a failed write leaves behind (nothing).
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { gguf as hfGguf } from "@huggingface/gguf";
import {
  encodeGguf,
  type GgufLazyTensor,
  type GgufTensor,
  type GgufValue,
  writeGguf,
} from "./gguf_writer.ts";
import { readGguf } from "./gguf_reader.ts";
import { f16Reference } from "./_gguf_test_utils.ts";

const METADATA: Record<string, GgufValue> = {
  "general.architecture": { type: "string", value: "qwen3" },
  "t.u8": { type: "u8", value: 255 },
  "t.i8": { type: "i8", value: -128 },
  "t.u16": { type: "u16", value: 65535 },
  "t.i16": { type: "i16", value: -32768 },
  "t.u32": { type: "u32", value: 4294967295 },
  "t.i32": { type: "i32", value: -2147483648 },
  "t.f32": { type: "f32", value: 0.5 },
  "t.f64": { type: "f64", value: 1e-300 },
  "t.bool": { type: "bool", value: true },
  "t.u64": { type: "u64", value: 18446744073709551615n },
  "t.i64": { type: "i64", value: -9223372036854775808n },
  "t.string": { type: "string", value: "Ġ<|im_end|>é" },
  "t.strings": { type: "array", itemType: "string", value: ["a", "", "Answer:"] },
  "t.i32s": { type: "array", itemType: "i32", value: [1, -2, 3] },
  "t.empty": { type: "array", itemType: "string", value: [] },
};

function tensors(): GgufTensor[] {
  return [
    { name: "a.weight", shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i - 7.5) },
    { name: "b", shape: [1], data: new Float32Array([Math.PI]) },
    { name: "c.weight", shape: [2, 2, 3], data: Float32Array.from({ length: 12 }, (_, i) => i) },
  ];
}

/** Values around every kind of float16 rounding case, and pseudo-random ones of many scales. */
function f16Cases(): Float32Array {
  const h = 2 ** -11; // half an ulp of 1
  const cases = [
    0,
    -0,
    1,
    -1,
    1 + h,
    1 + 3 * h,
    1 + h + 2 ** -20,
    1 + h - 2 ** -20,
    2 - h / 2,
    65504,
    65519,
    65519.99,
    -65504,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -25,
    2 ** -25 + 2 ** -40,
    2 ** -26,
    1e-8,
    0.1,
    -0.3,
    1 / 3,
    1000.5,
    1001.5,
    2049,
    2051,
    4097,
  ];
  let s = 7;
  for (let i = 0; i < 300; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    cases.push(((s / 2 ** 32) - 0.5) * 2 ** ((i % 40) - 25));
  }
  return Float32Array.from(cases);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("encodeGguf() round-trips every metadata type and the tensors through readGguf()", () => {
  const bytes = encodeGguf(METADATA, tensors());
  const file = readGguf(bytes);
  strictEqual(file.version, 3);
  strictEqual(file.alignment, 32);
  const want = Object.entries(METADATA).map(([k, v]) =>
    v.type === "f32" ? [k, { ...v, value: Math.fround(v.value as number) }] : [k, v]
  );
  deepStrictEqual([...file.metadata.entries()], want);
  deepStrictEqual(file.tensors.map((t) => [t.name, t.shape, t.ggmlType]), [
    ["a.weight", [3, 5], 0],
    ["b", [1], 0],
    ["c.weight", [2, 2, 3], 0],
  ]);
  for (const [i, t] of tensors().entries()) {
    strictEqual(file.tensors[i].offset % 32, 0, t.name);
    deepStrictEqual([...file.tensors[i].data!], [...t.data], t.name);
  }
});

Deno.test("encodeGguf() output reads in @huggingface/gguf: metadata, ne order, offsets, data", async () => {
  const bytes = encodeGguf(METADATA, tensors(), { alignment: 64 });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/t.gguf`;
    await Deno.writeFile(path, bytes);
    const parsed = await hfGguf(path, { allowLocalFile: true });
    const md = parsed.metadata as Record<string, unknown>;
    strictEqual(md.version, 3);
    strictEqual(md["general.architecture"], "qwen3");
    strictEqual(md["general.alignment"], 64); // recorded since it is not the default
    strictEqual(md["t.u32"], 4294967295);
    strictEqual(md["t.i16"], -32768);
    strictEqual(md["t.u64"], 18446744073709551615n);
    strictEqual(md["t.string"], "Ġ<|im_end|>é");
    deepStrictEqual(md["t.strings"], ["a", "", "Answer:"]);
    deepStrictEqual(md["t.i32s"], [1, -2, 3]);
    deepStrictEqual(md["t.empty"], []);
    // GGUF lists dimensions innermost first: a [3, 5] row-major matrix is ne = [5, 3].
    deepStrictEqual(
      parsed.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype]),
      [["a.weight", [5, 3], 0], ["b", [1], 0], ["c.weight", [3, 2, 2], 0]],
    );
    const start = Number(parsed.tensorDataOffset);
    strictEqual(start % 64, 0);
    for (const [i, t] of tensors().entries()) {
      const at = start + Number(parsed.tensorInfos[i].offset);
      strictEqual(at % 64, 0, t.name);
      const view = new DataView(bytes.buffer, bytes.byteOffset + at, t.data.length * 4);
      const got = Array.from({ length: t.data.length }, (_, j) => view.getFloat32(j * 4, true));
      deepStrictEqual(got, [...t.data], t.name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeGguf() names the key or tensor it cannot write", () => {
  throws(
    () => encodeGguf({ "qwen3.block_count": { type: "u32", value: -1 } }, []),
    /key "qwen3\.block_count".*\[0, 4294967295\].*current value is -1/,
  );
  throws(
    () => encodeGguf({ "t.list": { type: "array", itemType: "i32", value: [1, "x"] } }, []),
    /key "t\.list" \(item 1\)/,
  );
  throws(
    () =>
      encodeGguf({}, [{ name: "blk.0.attn_q.weight", shape: [2, 3], data: new Float32Array(5) }]),
    /tensor "blk\.0\.attn_q\.weight": expected 6 float32 values for shape \[2,3\]: got 5/,
  );
  const t = { name: "x", shape: [1], data: new Float32Array(1) };
  throws(() => encodeGguf({}, [t, t]), /tensor "x": the name appears twice/);
  throws(() => encodeGguf({}, [{ ...t, name: "n".repeat(65) }]), /1 to 64 bytes/);
  throws(() => encodeGguf({}, [t], { alignment: 24 }), /power of two: current value is 24/);
  throws(
    () => encodeGguf({}, [{ ...t, type: "f16", data: new Float32Array([-1e5]) }]),
    /tensor "x" as F16: value -100000 at index 0/,
  );
});

Deno.test("readGguf() names where a damaged file goes wrong", () => {
  const bytes = encodeGguf({ "k.v": { type: "string", value: "abc" } }, [
    { name: "w.weight", shape: [16], data: new Float32Array(16) },
  ]);
  throws(
    () => readGguf(bytes.subarray(0, bytes.length - 8), "x.gguf"),
    /x\.gguf: tensor "w\.weight"/,
  );
  const bad = bytes.slice();
  bad[0] = 0x58;
  throws(() => readGguf(bad), /expected the magic "GGUF"/);
  // The value type code of the first key (after magic, version, 2 counts, the key's string).
  const typeAt = 4 + 4 + 8 + 8 + 8 + 3;
  const badType = bytes.slice();
  new DataView(badType.buffer).setUint32(typeAt, 99, true);
  throws(() => readGguf(badType), /metadata key "k\.v": unknown value type code 99/);
  ok(readGguf(bytes).tensors[0].data!.every((v) => v === 0));
});

Deno.test("writeGguf() streams the bytes encodeGguf() builds in memory, F32 and F16, any chunk size", () =>
  withDir(async (dir) => {
    const f16 = f16Cases();
    const list: GgufTensor[] = [
      ...tensors(),
      { name: "h.weight", shape: [f16.length / 4, 4], data: f16, type: "f16" },
      { name: "h1", shape: [3], data: new Float32Array([1, 2, 3]), type: "f16" },
      { name: "z", shape: [5], data: Float32Array.from([1, 2, 3, 4, 5], (x) => x / 7) },
    ];
    for (const alignment of [32, 64, 1]) {
      const want = encodeGguf(METADATA, list, { alignment });
      for (const chunkElements of [1, 7, 1 << 20]) {
        const path = `${dir}/a${alignment}c${chunkElements}.gguf`;
        const lazy: GgufLazyTensor[] = list.map((t, i) => ({
          ...t,
          data: i % 2 ? t.data : () => Promise.resolve(t.data),
        }));
        const result = await writeGguf(path, METADATA, lazy, { alignment, chunkElements });
        const got = await Deno.readFile(path);
        strictEqual(result.bytes, got.length);
        strictEqual(got.length, want.length);
        deepStrictEqual(got, want, `alignment ${alignment}, chunks of ${chunkElements}`);
      }
    }
    deepStrictEqual((await listDir(dir)).filter((n) => n.endsWith(".tmp")), []);
  }));

Deno.test("writeGguf() F16 tensors read back as the float64 round-to-nearest-even of each value", () =>
  withDir(async (dir) => {
    const data = f16Cases();
    const path = `${dir}/h.gguf`;
    await writeGguf(path, {}, [
      { name: "h.weight", shape: [data.length], data, type: "f16" },
      { name: "n", shape: [data.length], data },
    ], { chunkElements: 64 });
    const bytes = await Deno.readFile(path);
    const file = readGguf(bytes);
    deepStrictEqual(file.tensors.map((t) => [t.name, t.ggmlType]), [["h.weight", 1], ["n", 0]]);
    const got = file.tensors[0].data!;
    for (let i = 0; i < data.length; i++) {
      const want = f16Reference(data[i]);
      ok(Object.is(got[i], want), `value ${data[i]}: got ${got[i]}, want ${want}`);
    }
    // Ties go to the even neighbour (1 + 2^-11 → 1, 1 + 3·2^-11 → 1 + 2^-9, 2^-25 → 0,
    // 3·2^-25 → 2^-23), just below 65520 rounds to 65504.
    deepStrictEqual([got[4], got[5], got[15], got[16], got[9], got[10]], [
      1,
      1 + 2 ** -9,
      0,
      2 ** -23,
      65504,
      65504,
    ]);
    deepStrictEqual(file.tensors[1].data, data);
    // The independent reader sees a ggml F16 tensor (type 1) of 2 bytes per value.
    const parsed = await hfGguf(path, { allowLocalFile: true });
    deepStrictEqual(parsed.tensorInfos.map((t) => Number(t.dtype)), [1, 0]);
    strictEqual(Number(parsed.tensorInfos[1].offset), Math.ceil((data.length * 2) / 32) * 32);
    strictEqual(
      bytes.length,
      Number(parsed.tensorDataOffset) + Number(parsed.tensorInfos[1].offset) +
        Math.ceil((data.length * 4) / 32) * 32,
    );
  }));

Deno.test("writeGguf() leaves no file when a write fails: F16 overflow or NaN, wrong length, no directory", () =>
  withDir(async (dir) => {
    const path = `${dir}/m.gguf`;
    await Deno.writeTextFile(path, "old");
    const ok32 = { name: "a", shape: [2], data: new Float32Array([1, 2]) };
    const cases: [Float32Array, RegExp][] = [
      [new Float32Array([1, 65520]), /tensor "blk\.0\.bad" as F16: value 65520 at index 1/],
      [new Float32Array([NaN, 0]), /tensor "blk\.0\.bad" as F16: value NaN at index 0/],
      [new Float32Array([0, -Infinity]), /value -Infinity at index 1/],
    ];
    for (const [data, message] of cases) {
      await rejects(
        writeGguf(path, {}, [ok32, {
          name: "blk.0.bad",
          shape: [2],
          type: "f16",
          data: () => data,
        }], {
          chunkElements: 1,
        }),
        message,
      );
      deepStrictEqual(await listDir(dir), ["m.gguf"]);
      strictEqual(await Deno.readTextFile(path), "old", "the previous file is untouched");
    }
    await rejects(
      writeGguf(path, {}, [ok32, { name: "w", shape: [3], data: () => new Float32Array(2) }]),
      /tensor "w": expected 3 float32 values for shape \[3\]: got 2/,
    );
    await rejects(
      writeGguf(path, {}, [{
        name: "w",
        shape: [1],
        data: () => Promise.reject(new Error("boom")),
      }]),
      /boom/,
    );
    deepStrictEqual(await listDir(dir), ["m.gguf"]);
    // A directory that does not exist (root ignores permission bits, so no chmod case).
    await rejects(
      writeGguf(`${dir}/missing/m.gguf`, {}, [ok32]),
      (e: Error) =>
        e instanceof Deno.errors.NotFound && e.message.includes(`${dir}/missing/m.gguf`),
    );
    // A "directory" that is a file.
    await rejects(writeGguf(`${path}/x.gguf`, {}, [ok32]), /Cannot write GGUF/);
    deepStrictEqual(await listDir(dir), ["m.gguf"]);
  }));

Deno.test("writeGguf() asks for each tensor once, in order, after the earlier ones are on disk", () =>
  withDir(async (dir) => {
    const path = `${dir}/lazy.gguf`;
    const shapes = [[3, 5], [7], [4, 4], [1], [9, 2]];
    const values = shapes.map((s, i) =>
      Float32Array.from({ length: s[0] * (s[1] ?? 1) }, (_, j) => i + j / 8)
    );
    const calls: number[] = [];
    const sizesOnDisk: number[] = [];
    let inFlight = 0;
    const lazy: GgufLazyTensor[] = shapes.map((shape, i) => ({
      name: `t${i}`,
      shape,
      type: i % 2 ? "f32" : "f16",
      data: async () => {
        inFlight++;
        strictEqual(inFlight, 1, "one tensor at a time");
        calls.push(i);
        const temp = (await listDir(dir)).filter((n) => n.endsWith(".tmp"));
        strictEqual(temp.length, 1);
        sizesOnDisk.push((await Deno.stat(`${dir}/${temp[0]}`)).size);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        return values[i];
      },
    }));
    await writeGguf(path, {}, lazy, { alignment: 16 });
    deepStrictEqual(calls, [0, 1, 2, 3, 4]);
    const parsed = await hfGguf(path, { allowLocalFile: true });
    // When tensor i is asked for, the file holds exactly the header and tensors 0..i-1 (padded).
    deepStrictEqual(
      sizesOnDisk,
      parsed.tensorInfos.map((t) => Number(parsed.tensorDataOffset) + Number(t.offset)),
    );
    const file = readGguf(await Deno.readFile(path));
    for (const [i, t] of file.tensors.entries()) {
      deepStrictEqual(t.data, i % 2 ? values[i] : values[i].map(f16Reference), t.name);
    }
  }));
