// Test helper shared by the HILO projection tests (hilo_webgpu_test.ts,
// hilo_grouped_webgpu_test.ts): one routed projection with random experts and router.
import { randomArray } from "../gpu/test_utils.ts";
import type { HiloActivation, LoraModule } from "./adapter_types.ts";
import { projectionModuleName, type ProjectionName } from "./tensor_table.ts";

/** The routed projection that {@linkcode randomRoutedModule} builds. */
export interface RoutedModuleSpec {
  /** Expert ranks, one per expert. */
  ranks: readonly number[];
  activation: HiloActivation;
  topK: number;
  /** Copy router rows 1 → 2 and 5 → 6 (where present), so those experts tie. Default false. */
  ties?: boolean;
  /** The layer-0 projection it adapts; default `"q_proj"`. */
  target?: ProjectionName;
}

/**
 * A routed (HILO) module of one layer-0 projection, `[outF, inF]`: router rows uniform in
 * [-1, 1), then each expert's A and B uniform in [-0.5, 0.5), scale 2 / r, top-p threshold 0.6.
 * Seeds are consumed one per array from `seed` on; returns the module and the next seed.
 */
export function randomRoutedModule(
  spec: RoutedModuleSpec,
  shape: { inF: number; outF: number; seed: number },
): { module: LoraModule; seed: number } {
  const { inF, outF } = shape;
  let seed = shape.seed;
  const E = spec.ranks.length;
  const weight = randomArray(E * inF, seed++, -1, 1);
  if (spec.ties) {
    for (const [from, to] of [[1, 2], [5, 6]]) {
      if (to < E) weight.copyWithin(to * inF, from * inF, from * inF + inF);
    }
  }
  const target = spec.target ?? "q_proj";
  const module: LoraModule = {
    name: projectionModuleName(0, target),
    layer: 0,
    target,
    inFeatures: inF,
    outFeatures: outF,
    experts: spec.ranks.map((r) => ({
      a: randomArray(r * inF, seed++, -0.5, 0.5),
      b: randomArray(outF * r, seed++, -0.5, 0.5),
      r,
      scale: 2 / r,
    })),
    router: { weight, activation: spec.activation, topK: spec.topK, topP: 0.6 },
  };
  return { module, seed };
}
