import { ok, strictEqual, throws } from "node:assert/strict";
import { DEFAULT_CONFIG, type TrainerConfig } from "./config.ts";
import { DEFAULT_RL_CONFIG, rlConfigProblems } from "./rl/config.ts";
import { cosineWarmupProblem, validateConfig } from "./validate_config.ts";

Deno.test("validateConfig() requires every key", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  delete copy.trainer.lr;
  throws(() => validateConfig(copy, { source: "meta.json" }), {
    name: "TypeError",
    message: 'Cannot load config "meta.json": key "trainer.lr" is missing',
  });
});

Deno.test("validateConfig() lists every problem, one per line", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.trainer.lr = 0;
  copy.data.digits = 9;
  copy.run.name = "a/b";
  throws(() => validateConfig(copy), (error: Error) => {
    const lines = error.message.split("\n");
    strictEqual(lines.length, 3);
    ok(lines.every((line) => line.startsWith('Cannot load config "<object>": key ')));
    ok(lines.some((line) => line.includes('"data.digits" must be <= 6: current value is 9')));
    ok(lines.some((line) => line.includes('"run.name" must start with a letter or digit')));
    return true;
  });
});

Deno.test("validateConfig() refuses f16 weights for full fine-tuning, and a bad HILO key", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.model.weightDtype = "f16";
  throws(
    () => validateConfig(copy),
    /key "model\.weightDtype" must be "f32" when the base weights/,
  );
  (copy.adapters as Record<string, unknown>).kind = "lora";
  ok(validateConfig(copy));
  copy.adapters.hilo = { ...(copy.adapters.hilo as object), activation: "top-x" };
  throws(() => validateConfig(copy), /key "adapters\.hilo\.activation"/);
});

Deno.test("validateConfig() takes trainer.keepActivations as a boolean only", () => {
  strictEqual(DEFAULT_CONFIG.trainer.keepActivations, false);
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.trainer.keepActivations = true;
  strictEqual(validateConfig(copy).trainer.keepActivations, true);
  copy.trainer.keepActivations = "yes";
  throws(() => validateConfig(copy), /key "trainer\.keepActivations" must be true or false/);
});

Deno.test('validateConfig() takes model.kvDtype "f32" (default) or "f16", nothing else', () => {
  strictEqual(DEFAULT_CONFIG.model.kvDtype, "f32");
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.model.kvDtype = "f16";
  strictEqual(validateConfig(copy).model.kvDtype, "f16");
  copy.model.kvDtype = "bf16";
  throws(() => validateConfig(copy), /key "model\.kvDtype"/);
});

Deno.test("validateConfig() takes model.submitEveryLayers as an integer ≥ 0 or null (default: the adapter's)", () => {
  strictEqual(DEFAULT_CONFIG.model.submitEveryLayers, null);
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  for (const ok of [0, 1, 4, null]) {
    copy.model.submitEveryLayers = ok;
    strictEqual(validateConfig(copy).model.submitEveryLayers, ok);
  }
  for (const bad of [-1, 1.5, "2", Infinity]) {
    copy.model.submitEveryLayers = bad;
    throws(() => validateConfig(copy), /key "model\.submitEveryLayers" must be/, String(bad));
  }
});

Deno.test("validateConfig() bounds data.trainSize and data.evalSize by what the task can generate", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.data.trainSize = 100_000_000;
  copy.data.evalSize = 10_000_001;
  throws(() => validateConfig(copy), (error: Error) => {
    const lines = error.message.split("\n");
    strictEqual(lines.length, 2, error.message);
    ok(lines[0].includes('"data.trainSize" must be <= 10000000: current value is 100000000'));
    ok(lines[1].includes('"data.evalSize" must be <= 10000000: current value is 10000001'));
    return true;
  });
  copy.data.trainSize = 10_000_000;
  copy.data.evalSize = 10_000_000;
  validateConfig(copy);
});

Deno.test("validateConfig() names the keys of the rl.losses term a typo is in, chosen by its name", () => {
  const withLosses = (losses: unknown[]) => {
    const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
      string,
      Record<string, unknown>
    >;
    copy.rl.losses = losses;
    return copy;
  };
  const align = 'expected one of "name", "weight", "type", "anchor", "layer"';
  throws(
    () => validateConfig(withLosses([{ name: "clipped_pg" }, { name: "hidden_align", anchr: 1 }])),
    {
      name: "TypeError",
      message: `Cannot load config "<object>": key "rl.losses[1].anchr" is unknown: ${align} ` +
        `(did you mean "anchor"?)`,
    },
  );
  throws(
    () => validateConfig(withLosses([{ name: "hidden_align", anchr: 1 }, { name: "clipped_pg" }])),
    {
      message:
        `Cannot load config "<object>": key "rl.losses[0].anchr" is unknown: ${align} (did you mean "anchor"?)`,
    },
  );
  throws(() => validateConfig(withLosses([{ name: "clipped_pg", clipHihg: 0.3 }])), {
    message: 'Cannot load config "<object>": key "rl.losses[0].clipHihg" is unknown: expected ' +
      'one of "name", "weight", "clipLow", "clipHigh", "dualClip", "aggregation" (did you mean ' +
      '"clipHigh"?)',
  });
});

Deno.test("validateConfig() says what a key with several forms accepts, not a bare 'Invalid input'", () => {
  for (const layer of ["last", "0", 0.5]) {
    const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
      string,
      Record<string, unknown>
    >;
    copy.rl.losses = [{ name: "clipped_pg" }, { name: "hidden_align", layer }];
    throws(() => validateConfig(copy), {
      name: "RangeError",
      message: `Cannot load config "<object>": key "rl.losses[1].layer" must be "final" or an ` +
        `integer >= 0: current value is ${JSON.stringify(layer)}`,
    });
  }
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, Record<string, unknown>>
  >;
  copy.adapters.hilo.topK = 1.5;
  throws(() => validateConfig(copy), {
    message: 'Cannot load config "<object>": key "adapters.hilo.topK" must be a non-empty ' +
      "string, an integer >= 1, a non-empty list of integers >= 1 or null: current value is 1.5",
  });
});

Deno.test("validateConfig() applies SFT's cross-checks to SFT runs only", () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.data.evalSize = 5; // < eval.samples (200)
  copy.trainer.microBatches = 3; // does not divide trainer.batchSize (32)
  throws(() => validateConfig(copy), (error: Error) => {
    const lines = error.message.split("\n");
    strictEqual(lines.length, 2, error.message);
    ok(lines[0].includes('"trainer.microBatches" must divide "trainer.batchSize" (32)'));
    ok(lines[1].includes('"eval.samples" must be <= "data.evalSize" (5): current value is 200'));
    return true;
  });
  // RL reads neither (it batches and evaluates by "rl.*").
  copy.trainer.mode = "rl";
  const rl = validateConfig(copy);
  strictEqual(rl.data.evalSize, 5);
  strictEqual(rl.trainer.microBatches, 3);
});

Deno.test('validateConfig() refuses data.task "suite" in an RL run, as rlConfigProblems words it', () => {
  const copy = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    string,
    Record<string, unknown>
  >;
  copy.data.task = "suite";
  strictEqual(validateConfig(copy).data.task, "suite");
  copy.trainer.mode = "rl";
  const [[key, text]] = rlConfigProblems(DEFAULT_RL_CONFIG, { dataTask: "suite" });
  strictEqual(key, "data.task");
  throws(() => validateConfig(copy, { source: "rl.yaml" }), {
    name: "RangeError",
    message: `Cannot load config "rl.yaml": key "data.task" ${text}`,
  });
});

Deno.test("validateConfig() refuses a cosine warm-up as long as the run, in SFT and RL steps alike", () => {
  for (const mode of ["sft", "rl"] as const) {
    const copy = structuredClone(DEFAULT_CONFIG) as unknown as {
      trainer: Record<string, unknown>;
      rl: Record<string, unknown>;
    };
    copy.trainer.mode = mode;
    copy.trainer.schedule = "cosine";
    copy.trainer.steps = 6;
    // RL's schedule counts rl.ppoEpochs x rl.miniBatches updates a step, its warm-up too: the
    // bound stays in trainer steps.
    copy.rl.ppoEpochs = 2;
    copy.trainer.warmupSteps = 5;
    strictEqual(validateConfig(copy).trainer.warmupSteps, 5, mode);
    for (const warmup of [6, 7]) {
      copy.trainer.warmupSteps = warmup;
      throws(() => validateConfig(copy), {
        name: "RangeError",
        message: 'Cannot load config "<object>": key "trainer.warmupSteps" must be < ' +
          `"trainer.steps" (6) for the cosine schedule: current value is ${warmup}`,
      }, mode);
      strictEqual(
        cosineWarmupProblem(copy.trainer as unknown as TrainerConfig),
        `must be < "trainer.steps" (6) for the cosine schedule: current value is ${warmup}`,
      );
    }
    copy.trainer.schedule = "constant";
    strictEqual(validateConfig(copy).trainer.warmupSteps, 7, mode);
    strictEqual(cosineWarmupProblem(copy.trainer as unknown as TrainerConfig), undefined);
  }
});
