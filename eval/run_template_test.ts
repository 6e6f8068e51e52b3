// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { join } from "node:path";
import { findRunTemplate } from "./run_template.ts";

Deno.test("findRunTemplate() reads rl.template of the run behind the adapter, then the model", async () => {
  const root = await Deno.makeTempDir();
  try {
    const write = async (dir: string, config: unknown) => {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(join(dir, "meta.json"), JSON.stringify({ config }));
    };
    const rl = (template: string) => ({ trainer: { mode: "rl" }, rl: { template } });
    await write(join(root, "a", "step_000001"), rl("boxed"));
    await write(join(root, "a", "step_000010"), rl("dapo")); // the latest step beside final/
    await Deno.mkdir(join(root, "a", "final"));
    await write(join(root, "b", "step_000003"), rl("task"));
    await write(join(root, "sft", "step_000001"), { trainer: { mode: "sft" } });

    const found = await findRunTemplate({ model: join(root, "b", "step_000003") });
    assert.deepEqual(found, {
      template: "task",
      metaPath: join(root, "b", "step_000003", "meta.json"),
    });
    assert.equal(
      (await findRunTemplate({
        model: join(root, "b", "step_000003"),
        adapter: join(root, "a", "final"),
      }))
        ?.template,
      "dapo",
    );
    // Not an RL run, a plain model, a damaged meta.json: none.
    assert.equal(await findRunTemplate({ model: join(root, "sft", "step_000001") }), null);
    assert.equal(await findRunTemplate({ model: "models/arithmetic-tiny" }), null);
    await Deno.writeTextFile(join(root, "b", "step_000003", "meta.json"), "{oops");
    assert.equal(await findRunTemplate({ model: join(root, "b", "step_000003") }), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
