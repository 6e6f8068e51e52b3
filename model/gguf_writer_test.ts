// encodeGguf() against two readers: halo's readGguf (round trip of every value type) and, as the
// independent reference, npm @huggingface/gguf@0.4.6 (metadata, tensor infos, data offset).
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { gguf as hfGguf } from "@huggingface/gguf";
import { encodeGguf, type GgufTensor, type GgufValue } from "./gguf_writer.ts";
import { readGguf } from "./gguf_reader.ts";

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
