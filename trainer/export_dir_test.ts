import assert from "node:assert/strict";
import { join } from "node:path";
import { checkExportDir, EXPORT_MARKER, writeExportDir } from "./export_dir.ts";
import { withTempDir } from "../internal/test_utils.ts";

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("checkExportDir() accepts a new, empty or previous export dir; refuses the model, a folder above it, a file, other files", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "models", "m");
    await Deno.mkdir(model, { recursive: true });
    const opts = { modelPath: model };
    await checkExportDir(join(dir, "new"), opts);
    await Deno.mkdir(join(dir, "empty"));
    await checkExportDir(join(dir, "empty"), opts);
    // An export from before the marker: only files an export writes.
    await Deno.mkdir(join(dir, "old"));
    await Deno.writeTextFile(join(dir, "old", "adapter_config.json"), "{}");
    await checkExportDir(join(dir, "old"), opts);
    // A marked export of the files an export writes.
    await Deno.mkdir(join(dir, "marked"));
    await Deno.writeTextFile(join(dir, "marked", EXPORT_MARKER), "{}");
    await Deno.writeTextFile(join(dir, "marked", "config.json"), "{}");
    await checkExportDir(join(dir, "marked"), opts);

    await assert.rejects(checkExportDir(model, opts), /--export ".*" is the model directory/);
    await assert.rejects(checkExportDir(join(dir, "models"), opts), /a folder holding it/);
    await assert.rejects(checkExportDir(join(model, "x"), opts), /inside it/);
    // Through a symbolic link too.
    await Deno.symlink(model, join(dir, "link"));
    await assert.rejects(checkExportDir(join(dir, "link"), opts), /is the model directory/);
    await Deno.writeTextFile(join(dir, "f"), "");
    await assert.rejects(
      checkExportDir(join(dir, "f"), { flag: "--out" }),
      /--out ".*f": it is a file/,
    );
    await Deno.mkdir(join(dir, "mine"));
    await Deno.writeTextFile(join(dir, "mine", "notes.txt"), "");
    await assert.rejects(
      checkExportDir(join(dir, "mine"), opts),
      /not a halo export \(notes\.txt\)/,
    );
    await checkExportDir(model, { modelPath: "builtin:tiny" });
  }));

Deno.test("checkExportDir() and writeExportDir() refuse a marked export that also holds the user's files, naming them", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "marked");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, EXPORT_MARKER), "{}");
    await Deno.writeTextFile(join(out, "config.json"), "{}");
    await Deno.writeTextFile(join(out, "README.md"), "mine");
    await Deno.mkdir(join(out, "notes"));
    const refused =
      /"[^"]*marked": it is a halo export \(it holds halo_export\.json\) but also holds entries an export does not write \(README\.md, notes\)/;
    await assert.rejects(checkExportDir(out), refused);
    await assert.rejects(
      writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "new")),
      refused,
    );
    assert.equal(await Deno.readTextFile(join(out, "README.md")), "mine");
    assert.equal(await Deno.readTextFile(join(out, "config.json")), "{}");
    assert.deepEqual(names(dir), ["marked"]); // no temporary directory left
  }));

/**
 * Leaves `out`'s parent as a writeExportDir killed between its two renames would (or, `landed`,
 * after the second one, before deleting the previous export).
 */
async function killedReplace(out: string, landed = false): Promise<{ old: string; tmp: string }> {
  const parent = join(out, "..");
  const old = join(parent, `.e.old-${crypto.randomUUID()}`);
  const tmp = join(parent, `.e.tmp-${crypto.randomUUID()}`);
  await Deno.rename(out, old);
  await Deno.mkdir(tmp);
  await Deno.writeTextFile(join(tmp, "config.json"), "new");
  if (landed) {
    await Deno.writeTextFile(join(tmp, EXPORT_MARKER), "{}");
    await Deno.rename(tmp, out);
  } else {
    // A file a killed writeFileAtomic left (it cannot be left in a synced export).
    await Deno.writeTextFile(join(tmp, `.model.safetensors.${crypto.randomUUID()}.tmp`), "half");
  }
  return { old, tmp };
}

for (const via of ["checkExportDir", "writeExportDir"] as const) {
  Deno.test(`${via}() puts back the previous export a killed replace renamed aside and removes the unfinished one, with warnings`, () =>
    withTempDir(async (dir) => {
      const out = join(dir, "e");
      await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "prev"));
      const { old, tmp } = await killedReplace(out);
      assert.deepEqual(names(dir), [old, tmp].map((p) => p.slice(dir.length + 1)).sort());
      const warnings: string[] = [];
      const warn = (message: string) => warnings.push(message);
      if (via === "checkExportDir") {
        await checkExportDir(out, { warn });
        assert.equal(await Deno.readTextFile(join(out, "config.json")), "prev");
        assert.deepEqual(names(out), ["config.json", EXPORT_MARKER]);
      } else {
        await writeExportDir(out, (t) => Deno.writeTextFile(join(t, "tokenizer.json"), "2"), {}, {
          warn,
        });
        assert.deepEqual(names(out), [EXPORT_MARKER, "tokenizer.json"]);
      }
      assert.deepEqual(names(dir), ["e"]);
      assert.equal(warnings.length, 2, warnings.join("\n"));
      assert.ok(warnings[0].includes(`restored the previous export from "${old}"`), warnings[0]);
      assert.ok(warnings[1].includes(`removed "${tmp}", the unfinished export`), warnings[1]);
    }));
}

Deno.test("checkExportDir() removes a renamed-aside export left beside a landed one, and leaves folders that are not ours", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "e");
    await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "prev"));
    // The replace landed, then the run was killed before deleting the previous export.
    const { old } = await killedReplace(out, true);
    // Same names, but holding a file no export writes, or only a symbolic link: not touched.
    const foreign = join(dir, `.e.tmp-${crypto.randomUUID()}`);
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(join(foreign, "notes.txt"), "mine");
    const link = join(dir, `.e.old-${crypto.randomUUID()}`);
    await Deno.symlink(out, link);
    // Another export's leftovers, and a name that is not quite ours.
    const other = join(dir, `.f.tmp-${crypto.randomUUID()}`);
    await Deno.mkdir(other);
    const notUuid = join(dir, ".e.tmp-1234");
    await Deno.mkdir(notUuid);
    const warnings: string[] = [];
    await checkExportDir(out, { warn: (m) => warnings.push(m) });
    const kept = [out, foreign, link, other, notUuid].map((p) => p.slice(dir.length + 1)).sort();
    assert.deepEqual(names(dir), kept);
    assert.equal(await Deno.readTextFile(join(out, "config.json")), "new");
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.ok(warnings[0].includes(`left "${foreign}" alone`), warnings[0]);
    assert.ok(warnings[1].includes(`removed "${old}", a previous export`), warnings[1]);
    // Nothing left to do: no warning.
    warnings.length = 0;
    await checkExportDir(out, { warn: (m) => warnings.push(m) });
    assert.ok(warnings.length === 1 && warnings[0].includes("alone"), warnings.join("\n"));
  }));

Deno.test("checkExportDir() leaves a renamed-aside folder without the marker when the export is missing", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "e");
    const old = join(dir, `.e.old-${crypto.randomUUID()}`);
    await Deno.mkdir(old);
    await Deno.writeTextFile(join(old, "adapter_config.json"), "{}");
    const warnings: string[] = [];
    await checkExportDir(out, { warn: (m) => warnings.push(m) });
    assert.deepEqual(names(dir), [old.slice(dir.length + 1)]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /holds no halo_export\.json; left as it is/);
  }));

Deno.test("writeExportDir() replaces an export whole, and a failed write leaves the previous one", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "e");
    await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "1"), {
      kind: "x",
    });
    assert.deepEqual(names(out), ["config.json", EXPORT_MARKER]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(out, EXPORT_MARKER))), {
      format: "halo.export",
      kind: "x",
    });
    await assert.rejects(
      writeExportDir(out, async (tmp) => {
        await Deno.writeTextFile(join(tmp, "tokenizer.json"), "half");
        throw new Error("disk full");
      }),
      /disk full/,
    );
    assert.deepEqual(names(out), ["config.json", EXPORT_MARKER]);
    await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "tokenizer.json"), "2"));
    assert.deepEqual(names(out), [EXPORT_MARKER, "tokenizer.json"]);
    assert.deepEqual(names(dir), ["e"]); // no temporary or old directory left
  }));

Deno.test("writeExportDir() gives the export the mode of a plain mkdir (the umask), not a private temp dir's", () =>
  withTempDir(async (root) => {
    const plain = join(root, "plain");
    await Deno.mkdir(plain);
    const dir = join(root, "export");
    await writeExportDir(dir, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "{}"));
    assert.equal((await Deno.stat(dir)).mode! & 0o777, (await Deno.stat(plain)).mode! & 0o777);
  }));
