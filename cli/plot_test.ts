// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { main } from "./plot.ts";

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

Deno.test("main() writes the charts of a run folder and lists them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/metrics.jsonl`,
      '{"step":1,"loss/nll":2,"optim/lr":0.1}\n{"step":2,"loss/nll":1,"optim/lr":0.1}\n',
    );
    const { code, out, err } = await run([dir, "--out", `${dir}/charts`]);
    assert.equal(code, 0);
    assert.deepEqual(err, []);
    assert.deepEqual(out, [`${dir}/charts/loss.svg (loss/nll)`, `${dir}/charts/lr.svg (optim/lr)`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() exits 2 on a usage or input error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let result = await run([]);
    assert.equal(result.code, 2);
    assert.match(result.err[0], /expected one run folder/);
    result = await run([dir, "--bogus"]);
    assert.equal(result.code, 2);
    result = await run([dir]);
    assert.equal(result.code, 2);
    assert.equal(
      result.err[0],
      `Cannot read metrics "${dir}/metrics.jsonl": the file does not exist`,
    );
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1}\nnot json\n');
    result = await run([dir]);
    assert.equal(result.code, 2);
    assert.match(result.err[0], /line 2 is not valid JSON/);
    result = await run(["--help"]);
    assert.equal(result.code, 0);
    assert.match(result.out[0], /^Usage: deno task plot RUN_DIR/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() --out naming a file: exit 2, naming --out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/metrics.jsonl`,
      '{"step":1,"loss":1}\n{"step":2,"loss":0.5}\n',
    );
    const file = `${dir}/notes.txt`;
    await Deno.writeTextFile(file, "keep");
    const result = await run([dir, "--out", file]);
    assert.equal(result.code, 2);
    assert.equal(
      result.err[0],
      `Cannot plot: --out "${file}" is a file: give a directory (created if missing)`,
    );
    assert.equal(await Deno.readTextFile(file), "keep");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
