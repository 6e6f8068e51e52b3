// A static check that no kernel stores into one component of a vector in workgroup memory.
// WGSL lets a write to one component of a vector access every memory location of that vector
// (gpuweb PR #3832), and Metal (MSL spec) and D3D may do it as a read-modify-write of the whole
// vector, so invocations that write different components of the same shared vector at the same
// time race (gpuweb#2112: nondeterministic results on Metal and D3D). Lavapipe stores each
// component on its own and never shows it, so this test looks for the pattern in the source.
//
// What it flags: in every kernels/**/*.wgsl file (and every .ts file under kernels/, gpu/ and
// model/ that declares `var<workgroup>`, should a kernel ever be built in a TypeScript string),
// a store (`=`, `+=` …, `++`, `--`) through more selectors (`[i]` or `.x`) than the arrays around
// the vector of a `var<workgroup>` variable whose type is a vector or (nested) arrays of vectors:
// `v[i] =` or `v.x =` for `v: vec4f`, `a[i][c] =` or `a[i].x =` for `a: array<vec4f, N>`. The
// variables of a .wgsl file are those declared in any .wgsl file of its folder (shared `_*.wgsl`
// parts are concatenated with the kernels of their folder). Not covered: stores through a pointer
// (`let q = &a[i]; (*q).x = …`), and struct-typed workgroup variables (there are none).
import assert from "node:assert/strict";

/** A store into one component of a workgroup vector: where, and the variable. */
interface ComponentStore {
  /** 1-based line of the store. */
  line: number;
  /** The workgroup variable. */
  name: string;
}

// The source with // and /* */ comments blanked out (newlines kept, so lines keep their numbers).
function stripComments(source: string): string {
  return source.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "));
}

/**
 * The workgroup variables of `source` whose type is a vector or arrays of vectors, each with the
 * number of arrays around its vector (0 for `vec4f`, 1 for `array<vec4f, 8>`).
 */
function workgroupVectors(source: string): Map<string, number> {
  const out = new Map<string, number>();
  const decl = /var\s*<\s*workgroup\s*>\s*([A-Za-z_]\w*)\s*:\s*([^;]+);/g;
  for (const [, name, type] of stripComments(source).matchAll(decl)) {
    let t = type.replace(/\s+/g, "");
    let depth = 0;
    while (t.startsWith("array<")) {
      t = t.slice("array<".length);
      depth++;
    }
    if (/^vec[234]/.test(t)) out.set(name, depth);
  }
  return out;
}

// The end of the balanced [...] that opens at `i`, or -1.
function closeBracket(text: string, i: number): number {
  let open = 0;
  for (let j = i; j < text.length; j++) {
    if (text[j] === "[") open++;
    else if (text[j] === "]" && --open === 0) return j;
  }
  return -1;
}

/** The stores of `source` into a component of one of the workgroup vectors `vars`. */
function componentStores(source: string, vars: Map<string, number>): ComponentStore[] {
  const text = stripComments(source);
  const out: ComponentStore[] = [];
  for (const [name, depth] of vars) {
    for (const m of text.matchAll(new RegExp(`(?<![\\w.])${name}\\b`, "g"))) {
      let i = m.index + name.length;
      let selectors = 0;
      for (;;) {
        const rest = text.slice(i);
        const skip = rest.length - rest.trimStart().length;
        if (text[i + skip] === "[") {
          const end = closeBracket(text, i + skip);
          if (end < 0) break;
          i = end + 1;
        } else {
          const member = /^\s*\.\s*[A-Za-z_]\w*/.exec(rest);
          if (!member) break;
          i += member[0].length;
        }
        selectors++;
      }
      if (selectors <= depth) continue;
      if (/^\s*(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+|--)/.test(text.slice(i))) {
        out.push({ line: text.slice(0, m.index).split("\n").length, name });
      }
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

// Files under `dir` (repository-relative) whose names end with `ext`, sorted.
async function filesUnder(dir: string, ext: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(new URL(`../${dir}`, import.meta.url))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path, ext));
    else if (entry.isFile && entry.name.endsWith(ext)) out.push(path);
  }
  return out.sort();
}

const read = (path: string) => Deno.readTextFile(new URL(`../${path}`, import.meta.url));

// Every component store in the project's kernels, as "file:line (name)".
async function projectStores(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const wgsl = await filesUnder("kernels", ".wgsl");
  const byFolder = new Map<string, Map<string, number>>();
  for (const path of wgsl) {
    const folder = path.slice(0, path.lastIndexOf("/"));
    const vars = byFolder.get(folder) ?? new Map<string, number>();
    for (const [name, depth] of workgroupVectors(await read(path))) vars.set(name, depth);
    byFolder.set(folder, vars);
  }
  for (const path of wgsl) {
    const vars = byFolder.get(path.slice(0, path.lastIndexOf("/")))!;
    for (const s of componentStores(await read(path), vars)) {
      found.set(`${path}:${s.line}`, s.name);
    }
  }
  const self = "kernels/workgroup_vector_writes_test.ts";
  for (const dir of ["kernels", "gpu", "model"]) {
    for (const path of await filesUnder(dir, ".ts")) {
      if (path === self) continue;
      const source = await read(path);
      for (const s of componentStores(source, workgroupVectors(source))) {
        found.set(`${path}:${s.line}`, s.name);
      }
    }
  }
  return found;
}

Deno.test("componentStores() flags component stores into workgroup vectors, not whole ones", () => {
  const source = [
    "var<workgroup> As: array<vec4f, 512>;",
    "var<workgroup> tmp: vec4<f32>;",
    "var<workgroup> grid: array<array<vec2f, 4>, 4>; // 2 arrays",
    "var<workgroup> s: array<f32, 64>;",
    "var<private> pa: vec4f;",
    "fn f(li: u32, c: u32, base: u32, sa: vec2u, j: u32, v: vec4f) {",
    // matmul_128.wgsl before its fix: stash and stash_vec.
    "  As[base + sa.y * 32u + sa.x / 4u][sa.x % 4u] = pa[j];",
    "  As[i + 32u][c] = v.y;",
    "  As [ i ] . x += 1.0;",
    "  tmp[li] = 1.0;",
    "  tmp.y++;",
    "  grid[1][2].x = 0.0;",
    // Whole vectors, reads, comparisons, other address spaces, comments: not stores of a component.
    "  As[base + li] = pa;",
    "  grid[1][2] = vec2f();",
    "  tmp = v;",
    "  let a = As[li][c] + As[li].x;",
    "  let b = As[li][c] == 0.0 || As[li].y <= 1.0 || As[li][c] >= 2.0 || As[li].z != 3.0;",
    "  s[li] = 0.0;",
    "  pa[j] = 0.0;",
    "  // As[li][c] = 0.0;",
    "  /* tmp.x = 1.0; */",
    "}",
  ].join("\n");
  const vars = workgroupVectors(source);
  assert.deepEqual([...vars], [["As", 1], ["tmp", 0], ["grid", 2]]);
  assert.deepEqual(componentStores(source, vars).map((s) => `${s.line} ${s.name}`), [
    "7 As",
    "8 As",
    "9 As",
    "10 tmp",
    "11 tmp",
    "12 grid",
  ]);
});

Deno.test("no kernel stores into a component of a vector in workgroup memory", async () => {
  const found = await projectStores();
  const bad = [...found].map(([at, name]) => `${at} (${name})`);
  assert.deepEqual(
    bad,
    [],
    `Component stores into workgroup vectors (a race on Metal and D3D; write whole vectors, or ` +
      `make the shared array scalar): ${bad.join(", ")}`,
  );
});
