import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_CONFIG } from "./config.ts";
import { validateConfig } from "./validate_config.ts";
import {
  type CheckpointMetaInput,
  checkpointUnhashed,
  latestCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  type SaveCheckpointOptions,
} from "./checkpoint.ts";

async function withRunDir(body: (runDir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(join(dir, "run"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

function bits(array: Float32Array): Uint32Array {
  return new Uint32Array(array.buffer, array.byteOffset, array.length);
}

/** Floats that a lossy path would change: NaN payloads, -0, subnormals, infinities. */
function awkwardFloats(n: number, seed: number): Float32Array {
  const raw = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    raw[i] = s;
  }
  raw[0] = 0x80000000; // -0
  raw[1] = 0x7fc01234; // NaN with payload
  raw[2] = 0x00000001; // smallest subnormal
  raw[3] = 0xff800000; // -Infinity
  return new Float32Array(raw.buffer);
}

function meta(step: number): CheckpointMetaInput {
  return {
    config: DEFAULT_CONFIG,
    dataPosition: step * 16,
    rng: { seed: 0, counter: step, state: [1, 2, 3] },
    metrics: { "loss/sft": 1 / (step + 1) },
  };
}

function options(step: number, extra: Partial<SaveCheckpointOptions> = {}): SaveCheckpointOptions {
  return {
    step,
    tensors: { w: new Float32Array([step, step + 0.5]) },
    optimizer: { "mu/w": new Float32Array(2) },
    meta: meta(step),
    ...extra,
  };
}

Deno.test("saveCheckpoint() and loadCheckpoint() round-trip tensors bit-exactly", async () => {
  await withRunDir(async (runDir) => {
    const embed = awkwardFloats(6 * 4, 1);
    const norm = awkwardFloats(4, 2);
    const mu = awkwardFloats(24, 3);
    const nu = awkwardFloats(24, 4);
    const bf16Bits = new Uint16Array([0x3f80, 0xc000, 0x0001, 0x7f80]);
    const dir = await saveCheckpoint(runDir, {
      step: 100,
      tensors: {
        "model.embed_tokens.weight": { dtype: "F32", shape: [6, 4], data: embed },
        "model.norm.weight": norm,
        "scalar.count": { dtype: "I32", shape: [1], data: new Int32Array([-7]) },
        "half.bf16": { dtype: "BF16", shape: [2, 2], data: bf16Bits },
      },
      optimizer: { "mu/model.embed_tokens.weight": mu, "nu/model.embed_tokens.weight": nu },
      meta: meta(100),
    });
    strictEqual(dir, join(runDir, "step_000100"));
    deepStrictEqual(names(dir), ["meta.json", "model.safetensors", "optimizer.safetensors"]);
    const loaded = await loadCheckpoint(dir);
    const embedOut = loaded.tensors["model.embed_tokens.weight"];
    strictEqual(embedOut.dtype, "F32");
    deepStrictEqual(embedOut.shape, [6, 4]);
    deepStrictEqual(bits(embedOut.data as Float32Array), bits(embed));
    deepStrictEqual(loaded.tensors["model.norm.weight"].shape, [4]);
    deepStrictEqual(bits(loaded.tensors["model.norm.weight"].data as Float32Array), bits(norm));
    deepStrictEqual(loaded.tensors["scalar.count"].data, new Int32Array([-7]));
    const bf16 = loaded.tensors["half.bf16"];
    strictEqual(bf16.dtype, "BF16");
    deepStrictEqual(bf16.data, new Float32Array([1, -2, 2 ** -133, Infinity]));
    deepStrictEqual(
      bits(loaded.optimizer["mu/model.embed_tokens.weight"].data as Float32Array),
      bits(mu),
    );
    deepStrictEqual(
      bits(loaded.optimizer["nu/model.embed_tokens.weight"].data as Float32Array),
      bits(nu),
    );
  });
});

Deno.test("saveCheckpoint() meta round-trips through loadCheckpoint()", async () => {
  await withRunDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, {
      ...options(300),
      meta: {
        config: DEFAULT_CONFIG,
        dataPosition: 4800,
        rng: { seed: 9, counters: [3, 4], key: "12345678901234567890" },
        metrics: { "loss/sft": 0.25, "eval/accuracy": 0.5, "grad/norm": NaN, "x/inf": -Infinity },
        gitSha: "f4364a0bbb518ba8ac34f77159391ee2cc3edf01",
        denoVersion: "2.9.6",
      },
    });
    const { meta } = await loadCheckpoint(dir);
    strictEqual(meta.format, "halo.checkpoint");
    strictEqual(meta.version, 1);
    strictEqual(meta.step, 300);
    strictEqual(meta.weights, "model");
    strictEqual(meta.dataPosition, 4800);
    deepStrictEqual(meta.rng, { seed: 9, counters: [3, 4], key: "12345678901234567890" });
    deepStrictEqual(meta.metrics, {
      "loss/sft": 0.25,
      "eval/accuracy": 0.5,
      "grad/norm": NaN,
      "x/inf": -Infinity,
    });
    strictEqual(meta.gitSha, "f4364a0bbb518ba8ac34f77159391ee2cc3edf01");
    strictEqual(meta.denoVersion, "2.9.6");
    ok(!Number.isNaN(Date.parse(meta.savedAt)));
    deepStrictEqual(validateConfig(meta.config, { source: "meta.json" }), DEFAULT_CONFIG);
    // Defaults: the running Deno, no git sha.
    const plain = await loadCheckpoint(await saveCheckpoint(runDir, options(301)));
    strictEqual(plain.meta.denoVersion, Deno.version.deno);
    strictEqual(plain.meta.gitSha, null);
  });
});

Deno.test("saveCheckpoint() stores adapters as adapter_model.safetensors", async () => {
  await withRunDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, options(5, { weights: "adapter" }));
    deepStrictEqual(names(dir), [
      "adapter_model.safetensors",
      "meta.json",
      "optimizer.safetensors",
    ]);
    const loaded = await loadCheckpoint(dir);
    strictEqual(loaded.meta.weights, "adapter");
    deepStrictEqual(loaded.tensors.w.data, new Float32Array([5, 5.5]));
  });
});

Deno.test("saveCheckpoint() failing mid-write leaves the previous checkpoint and no half one", async () => {
  await withRunDir(async (runDir) => {
    const previous = await saveCheckpoint(runDir, options(100));
    for (const failAt of ["model.safetensors", "optimizer.safetensors", "meta.json"]) {
      await rejects(
        saveCheckpoint(runDir, {
          ...options(200),
          beforeWrite: (file) => {
            if (file === failAt) throw new Error("No space left on device (os error 28)");
          },
        }),
        {
          message: `Cannot save checkpoint "${
            join(runDir, "step_000200")
          }": No space left on device (os error 28)`,
        },
      );
      deepStrictEqual(names(runDir), ["step_000100"], `after a failure at ${failAt}`);
      strictEqual(await latestCheckpoint(runDir), previous);
      const loaded = await loadCheckpoint(previous);
      deepStrictEqual(loaded.tensors.w.data, new Float32Array([100, 100.5]));
      strictEqual(loaded.meta.dataPosition, 1600);
    }
  });
});

Deno.test("latestCheckpoint() ignores what a killed save leaves, and the next save removes it", async () => {
  await withRunDir(async (runDir) => {
    const previous = await saveCheckpoint(runDir, options(100));
    // A process killed after writing the tensors but before the rename:
    const leftover = join(runDir, "step_000200.tmp-0c5a7d2e");
    await Deno.mkdir(leftover);
    await Deno.copyFile(join(previous, "model.safetensors"), join(leftover, "model.safetensors"));
    await Deno.writeTextFile(join(leftover, "meta.json"), '{"format": "halo.chec');
    // A folder that only looks like a checkpoint (no meta.json) and an unrelated file:
    await Deno.mkdir(join(runDir, "step_000900"));
    await Deno.writeTextFile(join(runDir, "step_000999"), "not a folder");
    strictEqual(await latestCheckpoint(runDir), previous);
    const next = await saveCheckpoint(runDir, options(150));
    strictEqual(await latestCheckpoint(runDir), next);
    deepStrictEqual(names(runDir), ["step_000100", "step_000150", "step_000900", "step_000999"]);
  });
});

Deno.test("latestCheckpoint() picks the highest step, numerically", async () => {
  await withRunDir(async (runDir) => {
    strictEqual(await latestCheckpoint(runDir), null); // no run directory yet
    await saveCheckpoint(runDir, options(999_999));
    const newest = await saveCheckpoint(runDir, options(1_000_000));
    await saveCheckpoint(runDir, options(20));
    strictEqual(newest, join(runDir, "step_1000000"));
    strictEqual(await latestCheckpoint(runDir), newest);
  });
});

Deno.test("saveCheckpoint() keeps the newest `keep` checkpoints and never the new one", async () => {
  await withRunDir(async (runDir) => {
    for (const step of [1, 2, 3, 4]) await saveCheckpoint(runDir, options(step, { keep: 2 }));
    deepStrictEqual(names(runDir), ["step_000003", "step_000004"]);
    // Saving an older step (e.g. after resuming from it) keeps it even though it is not newest.
    await saveCheckpoint(runDir, options(2, { keep: 2 }));
    deepStrictEqual(names(runDir), ["step_000002", "step_000004"]);
    await saveCheckpoint(runDir, options(5, { keep: 1 }));
    deepStrictEqual(names(runDir), ["step_000005"]);
    for (const step of [6, 7]) await saveCheckpoint(runDir, options(step)); // keep 0: all
    deepStrictEqual(names(runDir), ["step_000005", "step_000006", "step_000007"]);
  });
});

Deno.test("saveCheckpoint() refuses to replace a checkpoint unless asked", async () => {
  await withRunDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, options(10));
    await rejects(saveCheckpoint(runDir, options(10)), {
      name: "AlreadyExists",
      message: /Cannot save checkpoint ".*step_000010": the checkpoint already exists/,
    });
    await saveCheckpoint(runDir, {
      ...options(10),
      tensors: { w: new Float32Array([42]) },
      overwrite: true,
    });
    deepStrictEqual((await loadCheckpoint(dir)).tensors.w.data, new Float32Array([42]));
    deepStrictEqual(names(runDir), ["step_000010"]);
  });
});

Deno.test("saveCheckpoint() rejects bad input before writing anything", async () => {
  await withRunDir(async (runDir) => {
    await rejects(saveCheckpoint(runDir, options(-1)), {
      name: "RangeError",
      message: /option "step" must be a non-negative safe integer: current value is -1/,
    });
    await rejects(saveCheckpoint(runDir, { ...options(1), meta: { ...meta(1), rng: { s: 5n } } }), {
      name: "TypeError",
      message: /meta key "rng.s" must be JSON .*: current value is 5n/,
    });
    await rejects(
      saveCheckpoint(runDir, {
        ...options(1),
        meta: { ...meta(1), metrics: { loss: "low" as unknown as number } },
      }),
      {
        name: "TypeError",
        message: /meta key "metrics.loss" must be a number: current value is "low"/,
      },
    );
    await rejects(
      saveCheckpoint(runDir, { ...options(1), tensors: { w: [1, 2] as unknown as Float32Array } }),
      {
        name: "TypeError",
        message: /option "tensors": tensor "w" must be a Float32Array or \{dtype, shape, data\}/,
      },
    );
    await rejects(
      saveCheckpoint(runDir, { ...options(1), meta: { ...meta(1), dataPosition: 1.5 } }),
      {
        name: "RangeError",
        message: /meta key "dataPosition" must be a non-negative safe integer/,
      },
    );
    await rejects(Deno.stat(runDir), Deno.errors.NotFound);
  });
});

Deno.test("loadCheckpoint() names the file of a damaged checkpoint", async () => {
  await withRunDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, options(7));
    const metaPath = join(dir, "meta.json");
    const original = await Deno.readTextFile(metaPath);

    // A truncated tensor file.
    const optimizerPath = join(dir, "optimizer.safetensors");
    const bytes = await Deno.readFile(optimizerPath);
    await Deno.writeFile(optimizerPath, bytes.subarray(0, bytes.length - 4));
    await rejects(loadCheckpoint(dir), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot load checkpoint "${optimizerPath}": the file must be ${bytes.length} bytes as ` +
          `meta.json records: current size is ${bytes.length - 4}$`,
      ),
    });
    await Deno.writeFile(optimizerPath, bytes);

    await Deno.writeTextFile(metaPath, "{ not json");
    await rejects(loadCheckpoint(dir), {
      name: "SyntaxError",
      message: new RegExp(`^Cannot load checkpoint "${metaPath}": invalid JSON`),
    });

    const json = JSON.parse(original);
    await Deno.writeTextFile(metaPath, JSON.stringify({ ...json, step: 8 }));
    await rejects(loadCheckpoint(dir), {
      name: "RangeError",
      message: `Cannot load checkpoint "${metaPath}": key "step" must match the folder name ` +
        `"step_000007" (7): current value is 8`,
    });

    await Deno.writeTextFile(metaPath, JSON.stringify({ ...json, dataPosition: "x" }));
    await rejects(loadCheckpoint(dir), {
      name: "TypeError",
      message: `Cannot load checkpoint "${metaPath}": key "dataPosition" must be a non-negative ` +
        `integer: current value is "x"`,
    });

    const { rng: _rng, ...noRng } = json;
    await Deno.writeTextFile(metaPath, JSON.stringify(noRng));
    await rejects(loadCheckpoint(dir), { name: "TypeError", message: /key "rng" is missing/ });

    await Deno.writeTextFile(metaPath, JSON.stringify({ ...json, version: 2 }));
    await rejects(loadCheckpoint(dir), { name: "RangeError", message: /key "version" must be 1/ });

    await Deno.remove(join(dir, "model.safetensors"));
    await Deno.writeTextFile(metaPath, original);
    await rejects(loadCheckpoint(dir), {
      name: "NotFound",
      message: `Cannot load checkpoint "${join(dir, "model.safetensors")}": file not found`,
    });
  });
});

const canRun = (await Deno.permissions.query({ name: "run" })).state === "granted";

Deno.test({
  name: "saveCheckpoint() killed by SIGKILL mid-save leaves only a temp folder (needs --allow-run)",
  ignore: !canRun,
  fn: async () => {
    await withRunDir(async (runDir) => {
      const previous = await saveCheckpoint(runDir, options(100));
      const script = join(runDir, "..", "save_and_hang.ts");
      await Deno.writeTextFile(
        script,
        `import { saveCheckpoint } from ${
          JSON.stringify(new URL("./checkpoint.ts", import.meta.url).href)
        };
await saveCheckpoint(Deno.args[0], {
  step: 200,
  tensors: { w: new Float32Array(1 << 18) },
  optimizer: { "mu/w": new Float32Array(1 << 18) },
  meta: { config: {}, dataPosition: 3200, rng: null, metrics: {} },
  beforeWrite: async (file) => {
    if (file !== "meta.json") return;
    console.log("tensors written");
    await new Promise((resolve) => setTimeout(resolve, 60_000));
  },
});
`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-config", "--allow-read", "--allow-write", script, runDir],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      let seen = "";
      while (!seen.includes("tensors written")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      child.kill("SIGKILL");
      reader.releaseLock();
      await child.stdout.cancel();
      const status = await child.status;
      strictEqual(status.success, false);
      ok(seen.includes("tensors written"), "the child should reach the meta.json write");

      const entries = names(runDir);
      strictEqual(entries.length, 2);
      strictEqual(entries[0], "step_000100");
      ok(entries[1].startsWith("step_000200.tmp-"), `unexpected ${entries[1]}`);
      deepStrictEqual(names(join(runDir, entries[1])), [
        "model.safetensors",
        "optimizer.safetensors",
      ]);
      strictEqual(await latestCheckpoint(runDir), previous);
      strictEqual((await loadCheckpoint(previous)).meta.step, 100);

      await saveCheckpoint(runDir, options(200));
      deepStrictEqual(names(runDir), ["step_000100", "step_000200"]);
    });
  },
});

Deno.test("loadCheckpoint() catches a flipped byte by its SHA-256; an old checkpoint without hashes loads", async () => {
  await withRunDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, options(9));
    const metaPath = join(dir, "meta.json");
    const json = JSON.parse(await Deno.readTextFile(metaPath));
    const weightsPath = join(dir, "model.safetensors");
    const bytes = await Deno.readFile(weightsPath);
    ok(/^[0-9a-f]{64}$/.test(json.files.weights.sha256), json.files.weights.sha256);
    ok(/^[0-9a-f]{64}$/.test(json.files.optimizer.sha256), json.files.optimizer.sha256);
    deepStrictEqual(checkpointUnhashed(await loadCheckpoint(dir)), []);

    // One flipped bit in the last tensor's data: same size, valid header.
    const flipped = bytes.slice();
    flipped[flipped.length - 1] ^= 1;
    await Deno.writeFile(weightsPath, flipped);
    await rejects(loadCheckpoint(dir), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot load checkpoint "${weightsPath}": the file's SHA-256 must be ` +
          `${json.files.weights.sha256} as meta.json records: current hash is [0-9a-f]{64} ` +
          `\\(the file is damaged or was replaced\\)$`,
      ),
    });

    // A checkpoint from before the hashes: loads (size-checked only), and says which files.
    for (const key of ["weights", "optimizer"]) delete json.files[key].sha256;
    await Deno.writeTextFile(metaPath, JSON.stringify(json));
    const old = await loadCheckpoint(dir);
    deepStrictEqual(checkpointUnhashed(old), ["model.safetensors", "optimizer.safetensors"]);
    await Deno.writeFile(weightsPath, bytes);

    json.files.weights.sha256 = "XYZ";
    await Deno.writeTextFile(metaPath, JSON.stringify(json));
    await rejects(loadCheckpoint(dir), {
      name: "TypeError",
      message: /key "files\.weights\.sha256" must be 64 lowercase hex digits/,
    });
  });
});

Deno.test("saveCheckpoint() records meta.data when given; a checkpoint without it loads data null", async () => {
  await withRunDir(async (runDir) => {
    const data = { source: "p.jsonl", trainPrompts: 6, trainSha256: "ab".repeat(32) };
    const dir = await saveCheckpoint(runDir, { ...options(1), meta: { ...meta(1), data } });
    deepStrictEqual((await loadCheckpoint(dir)).meta.data, data);
    const plain = await saveCheckpoint(runDir, options(2));
    const json = JSON.parse(await Deno.readTextFile(join(plain, "meta.json")));
    strictEqual("data" in json, false);
    strictEqual((await loadCheckpoint(plain)).meta.data, null);
    await rejects(
      saveCheckpoint(runDir, { ...options(3), meta: { ...meta(3), data: { n: NaN } } }),
      { name: "TypeError", message: /meta key "data\.n" must be JSON/ },
    );
  });
});
