/**
 * The import check of `deno task ok` and CI: builds the folder-level graph of the project's static
 * imports (`import … from`, `export … from`, `import "…"` with relative specifiers) and reports
 * every cycle between top-level folders, and every import of another folder's private (`_`-prefixed)
 * file. Imports point down: `internal/` at the bottom, `cli/`, `bench/` and `tests/` at the top.
 *
 * Unit tests (`*_test.ts`) and test helpers (`test_utils.ts`) may import any folder, like
 * `tests/`, so they are left out of the cycle check (not of the private-file check).
 *
 * Run from the repository root: `deno run --allow-read internal/check_imports.ts [--graph]`.
 *
 * @module
 */

/** One static import between two files of the project, both repository-relative. */
export interface ImportEdge {
  /** The importing file, e.g. `"model/weights.ts"`. */
  from: string;
  /** The imported file, e.g. `"internal/safetensors.ts"`. */
  to: string;
}

/** What {@linkcode checkImports} found. */
export interface ImportReport {
  /** Folder-level edges as `"from -> to"`, each with the files that make it (sorted). */
  folderEdges: Map<string, ImportEdge[]>;
  /** Each folder cycle as its folders in order, the first repeated at the end. */
  cycles: string[][];
  /** Imports of another folder's private (`_`-prefixed) file. */
  privateImports: ImportEdge[];
  /** One line per problem (empty when the imports are clean). */
  problems: string[];
}

const STATIC_IMPORT =
  /^(?:import|export)\b(?:\s+type\b)?[^;'"`]*?\bfrom\s*["']([^"']+)["']|^import\s*["']([^"']+)["']/gm;

/**
 * The relative specifiers of a module's static imports and re-exports. Only statements that
 * start a line count, so imports inside JSDoc examples (` * import …`) and dynamic `import()`
 * are ignored.
 *
 * @param source The module's text.
 * @returns The specifiers that start with `./` or `../`, in order.
 *
 * @example Read the imports of a module
 * ```ts
 * import { importSpecifiers } from "./check_imports.ts";
 * const source = 'import { a } from "./a.ts";\nexport * from "../b/mod.ts";\nimport "npm:zod";\n';
 * console.log(importSpecifiers(source)); // ["./a.ts", "../b/mod.ts"]
 * ```
 */
export function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  for (const match of source.matchAll(STATIC_IMPORT)) {
    const specifier = match[1] ?? match[2];
    if (specifier.startsWith("./") || specifier.startsWith("../")) out.push(specifier);
  }
  return out;
}

/** Joins a repository-relative directory and a relative specifier into a normalised path. */
function resolve(fromFile: string, specifier: string): string {
  const parts = fromFile.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return `../${specifier}`; // outside the repository
      parts.pop();
    } else parts.push(part);
  }
  return parts.join("/");
}

/** The top-level folder of a repository-relative path (`"."` for files at the root). */
function folderOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? "." : path.slice(0, slash);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function isTestFile(path: string): boolean {
  const name = baseName(path);
  return name.endsWith("_test.ts") || name === "test_utils.ts";
}

/** Strongly connected components of a directed graph (Tarjan), each with more than one node. */
function cyclicComponents(nodes: string[], next: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) out.push(component.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return out;
}

/** A shortest cycle through `start` inside `component` (breadth-first), `start` at both ends. */
function cycleThrough(
  start: string,
  component: Set<string>,
  next: Map<string, Set<string>>,
): string[] {
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of [...(next.get(v) ?? [])].sort()) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = parent.get(u)!) path.unshift(u);
        path.unshift(start);
        return path;
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/**
 * Checks the imports of a set of modules: folder-level cycles (test files left out) and imports
 * of another folder's `_`-prefixed file (test files included).
 *
 * @param files Each module's repository-relative path (with `/`) and text.
 * @returns The folder graph, its cycles, the private imports and one line per problem.
 *
 * @example A cycle between two folders, and a private import
 * ```ts
 * import { checkImports } from "./check_imports.ts";
 * const report = checkImports(new Map([
 *   ["a/x.ts", 'import { y } from "../b/y.ts";\n'],
 *   ["b/y.ts", 'import { z } from "../a/_z.ts";\n'],
 *   ["a/_z.ts", "export const z = 1;\n"],
 * ]));
 * console.log(report.cycles); // [["a", "b", "a"]]
 * console.log(report.privateImports); // [{ from: "b/y.ts", to: "a/_z.ts" }]
 * ```
 */
export function checkImports(files: ReadonlyMap<string, string>): ImportReport {
  const folderEdges = new Map<string, ImportEdge[]>();
  const next = new Map<string, Set<string>>();
  const privateImports: ImportEdge[] = [];
  for (const [from, source] of [...files].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    for (const specifier of importSpecifiers(source)) {
      const to = resolve(from, specifier);
      const [fromFolder, toFolder] = [folderOf(from), folderOf(to)];
      if (fromFolder === toFolder) continue;
      if (baseName(to).startsWith("_")) privateImports.push({ from, to });
      if (isTestFile(from)) continue;
      const key = `${fromFolder} -> ${toFolder}`;
      if (!folderEdges.has(key)) folderEdges.set(key, []);
      folderEdges.get(key)!.push({ from, to });
      if (!next.has(fromFolder)) next.set(fromFolder, new Set());
      next.get(fromFolder)!.add(toFolder);
    }
  }
  const nodes = [...new Set([...next.keys(), ...[...next.values()].flatMap((s) => [...s])])]
    .sort();
  const cycles = cyclicComponents(nodes, next).map((c) => cycleThrough(c[0], new Set(c), next));
  const problems: string[] = [];
  for (const cycle of cycles) {
    const lines = [`Folder import cycle: ${cycle.join(" -> ")}`];
    for (let i = 0; i + 1 < cycle.length; i++) {
      const edges = folderEdges.get(`${cycle[i]} -> ${cycle[i + 1]}`)!;
      for (const e of edges) lines.push(`  ${e.from} imports ${e.to}`);
    }
    problems.push(lines.join("\n"));
  }
  for (const e of privateImports) {
    problems.push(
      `Private import across folders: ${e.from} imports ${e.to} (a "_" file is private to ` +
        `"${folderOf(e.to)}/"; move it to a public file, e.g. in internal/)`,
    );
  }
  return { folderEdges, cycles, privateImports, problems };
}

const SKIP = new Set([".git", "node_modules", "out", ".gpu", "fixtures"]);

/**
 * Reads every `.ts` file under `root` (skipping `.git`, `node_modules`, `out`, `.gpu` and
 * `fixtures` folders).
 *
 * @param root The repository root.
 * @returns Each file's path relative to `root` and its text.
 *
 * @example Read the project's modules
 * ```ts ignore
 * import { readModules } from "./check_imports.ts";
 * const files = await readModules(".");
 * console.log(files.has("mod.ts")); // true
 * ```
 */
export async function readModules(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      if (SKIP.has(entry.name)) continue;
      const path = `${dir}/${entry.name}`;
      const rel = `${prefix}${entry.name}`;
      if (entry.isDirectory) await walk(path, `${rel}/`);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(rel, await Deno.readTextFile(path));
      }
    }
  };
  await walk(root, "");
  return files;
}

if (import.meta.main) {
  const report = checkImports(await readModules("."));
  if (Deno.args.includes("--graph")) {
    for (const [key, edges] of [...report.folderEdges].sort()) {
      console.log(`${key} (${edges.length})`);
    }
  }
  if (report.problems.length > 0) {
    for (const problem of report.problems) console.error(problem);
    Deno.exit(1);
  }
  console.log(`Imports point down: ${report.folderEdges.size} folder edges, no cycle`);
}
