import { deepStrictEqual, match, strictEqual, throws } from "node:assert/strict";
import { DEFAULT_CONFIG } from "./config.ts";
import { TINY_CONFIG } from "./_test_utils.ts";
import { adapterKeyWarnings, runAdapters } from "./run_adapters.ts";

const withAdapters = (adapters: Partial<typeof DEFAULT_CONFIG.adapters>) => ({
  ...DEFAULT_CONFIG,
  adapters: { ...DEFAULT_CONFIG.adapters, ...adapters },
});

Deno.test("adapterKeyWarnings() is silent when every key set is read by the kind", () => {
  deepStrictEqual(adapterKeyWarnings(DEFAULT_CONFIG), []);
  deepStrictEqual(adapterKeyWarnings(withAdapters({ kind: "lora", r: 16, rslora: true })), []);
  const hilo = { ...DEFAULT_CONFIG.adapters.hilo, experts: "2-4", alpha: 2, alphaPerRank: true };
  deepStrictEqual(adapterKeyWarnings(withAdapters({ kind: "hilo", hilo, dropout: 0.1 })), []);
});

Deno.test("adapterKeyWarnings() names the keys the kind does not read", () => {
  const hilo = adapterKeyWarnings(withAdapters({ kind: "hilo", r: 32, rslora: true }));
  deepStrictEqual(hilo, [
    'key "adapters.r" is set but not read with "adapters.kind" "hilo"',
    'key "adapters.rslora" is set but not read with "adapters.kind" "hilo"',
  ]);
  const lora = adapterKeyWarnings(
    withAdapters({ kind: "lora", hilo: { ...DEFAULT_CONFIG.adapters.hilo, balanceCoef: 0.01 } }),
  );
  deepStrictEqual(lora, [
    'key "adapters.hilo.balanceCoef" is set but not read with "adapters.kind" "lora"',
  ]);
  const none = adapterKeyWarnings(withAdapters({ kind: "none", targets: ["q_proj"], alpha: 8 }));
  deepStrictEqual(none, [
    'key "adapters.alpha" is set but not read with "adapters.kind" "none"',
    'key "adapters.targets" is set but not read with "adapters.kind" "none"',
  ]);
});

Deno.test("adapterKeyWarnings() warns of alphaPerRank with HILO's default alpha (scale 16)", () => {
  const hilo = { ...DEFAULT_CONFIG.adapters.hilo, alphaPerRank: true };
  const warnings = adapterKeyWarnings(withAdapters({ kind: "hilo", hilo }));
  strictEqual(warnings.length, 1);
  match(warnings[0], /"adapters\.hilo\.alphaPerRank" is true .* every expert's scale is 16/);
});

Deno.test("runAdapters() names the adapters.hilo key of a schedule that does not fit the model", () => {
  const model = { ...TINY_CONFIG, numHiddenLayers: 2 };
  const hilo = (over: Partial<typeof DEFAULT_CONFIG.adapters.hilo>) =>
    withAdapters({ kind: "hilo", hilo: { ...DEFAULT_CONFIG.adapters.hilo, ...over } });
  throws(() => runAdapters(hilo({ rank: [2, 8, 4] }), model), {
    name: "RangeError",
    message: 'Cannot parse the rank schedule (key "adapters.hilo.rank"): an explicit list must ' +
      "have one value per layer (2): current length is 3",
  });
  throws(() => runAdapters(hilo({ experts: [1, 4], topK: 2 }), model), {
    name: "RangeError",
    message: 'Cannot build a HILO config: key "adapters.hilo.topK" of layer 0 must be at most ' +
      'its expert count 1 (key "adapters.hilo.experts"): current value is 2',
  });
});
