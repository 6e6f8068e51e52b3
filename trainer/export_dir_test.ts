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
    // A marked export may hold anything.
    await Deno.mkdir(join(dir, "marked"));
    await Deno.writeTextFile(join(dir, "marked", EXPORT_MARKER), "{}");
    await Deno.writeTextFile(join(dir, "marked", "README.md"), "");
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

Deno.test("writeExportDir() replaces an export whole, and a failed write leaves the previous one", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "e");
    await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "a.txt"), "1"), { kind: "x" });
    assert.deepEqual(names(out), ["a.txt", EXPORT_MARKER]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(out, EXPORT_MARKER))), {
      format: "halo.export",
      kind: "x",
    });
    await assert.rejects(
      writeExportDir(out, async (tmp) => {
        await Deno.writeTextFile(join(tmp, "b.txt"), "half");
        throw new Error("disk full");
      }),
      /disk full/,
    );
    assert.deepEqual(names(out), ["a.txt", EXPORT_MARKER]);
    await writeExportDir(out, (tmp) => Deno.writeTextFile(join(tmp, "b.txt"), "2"));
    assert.deepEqual(names(out), ["b.txt", EXPORT_MARKER]);
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
