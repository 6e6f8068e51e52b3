import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { checkImports, importSpecifiers, readModules } from "./check_imports.ts";

Deno.test("importSpecifiers() reads static imports and re-exports, not examples or packages", () => {
  const source = [
    "/**",
    ' * import { x } from "../nope/x.ts";',
    " */",
    'import { a, type B } from "./a.ts";',
    "import {",
    "  c,",
    "  d,",
    '} from "../c/d.ts";',
    'import type { E } from "../e/e.ts";',
    'export * from "./f.ts";',
    'export type * from "../g/g.ts";',
    'export { h } from "./h.ts";',
    'import code from "./k.wgsl" with { type: "text" };',
    'import "./side_effect.ts";',
    'import { z } from "zod";',
    'const later = await import("../dynamic/x.ts");',
  ].join("\n");
  deepStrictEqual(importSpecifiers(source), [
    "./a.ts",
    "../c/d.ts",
    "../e/e.ts",
    "./f.ts",
    "../g/g.ts",
    "./h.ts",
    "./k.wgsl",
    "./side_effect.ts",
  ]);
});

Deno.test("checkImports() finds a three-folder cycle and names the files on it", () => {
  const report = checkImports(
    new Map([
      ["a/one.ts", 'import { b } from "../b/two.ts";\n'],
      ["b/two.ts", 'import { c } from "../c/three.ts";\n'],
      ["c/three.ts", 'import { a } from "../a/sub/four.ts";\n'],
      ["a/sub/four.ts", 'import { z } from "../../z/leaf.ts";\n'],
      ["z/leaf.ts", "export const z = 1;\n"],
    ]),
  );
  deepStrictEqual(report.cycles, [["a", "b", "c", "a"]]);
  strictEqual(report.problems.length, 1);
  strictEqual(
    report.problems[0],
    [
      "Folder import cycle: a -> b -> c -> a",
      "  a/one.ts imports b/two.ts",
      "  b/two.ts imports c/three.ts",
      "  c/three.ts imports a/sub/four.ts",
    ].join("\n"),
  );
});

Deno.test("checkImports() accepts a graph that points down", () => {
  const report = checkImports(
    new Map([
      ["mod.ts", 'export * from "./a/mod.ts";\nexport * from "./b/mod.ts";\n'],
      ["a/mod.ts", 'export * from "./x.ts";\n'],
      ["a/x.ts", 'import { y } from "../b/y.ts";\nimport { p } from "./_p.ts";\n'],
      ["a/_p.ts", 'import { y } from "../b/y.ts";\n'],
      ["b/mod.ts", 'export * from "./y.ts";\n'],
      ["b/y.ts", 'import { show } from "../internal/show.ts";\n'],
      ["internal/show.ts", "export const show = 1;\n"],
    ]),
  );
  deepStrictEqual(report.cycles, []);
  deepStrictEqual(report.problems, []);
  deepStrictEqual([...report.folderEdges.keys()].sort(), [
    ". -> a",
    ". -> b",
    "a -> b",
    "b -> internal",
  ]);
});

Deno.test("checkImports() leaves tests out of cycles but not out of the private-file rule", () => {
  const report = checkImports(
    new Map([
      ["a/x.ts", 'import { y } from "../b/y.ts";\n'],
      ["b/y.ts", "export const y = 1;\n"],
      ["b/y_test.ts", 'import { x } from "../a/x.ts";\nimport { q } from "../a/_q.ts";\n'],
      ["b/test_utils.ts", 'import { x } from "../a/x.ts";\n'],
      ["a/_q.ts", "export const q = 1;\n"],
    ]),
  );
  deepStrictEqual(report.cycles, []);
  deepStrictEqual(report.privateImports, [{ from: "b/y_test.ts", to: "a/_q.ts" }]);
  strictEqual(report.problems.length, 1);
  strictEqual(
    report.problems[0].startsWith(
      "Private import across folders: b/y_test.ts imports a/_q.ts",
    ),
    true,
  );
});

Deno.test("checkImports() passes on this repository", async () => {
  const root = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
  const report = checkImports(await readModules(root));
  deepStrictEqual(report.problems, []);
});
