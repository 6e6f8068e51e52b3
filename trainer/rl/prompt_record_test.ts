import { strictEqual, throws } from "node:assert/strict";
import { checkResumePrompts, promptRecord } from "./prompt_record.ts";

const a = { question: "1 + 1?", gold: "2" };
const b = { question: "2 + 2?", gold: "4" };
const c = { question: "3 + 3?", gold: "6" };
const options = { checkpointDir: "out/run/step_000002", repeatedRows: 0 };

Deno.test("checkResumePrompts() accepts the same prompts", () => {
  const saved = promptRecord("p.jsonl", [a, b], [c]);
  // As meta.json stores it: JSON round-trip.
  const fromJson = JSON.parse(JSON.stringify(saved));
  strictEqual(checkResumePrompts(fromJson, promptRecord("p.jsonl", [a, b], [c]), options), null);
});

Deno.test("checkResumePrompts() refuses changed prompts, naming the file and checkpoint", () => {
  const saved = promptRecord("p.jsonl", [a, b], [c]);
  for (
    const [train, heldOut, what] of [
      [[b, a], [c], /training prompts: 2 \(sha256 [0-9a-f]{12}\) in the checkpoint, 2/],
      [[a, b, c], [], /training prompts: 2 .* 3 .*; held-out prompts: 1 .* 0/],
      [[a, b], [{ ...c, gold: "7" }], /held-out prompts: 1/],
    ] as const
  ) {
    throws(
      () => checkResumePrompts(saved, promptRecord("p.jsonl", [...train], [...heldOut]), options),
      {
        name: "RangeError",
        message: new RegExp(
          /Cannot resume from "out\/run\/step_000002": the prompts of "p\.jsonl" differ/.source +
            `.*${what.source}`,
        ),
      },
    );
  }
});

Deno.test("checkResumePrompts() on a checkpoint without a record: refused when rows were dropped", () => {
  const current = promptRecord("dapo.parquet", [a, b], [c]);
  throws(() => checkResumePrompts(null, current, { ...options, repeatedRows: 5 }), {
    name: "RangeError",
    message:
      /saved before halo removed repeated prompts, and "dapo\.parquet" .* \(5: repeated prompts/,
  });
  const warning = checkResumePrompts(null, current, options);
  strictEqual(typeof warning, "string");
  strictEqual(warning!.includes('"dapo.parquet" is unchanged could not be checked'), true);
  // The arithmetic task is generated from the (compared) config: nothing to say.
  strictEqual(checkResumePrompts(null, promptRecord("arithmetic", [a], [c]), options), null);
});
