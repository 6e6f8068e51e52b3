// Copyright 2025 the halo authors. MIT license.
/**
 * The one place that turns a Vega-Lite spec into SVG text: Vega-Lite compiles it to a Vega spec
 * and a headless Vega view (renderer "none", no canvas, no network) renders it with `toSVG()`.
 *
 * @module
 */

import { Error as LogError, logger, parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** Shared look of every chart: white background, sans-serif text, light grid. */
export const CHART_CONFIG = {
  background: "white",
  font: "sans-serif",
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#e6e6e6" },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  title: { fontSize: 14, anchor: "start" },
  view: { stroke: "#cccccc" },
} as const;

/** Compile messages: errors only (the warnings are about defaults the charts choose on purpose). */
const quietLogger = logger(LogError);

/**
 * Renders a Vega-Lite spec to an SVG document.
 *
 * @param spec The Vega-Lite spec (inline data only).
 * @returns The SVG text, beginning with `<svg`.
 */
export async function renderVegaLite(spec: TopLevelSpec): Promise<string> {
  const compiled = compile({ config: CHART_CONFIG, ...spec } as TopLevelSpec, {
    logger: quietLogger,
  });
  const view = new View(parse(compiled.spec), { renderer: "none", logLevel: LogError });
  try {
    return renumberDefIds(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/**
 * Vega numbers clip paths and gradients from counters global to the process, so the same chart
 * drawn twice would differ; renumber them per document in order of appearance.
 */
function renumberDefIds(svg: string): string {
  const ids = new Map<string, string>();
  return svg.replace(
    /(id="|url\(#)(clip|gradient_)(\d+)/g,
    (_match, before: string, kind: string, n: string) => {
      const key = `${kind}${n}`;
      let id = ids.get(key);
      if (id === undefined) {
        id = `${kind}${[...ids.keys()].filter((k) => k.startsWith(kind)).length + 1}`;
        ids.set(key, id);
      }
      return `${before}${id}`;
    },
  );
}

/** Throws a RangeError naming the chart and the value when `value` is not a finite number. */
export function requireFinite(chart: string, what: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot draw ${chart}: ${what} must be a finite number: current value is ${String(value)}`,
    );
  }
}
