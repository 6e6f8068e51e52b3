import assert from "node:assert/strict";
import {
  openSafetensors,
  readTensorF16,
  readTensorF32,
  readTensorI32,
  type SafetensorsFile,
  writeSafetensors,
} from "./safetensors.ts";
import { readQwen3Config } from "../model/config.ts";
import {
  expectError,
  fixtureDir,
  rawSafetensors,
  TINY_FIXTURE,
  withTempDir,
} from "./test_utils.ts";

const config = await readQwen3Config(fixtureDir());

async function withFile<T>(path: string, fn: (file: SafetensorsFile) => T): Promise<T> {
  const file = await openSafetensors(path);
  try {
    return fn(file);
  } finally {
    file.close();
  }
}

function bitsOf(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

function f32FromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

/** Writes a one-tensor file with raw data of the given dtype and returns its path. */
async function writeRaw(dir: string, dtype: string, shape: number[], data: Uint8Array) {
  const path = `${dir}/${dtype}.safetensors`;
  await Deno.writeFile(
    path,
    rawSafetensors({ t: { dtype, shape, data_offsets: [0, data.length] } }, data),
  );
  return path;
}

Deno.test("openSafetensors() reads the fixture header", async () => {
  const { vocabSize: V, hiddenSize: H, numHiddenLayers: L, tieWordEmbeddings } = config;
  await withFile(`${fixtureDir()}/model.safetensors`, (file) => {
    // Embeddings, final norm, 11 tensors per layer and, when untied, the LM head.
    assert.equal(file.tensors.size, 2 + 11 * L + (tieWordEmbeddings ? 0 : 1));
    const embed = file.tensors.get("model.embed_tokens.weight")!;
    assert.deepEqual(embed.shape, [V, H]);
    assert.equal(
      embed.dataOffsets[1] - embed.dataOffsets[0],
      V * H * (embed.dtype === "F32" ? 4 : 2),
    );
    assert.equal(readTensorF32(file, "model.norm.weight", { expectedShape: [H] }).length, H);
  });
});

Deno.test("openSafetensors() reads the qwen3-tiny header and values", async () => {
  await withFile(`${TINY_FIXTURE}/model.safetensors`, (file) => {
    assert.equal(file.tensors.size, 24);
    assert.deepEqual(file.metadata, { format: "pt" });
    const embed = file.tensors.get("model.embed_tokens.weight");
    assert.deepEqual(embed, {
      name: "model.embed_tokens.weight",
      dtype: "F32",
      shape: [384, 64],
      dataOffsets: [0, 98304],
    });
    const norm = readTensorF32(file, "model.norm.weight", { expectedShape: [64] });
    assert.equal(norm.length, 64);
    // Values read independently with Python's struct module.
    assert.deepEqual(
      [...norm.subarray(0, 4)],
      [1.109890103340149, 0.6667823195457458, 1.0115209817886353, 1.1158323287963867],
    );
  });
});

Deno.test("openSafetensors() rejects a file shorter than the length field", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/short.safetensors`;
    await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, "3 bytes"],
    });
  });
});

Deno.test("openSafetensors() rejects a truncated header", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/truncated.safetensors`;
    const full = rawSafetensors({ t: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
    await Deno.writeFile(path, full.subarray(0, full.length - 5));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, "header length"],
    });
    // A length field from another format: absurdly large.
    await Deno.writeFile(path, rawSafetensors("{}", undefined, { headerLength: 1n << 62n }));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, "header length"],
    });
  });
});

Deno.test("openSafetensors() rejects a header of invalid JSON", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/corrupt.safetensors`;
    await Deno.writeFile(path, rawSafetensors('{"t": {"dtype": "F32", '));
    await expectError(() => openSafetensors(path), {
      type: SyntaxError,
      includes: [`"${path}"`, "not valid JSON"],
    });
    await Deno.writeFile(path, rawSafetensors("[1, 2]"));
    await expectError(() => openSafetensors(path), {
      type: TypeError,
      includes: [`"${path}"`, "JSON object"],
    });
    const bytes = rawSafetensors('{"a": 1}');
    bytes[10] = 0xff; // invalid UTF-8 inside the header
    await Deno.writeFile(path, bytes);
    await expectError(() => openSafetensors(path), {
      type: SyntaxError,
      includes: [`"${path}"`],
    });
  });
});

Deno.test("openSafetensors() rejects offsets out of range", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/range.safetensors`;
    const header = {
      ok: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      "bad.weight": { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    };
    await Deno.writeFile(path, rawSafetensors(header, new Uint8Array(12)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"bad.weight"', "[8,16]", "12 bytes"],
    });
    const reversed = { "bad.weight": { dtype: "F32", shape: [0], data_offsets: [8, 4] } };
    await Deno.writeFile(path, rawSafetensors(reversed, new Uint8Array(12)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"bad.weight"'],
    });
  });
});

Deno.test("openSafetensors() rejects a size mismatch", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/size.safetensors`;
    const header = { "w.weight": { dtype: "BF16", shape: [2, 3], data_offsets: [0, 24] } };
    await Deno.writeFile(path, rawSafetensors(header, new Uint8Array(24)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"w.weight"', "24 bytes", "12 bytes", "[2, 3]", '"BF16"'],
    });
  });
});

Deno.test("openSafetensors() rejects overlapping tensors", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/overlap.safetensors`;
    const header = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      empty: { dtype: "F32", shape: [0], data_offsets: [4, 4] },
    };
    await Deno.writeFile(path, rawSafetensors(header, new Uint8Array(12)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"a"', '"b"', "overlaps"],
    });
  });
});

Deno.test("openSafetensors() rejects gaps between tensors and bytes after the last one, as the safetensors crate does", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/holes.safetensors`;
    const gap = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [12, 20] },
    };
    await Deno.writeFile(path, rawSafetensors(gap, new Uint8Array(20)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"b"', "starts at byte 12", '"a"', "ends at byte 8"],
    });
    const late = { a: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
    await Deno.writeFile(path, rawSafetensors(late, new Uint8Array(12)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, '"a"', "starts at byte 4", "must start the data section, at byte 0"],
    });
    const trailing = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    await Deno.writeFile(path, rawSafetensors(trailing, new Uint8Array(11)));
    await expectError(() => openSafetensors(path), {
      type: RangeError,
      includes: [`"${path}"`, "11 bytes", "end at byte 8", "3 bytes"],
    });
    // Contiguous, in any header order, with an empty tensor: fine.
    const ok = {
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      empty: { dtype: "F32", shape: [0], data_offsets: [8, 8] },
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    };
    await Deno.writeFile(path, rawSafetensors(ok, new Uint8Array(12)));
    (await openSafetensors(path)).close();
    // No tensors, no data: fine; no tensors and data: trailing bytes.
    await Deno.writeFile(path, rawSafetensors({}, new Uint8Array(0)));
    (await openSafetensors(path)).close();
    await Deno.writeFile(path, rawSafetensors({}, new Uint8Array(2)));
    await expectError(() => openSafetensors(path), { type: RangeError, includes: ["2 bytes"] });
  });
});

Deno.test("openSafetensors() rejects malformed entries", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/entries.safetensors`;
    const cases: [unknown, string][] = [
      [{ dtype: "Q4", shape: [1], data_offsets: [0, 1] }, '"Q4"'],
      [{ dtype: "F32", shape: [-1], data_offsets: [0, 4] }, '"shape"'],
      [{ dtype: "F32", shape: [1], data_offsets: [0] }, '"data_offsets"'],
      [{ shape: [1], data_offsets: [0, 4] }, '"dtype"'],
      ["x", "object"],
    ];
    for (const [entry, named] of cases) {
      await Deno.writeFile(path, rawSafetensors({ "x.weight": entry }, new Uint8Array(4)));
      await expectError(() => openSafetensors(path), {
        type: TypeError,
        includes: [`"${path}"`, '"x.weight"', named],
      });
    }
    await Deno.writeFile(path, rawSafetensors({ __metadata__: { n: 1 } }));
    await expectError(() => openSafetensors(path), {
      type: TypeError,
      includes: [`"${path}"`, '"__metadata__"', '"n"'],
    });
  });
});

Deno.test("openSafetensors() rejects a missing file naming it", async () => {
  await withTempDir(async (dir) => {
    await expectError(() => openSafetensors(`${dir}/none.safetensors`), {
      type: Deno.errors.NotFound,
      includes: [`"${dir}/none.safetensors"`],
    });
  });
});

Deno.test("readTensorF32() rejects a missing tensor", async () => {
  const path = `${fixtureDir()}/model.safetensors`;
  // A tied checkpoint has no LM head; no checkpoint has a layer past the last.
  const missing = config.tieWordEmbeddings
    ? "lm_head.weight"
    : `model.layers.${config.numHiddenLayers}.input_layernorm.weight`;
  await withFile(path, async (file) => {
    await expectError(() => readTensorF32(file, missing), {
      type: Error,
      includes: [`"${path}"`, `"${missing}"`],
    });
    await expectError(() => file.readBytes("nope"), { type: Error, includes: [`"${path}"`] });
  });
});

Deno.test("readTensorF32() rejects a wrong shape", async () => {
  const path = `${fixtureDir()}/model.safetensors`;
  const { hiddenSize: H, numAttentionHeads: NH, numKeyValueHeads: KV, headDim: D } = config;
  await withFile(path, async (file) => {
    await expectError(
      () =>
        readTensorF32(file, "model.layers.0.self_attn.k_proj.weight", {
          expectedShape: [NH * D, H],
        }),
      {
        type: RangeError,
        includes: [
          `"${path}"`,
          '"model.layers.0.self_attn.k_proj.weight"',
          `expected shape [${NH * D}, ${H}]`,
          `actual shape [${KV * D}, ${H}]`,
        ],
      },
    );
    await expectError(() => readTensorF32(file, "model.norm.weight", { expectedShape: [1, H] }), {
      type: RangeError,
      includes: [`[1, ${H}]`, `[${H}]`],
    });
  });
});

Deno.test("readTensorF32() rejects an unsupported dtype", async () => {
  await withTempDir(async (dir) => {
    const path = await writeRaw(dir, "I8", [4], new Uint8Array([1, 2, 3, 4]));
    await withFile(path, async (file) => {
      await expectError(() => readTensorF32(file, "t"), {
        type: TypeError,
        includes: [`"${path}"`, '"t"', '"I8"'],
      });
    });
  });
});

Deno.test("readTensorF32() converts F16 exactly", async () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x8001, -(2 ** -24)],
    [0x0002, 2 ** -23],
    [0x0155, 341 * 2 ** -24],
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3555, 0.333251953125],
    [0x3c00, 1],
    [0x3c01, 1 + 2 ** -10],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  await withTempDir(async (dir) => {
    const raw = new Uint16Array([...cases.map(([h]) => h), 0x7e00, 0xfe01, 0x7c01]);
    const path = await writeRaw(dir, "F16", [raw.length], new Uint8Array(raw.buffer));
    const got = await withFile(path, (file) => readTensorF32(file, "t"));
    for (const [i, [h, expected]] of cases.entries()) {
      assert.ok(Object.is(got[i], expected), `0x${h.toString(16)}: ${got[i]} !== ${expected}`);
    }
    // NaNs keep their sign and payload: quiet, negative with payload 1, signalling.
    assert.deepEqual(bitsOf(got.subarray(cases.length)), [0x7fc00000, 0xffc02000, 0x7f802000]);
  });
});

Deno.test("readTensorF32() converts BF16 exactly", async () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -133], // smallest subnormal
    [0x007f, 127 * 2 ** -133], // largest subnormal
    [0x0080, 2 ** -126],
    [0x3f80, 1],
    [0x4049, 3.140625],
    [0xbf81, -(1 + 2 ** -7)],
    [0x7f7f, 3.3895313892515355e38],
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ];
  await withTempDir(async (dir) => {
    const raw = new Uint16Array([...cases.map(([h]) => h), 0x7fc0, 0xff81]);
    const path = await writeRaw(dir, "BF16", [raw.length], new Uint8Array(raw.buffer));
    const got = await withFile(path, (file) => readTensorF32(file, "t"));
    for (const [i, [h, expected]] of cases.entries()) {
      assert.ok(Object.is(got[i], expected), `0x${h.toString(16)}: ${got[i]} !== ${expected}`);
    }
    assert.deepEqual(bitsOf(got.subarray(cases.length)), [0x7fc00000, 0xff810000]);
  });
});

/** The value of every f16 bit pattern, exactly, in float64 (independent of any conversion code). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

/**
 * The f16 bits nearest to `v` (ties to the even bit pattern), by search over the 63,490 finite
 * halves in float64: an independent reference for the conversions.
 */
const nearestHalf = (() => {
  const finite = Array.from({ length: 0x7c00 }, (_, h) => h); // the non-negative finite halves
  return (v: number): number => {
    const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
    const a = Math.abs(v);
    let lo = 0;
    let hi = finite.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (halfValue(finite[mid]) <= a) lo = mid;
      else hi = mid;
    }
    const dLo = a - halfValue(lo);
    const dHi = halfValue(hi) - a;
    const h = dLo < dHi || (dLo === dHi && (lo & 1) === 0) || a <= halfValue(lo) ? lo : hi;
    return sign | h;
  };
})();

/** The pre-existing route to f16: read as float32, then round with `Float16Array`. */
function viaF32(file: SafetensorsFile, name: string): number[] {
  return [...new Uint16Array(Float16Array.from(readTensorF32(file, name)).buffer)];
}

Deno.test("readTensorF16() rounds BF16 to nearest even, bit-identical to float32 then f16", async () => {
  // Every bfloat16 pattern whose f16 rounding is finite (|x| ≤ 65280, the largest bf16 below
  // 65520), twice over so that the tensor spans more than one conversion chunk.
  const finite: number[] = [];
  for (let p = 0; p < 0x10000; p++) if ((p & 0x7fff) <= 0x477f) finite.push(p);
  const bits = new Uint16Array([...finite, ...finite.toReversed()]);
  assert.ok(bits.length > 1 << 16);
  const named: [string, number, number][] = [
    ["+0", 0x0000, 0x0000],
    ["-0", 0x8000, 0x8000],
    ["bf16 subnormal 2^-133 → 0", 0x0001, 0x0000],
    ["2^-26 → 0", 0x3280, 0x0000],
    ["2^-25, a tie between 0 and 2^-24 → even 0", 0x3300, 0x0000],
    ["(1 + 2^-7)·2^-25, just above the tie → 2^-24", 0x3301, 0x0001],
    ["-2^-24, the smallest subnormal half", 0xb380, 0x8001],
    ["1.5·2^-24, a tie between 1 and 2 ulps → even 2", 0x33c0, 0x0002],
    ["2.5·2^-24, a tie between 2 and 3 ulps → even 2", 0x3420, 0x0002],
    ["3.5·2^-24, a tie between 3 and 4 ulps → even 4", 0x3460, 0x0004],
    ["2^-14, the smallest normal half", 0x3880, 0x0400],
    ["1", 0x3f80, 0x3c00],
    ["-3.140625", 0xc049, 0xc248],
    ["65280", 0x477f, 0x7bf8],
  ];
  await withTempDir(async (dir) => {
    const path = await writeRaw(dir, "BF16", [bits.length], new Uint8Array(bits.buffer));
    await withFile(path, (file) => {
      const got = readTensorF16(file, "t", { expectedShape: [bits.length] });
      assert.deepEqual([...got], viaF32(file, "t"));
      const f32 = readTensorF32(file, "t");
      for (let i = 0; i < bits.length; i += 7) {
        assert.equal(got[i], nearestHalf(f32[i]), `bf16 0x${bits[i].toString(16)}`);
      }
    });
    const raw = new Uint16Array(named.map(([, b]) => b));
    const small = await writeRaw(dir, "BF16", [raw.length], new Uint8Array(raw.buffer));
    const got = await withFile(small, (file) => readTensorF16(file, "t"));
    for (const [i, [what, , half]] of named.entries()) {
      assert.equal(got[i], half, `${what}: 0x${got[i].toString(16)} !== 0x${half.toString(16)}`);
      assert.equal(half, nearestHalf(halfValue(half))); // the expectation itself is a half
    }
  });
});

Deno.test("readTensorF16() refuses a value f16 cannot hold, naming the file, tensor, row, column and value", async () => {
  const cases: [number, RegExp][] = [
    [0x4780, /is 65536, beyond the f16 range \(largest finite half ±65504\)/],
    [0xc7a0, /is -81920, beyond the f16 range/],
    [0x7f80, /is Infinity, not finite/],
    [0x7fc0, /is NaN, not finite/],
  ];
  await withTempDir(async (dir) => {
    for (const [bad, message] of cases) {
      // 3 rows of 30,000: the bad value sits in the second conversion chunk.
      const raw = new Uint16Array(90_000).fill(0x3f80);
      raw[2 * 30_000 + 17] = bad;
      const path = await writeRaw(dir, "BF16", [3, 30_000], new Uint8Array(raw.buffer));
      await withFile(path, (file) => {
        assert.throws(
          () => readTensorF16(file, "t"),
          (e: Error) =>
            e instanceof RangeError &&
            e.message.startsWith(`Cannot read tensor "t" from "${path}" as f16: element 60017 `) &&
            e.message.includes("(row 2, column 17)") && message.test(e.message) &&
            e.message.includes("model.weightDtype: f32"),
        );
      });
    }
    // The same rule for F16 and F32 sources.
    const half = new Uint16Array([0x3c00, 0x7c00]);
    const f16Path = await writeRaw(dir, "F16", [2], new Uint8Array(half.buffer));
    await withFile(f16Path, (file) => {
      assert.throws(() => readTensorF16(file, "t"), /element 1 is Infinity, not finite/);
    });
    const f32 = new Float32Array([65519, 65520]);
    const f32Path = await writeRaw(dir, "F32", [1, 2], new Uint8Array(f32.buffer));
    await withFile(f32Path, (file) => {
      assert.throws(
        () => readTensorF16(file, "t"),
        /element 1 \(row 0, column 1\) is 65520, beyond the f16 range/,
      );
    });
  });
});

Deno.test("readTensorF16() copies F16 and rounds F32 and F64 as float32 then f16 does", async () => {
  await withTempDir(async (dir) => {
    const halves = Uint16Array.from(
      { length: 0x7c00 * 2 },
      (_, i) => (i & 1 ? 0x8000 : 0) | i >> 1,
    );
    const f16Path = await writeRaw(dir, "F16", [halves.length], new Uint8Array(halves.buffer));
    await withFile(f16Path, (file) => assert.deepEqual(readTensorF16(file, "t"), halves));
    const values = Float64Array.from(
      { length: 5000 },
      (_, i) => (i % 2 ? -1 : 1) * 1.37 ** ((i % 97) - 70) * (1 + i / 9973),
    );
    values[0] = 65519;
    values[1] = 2 ** -25;
    const f64Path = await writeRaw(dir, "F64", [values.length], new Uint8Array(values.buffer));
    const f32Values = new Float32Array(values);
    const f32Path = await writeRaw(dir, "F32", [values.length], new Uint8Array(f32Values.buffer));
    for (const path of [f64Path, f32Path]) {
      await withFile(path, (file) => {
        const got = readTensorF16(file, "t");
        assert.deepEqual([...got], viaF32(file, "t"));
        for (let i = 0; i < got.length; i++) assert.equal(got[i], nearestHalf(f32Values[i]));
        assert.deepEqual([got[0], got[1]], [0x7bff, 0x0000]);
      });
    }
    const ints = await writeRaw(dir, "I32", [1], new Uint8Array(4));
    await withFile(ints, (file) => {
      assert.throws(() => readTensorF16(file, "t"), /as f16: unsupported dtype "I32"/);
    });
  });
});

Deno.test("readTensorF16() reads every fixture tensor as float32 then f16 does", async () => {
  await withFile(`${fixtureDir()}/model.safetensors`, (file) => {
    for (const [name, info] of file.tensors) {
      const got = readTensorF16(file, name, { expectedShape: info.shape });
      assert.deepEqual([...got], viaF32(file, name), name);
    }
  });
});

Deno.test("readTensorF32() converts F64 to the nearest float32", async () => {
  await withTempDir(async (dir) => {
    const values = new Float64Array([0.1, -1e-40, 1e39, 2 ** -149, Number.NaN, 3]);
    const path = await writeRaw(dir, "F64", [2, 3], new Uint8Array(values.buffer));
    const got = await withFile(path, (file) => readTensorF32(file, "t", { expectedShape: [2, 3] }));
    assert.deepEqual(got, new Float32Array(values));
  });
});

Deno.test("readTensorF32() reads tensors at unaligned offsets", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/unaligned.safetensors`;
    const data = new Uint8Array(1 + 8);
    data[0] = 0x3c; // one-byte U8 tensor first, so "f" starts at offset 1
    new DataView(data.buffer).setFloat32(1, 1.5, true);
    new DataView(data.buffer).setFloat32(5, -2.25, true);
    const header = {
      b: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
      f: { dtype: "F32", shape: [2], data_offsets: [1, 9] },
    };
    await Deno.writeFile(path, rawSafetensors(` ${JSON.stringify(header)}`, data));
    await withFile(path, (file) => {
      assert.deepEqual(readTensorF32(file, "f"), new Float32Array([1.5, -2.25]));
      assert.deepEqual(readTensorI32(file, "b"), new Int32Array([0x3c]));
    });
  });
});

Deno.test("readTensorI32() reads I32 and I64 tensors", async () => {
  await withFile(`${fixtureDir()}/reference.safetensors`, (file) => {
    // input_ids is [batch, seqLen]; logits is [batch, seqLen, vocab].
    const [B, T, V] = file.tensors.get("logits")!.shape;
    assert.equal(V, config.vocabSize);
    const ids = readTensorI32(file, "input_ids", { expectedShape: [B, T] });
    assert.equal(ids.length, B * T);
    assert.ok(ids.every((id) => id >= 0 && id < V));
  });
  await withTempDir(async (dir) => {
    const wide = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]);
    const path = await writeRaw(dir, "I64", [4], new Uint8Array(wide.buffer));
    await withFile(path, (file) => {
      assert.deepEqual(readTensorI32(file, "t"), new Int32Array([0, -1, 2147483647, -2147483648]));
    });
    const big = new BigInt64Array([1n, 2147483648n]);
    const bigPath = await writeRaw(dir, "I64", [2], new Uint8Array(big.buffer));
    await withFile(bigPath, async (file) => {
      await expectError(() => readTensorI32(file, "t"), {
        type: RangeError,
        includes: [`"${bigPath}"`, '"t"', "2147483648"],
      });
    });
  });
});

Deno.test("readTensorI32() rejects a float tensor", async () => {
  const path = `${fixtureDir()}/model.safetensors`;
  await withFile(path, async (file) => {
    const { dtype } = file.tensors.get("model.norm.weight")!;
    assert.ok(dtype === "F32" || dtype === "BF16" || dtype === "F16", dtype);
    await expectError(() => readTensorI32(file, "model.norm.weight"), {
      type: TypeError,
      includes: [`"${path}"`, '"model.norm.weight"', `"${dtype}"`],
    });
  });
});

Deno.test("writeSafetensors() round-trips F32, I32, F16 and BF16 bit-exactly", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/round.safetensors`;
    const f32 = f32FromBits([
      0x00000000,
      0x80000000,
      0x00000001,
      0x3f800000,
      0x7f800000,
      0x7fc00001,
    ]);
    const i32 = new Int32Array([0, -1, 2147483647, -2147483648, 42, 7]);
    const f16 = new Uint16Array([0x0000, 0x8000, 0x0001, 0x03ff, 0x3c00, 0x7bff, 0xfc00, 0x7e01]);
    const bf16 = new Uint16Array([0x0000, 0x8001, 0x3f80, 0x7f7f, 0xff80, 0x7fc1]);
    await writeSafetensors(path, {
      "z.f32": { dtype: "F32", shape: [2, 3], data: f32 },
      "a.i32": { dtype: "I32", shape: [6], data: i32 },
      "m.f16": { dtype: "F16", shape: [2, 2, 2], data: f16 },
      "b.bf16": { dtype: "BF16", shape: [3, 2], data: bf16 },
      "empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
      "scalar": { dtype: "F32", shape: [], data: new Float32Array([2.5]) },
    }, { metadata: { format: "pt", note: "round trip" } });
    await withFile(path, (file) => {
      assert.deepEqual(file.metadata, { format: "pt", note: "round trip" });
      assert.deepEqual(
        bitsOf(readTensorF32(file, "z.f32", { expectedShape: [2, 3] })),
        bitsOf(f32),
      );
      assert.deepEqual(readTensorI32(file, "a.i32"), i32);
      assert.deepEqual(new Uint16Array(file.readBytes("m.f16").buffer), f16);
      assert.deepEqual(new Uint16Array(file.readBytes("b.bf16").buffer), bf16);
      assert.deepEqual(
        readTensorF32(file, "empty", { expectedShape: [0, 4] }),
        new Float32Array(0),
      );
      assert.deepEqual(
        readTensorF32(file, "scalar", { expectedShape: [] }),
        new Float32Array([2.5]),
      );
      // Every tensor is aligned to its element size.
      for (const info of file.tensors.values()) {
        const size = info.dtype === "F32" || info.dtype === "I32" ? 4 : 2;
        assert.equal(info.dataOffsets[0] % size, 0, info.name);
      }
    });
    const bytes = await Deno.readFile(path);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLength % 8, 0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    assert.deepEqual(Object.keys(header), [
      "__metadata__",
      "a.i32",
      "b.bf16",
      "empty",
      "m.f16",
      "scalar",
      "z.f32",
    ]);
    // The temporary file is gone.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["round.safetensors"]);
  });
});

Deno.test("writeSafetensors() rounds float32 to F16 and BF16 to nearest even", async () => {
  const f16Cases: [number, number][] = [
    [1, 0x3c00],
    [1 + 2 ** -11, 0x3c00], // tie, rounds to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie, rounds to even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // overflows to infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie, rounds to even (up)
    [1023 * 2 ** -24, 0x03ff],
    [2 ** -14 - 2 ** -26, 0x0400], // rounds up into the normals
    [-0, 0x8000],
    [1e-45, 0x0000],
    [0.1, 0x2e66],
    [-2.5, 0xc100],
    [Number.NaN, 0x7e00],
  ];
  const bf16Cases: [number, number][] = [
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // tie, rounds to even
    [1 + 3 * 2 ** -8, 0x3f82], // tie, rounds to even (up)
    [Math.PI, 0x4049],
    [0.1, 0x3dcd],
    [3.4028234663852886e38, 0x7f80], // float32 max rounds to infinity
    [-0, 0x8000],
    [2 ** -149, 0x0000],
    [-Infinity, 0xff80],
    [Number.NaN, 0x7fc0],
  ];
  await withTempDir(async (dir) => {
    const path = `${dir}/rounded.safetensors`;
    await writeSafetensors(path, {
      h: {
        dtype: "F16",
        shape: [f16Cases.length],
        data: new Float32Array(f16Cases.map((c) => c[0])),
      },
      b: {
        dtype: "BF16",
        shape: [bf16Cases.length],
        data: new Float32Array(bf16Cases.map((c) => c[0])),
      },
    });
    await withFile(path, (file) => {
      const h = new Uint16Array(file.readBytes("h").buffer);
      const b = new Uint16Array(file.readBytes("b").buffer);
      for (const [i, [x, expected]] of f16Cases.entries()) {
        assert.equal(h[i], expected, `F16 of ${x}: 0x${h[i].toString(16)}`);
      }
      for (const [i, [x, expected]] of bf16Cases.entries()) {
        assert.equal(b[i], expected, `BF16 of ${x}: 0x${b[i].toString(16)}`);
      }
    });
  });
});

Deno.test("writeSafetensors() F16 encoding round-trips every finite half exactly", async () => {
  await withTempDir(async (dir) => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const path = `${dir}/all.safetensors`;
    await writeSafetensors(path, { all: { dtype: "F16", shape: [65536], data: all } });
    const decoded = await withFile(path, (file) => readTensorF32(file, "all"));
    await writeSafetensors(path, { again: { dtype: "F16", shape: [65536], data: decoded } });
    const again = await withFile(path, (file) => new Uint16Array(file.readBytes("again").buffer));
    for (let i = 0; i < 65536; i++) {
      const isNan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!isNan) assert.equal(again[i], i, `0x${i.toString(16)}`);
      else assert.equal(again[i] | 0x200, i | 0x200, `NaN 0x${i.toString(16)} stays NaN`);
    }
  });
});

Deno.test("writeSafetensors() replaces a file atomically and validates first", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, { a: { dtype: "F32", shape: [1], data: new Float32Array([1]) } });
    await writeSafetensors(path, { b: { dtype: "F32", shape: [1], data: new Float32Array([2]) } });
    await withFile(path, (file) => assert.deepEqual([...file.tensors.keys()], ["b"]));

    await expectError(
      () =>
        writeSafetensors(path, {
          "x.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array(3) },
        }),
      { type: RangeError, includes: [`"${path}"`, '"x.weight"', "[2, 2]"] },
    );
    await expectError(
      () =>
        writeSafetensors(path, {
          "x.weight": { dtype: "I32", shape: [1], data: new Float32Array(1) },
        }),
      { type: TypeError, includes: [`"${path}"`, '"x.weight"', "Int32Array"] },
    );
    await expectError(
      () =>
        writeSafetensors(path, {
          "x.weight": { dtype: "I8" as "I32", shape: [1], data: new Int32Array(1) },
        }),
      { type: TypeError, includes: [`"${path}"`, '"x.weight"', '"I8"'] },
    );
    // The failed writes left the previous file and no temporary files.
    await withFile(
      path,
      (file) => assert.deepEqual(readTensorF32(file, "b"), new Float32Array([2])),
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["w.safetensors"]);
  });
});

Deno.test("SafetensorsFile.readBytes() fails after close()", async () => {
  const path = `${fixtureDir()}/model.safetensors`;
  const file = await openSafetensors(path);
  file.close();
  file.close();
  await expectError(() => file.readBytes("model.norm.weight"), {
    type: Error,
    includes: [`"${path}"`, '"model.norm.weight"', "closed"],
  });
});
