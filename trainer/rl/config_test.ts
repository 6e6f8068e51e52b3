import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadConfig } from "../../cli/load_config.ts";
import {
  DEFAULT_RL_CONFIG,
  rlConfigProblems,
  rlKeyWarnings,
  withRolloutDefaults,
} from "./config.ts";

const RL = ["--trainer.mode=rl", "--model.path=models/arithmetic-tiny"];

Deno.test("DEFAULT_RL_CONFIG follows DAPO's recipe", () => {
  const pg = DEFAULT_RL_CONFIG.losses[0];
  strictEqual(pg.name, "clipped_pg");
  if (pg.name !== "clipped_pg") throw new Error("unreachable");
  strictEqual(pg.clipLow, 0.2);
  strictEqual(pg.clipHigh, 0.28);
  strictEqual(pg.aggregation, "token-mean");
  strictEqual(DEFAULT_RL_CONFIG.losses.length, 1); // no KL, no entropy bonus
  strictEqual(DEFAULT_RL_CONFIG.groupSize, 16);
  strictEqual(DEFAULT_RL_CONFIG.temperature, 1);
  strictEqual(DEFAULT_RL_CONFIG.topP, 1);
  strictEqual(DEFAULT_RL_CONFIG.dynamicSampling, true);
  ok(DEFAULT_RL_CONFIG.overlong.buffer > 0);
});

Deno.test("loadConfig() reads both RL demo configs; they differ only in the align term", async () => {
  const dapo = await loadConfig("configs/rl_arith_dapo.yaml");
  const align = await loadConfig("configs/rl_arith_hidden_align.yaml");
  strictEqual(dapo.trainer.mode, "rl");
  strictEqual(align.rl.losses[1].name, "hidden_align");
  const strip = (c: typeof dapo) =>
    JSON.stringify({
      ...c,
      run: { ...c.run, name: "" },
      rl: { ...c.rl, losses: [c.rl.losses[0]] },
    });
  strictEqual(strip(dapo), strip(align));
});

Deno.test("rl.reward.problemNouns is on by default (a config without it too) and can be turned off", async () => {
  strictEqual(DEFAULT_RL_CONFIG.reward.problemNouns, true);
  // The demo configs write rl.reward without the key.
  strictEqual((await loadConfig("configs/rl_arith_dapo.yaml")).rl.reward.problemNouns, true);
  const off = await loadConfig(undefined, { overrides: [...RL, "--rl.reward.problemNouns=false"] });
  strictEqual(off.rl.reward.problemNouns, false);
  strictEqual(off.rl.reward.mode, "dapo");
});

Deno.test("rl.eval.final is on by default (a config without it too), can be turned off, and a non-boolean names the key", async () => {
  strictEqual(DEFAULT_RL_CONFIG.eval.final, true);
  // The demo configs write rl.eval without the key.
  strictEqual((await loadConfig("configs/rl_arith_dapo.yaml")).rl.eval.final, true);
  const off = await loadConfig(undefined, {
    overrides: [...RL, "--rl.eval.every=0", "--rl.eval.final=false"],
  });
  strictEqual(off.rl.eval.final, false);
  strictEqual(off.rl.eval.every, 0);
  await rejects(
    loadConfig(undefined, { overrides: [...RL, "--rl.eval.final=2"] }),
    /key "rl\.eval\.final"/,
  );
});

Deno.test("loadConfig() fills a loss term's keys from its defaults", async () => {
  const config = await loadConfig(undefined, {
    overrides: [...RL, "--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.5}]"],
  });
  const align = config.rl.losses[1];
  strictEqual(align.name, "hidden_align");
  if (align.name !== "hidden_align") throw new Error("unreachable");
  strictEqual(align.weight, 0.5);
  strictEqual(align.anchor, "before-marker");
  strictEqual(align.layer, "final");
});

Deno.test("loadConfig() refuses bad RL configs, naming the key", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--rl.losses=[{name: kl_penalty, weight: 1}]"],
      /key "rl\.losses\[0\]\.name".*"clipped_pg", "hidden_align"/,
    ],
    [["--rl.groupSize=1"], /key "rl\.groupSize".* must be >= 2: current value is 1/],
    [
      ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, anchor: after-answer}]"],
      /key "rl\.losses\[1\]\.anchor".*"before-marker"/,
    ],
    [["--rl.losses=[{name: hidden_align, layer: -1}]"], /key "rl\.losses\[0\]\.layer"/],
    [["--rl.losses=[{name: hidden_align}]"], /key "rl\.losses".*must hold a "clipped_pg" term/],
    [
      ["--rl.losses=[{name: clipped_pg}, {name: clipped_pg}]"],
      /key "rl\.losses\[1\]\.name".*must not repeat/,
    ],
    [
      ["--rl.losses=[{name: clipped_pg, clipHi: 0.3}]"],
      /key "rl\.losses\[0\]\.clipHi".*is unknown/,
    ],
    [
      ["--rl.overlong.buffer=64", "--rl.maxNewTokens=64"],
      /key "rl\.overlong\.buffer".*must be < "rl\.maxNewTokens"/,
    ],
    [["--rl.eval.prompts=500"], /key "rl\.eval\.prompts".*must be <= "rl\.data\.evalSize"/],
    [
      ["--rl.trainBatchPrompts=2", "--rl.miniBatches=4"],
      /key "rl\.miniBatches".*must be <= "rl\.trainBatchPrompts" \(2\)/,
    ],
    [["--rl.onShortBatch=skip"], /key "rl\.onShortBatch".*must be one of "train", "stop"/],
    [
      ["--rl.genBatchPrompts=2", "--rl.maxGenBatches=1", "--rl.trainBatchPrompts=8"],
      /key "rl\.maxGenBatches".* must be >= 4 \("rl\.trainBatchPrompts" \(8\) \/ "rl\.genBatchPrompts" \(2\), rounded up\).*every step.*short.*current value is 1/,
    ],
    // With the defaults of the other two (8 prompts a generation batch, at most 4 batches).
    [
      ["--rl.trainBatchPrompts=33"],
      /key "rl\.maxGenBatches".* must be >= 5 \("rl\.trainBatchPrompts" \(33\) \/ "rl\.genBatchPrompts" \(8\), rounded up\).*current value is 4/,
    ],
    [
      [
        "--rl.groupSize=8",
        "--rl.microBatchSize=4",
        "--rl.losses=[{name: clipped_pg}, {name: hidden_align, type: cos-pairwise}]",
      ],
      /key "rl\.microBatchSize".*must be >= "rl\.groupSize" \(8\) with the cos-pairwise/,
    ],
    [["--rl.temperature=0"], /key "rl\.temperature".*must be >= 0\.000001/],
    [["--rl.reward.problemNouns=3"], /key "rl\.reward\.problemNouns".*must be true or false/],
    [["--rl.eval.batchPrompts=-1"], /key "rl\.eval\.batchPrompts"/],
    [["--rl.eval.batchPrompts=all"], /key "rl\.eval\.batchPrompts"/],
    [["--rl.stopTokenIds=[151645, -1]"], /key "rl\.stopTokenIds\[1\]".*>= 0.*-1/],
    [["--rl.stopTokenIds=[1.5]"], /key "rl\.stopTokenIds\[0\]".*integer/],
    [["--rl.stopTokenIds=151645,x"], /key "rl\.stopTokenIds\[1\]".*number.*"x"/],
    // The file keys mean nothing to the arithmetic source (the default).
    ...(["path=x.jsonl", "evalPath=y.jsonl", "promptField=question", "answerField=gold"].map((
      kv,
    ): [string[], RegExp] => {
      const [key, value] = kv.split("=");
      return [
        [`--rl.data.${key}=${value}`],
        new RegExp(
          `key "rl\\.data\\.${key}" \\(set by [^)]*\\) is read only when "rl\\.data\\.source" is "jsonl" or ` +
            `"parquet", and it is "arithmetic": current value is "${value.replace(".", "\\.")}"`,
        ),
      ];
    })),
  ];
  for (const [overrides, message] of cases) {
    await rejects(loadConfig(undefined, { overrides: [...RL, ...overrides] }), (error: unknown) => {
      ok(error instanceof TypeError || error instanceof RangeError, String(error));
      ok(message.test((error as Error).message), `${overrides}: ${(error as Error).message}`);
      return true;
    });
  }
});

Deno.test("loadConfig() takes generation budgets that can just fill the batch", async () => {
  for (const [gen, batches, train] of [[2, 4, 8], [3, 3, 8], [12, 3, 8]]) {
    const config = await loadConfig(undefined, {
      overrides: [
        ...RL,
        `--rl.genBatchPrompts=${gen}`,
        `--rl.maxGenBatches=${batches}`,
        `--rl.trainBatchPrompts=${train}`,
      ],
    });
    strictEqual(config.rl.maxGenBatches, batches);
  }
});

Deno.test("loadConfig() reads rl.stopTokenIds: [] (the derived stop set only) by default, or a list", async () => {
  strictEqual(DEFAULT_RL_CONFIG.stopTokenIds.length, 0);
  const config = await loadConfig(undefined, { overrides: [...RL, "--rl.stopTokenIds=[151645]"] });
  strictEqual(JSON.stringify(config.rl.stopTokenIds), "[151645]");
  const listed = await loadConfig(undefined, { overrides: [...RL, "--rl.stopTokenIds=7, 9"] });
  strictEqual(JSON.stringify(listed.rl.stopTokenIds), "[7,9]");
  strictEqual((await loadConfig(undefined, { overrides: RL })).rl.stopTokenIds.length, 0);
});

Deno.test('loadConfig() reads rl.eval.batchPrompts: "auto" by default, or a prompt count', async () => {
  strictEqual((await loadConfig(undefined, { overrides: RL })).rl.eval.batchPrompts, 0);
  const config = await loadConfig(undefined, { overrides: [...RL, "--rl.eval.batchPrompts=6"] });
  strictEqual(config.rl.eval.batchPrompts, 6);
});

const REMOTE = [
  "--adapters.kind=lora",
  "--rl.rollout.backend=vllm",
  "--rl.rollout.servers=[http://10.0.0.5:8000]",
  "--rl.rollout.adapterDir=/shared/adapters",
];

Deno.test("loadConfig() reads the rl.rollout keys of a remote vLLM run with TIS", async () => {
  const config = await loadConfig(undefined, {
    overrides: [
      ...RL,
      ...REMOTE,
      "--rl.oldLogprobs=recompute",
      "--rl.rollout.tis.enabled=true",
      "--rl.rollout.tis.cap=3",
    ],
  });
  strictEqual(config.rl.rollout.backend, "vllm");
  strictEqual(config.rl.rollout.servers[0], "http://10.0.0.5:8000");
  strictEqual(config.rl.rollout.tis.cap, 3);
  strictEqual(config.rl.rollout.stalenessWindow, DEFAULT_RL_CONFIG.rollout.stalenessWindow);
  strictEqual(DEFAULT_RL_CONFIG.rollout.backend, "local");
  strictEqual(DEFAULT_RL_CONFIG.rollout.tis.enabled, false);
  strictEqual(DEFAULT_RL_CONFIG.rollout.tis.cap, 2);
  // The example config of the README loads.
  const example = await loadConfig("configs/rl_remote_vllm.yaml");
  strictEqual(example.rl.rollout.backend, "vllm");
  strictEqual(example.rl.rollout.tis.enabled, true);
});

Deno.test("loadConfig() refuses rl.rollout combinations that cannot work, naming the key", async () => {
  const cases: [string[], RegExp][] = [
    [
      [...REMOTE, "--adapters.kind=hilo"],
      /key "rl\.rollout\.backend".*must be "local" with "adapters\.kind" "hilo": inference engines serve plain PEFT LoRA only/,
    ],
    [
      [...REMOTE, "--adapters.kind=none"],
      /key "rl\.rollout\.backend".*must be "local" with "adapters\.kind" "none" \(full fine-tuning\).*not implemented: current value is "vllm"/,
    ],
    [
      [...REMOTE, "--rl.rollout.backend=llamacpp", "--adapters.kind=none"],
      /key "rl\.rollout\.backend".*full fine-tuning.*current value is "llamacpp"/,
    ],
    [
      [...REMOTE, "--rl.rollout.servers=[]"],
      /key "rl\.rollout\.servers".*must list at least one server URL when "rl\.rollout\.backend" is "vllm"/,
    ],
    [
      [...REMOTE, "--rl.rollout.servers=[10.0.0.5:8000]"],
      /key "rl\.rollout\.servers\[0\]".*http\(s\) URL/,
    ],
    [
      [...REMOTE, "--rl.rollout.adapterDir="],
      /key "rl\.rollout\.adapterDir".*must name a directory/,
    ],
    [
      [...REMOTE, "--rl.rollout.preflight=false"],
      /key "rl\.rollout\.model".*must name the served base model when "rl\.rollout\.preflight" is false/,
    ],
    [
      ["--rl.rollout.tis.enabled=true"],
      /key "rl\.rollout\.tis\.enabled".*must be false unless "rl\.oldLogprobs" is "recompute"/,
    ],
    [["--rl.rollout.tis.cap=0"], /key "rl\.rollout\.tis\.cap".*must be > 0/],
    [
      ["--rl.rollout.async.enabled=true"],
      /key "rl\.rollout\.async\.enabled".*must be false when "rl\.rollout\.backend" is "local"/,
    ],
    [
      [...REMOTE, "--rl.rollout.async.enabled=true", "--rl.rollout.stalenessWindow=0"],
      /key "rl\.rollout\.stalenessWindow".*must be >= 1 when "rl\.rollout\.async\.enabled" is true/,
    ],
    [
      [...REMOTE, "--rl.temperature=0.7", "--rl.topP=0.9"],
      /key "rl\.temperature".*must be 1 with remote rollouts and "rl\.topP" < 1.*softmax\(logits \/ temperature\) without truncation.*current value is 0\.7/,
    ],
    [["--rl.rollout.backend=tgi"], /key "rl\.rollout\.backend".*must be one of "local", "vllm"/],
    [["--rl.rollout.adapterPrefix=a/b"], /key "rl\.rollout\.adapterPrefix".*letters, digits/],
  ];
  for (const [overrides, message] of cases) {
    await rejects(loadConfig(undefined, { overrides: [...RL, ...overrides] }), (error: unknown) => {
      ok(error instanceof TypeError || error instanceof RangeError, String(error));
      ok(message.test((error as Error).message), `${overrides}: ${(error as Error).message}`);
      return true;
    });
  }
});

Deno.test("loadConfig() reads rl.mergeAdapters: auto by default, on or off", async () => {
  strictEqual(DEFAULT_RL_CONFIG.mergeAdapters, "auto");
  const off = await loadConfig(undefined, { overrides: [...RL, "--rl.mergeAdapters=off"] });
  strictEqual(off.rl.mergeAdapters, "off");
  await rejects(
    loadConfig(undefined, { overrides: [...RL, "--rl.mergeAdapters=always"] }),
    (error: unknown) =>
      /key "rl\.mergeAdapters".*"auto", "on", "off"/.test((error as Error).message),
  );
});

Deno.test("loadConfig() reads rl.releaseWorkspaces, rl.gpuMemoryBudget (GB, 0 = off) and rl.gpuMemoryHeadroom ([0, 1))", async () => {
  strictEqual(DEFAULT_RL_CONFIG.releaseWorkspaces, true);
  strictEqual(DEFAULT_RL_CONFIG.gpuMemoryBudget, 0);
  strictEqual(DEFAULT_RL_CONFIG.gpuMemoryHeadroom, 0.1);
  const set = await loadConfig(undefined, {
    overrides: [
      ...RL,
      "--rl.releaseWorkspaces=false",
      "--rl.gpuMemoryBudget=141",
      "--rl.gpuMemoryHeadroom=0",
    ],
  });
  strictEqual(set.rl.releaseWorkspaces, false);
  strictEqual(set.rl.gpuMemoryBudget, 141);
  strictEqual(set.rl.gpuMemoryHeadroom, 0);
  await rejects(
    loadConfig(undefined, { overrides: [...RL, "--rl.gpuMemoryBudget=-1"] }),
    (error: unknown) => /key "rl\.gpuMemoryBudget"/.test((error as Error).message),
  );
  for (const bad of ["-0.1", "1", "1.5"]) {
    await rejects(
      loadConfig(undefined, { overrides: [...RL, `--rl.gpuMemoryHeadroom=${bad}`] }),
      (error: unknown) => /key "rl\.gpuMemoryHeadroom"/.test((error as Error).message),
      bad,
    );
  }
});

Deno.test("withRolloutDefaults() fills the keys a saved config predates, and only those", () => {
  const old = { trainer: { mode: "rl" }, rl: { groupSize: 8 } };
  const filled = withRolloutDefaults(old) as { rl: Record<string, unknown> };
  strictEqual(filled.rl.groupSize, 8);
  strictEqual(filled.rl.releaseWorkspaces, true);
  strictEqual(filled.rl.gpuMemoryBudget, 0);
  strictEqual(filled.rl.gpuMemoryHeadroom, 0.1);
  strictEqual((filled.rl.rollout as { backend: string }).backend, "local");
  strictEqual("releaseWorkspaces" in old.rl, false, "the saved config was changed");
  const kept = {
    rl: {
      releaseWorkspaces: false,
      gpuMemoryBudget: 80,
      gpuMemoryHeadroom: 0.2,
      rollout: { apiKeyEnv: "K", maxSeqsInFlight: 8, unloadStale: true },
    },
  };
  strictEqual(withRolloutDefaults(kept), kept);
  // An rl.rollout from before apiKeyEnv / maxSeqsInFlight / unloadStale: no key, the pool's cap
  // of 256, no stale unloads.
  const rollout = { ...kept.rl, rollout: { backend: "vllm" } };
  deepStrictEqual((withRolloutDefaults({ rl: rollout }) as typeof kept).rl.rollout, {
    backend: "vllm",
    apiKeyEnv: "",
    maxSeqsInFlight: 256,
    unloadStale: false,
  });
});

Deno.test("rlKeyWarnings() names rl.alignKeepAllCorrect when nothing reads it", () => {
  const align = {
    name: "hidden_align",
    weight: 0.1,
    type: "cos-centroid",
    anchor: "before-marker",
    layer: "final",
  } as const;
  const withAlign = [DEFAULT_RL_CONFIG.losses[0], align];
  const rl = (over: Partial<typeof DEFAULT_RL_CONFIG>) => ({ ...DEFAULT_RL_CONFIG, ...over });
  // Read: an align term and dynamic sampling; or the key left at false.
  deepStrictEqual(rlKeyWarnings(rl({ alignKeepAllCorrect: true, losses: withAlign })), []);
  deepStrictEqual(rlKeyWarnings(DEFAULT_RL_CONFIG), []);
  deepStrictEqual(rlKeyWarnings(rl({ dynamicSampling: false, losses: withAlign })), []);
  // No align term: no group is kept for it.
  const noAlign = rlKeyWarnings(rl({ alignKeepAllCorrect: true }));
  strictEqual(noAlign.length, 1);
  ok(/^key "rl\.alignKeepAllCorrect" is true but not read: .*"hidden_align" term/.test(noAlign[0]));
  // Dynamic sampling off: all-correct groups are policy groups already.
  const off = rlKeyWarnings(
    rl({ alignKeepAllCorrect: true, dynamicSampling: false, losses: withAlign }),
  );
  strictEqual(off.length, 1);
  ok(
    /^key "rl\.alignKeepAllCorrect" is true but not read: .*"rl\.dynamicSampling" is false/.test(
      off[0],
    ),
  );
});

Deno.test("rlConfigProblems() refuses data.task suite when given the run's task: RL reads no suite", () => {
  const suite = rlConfigProblems(DEFAULT_RL_CONFIG, { dataTask: "suite" });
  strictEqual(suite.length, 1);
  strictEqual(suite[0][0], "data.task");
  ok(
    /^must be "arithmetic" with "trainer\.mode" "rl" .*current value is "suite"$/.test(suite[0][1]),
  );
  deepStrictEqual(rlConfigProblems(DEFAULT_RL_CONFIG, { dataTask: "arithmetic" }), []);
  deepStrictEqual(rlConfigProblems(DEFAULT_RL_CONFIG), []);
});
