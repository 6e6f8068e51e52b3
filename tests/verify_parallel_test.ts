// Copyright 2025 the halo authors. MIT license.
// verify() is pure: its decisions do not depend on call order and are the same in
// parallel workers as on the main thread.

import assert from "node:assert/strict";
import { verify } from "../verify/mod.ts";

const answers: string[] = Deno.readTextFileSync(
  new URL("./fixtures/verify_math500.jsonl", import.meta.url),
).trim().split("\n").map((l) => JSON.parse(l).answer);

/** Correct and mismatched pairs, 2 per problem. */
const PAIRS: [string, string][] = answers.flatMap((a, i): [string, string][] => [
  [`Answer: ${a}`, a],
  [`\\boxed{${a}}`, answers[(i * 31 + 7) % answers.length]],
]);

const decide = ([response, gold]: [string, string]) => {
  const r = verify(response, gold, { budgetMs: 5000 });
  return `${r.correct}:${r.reason}`;
};

Deno.test("verify() results do not depend on call order", () => {
  const forward = PAIRS.map(decide);
  const order = PAIRS.map((_, i) => (i * 389) % PAIRS.length); // a fixed permutation
  const permuted: string[] = new Array(PAIRS.length);
  for (const i of order) permuted[i] = decide(PAIRS[i]);
  assert.deepEqual(permuted, forward);
});

Deno.test("verify() gives the same results in parallel workers", async () => {
  const expected = PAIRS.map(decide);
  const half = Math.ceil(PAIRS.length / 2);
  const chunks = [PAIRS.slice(0, half), PAIRS.slice(half)];
  const results = await Promise.all(
    chunks.map((pairs) =>
      new Promise<string[]>((resolve, reject) => {
        const w = new Worker(new URL("./verify_parallel_worker.ts", import.meta.url).href, {
          type: "module",
        });
        w.onmessage = (e: MessageEvent<string[]>) => {
          w.terminate();
          resolve(e.data);
        };
        w.onerror = (e) => {
          w.terminate();
          reject(e);
        };
        w.postMessage({ pairs });
      })
    ),
  );
  assert.deepEqual(results.flat(), expected);
});
