import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { readJsonFile } from "./read_json.ts";

Deno.test("readJsonFile() parses a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "a.json");
    await Deno.writeTextFile(path, '{"x": [1, 2]}');
    deepStrictEqual(await readJsonFile(path, { context: "Cannot load thing" }), { x: [1, 2] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readJsonFile() names the file when it is missing, or returns null when asked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "missing.json");
    await rejects(readJsonFile(path, { context: "Cannot load thing" }), {
      name: "NotFound",
      message: `Cannot load thing "${path}": file not found`,
    });
    strictEqual(
      await readJsonFile(path, { context: "Cannot load thing", optional: true }),
      undefined,
    );
    // A file of the JSON literal null is not a missing file.
    const nullPath = join(dir, "null.json");
    await Deno.writeTextFile(nullPath, "null");
    strictEqual(
      await readJsonFile(nullPath, { context: "Cannot load thing", optional: true }),
      null,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readJsonFile() names the file when its JSON is invalid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "bad.json");
    await Deno.writeTextFile(path, "{oops");
    for (const optional of [false, true]) {
      await rejects(readJsonFile(path, { context: "Cannot load thing", optional }), (e: Error) => {
        strictEqual(e.name, "SyntaxError");
        strictEqual(e.message.startsWith(`Cannot load thing "${path}": invalid JSON: `), true);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readJsonFile() names the path on other read errors (a directory)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejects(readJsonFile(dir, { context: "Cannot load thing" }), (e: Error) => {
      strictEqual(e.message.startsWith(`Cannot load thing "${dir}": `), true);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
