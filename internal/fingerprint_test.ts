import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  fingerprintDifference,
  fingerprintFile,
  fingerprintFiles,
  fingerprintModel,
  parseFingerprint,
  SAMPLE_BYTES,
  SAMPLE_WINDOWS,
} from "./fingerprint.ts";

/** A fake safetensors file: 8-byte header length, a JSON header, then `data` bytes. */
function safetensors(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

Deno.test("fingerprintFile: whole-file SHA-256 when not sampled, or when small", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = safetensors('{"a":1}', new Uint8Array(1000).map((_, i) => i * 7));
    await Deno.writeFile(join(dir, "x.safetensors"), bytes);
    for (const sampled of [false, true]) {
      const f = await fingerprintFile(join(dir, "x.safetensors"), { sampled });
      assert.deepEqual(f, { bytes: bytes.length, sha256: sha256(bytes), sampled: false });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fingerprintFile: a large file hashes its header and 16 evenly spaced windows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = SAMPLE_WINDOWS * SAMPLE_BYTES * 3 + 12345;
    const data = new Uint8Array(n).map((_, i) => (i * 2654435761) >>> 24);
    const bytes = safetensors('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', data);
    const path = join(dir, "m.safetensors");
    await Deno.writeFile(path, bytes);
    // Independent reference: header + windows at start + floor(i (rest - W) / 15).
    const start = bytes.length - n;
    const hash = createHash("sha256").update(bytes.subarray(0, start));
    const windows: number[] = [];
    for (let i = 0; i < SAMPLE_WINDOWS; i++) {
      const at = start + Math.floor(i * (n - SAMPLE_BYTES) / (SAMPLE_WINDOWS - 1));
      windows.push(at);
      hash.update(bytes.subarray(at, at + SAMPLE_BYTES));
    }
    const f = await fingerprintFile(path, { sampled: true });
    assert.deepEqual(f, { bytes: bytes.length, sha256: hash.digest("hex"), sampled: true });
    assert.equal(windows.at(-1)! + SAMPLE_BYTES, bytes.length); // the last window ends the file

    // A byte inside a window changes it; one in a gap does not (a fingerprint, not a hash).
    const inWindow = bytes.slice();
    inWindow[windows[5] + 10] ^= 1;
    await Deno.writeFile(path, inWindow);
    assert.notEqual((await fingerprintFile(path, { sampled: true })).sha256, f.sha256);
    const inGap = bytes.slice();
    inGap[windows[5] + SAMPLE_BYTES + 10] ^= 1;
    await Deno.writeFile(path, inGap);
    assert.equal((await fingerprintFile(path, { sampled: true })).sha256, f.sha256);
    // The header is always covered.
    const inHeader = bytes.slice();
    inHeader[12] ^= 1;
    await Deno.writeFile(path, inHeader);
    assert.notEqual((await fingerprintFile(path, { sampled: true })).sha256, f.sha256);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fingerprintModel + fingerprintDifference name the changed, added or removed file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "config.json"), '{"a":1}');
    await Deno.writeFile(join(dir, "model.safetensors"), safetensors("{}", new Uint8Array(64)));
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{}"); // not part of it
    const before = await fingerprintModel(dir);
    assert.deepEqual(Object.keys(before), ["config.json", "model.safetensors"]);
    assert.equal(fingerprintDifference(before, await fingerprintModel(dir), dir), null);

    await Deno.writeFile(
      join(dir, "model.safetensors"),
      safetensors("{}", new Uint8Array(64).fill(1)),
    );
    const changed = fingerprintDifference(before, await fingerprintModel(dir), dir)!;
    assert.match(changed, new RegExp(`file "${join(dir, "model.safetensors")}" changed`));
    assert.match(
      changed,
      new RegExp(`recorded 74 bytes, sha256 ${before["model.safetensors"].sha256.slice(0, 16)}`),
    );

    await Deno.remove(join(dir, "model.safetensors"));
    assert.match(
      fingerprintDifference(before, await fingerprintModel(dir))!,
      /model\.safetensors" changed: recorded 74 bytes.*now absent/,
    );
    assert.match(fingerprintDifference({}, before)!, /config\.json" changed: recorded absent/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseFingerprint round-trips and names the bad key", () => {
  const f = { "config.json": { bytes: 2, sha256: "ab".repeat(32), sampled: false } };
  assert.deepEqual(parseFingerprint(JSON.parse(JSON.stringify(f)), "m/meta.json", "baseModel"), f);
  assert.throws(
    () =>
      parseFingerprint(
        { "config.json": { bytes: 2, sha256: "xyz", sampled: false } },
        "m/meta.json",
        "baseModel",
      ),
    /"m\/meta\.json": key "baseModel\.config\.json" must be/,
  );
  assert.throws(
    () => parseFingerprint([], "m/meta.json", "baseModel"),
    /key "baseModel" must be a mapping/,
  );
});

Deno.test("fingerprintModel follows symlinks (a Hugging Face cache snapshot), skips dangling ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blobs = join(dir, "blobs");
    const snapshot = join(dir, "snapshot");
    await Deno.mkdir(blobs);
    await Deno.mkdir(snapshot);
    await Deno.writeTextFile(join(blobs, "a"), '{"a":1}');
    await Deno.writeFile(join(blobs, "b"), safetensors("{}", new Uint8Array(64)));
    await Deno.symlink(join(blobs, "a"), join(snapshot, "config.json"));
    await Deno.symlink(join(blobs, "b"), join(snapshot, "model.safetensors"));
    await Deno.symlink(join(blobs, "missing"), join(snapshot, "extra.safetensors"));
    const linked = await fingerprintModel(snapshot);
    assert.deepEqual(Object.keys(linked), ["config.json", "model.safetensors"]);
    assert.equal(linked["config.json"].sha256, sha256(new TextEncoder().encode('{"a":1}')));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fingerprintFiles hashes the named files present, whole, following symlinks; a change shows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = new Uint8Array(SAMPLE_WINDOWS * SAMPLE_BYTES + 10).map((_, i) => i % 251);
    await Deno.writeFile(join(dir, "tokenizer.json"), big);
    await Deno.writeTextFile(join(dir, "blob"), "{}");
    await Deno.symlink(join(dir, "blob"), join(dir, "config.json"));
    await Deno.symlink(join(dir, "missing"), join(dir, "chat_template.jinja"));
    await Deno.writeTextFile(join(dir, "other.json"), "{}");
    const names = ["tokenizer.json", "config.json", "chat_template.jinja", "absent.json"];
    const before = await fingerprintFiles(dir, names);
    assert.deepEqual(Object.keys(before), ["config.json", "tokenizer.json"]);
    assert.deepEqual(before["tokenizer.json"], {
      bytes: big.length,
      sha256: sha256(big),
      sampled: false,
    });
    assert.equal(before["config.json"].sha256, sha256(new TextEncoder().encode("{}")));
    await Deno.remove(join(dir, "chat_template.jinja"));
    await Deno.writeTextFile(join(dir, "chat_template.jinja"), "x");
    assert.match(
      fingerprintDifference(before, await fingerprintFiles(dir, names), dir)!,
      /file ".*chat_template\.jinja" changed: recorded absent, now 1 bytes/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
